"""Training: rows. ``train_rows``, SGD on batches of one row, the layers
transposed for the epoch.
"""

import numpy as np
from numba import njit

from ..codes import RELU, SIGMOID, SOFTMAX, TANH
from ._setup import ENTRY, INLINE, INLINE_REDUCE, JIT, REDUCE, U
from .activations import _act_span
from .bits import _abs_key, _inf_key
from .exp_log import _exp
from .outputs import _target_row
from .products import _flat, _four_dots, sum_squares


@njit(**INLINE)
def _row_layout(sizes):
    """Unsigned offsets of the one-row kernel: (widths, start of each layer's
    W and b in the parameters, start of each layer's activation in the work
    array). Work holds the input row at ``acts[0]`` = 0, layer l's activation
    at ``acts[l]`` (the logits last), then two delta buffers of the widest
    layer at ``acts[L + 1]`` and ``acts[L + 2]``."""
    L = sizes.shape[0] - 1
    widths = np.empty(L + 1, dtype=np.uint64)
    w_at = np.empty(L, dtype=np.uint64)
    b_at = np.empty(L, dtype=np.uint64)
    acts = np.empty(L + 3, dtype=np.uint64)
    off = 0
    for l in range(L):
        w_at[l] = off
        off += sizes[l] * sizes[l + 1]
        b_at[l] = off
        off += sizes[l + 1]
    a = 0
    widest = 0
    for l in range(L + 1):
        widths[l] = sizes[l]
        acts[l] = a
        a += sizes[l]
        if l > 0:
            widest = max(widest, sizes[l])
    acts[L + 1] = a
    acts[L + 2] = a + widest
    return widths, w_at, b_at, acts


@njit(**JIT)
def _transpose_layers(src, dst, widths, w_at, b_at, back):
    """dst = src with every layer's W (n_in x n_out, row-major) transposed to
    n_out x n_in at the same offsets, biases copied; ``back``: the inverse."""
    for l in range(w_at.shape[0]):
        n_in, n_out, wl = widths[l], widths[l + 1], w_at[l]
        for i in range(n_in):
            for j in range(n_out):
                if back:
                    dst[wl + i * n_out + j] = src[wl + j * n_in + i]
                else:
                    dst[wl + j * n_in + i] = src[wl + i * n_out + j]
        for j in range(b_at[l], b_at[l] + n_out):
            dst[j] = src[j]


@njit(**REDUCE)
def _row_dots(T, work, src, dst, n_in, n_out, wl, bl):
    """work[dst + j] = b[j] + the dot product of W's column j (row j of the
    transposed layer in T) and the input work[src:src + n_in]: four outputs
    per pass over the input, which shares its loads and overlaps four
    reductions."""
    dt = work.dtype.type
    n4 = n_out - n_out % U(4)
    for j in range(U(0), n4, U(4)):
        r0 = wl + j * n_in
        r1, r2, r3 = r0 + n_in, r0 + U(2) * n_in, r0 + U(3) * n_in
        s0, s1, s2, s3 = _four_dots(work, src, T, r0, r1, r2, r3, n_in)
        work[dst + j] = s0 + T[bl + j]
        work[dst + j + U(1)] = s1 + T[bl + j + U(1)]
        work[dst + j + U(2)] = s2 + T[bl + j + U(2)]
        work[dst + j + U(3)] = s3 + T[bl + j + U(3)]
    for j in range(n4, n_out):
        row = wl + j * n_in
        s = dt(0.0)
        for i in range(n_in):
            s += T[row + i] * work[src + i]
        work[dst + j] = s + T[bl + j]


@njit(**INLINE)
def _row_forward(x, xs, T, work, widths, w_at, b_at, acts, act):
    """One row, X's x[xs:xs + widths[0]], copied to work[0:] and taken through
    every layer: layer l's activation (logits for the last) into
    work[acts[l + 1]:]; T holds the layers transposed
    (``_transpose_layers``)."""
    L = widths.shape[0] - 1
    for i in range(widths[0]):
        work[i] = x[xs + i]
    for l in range(L):
        _row_dots(T, work, acts[l], acts[l + 1], widths[l], widths[l + 1], w_at[l], b_at[l])
        if l < L - 1:
            _act_span(work, acts[l + 1], widths[l + 1], act)


