"""NumPy kernels: the same functions as ``numba_core``, as array expressions.

Every function has the signature of its compiled twin and writes into the
``out`` arrays it is given. ``train_epoch`` is the same algorithm as the
compiled one, a Python loop over minibatches. The two modules are each other's
test oracle.
"""

import numpy as np

from .config import PREDICT_CHUNK

IDENTITY, SIGMOID, TANH, RELU = 0, 1, 2, 3
SOFTMAX, SQUARED = 0, 1
SGD, ADAM = 0, 1
BETA1, BETA2, EPS = 0.9, 0.999, 1e-8  # Adam


# -------------------------------------------------------------- activations
def _sigmoid(z, out):
    # 1 / (1 + exp(-z)); exp overflow for very negative z gives the right 0
    with np.errstate(over="ignore"):
        np.negative(z, out=out)
        np.exp(out, out=out)
    out += 1
    np.reciprocal(out, out=out)


def _tanh(z, out):
    np.tanh(z, out=out)


def _relu(z, out):
    # keeps NaN (np.maximum propagates it)
    np.maximum(z, 0, out=out)


_ACTIVATE = {SIGMOID: _sigmoid, TANH: _tanh, RELU: _relu}


def bias_act_rows(Z, b, act, r0, r1):
    """Z[r] = f(Z[r] + b) in place for rows r0..r1-1."""
    rows = Z[r0:r1]
    rows += b
    if act in _ACTIVATE:
        _ACTIVATE[act](rows, rows)


def linear(X, W, b, act, out):
    """out = f(X @ W + b)."""
    np.matmul(X, W, out=out)
    bias_act_rows(out, b, act, 0, out.shape[0])


def act_backward_rows(A, dA, act, out, r0, r1):
    """out = dA * f'(.) from the activation output A, rows r0..r1-1."""
    a, d, o = A[r0:r1], dA[r0:r1], out[r0:r1]
    if act == RELU:
        np.multiply(d, a > 0, out=o)
    elif act == SIGMOID:
        np.multiply(d, a * (1 - a), out=o)
    elif act == TANH:
        np.multiply(d, 1 - a * a, out=o)
    else:
        o[...] = d


def act_backward(A, dA, act, out):
    act_backward_rows(A, dA, act, out, 0, A.shape[0])


# --------------------------------------------------- softmax and the losses
def _shifted_logsum(Z):
    """(Z - row max, log of the row sums of exp(Z - max) in float64)."""
    shifted = Z - Z.max(axis=1, keepdims=True)
    return shifted, np.log(np.exp(shifted.astype(np.float64)).sum(axis=1))


def softmax(Z, out):
    top = Z.max(axis=1, keepdims=True)
    np.subtract(Z, top, out=out)
    np.exp(out, out=out)
    out /= out.sum(axis=1, keepdims=True)


def log_softmax(Z, out):
    # (z - max) - log s, in float64 before rounding: exact next to huge logits
    shifted, log_s = _shifted_logsum(Z)
    np.subtract(shifted, log_s[:, None], out=out, casting="same_kind")


def _rows(order, start, m, n):
    return np.arange(m) if order.shape[0] == 0 else order[start : start + m]


def cross_entropy_rows(Z, y, order, start, scale, P, D):
    """Softmax + cross-entropy + its gradient for one batch, fused.

    Row i's label is y[order[start + i]] (y[i] when ``order`` is empty).
    P = softmax(Z) row-wise (P may be Z itself); D = (P - onehot) * scale.
    Returns the summed loss of the rows in float64.
    """
    rows = np.arange(Z.shape[0])
    labels = y[_rows(order, start, Z.shape[0], y.shape[0])]
    shifted, log_s = _shifted_logsum(Z)
    total = float(np.sum(log_s - shifted[rows, labels]))
    softmax(Z, P)
    p_label = P[rows, labels].astype(np.float64)  # read before D is written: P may be D
    np.multiply(P, scale, out=D)
    D[rows, labels] = (p_label - 1.0) * scale
    return total


def cross_entropy_sum(Z, y):
    shifted, log_s = _shifted_logsum(Z)
    return float(np.sum(log_s - shifted[np.arange(Z.shape[0]), y]))


def squared_error_rows(Z, Y, order, start, scale, D):
    """D = (Z - T) * scale; returns the sum of 0.5 * (Z - T)**2 in float64.

    Row i's target T[i] is Y[order[start + i]] (Y[i] when ``order`` is empty).
    """
    T = Y[_rows(order, start, Z.shape[0], Y.shape[0])]
    err = Z.astype(np.float64) - T
    np.multiply(err, scale, out=D)
    return 0.5 * float(np.sum(err * err))


# --------------------------------------------------------------- optimisers
def _finite(*arrays, like):
    """Whether every value fits in ``like``'s dtype (finite once stored)."""
    limit = np.finfo(like.dtype).max
    return all(bool(np.all(np.abs(a) <= limit)) for a in arrays)


