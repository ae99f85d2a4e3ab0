"""Activations: a hidden layer's f in place, fused with its bias, and f's
derivative, fused with the bias gradient of the layer below.
"""

from numba import njit

from ..codes import RELU, SIGMOID, TANH
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

    ReLU on wide rows takes one fused pass. The rest add the bias first,
    then apply f over the whole block in one long loop (``_act_flat``):
    narrow rows, whose short inner loop could not vectorise f, and the
    sigmoid and tanh at any width, whose polynomial costs more than the
    extra pass (a fused loop of each was the same speed and cost a second
    compilation of both polynomials in every forward pass).
    """
    n = Z.shape[1]
    z = _flat(Z)
    nu = U(n)
    if act == RELU and n >= NARROW:
        for i in range(U(r0), U(r1)):
            row = i * nu
            for j in range(nu):
                v = z[row + j] + b[j]
                z[row + j] = 0.0 if v < 0 else v
        return
    for i in range(U(r0), U(r1)):
        row = i * nu
        for j in range(nu):
            z[row + j] += b[j]
    _act_flat(z, r0 * n, r1 * n, act)


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
    zero = G.dtype.type(0.0)  # ReLU's pass in G's own precision: float32 stays float32
    for j in range(nu):
        gb[j] = 0.0
    for i in range(U(m)):
        row = i * nu
        if act == RELU:
            for j in range(nu):
                v = g[row + j] if a[row + j] > 0 else zero
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
