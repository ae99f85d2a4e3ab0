"""Output layers: softmax, log-softmax, and each output fused with its loss
and its delta (``output_rows``).
"""

import numpy as np
from numba import njit

from ..codes import LOGISTIC, SOFTMAX, SQUARED
from ._setup import ENTRY, JIT, U
from .exp_log import _exp, _sigmoid_softplus
from .products import _flat


@njit(**JIT)
def _row(order, start, i):
    """The data row of a batch's row i: order[start + i], or start + i when
    ``order`` is empty (the rows in their own order)."""
    return order[start + i] if order.shape[0] else start + i


@njit(**JIT)
def _shift_exp(z, p, d, r0, r1, n):
    """Rows r0..r1-1 of z, minus their max, into d; their exp into p.

    Two passes (short per-row loops, then one long vectorised exp) beat one
    pass whose exp loop is only a row long. p or d may be z.
    """
    for i in range(r0, r1):
        base = i * n
        top = z[base]
        for j in range(base + 1, base + n):
            v = z[j]
            top = v if v > top else top
        for j in range(base, base + n):
            v = z[j] - top
            d[j] = v
            p[j] = v
    f32 = p.itemsize == 4
    block = p[r0 * n : r1 * n]
    for j in range(block.shape[0]):
        block[j] = _exp(block[j], f32)


@njit(**JIT)
def _normalise(p, base, n):
    """Divide p[base:base + n] by its sum; returns the sum (its log is the
    loss's, taken only where a loss is wanted: ``softmax`` takes none)."""
    s = 0.0
    for j in range(base, base + n):
        s += p[j]
    inv = 1.0 / s
    for j in range(base, base + n):
        p[j] *= inv
    return s


@njit(**ENTRY)
def softmax(Z, out):
    """Row-wise softmax (out may be Z)."""
    m, n = Z.shape
    z, o = _flat(Z), _flat(out)
    _shift_exp(z, o, o, 0, m, n)
    for i in range(m):
        _normalise(o, i * n, n)


@njit(**ENTRY)
def log_softmax(Z, out):
    """Row-wise log-softmax, (z - max) - log(sum(exp(z - max)))."""
    m, n = Z.shape
    z, o = _flat(Z), _flat(out)
    f32 = Z.itemsize == 4
    for i in range(m):
        base = i * n
        top = z[base]
        for j in range(base + 1, base + n):
            v = z[j]
            top = v if v > top else top
        s = 0.0
        for j in range(base, base + n):
            s += _exp(z[j] - top, f32)
        log_s = np.log(s)
        for j in range(base, base + n):
            o[j] = (z[j] - top) - log_s  # not z - (top + log s): exact next to huge logits


@njit(**ENTRY)
def output_rows(Z, y, Y, w, order, start, scale, output, D):
    """The output layer of one batch, fused with its loss and its delta.

    Z (m x k) holds the output layer's pre-activations (logits); they are
    replaced by the output: softmax, sigmoid (logistic), exp (poisson) or
    left as they are (squared). Row i's target is y[r] (softmax: an integer
    label) or Y[r] (a row of k values) and its weight w[r] (1 when w is empty),
    with r = ``_row(order, start, i)``. Writes D = w[r] * (output - target) *
    scale, the gradient of the loss below times ``scale``, and returns the
    weighted sum over rows of each row's loss, in float64:

    - softmax: log(sum(exp(z))) - z[label], by log-sum-exp (exact for any
      finite logits);
    - squared: 0.5 * sum((z - t)**2);
    - logistic: sum(softplus(z) - t * z), the binary cross-entropy of
      sigmoid(z) without rounding sigmoid(z) first;
    - poisson: sum(t log t - t z - t + exp(z)), the Poisson deviance
      y log(y / p) - y + p at p = exp(z) (0 log 0 = 0).
    """
    if output == SOFTMAX:
        return softmax_rows(Z, y, w, order, start, scale, D)
    return target_rows(Z, Y, w, order, start, scale, output, D)