@njit(**INLINE)
def _row_softmax(work, zo, do, k, label):
    """Softmax + cross-entropy of one row of k logits at work[zo:], in float64:
    writes the delta p - onehot(label) to work[do:] and returns the row's loss
    log(sum(exp(z - max))) - (z[label] - max)."""
    top = np.float64(work[zo])
    for c in range(U(1), k):
        top = max(top, np.float64(work[zo + c]))
    s = 0.0
    for c in range(k):
        e = _exp(np.float64(work[zo + c]) - top, np.bool_(False))
        work[do + c] = e
        s += e
    p_label = np.float64(work[do + label]) / s
    inv = 1.0 / s
    for c in range(k):
        work[do + c] = work[do + c] * inv
    work[do + label] = p_label - 1.0
    return np.log(s) - (np.float64(work[zo + label]) - top)


@njit(**INLINE_REDUCE)
def _slope_span(work, at, src, n, act):
    """work[at:at + n] *= f'(.) from the activations work[src:src + n]."""
    dt = work.dtype.type
    if act == SIGMOID:
        for i in range(n):
            a = work[src + i]
            work[at + i] *= a * (dt(1.0) - a)
    elif act == TANH:
        for i in range(n):
            a = work[src + i]
            work[at + i] *= dt(1.0) - a * a
    elif act == RELU:
        for i in range(n):
            work[at + i] = work[at + i] if work[src + i] > 0 else dt(0.0)


@njit(**INLINE_REDUCE)
def _layer_squares(T, V, wl, bl, n_out):
    """(whether a layer's new W, b and velocities in T and V are all finite,
    the sum of its W**2 in float64), in one pass over T: the sum of squares of
    W and b is finite exactly when they are (a float32 square cannot overflow
    a float64 sum), and a velocity that is not finite leaves a parameter that
    is not. Only a float64 sum that overflows takes the exact check
    (``_abs_key`` of every value)."""
    sq_w = 0.0
    sq_b = 0.0
    for i in range(wl, bl):
        p = np.float64(T[i])
        sq_w += p * p
    for i in range(bl, bl + n_out):
        p = np.float64(T[i])
        sq_b += p * p
    if np.isfinite(sq_w + sq_b):
        return True, sq_w
    key = _abs_key(T[wl])
    for i in range(wl, bl + n_out):
        key = max(key, max(_abs_key(T[i]), _abs_key(V[i])))
    return key < _inf_key(T), sq_w


@njit(**INLINE_REDUCE)
def _row_gradient(T, G, work, src, cur, n_in, n_out, wl, bl, decay):
    """One row's gradient of a transposed layer into G: the outer product of
    its delta work[cur:] and its input work[src:], plus ``decay * W``; the
    bias gradient is the delta."""
    for j in range(n_out):
        G[bl + j] = work[cur + j]
    for j in range(n_out):
        d = work[cur + j]
        row = wl + j * n_in
        for i in range(n_in):
            G[row + i] = work[src + i] * d + decay * T[row + i]


@njit(**INLINE_REDUCE)
def _row_sweep(T, V, work, src, cur, nxt, n_in, n_out, wl, bl, lr, momentum, c1, c2, decay,
               below):
    """One row's SGD step on a transposed layer, fused with its gradient and
    (when ``below``) the delta of the layer below, in one sweep: each element
    of W adds its old value times delta j into the delta below, then takes
    g = a_i d_j + decay W, v = momentum v - lr g, W += c1 v - c2 g (plain:
    c1 = 1, c2 = 0; Nesterov: c1 = momentum, c2 = lr). The inner loops run
    over the layer's inputs and carry no reduction, so that they vectorise
    however narrow the layer; all scalars in the arrays' dtype."""
    dt = work.dtype.type
    for j in range(n_out):
        g = work[cur + j]
        v = momentum * V[bl + j] - lr * g
        V[bl + j] = v
        T[bl + j] += c1 * v - c2 * g
    if below:
        for i in range(n_in):
            work[nxt + i] = dt(0.0)
    for j in range(n_out):
        d = work[cur + j]
        row = wl + j * n_in
        if below:
            for i in range(n_in):
                wv = T[row + i]
                work[nxt + i] += wv * d
                g = work[src + i] * d + decay * wv
                v = momentum * V[row + i] - lr * g
                V[row + i] = v
                T[row + i] = wv + (c1 * v - c2 * g)
        else:
            for i in range(n_in):
                wv = T[row + i]
                g = work[src + i] * d + decay * wv
                v = momentum * V[row + i] - lr * g
                V[row + i] = v
                T[row + i] = wv + (c1 * v - c2 * g)


