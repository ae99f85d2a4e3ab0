"""Layout and the first layer: where each layer's weights lie in the flat
parameters and each block in the work array; the first layer's forward pass
and gradient, for dense or CSR X (chosen by type when numba compiles).
"""

import numpy as np
from numba import njit, types
from numba.extending import overload

from ._setup import INLINE, JIT, OVERLOAD, U
from .activations import bias_act_rows, linear
from .outputs import _row
from .products import _flat, gemm_tn


@njit(**JIT)
def _layers(sizes):
    """Start of each layer's W and b in the flat parameter vector: layer l's W
    is [offs[2l], offs[2l+1]), its b [offs[2l+1], offs[2l+2])."""
    L = sizes.shape[0] - 1
    offs = np.empty(2 * L + 1, dtype=np.int64)
    off = 0
    for l in range(L):
        offs[2 * l] = off
        off += sizes[l] * sizes[l + 1]
        offs[2 * l + 1] = off
        off += sizes[l + 1]
    offs[2 * L] = off
    return offs


@njit(**INLINE)
def _weights(params, sizes, offs, l):
    """Views of layer l's W (n_in, n_out) and b (n_out) in ``params``."""
    W = params[offs[2 * l] : offs[2 * l + 1]].reshape(sizes[l], sizes[l + 1])
    b = params[offs[2 * l + 1] : offs[2 * l + 2]]
    return W, b


@njit(**JIT)
def _offsets(sizes, rows, input_rows):
    """Start of each block in the work array (see ``work_size``): the batch's
    input rows (``input_rows`` of them: none for sparse X, which is read in
    place), each layer's activations, two delta buffers of the widest layer,
    then scratch for the largest weight matrix."""
    L = sizes.shape[0] - 1
    offs = np.empty(L + 4, dtype=np.int64)
    off = 0
    for l in range(L + 1):
        offs[l] = off
        off += (rows if l > 0 else input_rows) * sizes[l]
    widest = 0
    for l in range(1, L + 1):
        widest = max(widest, sizes[l])
    offs[L + 1] = off
    offs[L + 2] = off + rows * widest
    offs[L + 3] = off + 2 * rows * widest
    return offs


@njit(**INLINE)
def _block(work, offs, i, m, width):
    return work[offs[i] : offs[i] + m * width].reshape(m, width)


def _n_rows(X):
    """Rows of X, a dense array or a CSR triple."""
    raise NotImplementedError  # compiled by the overload below


@overload(_n_rows, jit_options=OVERLOAD)
def _n_rows_impl(X):
    if isinstance(X, types.Array):
        return lambda X: X.shape[0]
    return lambda X: X[2].shape[0] - 1


def _input_rows(X, rows):
    """Rows of the work array's input block: ``rows`` for dense X, 0 for CSR."""
    raise NotImplementedError  # compiled by the overload below


@overload(_input_rows, jit_options=OVERLOAD)
def _input_rows_impl(X, rows):
    if isinstance(X, types.Array):
        return lambda X, rows: rows
    return lambda X, rows: 0


def _input_block(X, work, offs, m, n_in):
    """The work block for m gathered input rows (dense X; an empty one for CSR)."""
    raise NotImplementedError  # compiled by the overload below


@overload(_input_block, jit_options=OVERLOAD)
def _input_block_impl(X, work, offs, m, n_in):
    if isinstance(X, types.Array):
        return lambda X, work, offs, m, n_in: work[offs[0] : offs[0] + m * n_in].reshape(m, n_in)
    return lambda X, work, offs, m, n_in: work[:0].reshape(0, n_in)


@njit(**INLINE)
def _eight_rows(rows, i, width):
    """Where the rows rows[i] to rows[i + 7] of a row-major matrix ``width``
    entries wide begin (unsigned), for the loops that copy eight rows at once."""
    r = rows[i : i + U(8)]
    return (U(r[0]) * width, U(r[1]) * width, U(r[2]) * width, U(r[3]) * width,
            U(r[4]) * width, U(r[5]) * width, U(r[6]) * width, U(r[7]) * width)