@njit(**JIT)
def softmax_rows(Z, y, w, order, start, scale, D):
    """``output_rows`` for the softmax output."""
    m, k = Z.shape
    z, d = _flat(Z), _flat(D)
    weighted = w.shape[0] > 0
    total = 0.0
    _shift_exp(z, z, d, 0, m, k)  # d holds z - max for now
    for i in range(m):
        r = _row(order, start, i)
        base = i * k
        label = base + y[r]
        wr = w[r] if weighted else 1.0
        total += wr * (np.log(_normalise(z, base, k)) - d[label])
        p_label = np.float64(z[label])
        ws = wr * scale
        for j in range(base, base + k):
            d[j] = z[j] * ws
        d[label] = (p_label - 1.0) * ws
    return total


@njit(**JIT)
def target_rows(Z, Y, w, order, start, scale, output, D):
    """``output_rows`` for the outputs with a target row per row: squared,
    logistic and poisson."""
    m, k = Z.shape
    z, d, t = _flat(Z), _flat(D), _flat(Y)
    if output == LOGISTIC:
        return _logistic_rows(z, t, w, order, start, m, k, scale, d)
    weighted = w.shape[0] > 0
    total = 0.0
    for i in range(m):
        r = _row(order, start, i)
        wr = w[r] if weighted else 1.0
        total += wr * _target_row(z, i * k, d, i * k, t, r * k, k, wr * scale, output)
    return total


@njit(**JIT)
def _logistic_rows(z, t, w, order, start, m, k, scale, d):
    """``output_rows`` for the logistic output, in three passes over the m
    rows' k logits z, so that the exp and the log run over all of them in a
    loop that vectorises (a row of one logit, the binary classifier's, leaves
    nothing to vectorise in a pass per row): the targets into d; each logit's
    loss, softplus(v) - t v, into d and its sigmoid into z; then the rows'
    weighted loss sums, and the delta (sigmoid - t) * w * ``scale`` into d.
    Returns the weighted sum of the row losses (float64)."""
    ku = U(k)
    weighted = w.shape[0] > 0
    for i in range(U(m)):
        to = U(_row(order, start, i)) * ku
        for j in range(ku):
            d[i * ku + j] = t[to + j]
    for f in range(U(m) * ku):
        v = np.float64(z[f])
        p, softplus = _sigmoid_softplus(v, 1.0)
        d[f] = softplus - np.float64(d[f]) * v
        z[f] = p
    total = 0.0
    for i in range(U(m)):
        r = _row(order, start, i)
        to, row = U(r) * ku, 0.0
        for j in range(ku):
            row += np.float64(d[i * ku + j])
        wr = w[r] if weighted else 1.0
        total += wr * row
        ws = wr * scale
        for j in range(ku):
            d[i * ku + j] = (np.float64(z[i * ku + j]) - np.float64(t[to + j])) * ws
    return total


@njit(**JIT)
def _target_row(z, zo, d, do, t, to, k, ws, output):
    """One row of the squared, logistic or poisson output (``output_rows``):
    the k logits at z[zo:] are replaced by the output, the delta (output -
    target) * ws goes to d[do:], the targets being t[to:]; returns the row's
    loss in float64."""
    row = 0.0
    for j in range(k):
        v = np.float64(z[zo + j])
        tv = np.float64(t[to + j])
        if output == SQUARED:
            p = v
            row += 0.5 * (v - tv) * (v - tv)
        elif output == LOGISTIC:
            p, softplus = _sigmoid_softplus(v, 1.0)
            row += softplus - tv * v
        else:  # POISSON
            p = _exp(v, np.bool_(False))
            row += (tv * np.log(tv) if tv > 0 else 0.0) - tv * v - tv + p
        z[zo + j] = p
        d[do + j] = (p - tv) * ws
    return row
