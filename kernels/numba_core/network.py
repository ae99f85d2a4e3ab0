"""Network forward: the forward pass over flat parameters (``forward``,
``predict_rows``) and the output function without a loss.
"""

import numpy as np
from numba import njit, types
from numba.extending import overload

from ..codes import IDENTITY, LOGISTIC, POISSON, SOFTMAX
from ..config import PREDICT_CHUNK
from ._setup import BY_ADDRESS, ENTRY, JIT, OVERLOAD, U
from .activations import linear
from .bits import _abs_key, _inf_key
from .exp_log import _exp, _sigmoid_t
from .layout import (_block, _first_forward, _input_block, _input_rows, _layers, _n_rows, _offsets,
                     _weights)
from .outputs import softmax
from .products import _flat, _read_only


@njit(**BY_ADDRESS)
def _forward_rows(X, order, start, m, params, sizes, offs, act, output, work, wo, out):
    """Activations of m rows through every layer into the work blocks (layer
    l's output in block l + 1); the last layer's into ``out`` (logits: the
    output function is applied by the caller)."""
    L = sizes.shape[0] - 1
    first_layer = np.int64(0)  # not a literal: one compiled _weights and _block for every layer
    W, b = _weights(params, sizes, offs, first_layer)
    dst = out if L == 1 else _block(work, wo, first_layer + 1, m, sizes[1])
    _first_forward(X, order, start, m, W, b, act if L > 1 else IDENTITY,
                   _input_block(X, work, wo, m, sizes[0]), dst)
    prev = dst
    for l in range(1, L):
        W, b = _weights(params, sizes, offs, l)
        dst = out if l == L - 1 else _block(work, wo, l + 1, m, sizes[l + 1])
        linear(_read_only(prev), W, b, act if l < L - 1 else IDENTITY, dst)
        prev = dst


@njit(**JIT)
def _output_only(out, output):
    """The output function applied to logits in place (no loss)."""
    if output == SOFTMAX:
        softmax(out, out)
    elif output == LOGISTIC:
        # the sigmoid alone (the same bits as the layers' ``_act_flat``, which
        # would compile every activation here: 0.4-0.6 s of a first predict)
        o = _flat(out)
        for j in range(o.shape[0]):
            o[j] = _sigmoid_t(o[j])
    elif output == POISSON:
        o = _flat(out)
        for j in range(o.shape[0]):
            o[j] = _exp(np.float64(o[j]), np.bool_(False))


@njit(**ENTRY)
def forward(X, params, sizes, act, output, buf_a, buf_b, out):
    """Network output for the rows of dense X; buf_a and buf_b are 1-D scratch
    of at least rows * widest hidden layer."""
    m = X.shape[0]
    L = sizes.shape[0] - 1
    offs = _layers(sizes)
    prev = X
    for l in range(L):
        W, b = _weights(params, sizes, offs, l)
        n_out = sizes[l + 1]
        if l == L - 1:
            dst = out
        elif l % 2 == 0:
            dst = buf_a[: m * n_out].reshape(m, n_out)
        else:
            dst = buf_b[: m * n_out].reshape(m, n_out)
        linear(prev, W, b, act if l < L - 1 else IDENTITY, dst)
        prev = dst
    _output_only(out, output)


@njit(**JIT)
def _finite_span(a, i0, i1):
    """Whether a[i0:i1] holds no NaN or inf: its largest ``_abs_key`` below
    inf's, an integer max that vectorises (a test of each value does not:
    11x slower over 1,000 x 784 float32)."""
    key = _abs_key(a.dtype.type(0.0))
    for j in range(U(i0), U(i1)):
        key = max(key, _abs_key(a[j]))
    return key < _inf_key(a)


@njit(**JIT)
def _first_nonfinite(a, cols):
    """The first row (of width ``cols``) of flat ``a`` holding NaN or inf, or -1."""
    for i in range(a.shape[0] // cols):
        if not _finite_span(a, i * cols, (i + 1) * cols):
            return i
    return -1


def _first_nonfinite_input(X):
    """The first row of X (dense or CSR) holding NaN or inf, or -1."""
    raise NotImplementedError  # compiled by the overload below


@overload(_first_nonfinite_input, jit_options=OVERLOAD)
def _first_nonfinite_input_impl(X):
    if isinstance(X, types.Array):
        return lambda X: _first_nonfinite(_flat(X), X.shape[1])

    def csr(X):
        data, indices, indptr = X
        for r in range(indptr.shape[0] - 1):
            if not _finite_span(data, indptr[r], indptr[r + 1]):
                return r
        return -1

    return csr


@njit(**ENTRY)
def predict_rows(X, params, sizes, act, output, out, labels):
    """The network's output for every row of X (dense or CSR) into ``out``
    (rows x outputs) and each row's argmax (the class code under a softmax
    output) into ``labels``, in chunks; the scratch is allocated here, the
    results by the caller (returning arrays would cost a boxing each).
    Returns the first row whose input or output is not finite (-1: none)."""
    m = _n_rows(X)
    L = sizes.shape[0] - 1
    k = sizes[L]
    bad = _first_nonfinite_input(X)
    if bad >= 0:
        labels[:] = 0
        return bad
    offs = _layers(sizes)
    chunk = max(1, min(m, PREDICT_CHUNK))
    wo = _offsets(sizes, chunk, _input_rows(X, chunk))
    work = np.empty(wo[L + 1], dtype=params.dtype)
    empty = np.empty(0, dtype=np.int64)
    for r0 in range(0, m, chunk):
        r1 = min(m, r0 + chunk)
        block = out[r0:r1]
        _forward_rows(X, empty, r0, r1 - r0, params, sizes, offs, act, output, work, wo, block)
        _output_only(block, output)
    o = _flat(out)
    bad = _first_nonfinite(_read_only(o), k)  # the input's check, compiled once
    for i in range(m):
        best = 0
        for j in range(1, k):
            if o[i * k + j] > o[i * k + best]:
                best = j
        labels[i] = best
    return bad