def sgd_check(params, grads, velocity, lr, momentum, nesterov, decay, i0, i1):
    """First half of an SGD step on entries i0..i1-1: adds the L2 term
    ``decay * params`` to ``grads``, stores nothing else, and returns (whether
    every new value would be finite in the dtype, sum of the new params**2)."""
    p, g, v = params[i0:i1], grads[i0:i1], velocity[i0:i1]
    g += decay * p
    new_v = momentum * v - lr * g
    new_p = p + (momentum * new_v - lr * g if nesterov else new_v)
    return _finite(new_v, new_p, like=params), float(np.dot(new_p, new_p))


def sgd_apply(params, grads, velocity, lr, momentum, nesterov, i0, i1):
    """velocity = momentum * velocity - lr * grads; params += velocity
    (Nesterov: params += momentum * velocity - lr * grads), entries i0..i1-1."""
    p, g, v = params[i0:i1], grads[i0:i1], velocity[i0:i1]
    v *= momentum
    v -= lr * g
    p += momentum * v - lr * g if nesterov else v


def adam_rate(lr, beta1, beta2, step):
    """Adam's step size with both bias corrections folded in."""
    return lr * np.sqrt(1.0 - beta2**step) / (1.0 - beta1**step)


def _adam_moments(grads, m1, m2, beta1, beta2):
    return beta1 * m1 + (1.0 - beta1) * grads, beta2 * m2 + (1.0 - beta2) * (grads * grads)


def adam_check(params, grads, m1, m2, rate, beta1, beta2, eps, decay, i0, i1):
    """First half of an Adam step; see ``sgd_check``."""
    p, g = params[i0:i1], grads[i0:i1]
    g += decay * p
    a, b = _adam_moments(g, m1[i0:i1], m2[i0:i1], beta1, beta2)
    new_p = p - rate * a / (np.sqrt(b) + eps)
    return _finite(a, b, new_p, like=params), float(np.dot(new_p, new_p))


def adam_apply(params, grads, m1, m2, rate, beta1, beta2, eps, i0, i1):
    """Adam's moment updates and step (``rate`` from ``adam_rate``), entries i0..i1-1."""
    a, b = _adam_moments(grads[i0:i1], m1[i0:i1], m2[i0:i1], beta1, beta2)
    m1[i0:i1] = a
    m2[i0:i1] = b
    params[i0:i1] -= rate * a / (np.sqrt(b) + eps)


def sgd_update(params, grads, velocity, lr, momentum, nesterov):
    sgd_apply(params, grads, velocity, lr, momentum, nesterov, 0, params.shape[0])


def adam_update(params, grads, m1, m2, step, lr, beta1, beta2, eps):
    rate = adam_rate(lr, beta1, beta2, step)
    adam_apply(params, grads, m1, m2, rate, beta1, beta2, eps, 0, params.shape[0])


def update(params, grads, state1, state2, sizes, solver, lr, momentum, nesterov, decay, step):
    """One optimiser step over every layer, the L2 term ``decay * W`` added to
    the weights' gradients, applied only if every new value is finite.

    Returns (applied, sum of the new weights**2): the next batch's L2 loss.
    """
    rate = adam_rate(lr, BETA1, BETA2, step + 1)
    ok, sq, off = True, 0.0, 0
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        nw = int(n_in * n_out)
        for lo, hi, dec in ((off, off + nw, decay), (off + nw, off + nw + int(n_out), 0.0)):
            if solver == ADAM:
                good, part = adam_check(params, grads, state1, state2, rate, BETA1, BETA2, EPS,
                                        dec, lo, hi)
            else:
                good, part = sgd_check(params, grads, state1, lr, momentum, nesterov, dec, lo, hi)
            ok = ok and good
            sq += part if dec > 0 else 0.0
        off += nw + int(n_out)
    if not ok:
        return False, sq
    if solver == ADAM:
        adam_apply(params, grads, state1, state2, rate, BETA1, BETA2, EPS, 0, params.shape[0])
    else:
        sgd_apply(params, grads, state1, lr, momentum, nesterov, 0, params.shape[0])
    return True, sq


# ---------------------------------------------------------- network forward
def _weights(params, sizes, layer):
    """Views of layer ``layer``'s W (n_in, n_out) and b (n_out) in ``params``."""
    off = int(np.sum((sizes[:layer] + 1) * sizes[1 : layer + 1]))
    n_in, n_out = int(sizes[layer]), int(sizes[layer + 1])
    W = params[off : off + n_in * n_out].reshape(n_in, n_out)
    b = params[off + n_in * n_out : off + (n_in + 1) * n_out]
    return W, b


