"""Training: batches. ``train_epoch`` (the whole batch at once, products by
BLAS) and the per-batch steps that the other training kernels share.
"""

import numpy as np
from numba import njit

from ._setup import INLINE, JIT
from .activations import _act_backward_sums
from .network import _forward_rows
from .layout import _block, _first_gradient, _input_rows, _layers, _offsets, _weights
from .optimisers import _update_layer, adam_rate
from .outputs import _row, output_rows
from .products import _read_only, column_sums, gemm_nt, gemm_tn, sum_squares


@njit(**JIT)
def _batch_weight(w, order, start, m):
    """Sum of the m rows' weights (m when unweighted)."""
    if w.shape[0] == 0:
        return float(m)
    s = 0.0
    for i in range(m):
        s += w[_row(order, start, i)]
    return s


@njit(**JIT)
def _last_live(w, order, batch_size):
    """Start of the epoch's last batch of nonzero weight (-1: none): the batch
    whose gradient ``grads`` keeps."""
    n = order.shape[0]
    start = ((n - 1) // batch_size) * batch_size
    while start >= 0:
        if _batch_weight(w, order, start, min(batch_size, n - start)) > 0:
            return start
        start -= batch_size
    return -1


@njit(**JIT)
def _penalty_squares(params, sizes, offs):
    """Sum of the squares of every weight (not the biases)."""
    sq = 0.0
    for l in range(sizes.shape[0] - 1):
        sq += sum_squares(params[offs[2 * l] : offs[2 * l + 1]])
    return sq


@njit(**JIT)
def _batch_penalty(params, sizes, offs, l2, sq):
    """(a batch's L2 penalty 0.5 * l2 * sum(W**2), the sum of squares): ``sq``
    is the sum the last update left (< 0: none yet, computed here)."""
    if l2 <= 0:
        return 0.0, sq
    if sq < 0:
        sq = _penalty_squares(params, sizes, offs)
    return 0.5 * l2 * sq, sq


@njit(**INLINE)
def _delta(work, wo, sizes, m, l):
    """Layer l's delta block: the two delta buffers alternate from the top."""
    L = sizes.shape[0] - 1
    return _block(work, wo, L + 1 + (L - 1 - l) % 2, m, sizes[l + 1])


@njit(**JIT)
def _layer_gradient(X, order, start, m, first, sizes, work, wo, l, gW):
    """gW = A^T D for layer l, A its input block (the first layer's from X) and
    D its delta."""
    D = _delta(work, wo, sizes, m, l)
    if l == 0:
        _first_gradient(X, order, start, first, D, gW)
    else:
        gemm_tn(_read_only(_block(work, wo, l, m, sizes[l])), D, gW)


@njit(**JIT)
def _delta_below(params, sizes, offs, act, work, wo, m, l, gb_below):
    """The delta of layer l - 1, (D W^T) * f'(A), from layer l's delta D and its
    current (not yet updated) W; with the column sums of the result (the bias
    gradient of layer l - 1) into ``gb_below`` in the same pass."""
    W, _ = _weights(params, sizes, offs, l)
    nxt = _delta(work, wo, sizes, m, l - 1)
    gemm_nt(_delta(work, wo, sizes, m, l), W, nxt)
    _act_backward_sums(_block(work, wo, l, m, sizes[l]), nxt, act, gb_below)


@njit(**JIT)
def train_epoch(X, y, Y, w, order, params, grads, state1, state2, step, sizes, act, output,
                solver, lr, momentum, nesterov, beta1, beta2, eps, l2, batch_size, work):
    """One epoch of minibatch training; the NumPy backend has the same
    algorithm as array expressions. Returns (data loss, penalty, step, rows
    done): the two loss parts summed over batches, each batch's weighted by its
    rows over its total weight. Per layer from the top: its weight gradient
    (a product), the delta for the layer below from the current W, fused with
    the activation's derivative and the bias gradient of the layer below,
    then the layer's update in one pass over its parameters. A batch whose
    loss, or any new parameter or optimiser value, is not finite stops the
    epoch at once (rows done < len(order)); the caller restores what it saved,
    since layers above may have been updated.
    """
    n = order.shape[0]
    L = sizes.shape[0] - 1
    offs = _layers(sizes)
    wo = _offsets(sizes, batch_size, _input_rows(X, batch_size))
    last = _last_live(w, order, batch_size)
    data_total = 0.0
    penalty_total = 0.0
    sq = -1.0  # sum of W**2, known after the first update
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        weight = _batch_weight(w, order, start, m)
        if weight == 0.0:  # rows of zero weight: nothing to learn from them
            continue
        out = _block(work, wo, L, m, sizes[L])
        first = _forward_rows(X, order, start, m, params, sizes, offs, act, output, work, wo,
                              out)
        scale = 1.0 / weight
        D = _delta(work, wo, sizes, m, L - 1)
        data = output_rows(out, y, Y, w, order, start, scale, output, D)
        penalty, sq = _batch_penalty(params, sizes, offs, l2, sq)
        if not np.isfinite(data + penalty):
            return np.nan, np.nan, step, start
        data_total += data * m * scale
        penalty_total += penalty * m * scale
        rate = adam_rate(lr, beta1, beta2, step + 1)
        ok = True
        sq_new = 0.0
        _, gb = _weights(grads, sizes, offs, L - 1)
        column_sums(D, gb)
        for l in range(L - 1, -1, -1):
            gW, _ = _weights(grads, sizes, offs, l)
            _layer_gradient(X, order, start, m, first, sizes, work, wo, l, gW)
            if l > 0:
                _delta_below(params, sizes, offs, act, work, wo, m, l,
                             _weights(grads, sizes, offs, l - 1)[1])
            good, part = _update_layer(params, grads, state1, state2, offs[2 * l],
                                       offs[2 * l + 1], offs[2 * l + 2], solver, lr, momentum,
                                       nesterov, beta1, beta2, eps, rate, l2 * scale,
                                       start == last)
            ok = ok and good
            sq_new += part
        if not ok:
            return np.nan, np.nan, step, start
        sq = sq_new
        step += 1
    return data_total, penalty_total, step, n
