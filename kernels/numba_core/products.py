"""Matrix products (plain loops up to ``SMALL_GEMM``, BLAS's gemm above, by
``blas.gemm``), sums of squares and column sums.
"""

import numpy as np
from numba import njit
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic

from ..config import SMALL_GEMM
from ._setup import INLINE, INLINE_REDUCE, JIT, REDUCE, U
from .blas import gemm


@njit(**INLINE)
def _flat(A):
    """1-D view of a C-contiguous array."""
    return A.reshape(A.size)


@njit(**INLINE_REDUCE)
def _four_dots(u, s, v, r0, r1, r2, r3, n):
    """The dot products of u[s:s + n] with v[r0:r0 + n], v[r1:], v[r2:] and
    v[r3:], in one pass that loads each entry of u once for the four (the
    four sums vectorised side by side, in lanes the compiled code fixes)."""
    dt = v.dtype.type
    t0 = t1 = t2 = t3 = dt(0.0)
    for i in range(n):
        x = u[s + i]
        t0 += x * v[r0 + i]
        t1 += x * v[r1 + i]
        t2 += x * v[r2 + i]
        t3 += x * v[r3 + i]
    return t0, t1, t2, t3


@intrinsic
def _read_only(typingctx, A):
    """A as a read-only array (the same array): a hidden layer's activations
    then reach the products with the type of the input X, which the kernels
    take read-only (``api.read_only``), and every product is compiled once
    for both instead of once for each."""
    def codegen(context, builder, signature, args):
        return impl_ret_borrowed(context, builder, signature.return_type, args[0])

    return A.copy(readonly=True)(A), codegen


@njit(**JIT)
def gemm_nn(A, B, C):
    """C = A @ B; a single row of A is a plain loop at any size (one pass over
    B, which BLAS cannot beat). The loop takes eight rows of B per pass over a
    row of C: one load and store of C per eight multiply-adds."""
    m, k = A.shape
    n = B.shape[1]
    if m * n * k > SMALL_GEMM and m > 1:
        gemm(False, False, m, n, k, 1.0, A, B, 0.0, C)
        return
    a, b, c = _flat(A), _flat(B), _flat(C)
    ku, nu = U(k), U(n)
    k8 = ku - ku % U(8)
    for i in range(U(m)):
        ci = i * nu
        ai = i * ku
        for j in range(nu):
            c[ci + j] = 0.0
        for p in range(U(0), k8, U(8)):
            a0, a1, a2, a3 = a[ai + p], a[ai + p + U(1)], a[ai + p + U(2)], a[ai + p + U(3)]
            a4, a5, a6, a7 = a[ai + p + U(4)], a[ai + p + U(5)], a[ai + p + U(6)], a[ai + p + U(7)]
            b0 = p * nu
            b1, b2, b3, b4 = b0 + nu, b0 + U(2) * nu, b0 + U(3) * nu, b0 + U(4) * nu
            b5, b6, b7 = b0 + U(5) * nu, b0 + U(6) * nu, b0 + U(7) * nu
            for j in range(nu):
                c[ci + j] += (((a0 * b[b0 + j] + a1 * b[b1 + j]) + (a2 * b[b2 + j] + a3 * b[b3 + j]))
                              + ((a4 * b[b4 + j] + a5 * b[b5 + j]) + (a6 * b[b6 + j] + a7 * b[b7 + j])))
        for p in range(k8, ku):
            av = a[ai + p]
            bp = p * nu
            for j in range(nu):
                c[ci + j] += av * b[bp + j]


@njit(**JIT)
def gemm_tn(A, B, C):
    """C = A.T @ B."""
    m, k = A.shape
    n = B.shape[1]
    if m * n * k > SMALL_GEMM:
        gemm(True, False, k, n, m, 1.0, A, B, 0.0, C)
        return
    a, b, c = _flat(A), _flat(B), _flat(C)
    ku, nu = U(k), U(n)
    for i in range(c.shape[0]):
        c[i] = 0.0
    for p in range(U(m)):
        bp = p * nu
        for i in range(ku):
            av = a[p * ku + i]
            ci = i * nu
            for j in range(nu):
                c[ci + j] += av * b[bp + j]


@njit(**JIT)
def gemm_tn_scaled(A, B, C, alpha, beta):
    """C = alpha A.T @ B + beta C in one BLAS call, at any size."""
    m, k = A.shape
    gemm(True, False, k, B.shape[1], m, alpha, A, B, beta, C)


@njit(**JIT)
def gemm_nt(A, B, C):
    """C = A @ B.T; an outer product (k = 1: the delta below a layer of one
    unit, a binary classifier's output) is a plain loop at any size, 2x as
    fast as BLAS's kernel for it (0.6 against 1.5 ms for 100,000 x 1 x 64,
    float64, AMD EPYC)."""
    m, k = A.shape
    n = B.shape[0]
    if m * n * k > SMALL_GEMM and k > 1:
        gemm(False, True, m, n, k, 1.0, A, B, 0.0, C)
        return
    a, b, c = _flat(A), _flat(B), _flat(C)
    ku, nu = U(k), U(n)
    if k == 1:  # the same products as BLAS's: one rounding each
        for i in range(U(m)):
            av, ci = a[i], i * nu
            for j in range(nu):
                c[ci + j] = av * b[j]
        return
    for i in range(U(m)):
        ai = i * ku
        for j in range(nu):
            bj = j * ku
            s = 0.0
            for p in range(ku):
                s += a[ai + p] * b[bj + p]
            c[i * nu + j] = s


@njit(**REDUCE)
def sum_squares(a):
    """Sum of a**2 over a 1-D array, in float64 (vectorised: summation order is
    fixed by the compiled code, not by the data)."""
    s = 0.0
    for i in range(a.shape[0]):
        v = np.float64(a[i])
        s += v * v
    return s


@njit(**REDUCE)
def column_sums(D, out):
    """out[j] = sum over rows of D[:, j], in the dtype of ``out``."""
    m, n = D.shape
    d = _flat(D)
    nu = U(n)
    for j in range(nu):
        out[j] = 0.0
    for i in range(U(m)):
        base = i * nu
        for j in range(nu):
            out[j] += d[base + j]