def forward(X, params, sizes, act, output, buf_a, buf_b, out):
    """Network output for the rows of X: probabilities (softmax) or values."""
    m = X.shape[0]
    L = sizes.shape[0] - 1
    prev = X
    for l in range(L):
        W, b = _weights(params, sizes, l)
        n_out = int(sizes[l + 1])
        if l == L - 1:
            dst = out
        else:
            dst = (buf_a if l % 2 == 0 else buf_b)[: m * n_out].reshape(m, n_out)
        linear(prev, W, b, act if l < L - 1 else IDENTITY, dst)
        prev = dst
    if output == SOFTMAX:
        softmax(out, out)


def _first_nonfinite_row(A):
    """The first row of 2-D ``A`` holding NaN or inf, or -1."""
    ok = np.isfinite(A).all(axis=1)
    return -1 if ok.all() else int(np.argmin(ok))


def predict_rows(X, params, sizes, act, output):
    """``forward`` over all rows of X in chunks, allocating its own output and
    scratch. Returns (out, labels, bad): labels is each row's argmax (the class
    code under a softmax output), bad the first row whose input or output is
    not finite (-1: none)."""
    m = X.shape[0]
    widest = int(sizes[1:-1].max()) if sizes.shape[0] > 2 else 1
    out = np.empty((m, int(sizes[-1])), dtype=X.dtype)
    bad = _first_nonfinite_row(X)
    if bad >= 0:
        return out, np.zeros(m, dtype=np.int64), bad
    chunk = min(m, PREDICT_CHUNK)
    buf_a = np.empty(chunk * widest, dtype=X.dtype)
    buf_b = np.empty(chunk * widest, dtype=X.dtype)
    with np.errstate(over="ignore", invalid="ignore"):  # reported through ``bad``
        for r0 in range(0, m, chunk):
            r1 = min(m, r0 + chunk)
            forward(X[r0:r1], params, sizes, act, output, buf_a, buf_b, out[r0:r1])
    return out, np.argmax(out, axis=1).astype(np.int64), _first_nonfinite_row(out)


# -------------------------------------------------------------- whole epoch
def _offsets(sizes, batch_size):
    """Start of each block in the epoch's work array (see ``work_size``)."""
    blocks = np.concatenate([sizes, [sizes[1:].max()]]) * batch_size
    return np.concatenate([[0], np.cumsum(blocks)])


def train_epoch(X, y, Y, order, params, grads, state1, state2, step, sizes, act, output,
                solver, lr, momentum, nesterov, l2, batch_size, work):
    """One epoch of minibatch training. Returns (mean loss, step, rows done).
    A batch whose loss, or any new parameter or optimiser value, is not finite
    stops the epoch before its update: everything stays finite."""
    with np.errstate(over="ignore", invalid="ignore"):  # non-finite values are checked below
        return _train_epoch(X, y, Y, order, params, grads, state1, state2, step, sizes, act,
                            output, solver, lr, momentum, nesterov, l2, batch_size, work)


def _train_epoch(X, y, Y, order, params, grads, state1, state2, step, sizes, act, output,
                 solver, lr, momentum, nesterov, l2, batch_size, work):
    n = order.shape[0]
    if n == 0:
        return np.nan, step, 0
    L = sizes.shape[0] - 1
    offs = _offsets(sizes, batch_size)
    layers = [_weights(params, sizes, l) for l in range(L)]
    grad_views = [_weights(grads, sizes, l) for l in range(L)]
    total = 0.0
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)

        def block(i, width):
            return work[offs[i] : offs[i] + m * width].reshape(m, width)

        acts = [block(0, sizes[0])]
        np.take(X, order[start : start + m], axis=0, out=acts[0])
        for l, (W, b) in enumerate(layers):
            A = block(l + 1, sizes[l + 1])
            linear(acts[-1], W, b, act if l < L - 1 else IDENTITY, A)
            acts.append(A)
        D = block(L + 1, sizes[L])
        scale = 1.0 / m
        if output == SOFTMAX:
            loss = cross_entropy_rows(acts[-1], y, order, start, scale, acts[-1], D)
        else:
            loss = squared_error_rows(acts[-1], Y, order, start, scale, D)
        if l2 > 0:
            loss += 0.5 * l2 * sum(float(np.dot(W.ravel().astype(np.float64), W.ravel()))
                                   for W, _ in layers)
        if not np.isfinite(loss):
            return np.nan, step, start
        total += loss
        cur = 0
        for l in range(L - 1, -1, -1):
            (W, _), (gW, gb) = layers[l], grad_views[l]
            D = block(L + 1 + cur, sizes[l + 1])
            np.matmul(acts[l].T, D, out=gW)  # the L2 term is added in ``update``
            np.sum(D, axis=0, out=gb)
            if l > 0:
                nxt = block(L + 2 - cur, sizes[l])
                np.matmul(D, W.T, out=nxt)
                act_backward_rows(acts[l], nxt, act, nxt, 0, m)
                cur = 1 - cur
        if not update(params, grads, state1, state2, sizes, solver, lr, momentum, nesterov,
                      l2 * scale, step)[0]:
            return np.nan, step, start
        step += 1
    return total / n, step, n