@njit(**REDUCE)
def _row_backward(T, V, G, work, widths, w_at, b_at, acts, act, lr, momentum, c1, c2, decay,
                  keep):
    """The backward pass and SGD step of one row, every layer from the top, in
    one call: ``_row_sweep``, and first, when ``keep``, the gradient into G.
    The output delta is at work[acts[L + 1]:]. Returns (every new value
    finite, sum of the new W**2)."""
    L = widths.shape[0] - 1
    ok = True
    sq = 0.0
    cur, nxt = acts[L + 1], acts[L + 2]
    for l in range(L - 1, -1, -1):
        n_in, n_out, wl, bl, src = widths[l], widths[l + 1], w_at[l], b_at[l], acts[l]
        if keep:
            _row_gradient(T, G, work, src, cur, n_in, n_out, wl, bl, decay)
        _row_sweep(T, V, work, src, cur, nxt, n_in, n_out, wl, bl, lr, momentum, c1, c2, decay,
                   l > 0)
        good, part = _layer_squares(T, V, wl, bl, n_out)
        if l > 0:
            _slope_span(work, nxt, src, n_in, act)
        ok = ok and good
        sq += part
        cur, nxt = nxt, cur
    return ok, sq


@njit(**INLINE)
def _last_live_row(w, order):
    """The epoch's last row of nonzero weight (-1: none)."""
    s = order.shape[0] - 1
    if w.shape[0] == 0:
        return s
    while s >= 0 and w[order[s]] == 0.0:
        s -= 1
    return s


@njit(**ENTRY)
def train_rows(X, y, Y, w, order, params, grads, state1, state2, step, sizes, act, output,
               solver, lr, momentum, nesterov, beta1, beta2, eps, l2, batch_size, work):
    """``train_epoch`` for SGD on batches of one row (``batch_size`` 1, dense
    X): the same results without the block machinery.

    For the epoch, the parameters and velocity are copied with every layer's
    W transposed (n_out x n_in, ``_transpose_layers``), and copied back at the
    end: a layer's forward pass is then one dot product per output and its
    update one reduction-free loop over the inputs per output, both long and
    contiguous, where the row-major layout gives short loops over the outputs
    with a reduction each (the narrow layers of batch-1 networks cannot fill
    the vector lanes that way). Per row: the forward pass (``_row_forward``),
    the output layer and its loss (``_row_softmax``, or ``_target_row`` for
    the other outputs), then the backward pass and update
    (``_row_backward``). The row's weight w scales the L2 term to l2 / w; its
    delta is that of an unweighted row. ``grads`` gets the gradient of the
    epoch's last row of nonzero weight. A failed row returns at once without
    copying back: the caller restores the arrays it saved."""
    n = order.shape[0]
    L = sizes.shape[0] - 1
    widths, w_at, b_at, acts = _row_layout(sizes)
    T = np.empty_like(params)
    V = np.empty_like(params)
    G = np.empty_like(params)
    _transpose_layers(params, T, widths, w_at, b_at, np.bool_(False))
    _transpose_layers(state1, V, widths, w_at, b_at, np.bool_(False))
    x = _flat(X)
    t = _flat(Y)
    k = widths[L]
    zo, do = acts[L], acts[L + 1]
    last = _last_live_row(w, order)
    dt = params.dtype.type
    lr_, mom = dt(lr), dt(momentum)
    c1, c2 = (mom, lr_) if nesterov else (dt(1.0), dt(0.0))
    data_total = 0.0
    penalty_total = 0.0
    sq = -1.0
    for s in range(n):
        r = order[s]
        weight = w[r] if w.shape[0] else 1.0
        if weight == 0.0:
            continue
        _row_forward(x, U(r) * widths[0], T, work, widths, w_at, b_at, acts, act)
        scale = 1.0 / weight
        if output == SOFTMAX:
            data = weight * _row_softmax(work, zo, do, k, U(y[r]))
        else:
            data = weight * _target_row(work, zo, work, do, t, U(r) * k, k, 1.0, output)
        penalty = 0.0
        if l2 > 0:
            if sq < 0:
                sq = 0.0
                for l in range(L):
                    sq += sum_squares(T[w_at[l] : b_at[l]])
            penalty = 0.5 * l2 * sq
        if not np.isfinite(data + penalty):
            return np.nan, np.nan, step, s
        data_total += data * scale
        penalty_total += penalty * scale
        ok, sq = _row_backward(T, V, G, work, widths, w_at, b_at, acts, act, lr_, mom, c1, c2,
                               dt(l2 * scale), s == last)
        if not ok:
            return np.nan, np.nan, step, s
        step += 1
    _transpose_layers(T, params, widths, w_at, b_at, np.bool_(True))
    _transpose_layers(V, state1, widths, w_at, b_at, np.bool_(True))
    if last >= 0:
        _transpose_layers(G, grads, widths, w_at, b_at, np.bool_(True))
    return data_total, penalty_total, step, n