@njit(**JIT)
def _gather(X, order, start, m, buf):
    """buf[i] = X[order[start + i]] for the m rows of a batch: eight rows at a
    time, in one loop over their columns, so that the memory fetches eight
    rows at once rather than one after another (a shuffled epoch of 60,000 x
    784, batches of 128: 14 against 24 ms in float32, 25 against 42 ms in
    float64, AMD EPYC)."""
    n_in = U(X.shape[1])
    x, xb = _flat(X), _flat(buf)
    rows = order[start : start + m]
    m8 = U(m) - U(m) % U(8)
    for i in range(U(0), m8, U(8)):
        s0, s1, s2, s3, s4, s5, s6, s7 = _eight_rows(rows, i, n_in)
        d0 = i * n_in
        d1, d2, d3 = d0 + n_in, d0 + U(2) * n_in, d0 + U(3) * n_in
        d4, d5, d6, d7 = d0 + U(4) * n_in, d0 + U(5) * n_in, d0 + U(6) * n_in, d0 + U(7) * n_in
        for j in range(n_in):
            xb[d0 + j] = x[s0 + j]
            xb[d1 + j] = x[s1 + j]
            xb[d2 + j] = x[s2 + j]
            xb[d3 + j] = x[s3 + j]
            xb[d4 + j] = x[s4 + j]
            xb[d5 + j] = x[s5 + j]
            xb[d6 + j] = x[s6 + j]
            xb[d7 + j] = x[s7 + j]
    for i in range(m8, U(m)):
        src = U(rows[i]) * n_in
        dst = i * n_in
        for j in range(n_in):
            xb[dst + j] = x[src + j]


@njit(**INLINE)
def _scattered(order, m):
    """Whether the m rows of a batch from ``order`` must be gathered: several
    rows in an order of their own."""
    return order.shape[0] != 0 and m != 1


def _first_rows(X, order, start, m, buf):
    """The m rows ``_row(order, start, i)`` of dense X as the first layer reads
    them: X's own rows where they lie together (rows in their own order, or a
    single row), else ``buf``, where ``_first_forward`` gathered them."""
    raise NotImplementedError  # compiled by the overload below


@overload(_first_rows, jit_options=OVERLOAD)
def _first_rows_impl(X, order, start, m, buf):
    if isinstance(X, types.Array):
        def dense(X, order, start, m, buf):
            if _scattered(order, m):
                return buf
            if order.shape[0] == 0:
                return X[start : start + m]
            r = order[start]
            return X[r : r + 1]

        return dense
    return lambda X, order, start, m, buf: buf  # CSR: X is read in place


def _first_forward(X, order, start, m, W, b, act, buf, out):
    """out = f(X[rows] @ W + b) for the m rows ``_row(order, start, i)``;
    ``buf`` (m x n_in) receives the dense rows where the product needs them
    (``_first_rows``)."""
    raise NotImplementedError  # compiled by the overload below


@overload(_first_forward, jit_options=OVERLOAD)
def _first_forward_impl(X, order, start, m, W, b, act, buf, out):
    if isinstance(X, types.Array):
        def dense(X, order, start, m, W, b, act, buf, out):
            if _scattered(order, m):
                _gather(X, order, start, m, buf)
            linear(_first_rows(X, order, start, m, buf), W, b, act, out)

        return dense

    def csr(X, order, start, m, W, b, act, buf, out):
        data, indices, indptr = X
        n = W.shape[1]
        nu = U(n)
        w, o = _flat(W), _flat(out)
        for i in range(m):
            r = _row(order, start, i)
            row = U(i) * nu
            for j in range(nu):
                o[row + j] = 0.0
            for p in range(indptr[r], indptr[r + 1]):
                v = data[p]
                wr = U(indices[p]) * nu
                for j in range(nu):
                    o[row + j] += v * w[wr + j]
        bias_act_rows(out, b, act, 0, m)

    return csr


def _first_gradient(X, order, start, buf, D, gW):
    """gW = X[rows]^T @ D for the first layer, for the rows of D: dense rows as
    ``_first_forward`` read them (``_first_rows``), CSR rows read again."""
    raise NotImplementedError  # compiled by the overload below


@overload(_first_gradient, jit_options=OVERLOAD)
def _first_gradient_impl(X, order, start, buf, D, gW):
    if isinstance(X, types.Array):
        def dense(X, order, start, buf, D, gW):
            gemm_tn(_first_rows(X, order, start, D.shape[0], buf), D, gW)

        return dense

    def csr(X, order, start, buf, D, gW):
        data, indices, indptr = X
        m, n = D.shape
        nu = U(n)
        g, d = _flat(gW), _flat(D)
        for j in range(g.shape[0]):
            g[j] = 0.0
        for i in range(m):
            r = _row(order, start, i)
            di = U(i) * nu
            for p in range(indptr[r], indptr[r + 1]):
                v = data[p]
                gr = U(indices[p]) * nu
                for j in range(nu):
                    g[gr + j] += v * d[di + j]

    return csr
