"""Training: full batch. ``loss_gradient``, the loss of the whole data set
and its gradient.
"""

import numpy as np
from numba import njit

from ._setup import ENTRY
from .network import _forward_rows
from .layout import _block, _input_rows, _layers, _n_rows, _offsets, _weights
from .outputs import output_rows
from .products import column_sums
from .block_gradient import _delta, _delta_below, _layer_gradient
from .train_batches import _batch_weight, _penalty_squares


@njit(**ENTRY)
def loss_gradient(X, y, Y, w, params, grads, sizes, act, output, l2, chunk, work):
    """The loss of the whole data set and its gradient, for full-batch solvers.

    Rows are taken ``chunk`` at a time (``work`` is ``work_size(sizes,
    chunk)`` long); each chunk's gradient goes to scratch and is added to
    ``grads``. With S the total weight (rows when unweighted), returns (data
    loss, penalty) = (sum of weighted row losses / S, 0.5 * l2 * sum(W**2) /
    S) and leaves in ``grads`` the gradient of their sum.
    """
    n = _n_rows(X)
    L = sizes.shape[0] - 1
    offs = _layers(sizes)
    wo = _offsets(sizes, chunk, _input_rows(X, chunk))
    rows = np.empty(0, dtype=np.int64)  # empty order: rows in their own order
    weight = _batch_weight(w, rows, 0, n)
    scale = 1.0 / weight if weight > 0 else 0.0
    data = 0.0
    for j in range(grads.shape[0]):
        grads[j] = 0.0
    scratch = work[wo[L + 3] :]
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        out = _block(work, wo, L, m, sizes[L])
        _forward_rows(X, rows, start, m, params, sizes, offs, act, output, work, wo, out)
        D = _delta(work, wo, sizes, m, L - 1)
        data += output_rows(out, y, Y, w, rows, start, scale, output, D)
        _, gb = _weights(grads, sizes, offs, L - 1)
        part = scratch[: sizes[L]]
        column_sums(D, part)
        for j in range(sizes[L]):
            gb[j] += part[j]
        for l in range(L - 1, -1, -1):
            lo, mid = offs[2 * l], offs[2 * l + 1]
            gW = scratch[: mid - lo].reshape(sizes[l], sizes[l + 1])
            _layer_gradient(X, rows, start, m, sizes, work, wo, l, gW)
            g = grads[lo:mid]
            for j in range(mid - lo):
                g[j] += scratch[j]
            if l > 0:
                _, gb = _weights(grads, sizes, offs, l - 1)
                part = scratch[: sizes[l]]
                _delta_below(params, sizes, offs, act, work, wo, m, l, part)
                for j in range(sizes[l]):
                    gb[j] += part[j]
    for l in range(L):
        g, p = grads[offs[2 * l] : offs[2 * l + 1]], params[offs[2 * l] : offs[2 * l + 1]]
        for j in range(p.shape[0]):
            g[j] += l2 * scale * p[j]
    return data * scale, 0.5 * l2 * _penalty_squares(params, sizes, offs) * scale
