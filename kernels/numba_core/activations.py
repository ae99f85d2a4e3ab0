"""Activations: a hidden layer's f in place, fused with its bias, and f's
derivative, fused with the bias gradient of the layer below.
"""

from numba import njit

from ..codes import IDENTITY, RELU, SIGMOID, TANH
from ..config import NARROW
from ._setup import ENTRY, INLINE, INLINE_ENTRY, JIT, U
from .exp_log import _sigmoid_t, _tanh_t
from .products import _flat, gemm_nn


@njit(**JIT)
def _act_flat(z, lo, hi, act):
    """z[lo:hi] = f(z[lo:hi]) in place, in z's own precision: one long loop
    that vectorises."""
    z = z[lo:hi]  # loops from 0 index without wraparound checks, and vectorise
    if act == RELU:
        for i in range(z.shape[0]):
            v = z[i]
            z[i] = 0.0 if v < 0 else v
    elif act == SIGMOID:
        for i in range(z.shape[0]):
            z[i] = _sigmoid_t(z[i])
    elif act == TANH:
        for i in range(z.shape[0]):
            z[i] = _tanh_t(z[i])


@njit(**INLINE)
def _act_span(z, lo, n, act):
    """z[lo:lo + n] = f(z[lo:lo + n]) in place, in z's own precision (unsigned
    lo and n, no view): the activation of the training kernels."""
    if act == RELU:
        for j in range(n):
            v = z[lo + j]
            z[lo + j] = 0.0 if v < 0 else v
    elif act == SIGMOID:
        for j in range(n):
            z[lo + j] = _sigmoid_t(z[lo + j])
    elif act == TANH:
        for j in range(n):
            z[lo + j] = _tanh_t(z[lo + j])


@njit(**JIT)
def bias_act_rows(Z, b, act, r0, r1):
    """Z[r] = f(Z[r] + b) in place for rows r0..r1-1, in Z's own precision.

    Wide rows take one fused pass; narrow rows (a short inner loop cannot
    vectorise f) add the bias first, then apply f over the whole block.
    """
    n = Z.shape[1]
    z = _flat(Z)
    nu = U(n)
    if n < NARROW or act == IDENTITY:
        for i in range(U(r0), U(r1)):
            row = i * nu
            for j in range(nu):
                z[row + j] += b[j]
        _act_flat(z, r0 * n, r1 * n, act)
    elif act == RELU:
        for i in range(U(r0), U(r1)):
            row = i * nu
            for j in range(nu):
                v = z[row + j] + b[j]
                z[row + j] = 0.0 if v < 0 else v
    elif act == SIGMOID:
        for i in range(U(r0), U(r1)):
            row = i * nu
            for j in range(nu):
                z[row + j] = _sigmoid_t(z[row + j] + b[j])
    else:
        for i in range(U(r0), U(r1)):
            row = i * nu
            for j in range(nu):
                z[row + j] = _tanh_t(z[row + j] + b[j])


@njit(**INLINE_ENTRY)
def linear(X, W, b, act, out):
    """out = f(X @ W + b): one product, then one fused pass for bias and f."""
    gemm_nn(X, W, out)
    bias_act_rows(out, b, act, 0, out.shape[0])


@njit(**ENTRY)
def act_backward(A, dA, act, out):
    """out = dA * f'(.) from the activation output A (out may be dA)."""
    a, d, o = _flat(A), _flat(dA), _flat(out)
    if act == RELU:
        for i in range(o.shape[0]):
            o[i] = d[i] if a[i] > 0 else 0.0
    elif act == SIGMOID:
        for i in range(o.shape[0]):
            o[i] = d[i] * (a[i] * (1.0 - a[i]))
    elif act == TANH:
        for i in range(o.shape[0]):
            o[i] = d[i] * (1.0 - a[i] * a[i])
    else:
        for i in range(o.shape[0]):
            o[i] = d[i]


@njit(**JIT)
def _act_backward_sums(A, G, act, gb):
    """G *= f'(.) in place from the activation output A, and gb = the column
    sums of the result (the bias gradient of the layer whose delta G is): one
    pass instead of two."""
    m, n = G.shape
    a, g = _flat(A), _flat(G)
    nu = U(n)
    for j in range(nu):
        gb[j] = 0.0
    for i in range(U(m)):
        row = i * nu
        if act == RELU:
            for j in range(nu):
                v = g[row + j] if a[row + j] > 0 else 0.0
                g[row + j] = v
                gb[j] += v
        elif act == SIGMOID:
            for j in range(nu):
                v = g[row + j] * (a[row + j] * (1.0 - a[row + j]))
                g[row + j] = v
                gb[j] += v
        elif act == TANH:
            for j in range(nu):
                v = g[row + j] * (1.0 - a[row + j] * a[row + j])
                g[row + j] = v
                gb[j] += v
        else:
            for j in range(nu):
                gb[j] += g[row + j]


@njit(**INLINE)
def _derivative(v, a, act):
    """v * f'(.) at the activation output a (v: the delta before it)."""
    if act == RELU:
        return v if a > 0 else 0.0
    if act == SIGMOID:
        return v * (a * (1.0 - a))
    if act == TANH:
        return v * (1.0 - a * a)
    return v


@njit(**JIT)
def _one_unit_backward(A, d, w, act, G, gw, gb):
    """The backward step through a layer of one unit whose delta is d (m x
    1) and whose weights are w (n x 1), from its input A (m x n, the
    activation output of the layer below): its weights' gradient gw = A^T d,
    the delta of the layer below G = (d w^T) * f'(.) from A, and that delta's
    column sums gb (the bias gradient below), in one pass over A instead of a
    product, an outer product and ``_act_backward_sums`` (2.1 against 2.6 ms
    per 100,000 rows of 64 sigmoid units, float64, AMD EPYC). Each entry of
    G is what those computed, in the same precision; gw's and gb's sums run
    in row order."""
    m, n = A.shape
    a, g, dv, wv = _flat(A), _flat(G), _flat(d), _flat(w)
    nu, mu = U(n), U(m)
    for j in range(nu):
        gw[j] = 0.0
        gb[j] = 0.0
    # one copy of the loops per activation, in which LLVM folds _derivative's branches
    if act == RELU:
        _one_unit_rows(a, g, dv, wv, gw, gb, mu, nu, RELU)
    elif act == SIGMOID:
        _one_unit_rows(a, g, dv, wv, gw, gb, mu, nu, SIGMOID)
    elif act == TANH:
        _one_unit_rows(a, g, dv, wv, gw, gb, mu, nu, TANH)
    else:
        _one_unit_rows(a, g, dv, wv, gw, gb, mu, nu, IDENTITY)


@njit(**INLINE)
def _one_unit_rows(a, g, dv, wv, gw, gb, mu, nu, act):
    """The loops of ``_one_unit_backward`` (flat arrays, unsigned sizes): two
    short loops a row, each of which vectorises (a loop over four rows, or
    one loop doing both, did not)."""
    for i in range(mu):
        r0, d0 = i * nu, dv[i]
        for j in range(nu):
            gw[j] += a[r0 + j] * d0
        for j in range(nu):
            v = _derivative(d0 * wv[j], a[r0 + j], act)
            g[r0 + j] = v
            gb[j] += v
