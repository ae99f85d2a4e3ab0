"""Training: batches. ``train_epoch`` (the whole batch at once, products by
BLAS) and the per-batch steps that the other training kernels share (loss
weights, the L2 penalty).
"""

import numpy as np
from numba import njit

from ..codes import ADAM
from ..config import SMALL_GEMM
from ._setup import ENTRY, JIT
from .block_gradient import _block_gradient, _first_layer_onto, _span_update, _with_by_address
from .layout import _input_rows, _layers, _offsets
from .optimisers import adam_rate, sgd_step_onto
from .outputs import _row
from .products import sum_squares


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


@njit(**ENTRY)
def _train_epoch_by(X, y, Y, w, order, params, grads, state1, state2, step, sizes, act, output,
                    solver, lr, momentum, nesterov, beta1, beta2, eps, l2, batch_size, work,
                    forward, loss, backward, update):
    """One epoch of minibatch training; the NumPy backend has the same
    algorithm as array expressions. Returns (data loss, penalty, step, rows
    done): the two loss parts summed over batches, each batch's weighted by its
    rows over its total weight. Per batch, the forward and backward pass of
    its rows at once (``_block_gradient``: ``forward``, ``loss`` and
    ``backward``, products by BLAS and its threads above ``SMALL_GEMM``),
    then the optimiser's step in one pass over the parameters (``update``:
    ``_update_span``), each called by address (``block_gradient``). Under
    SGD without Nesterov's step, BLAS's product of the first layer's weight
    gradient puts it straight into the velocity (``_first_layer_onto``),
    whose step ``sgd_step_onto`` then finishes, but for the epoch's last
    batch of nonzero weight, whose gradient ``grads`` keeps. A batch
    whose loss, or any new parameter or optimiser value, is not finite stops
    the epoch at once (rows done < len(order)); the caller restores what it
    saved.
    """
    n = order.shape[0]
    P = params.shape[0]
    offs = _layers(sizes)
    wo = _offsets(sizes, batch_size, _input_rows(X, batch_size))
    last = _last_live(w, order, batch_size)
    data_total = 0.0
    penalty_total = 0.0
    sq = -1.0  # sum of W**2, known after the first update
    onto_velocity = solver != ADAM and not nesterov
    W0 = offs[1]  # the first layer's weights: params[:W0]
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        weight = _batch_weight(w, order, start, m)
        if weight == 0.0:  # rows of zero weight: nothing to learn from them
            continue
        scale = 1.0 / weight
        keep = start == last
        # dense rows (CSR: no input rows) whose first product BLAS computes
        onto = (onto_velocity and not keep
                and _input_rows(X, m) * sizes[0] * sizes[1] > SMALL_GEMM)
        data = _block_gradient(forward, loss, backward, X, y, Y, w, order, start, m, params,
                               sizes, offs, act, output, scale, work, wo, grads, not onto)
        penalty, sq = _batch_penalty(params, sizes, offs, l2, sq)
        if not np.isfinite(data + penalty):
            return np.nan, np.nan, step, start
        if onto:
            _first_layer_onto(X, order, start, m, sizes, offs, work, wo, state1, lr, momentum)
        data_total += data * m * scale
        penalty_total += penalty * m * scale
        rate = adam_rate(lr, beta1, beta2, step + 1)
        ok, sq, c0 = True, 0.0, 0
        if onto:  # the first layer's weights: the rest of the step BLAS began
            ok, sq = sgd_step_onto(params, state1, lr, l2 * scale, 0, W0)
            c0 = W0
        rest_ok, rest_sq = _span_update(update, params, grads, state1, state2, offs, c0, P,
                                        solver, lr, momentum, nesterov, beta1, beta2, eps, rate,
                                        l2 * scale, keep)
        if not (ok and rest_ok):
            return np.nan, np.nan, step, start
        sq += rest_sq
        step += 1
    return data_total, penalty_total, step, n


train_epoch = _with_by_address(_train_epoch_by, "train_epoch")
