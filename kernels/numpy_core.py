"""NumPy kernels: the same functions as ``numba_core``, as array expressions.

Every function here has the signature of its compiled twin and writes into
the arrays it is given. ``train_epoch`` and ``loss_gradient`` are the same
algorithms as the compiled ones, Python loops over minibatches (or chunks).
The two modules are each other's test oracle.

X is a C-contiguous 2-D array or a CSR triple ``(data, indices, indptr)``,
whose products go through scipy.sparse (without densifying X).
"""

import numpy as np

from .codes import ADAM, IDENTITY, LOGISTIC, POISSON, RELU, SIGMOID, SOFTMAX, SQUARED, TANH
from .config import PREDICT_CHUNK


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
    np.maximum(z, 0, out=out)  # keeps NaN


_ACTIVATE = {SIGMOID: _sigmoid, TANH: _tanh, RELU: _relu}


def linear(X, W, b, act, out):
    """out = f(X @ W + b)."""
    np.matmul(X, W, out=out)
    out += b
    if act in _ACTIVATE:
        _ACTIVATE[act](out, out)


def act_backward(A, dA, act, out):
    """out = dA * f'(.) from the activation output A (out may be dA)."""
    if act == RELU:
        np.multiply(dA, A > 0, out=out)
    elif act == SIGMOID:
        np.multiply(dA, A * (1 - A), out=out)
    elif act == TANH:
        np.multiply(dA, 1 - A * A, out=out)
    elif out is not dA:
        out[...] = dA


# ------------------------------------------------------------ output layers
def _rows(order, start, m):
    """The data rows of a batch: order[start:start + m], or start..start+m-1."""
    return np.arange(start, start + m) if order.shape[0] == 0 else order[start : start + m]


def _by_row(ufunc, Z):
    """``ufunc.reduce`` over each row of Z. Rows of a few columns go column by
    column: NumPy's reduction along a short axis costs tens of nanoseconds a
    row, more than the arithmetic (the output layers of narrow networks)."""
    if Z.shape[1] > 8:
        return ufunc.reduce(Z, axis=1)
    out = Z[:, 0].copy()
    for c in range(1, Z.shape[1]):
        ufunc(out, Z[:, c], out=out)
    return out


def softmax(Z, out):
    """Row-wise softmax (out may be Z)."""
    np.subtract(Z, _by_row(np.maximum, Z)[:, None], out=out)
    np.exp(out, out=out)
    out /= _by_row(np.add, out)[:, None]


def _shifted_logsum(Z):
    """(Z - row max in float64, log of the row sums of exp(Z - max))."""
    shifted = Z.astype(np.float64) - _by_row(np.maximum, Z)[:, None]
    return shifted, np.log(_by_row(np.add, np.exp(shifted)))


def log_softmax(Z, out):
    """Row-wise log-softmax, (z - max) - log(sum(exp(z - max)))."""
    shifted, log_s = _shifted_logsum(Z)
    np.subtract(shifted, log_s[:, None], out=out, casting="same_kind")


def _softplus(v):
    """log(1 + exp(v)), finite for any finite v (float64)."""
    return np.maximum(v, 0.0) + np.log1p(np.exp(-np.abs(v)))


def output_rows(Z, y, Y, w, order, start, scale, output, D):
    """The output layer of one batch, fused with its loss and its delta.

    Z (m x k) holds the logits and is replaced by the output (softmax,
    sigmoid, exp or the identity); D = w[r] * (output - target) * scale; the
    return value is the weighted sum over rows of each row's loss in float64
    (see the compiled twin for the four losses).
    """
    m, k = Z.shape
    rows = _rows(order, start, m)
    wr = w[rows] if w.shape[0] else np.ones(m)
    if output == SOFTMAX:
        labels = y[rows]
        shifted, log_s = _shifted_logsum(Z)
        losses = log_s - shifted[np.arange(m), labels]
        # the softmax from the same shifted logits: exp(z - max - log(sum))
        shifted -= log_s[:, None]
        np.exp(shifted, out=shifted)
        Z[...] = shifted
        T = np.zeros((m, k))
        T[np.arange(m), labels] = 1.0
    else:
        T = Y[rows].astype(np.float64)
        z = Z.astype(np.float64)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            if output == SQUARED:
                P = z
                losses = 0.5 * ((z - T) ** 2).sum(axis=1)
            elif output == LOGISTIC:
                P = 1.0 / (1.0 + np.exp(-z))
                losses = (_softplus(z) - T * z).sum(axis=1)
            else:  # POISSON
                P = np.exp(z)
                tlogt = np.where(T > 0, T * np.log(np.where(T > 0, T, 1.0)), 0.0)
                losses = (tlogt - T * z - T + P).sum(axis=1)
        with np.errstate(over="ignore"):  # reported by the caller's finiteness checks
            Z[...] = P
    with np.errstate(over="ignore", invalid="ignore"):
        # the delta from the float64 output, as the compiled twin does: exp(z) may
        # not fit the array's dtype while exp(z) - t does
        np.multiply((Z if output == SOFTMAX else P) - T, (wr * scale)[:, None], out=D,
                    casting="same_kind")
        return float(np.dot(wr, losses))


# --------------------------------------------------------------- optimisers
def _finite(*arrays, like):
    """Whether every value fits in ``like``'s dtype (finite once stored)."""
    limit = np.finfo(like.dtype).max
    return all(bool(np.all(np.abs(a) <= limit)) for a in arrays)


def _all_finite(*arrays):
    """Whether every value of the arrays is finite: their max and min are (NaN
    and inf carry into both), two passes without a temporary."""
    return all(np.isfinite(a.max()) and np.isfinite(a.min()) for a in arrays if a.size)


def _sum_squares(a, chunk=1 << 16):
    """Sum of a**2 in float64, in chunks (no float64 copy of a large array)."""
    if a.dtype == np.float64:
        return float(np.dot(a, a))
    total = 0.0
    for lo in range(0, a.shape[0], chunk):
        c = a[lo : lo + chunk].astype(np.float64)
        total += float(np.dot(c, c))
    return total


def _squares_if_finite(a):
    """(whether every value of a is finite, sum of a**2): one BLAS dot product,
    which is finite exactly when the values are, unless it overflows; then the
    values are checked and summed in float64."""
    sq = float(np.dot(a, a))
    if np.isfinite(sq):
        return True, sq
    return _all_finite(a), _sum_squares(a)


def sgd_step(params, grads, velocity, lr, momentum, nesterov, decay, i0, i1):
    """One SGD step on entries i0..i1-1: grads += decay * params (the L2 term,
    kept in ``grads``), velocity = momentum * velocity - lr * grads, params +=
    velocity (Nesterov: params += momentum * velocity - lr * grads), in place
    with one temporary. Returns (whether every new value is finite in the
    dtype, sum of the new params**2)."""
    p, g, v = params[i0:i1], grads[i0:i1], velocity[i0:i1]
    tmp = np.multiply(p, decay)
    g += tmp
    v *= momentum
    np.multiply(g, lr, out=tmp)
    v -= tmp
    if nesterov:
        tmp -= momentum * v
        p -= tmp
    else:
        p += v
    # a velocity that is not finite leaves a new parameter that is not: checking p does
    return _squares_if_finite(p)


def adam_rate(lr, beta1, beta2, step):
    """Adam's step size for update number ``step`` (>= 1), both bias
    corrections folded in."""
    return lr * np.sqrt(1.0 - beta2**step) / (1.0 - beta1**step)


def adam_step(params, grads, m1, m2, rate, beta1, beta2, eps, decay, i0, i1):
    """One Adam step on entries i0..i1-1 (``rate`` from ``adam_rate``), the L2
    term added to ``grads`` first; returns what ``sgd_step`` does."""
    p, g = params[i0:i1], grads[i0:i1]
    g += decay * p
    a = beta1 * m1[i0:i1] + (1.0 - beta1) * g
    b = beta2 * m2[i0:i1] + (1.0 - beta2) * (g * g)
    new_p = p - rate * a / (np.sqrt(b) + eps)
    ok = _finite(a, b, new_p, like=params)
    m1[i0:i1] = a
    m2[i0:i1] = b
    p[...] = new_p
    return ok, float(np.dot(new_p.astype(np.float64), new_p))


def sgd_update(params, grads, velocity, lr, momentum, nesterov):
    sgd_step(params, grads, velocity, lr, momentum, nesterov, 0.0, 0, params.shape[0])


def adam_update(params, grads, m1, m2, step, lr, beta1, beta2, eps):
    adam_step(params, grads, m1, m2, adam_rate(lr, beta1, beta2, step), beta1, beta2, eps,
              0.0, 0, params.shape[0])


def _update_layer(params, grads, state1, state2, lo, mid, hi, solver, lr, momentum, nesterov,
                  beta1, beta2, eps, rate, decay):
    """One optimiser step on a layer: W = params[lo:mid] with the L2 term, b =
    params[mid:hi] without. Returns (all new values finite, sum of new W**2)."""
    if solver == ADAM:
        ok_w, sq = adam_step(params, grads, state1, state2, rate, beta1, beta2, eps, decay,
                             lo, mid)
        ok_b, _ = adam_step(params, grads, state1, state2, rate, beta1, beta2, eps, 0.0,
                            mid, hi)
    else:
        ok_w, sq = sgd_step(params, grads, state1, lr, momentum, nesterov, decay, lo, mid)
        ok_b, _ = sgd_step(params, grads, state1, lr, momentum, nesterov, 0.0, mid, hi)
    return ok_w and ok_b, sq


# --------------------------------------------------- layout and the network
def _layers(sizes):
    """Start of each layer's W and b in the flat parameter vector."""
    counts = np.stack([sizes[:-1] * sizes[1:], sizes[1:]], axis=1).reshape(-1)
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def _weights(params, sizes, offs, l):
    """Views of layer l's W (n_in, n_out) and b (n_out) in ``params``."""
    W = params[offs[2 * l] : offs[2 * l + 1]].reshape(int(sizes[l]), int(sizes[l + 1]))
    return W, params[offs[2 * l + 1] : offs[2 * l + 2]]


def _matrix(X, n_cols):
    """A dense array as it is; a CSR triple as a scipy.sparse matrix."""
    if isinstance(X, np.ndarray):
        return X
    import scipy.sparse

    data, indices, indptr = X
    return scipy.sparse.csr_matrix((data, indices, indptr), shape=(indptr.shape[0] - 1, n_cols))


def _forward_rows(A0, params, sizes, offs, act, out, hidden=None):
    """Every layer's activation for the input rows A0 (dense or sparse); the
    last layer's logits go to ``out``, the hidden layers' to the arrays
    ``hidden`` (allocated when None). Returns the list [A0, A1, ..., out]."""
    L = sizes.shape[0] - 1
    acts = [A0]
    for l in range(L):
        W, b = _weights(params, sizes, offs, l)
        if l == L - 1:
            dst = out
        elif hidden is not None:
            dst = hidden[l]
        else:
            dst = np.empty((A0.shape[0], int(sizes[l + 1])), dtype=params.dtype)
        if isinstance(acts[-1], np.ndarray):
            linear(acts[-1], W, b, act if l < L - 1 else IDENTITY, dst)
        else:  # sparse rows: scipy's product, then bias and f
            dst[...] = acts[-1] @ W
            linear_bias_act(dst, b, act if l < L - 1 else IDENTITY)
        acts.append(dst)
    return acts


def linear_bias_act(Z, b, act):
    """Z = f(Z + b) in place."""
    Z += b
    if act in _ACTIVATE:
        _ACTIVATE[act](Z, Z)


def _output_only(out, output):
    if output == SOFTMAX:
        softmax(out, out)
    elif output == LOGISTIC:
        _sigmoid(out, out)
    elif output == POISSON:
        with np.errstate(over="ignore"):
            np.exp(out, out=out)


def forward(X, params, sizes, act, output, buf_a, buf_b, out):
    """Network output for the rows of dense X (buf_a, buf_b: scratch, unused here)."""
    _forward_rows(X, params, sizes, _layers(sizes), act, out)
    _output_only(out, output)


def _first_nonfinite(A):
    """The first row of 2-D ``A`` holding NaN or inf, or -1."""
    ok = np.isfinite(A).all(axis=1)
    return -1 if ok.all() else int(np.argmin(ok))


def predict_rows(X, params, sizes, act, output, out, labels):
    """The network's output for every row of X (dense or CSR) into ``out``, each
    row's argmax into ``labels``, in chunks; returns the first row whose input
    or output is not finite (-1: none), like the compiled twin."""
    M = _matrix(X, int(sizes[0]))
    m = M.shape[0]
    data = M if isinstance(M, np.ndarray) else M.data[None, :]
    bad = _first_nonfinite(data) if data.size else -1
    if bad >= 0:
        if not isinstance(M, np.ndarray):  # the row that holds the bad stored value
            bad = int(np.searchsorted(M.indptr, np.argmin(np.isfinite(M.data)), side="right")) - 1
        labels[:] = 0
        return bad
    offs = _layers(sizes)
    with np.errstate(over="ignore", invalid="ignore"):  # reported through ``bad``
        for r0 in range(0, m, PREDICT_CHUNK):
            block = out[r0 : r0 + PREDICT_CHUNK]
            _forward_rows(M[r0 : r0 + PREDICT_CHUNK], params, sizes, offs, act, block)
            _output_only(block, output)
    np.argmax(out, axis=1, out=labels)
    return _first_nonfinite(out)


# ----------------------------------------------------------------- training
def _batch_weight(w, rows):
    return float(len(rows)) if w.shape[0] == 0 else float(np.sum(w[rows]))


def _penalty_squares(params, sizes, offs):
    return sum(float(np.dot(W.ravel().astype(np.float64), W.ravel()))
               for W, _ in (_weights(params, sizes, offs, l) for l in range(len(sizes) - 1)))


def _batch_penalty(params, sizes, offs, l2, sq):
    """(a batch's L2 penalty, the sum of squares of the weights), from ``sq``
    when the last update left it (>= 0)."""
    if l2 <= 0:
        return 0.0, sq
    if sq < 0:
        sq = _penalty_squares(params, sizes, offs)
    return 0.5 * l2 * sq, sq


def _backward(acts, D, params, sizes, offs, act, l, gW, gb, nxt=None):
    """Layer l's gradient into gW and gb from its delta D; returns the delta of
    layer l - 1 (from the current, not yet updated, W; in ``nxt`` when given),
    or None for l = 0."""
    A = acts[l]
    if isinstance(A, np.ndarray):
        np.matmul(A.T, D, out=gW)
    else:
        gW[...] = A.T @ D
    np.sum(D, axis=0, out=gb)
    if l == 0:
        return None
    W, _ = _weights(params, sizes, offs, l)
    nxt = np.matmul(D, W.T, out=nxt)
    act_backward(A, nxt, act, nxt)
    return nxt


def train_epoch(X, y, Y, w, order, params, grads, state1, state2, step, sizes, act, output,
                solver, lr, momentum, nesterov, beta1, beta2, eps, l2, batch_size, work):
    """One epoch of minibatch training: the compiled twin's algorithm. Returns
    (data loss, penalty, step, rows done)."""
    with np.errstate(over="ignore", invalid="ignore"):  # non-finite values are checked
        return _train_epoch(X, y, Y, w, order, params, grads, state1, state2, step, sizes, act,
                            output, solver, lr, momentum, nesterov, beta1, beta2, eps, l2,
                            batch_size)


def _train_epoch(X, y, Y, w, order, params, grads, state1, state2, step, sizes, act, output,
                 solver, lr, momentum, nesterov, beta1, beta2, eps, l2, batch_size):
    n = order.shape[0]
    L = sizes.shape[0] - 1
    offs = _layers(sizes)
    M = _matrix(X, int(sizes[0]))
    dense = isinstance(M, np.ndarray)
    # every batch's arrays, allocated once: a fresh array per batch costs its page
    # faults again whenever it is larger than the allocator keeps
    rows_max = min(batch_size, n)
    inputs = np.empty((rows_max, int(sizes[0])), dtype=params.dtype) if dense else None
    layers = [np.empty((rows_max, int(sizes[l])), dtype=params.dtype) for l in range(1, L + 1)]
    deltas = [np.empty((rows_max, int(sizes[l])), dtype=params.dtype) for l in range(1, L + 1)]
    data_total = penalty_total = 0.0
    sq = -1.0
    for start in range(0, n, batch_size):
        rows = order[start : start + batch_size]
        m = rows.shape[0]
        weight = _batch_weight(w, rows)
        if weight == 0.0:
            continue
        # mode="clip": the API has checked the indices; the default mode buffers
        # the whole gather once more when given ``out`` (about 1 ms for 14k rows)
        A0 = np.take(M, rows, axis=0, out=inputs[:m], mode="clip") if dense else M[rows]
        out = layers[L - 1][:m]
        acts = _forward_rows(A0, params, sizes, offs, act, out, [a[:m] for a in layers])
        scale = 1.0 / weight
        D = deltas[L - 1][:m]
        data = output_rows(out, y, Y, w, order, start, scale, output, D)
        penalty, sq = _batch_penalty(params, sizes, offs, l2, sq)
        if not np.isfinite(data + penalty):
            return np.nan, np.nan, step, start
        data_total += data * m * scale
        penalty_total += penalty * m * scale
        rate = adam_rate(lr, beta1, beta2, step + 1)
        ok, sq_new = True, 0.0
        for l in range(L - 1, -1, -1):
            gW, gb = _weights(grads, sizes, offs, l)
            D = _backward(acts, D, params, sizes, offs, act, l, gW, gb,
                          deltas[l - 1][:m] if l > 0 else None)
            good, part = _update_layer(params, grads, state1, state2, offs[2 * l],
                                       offs[2 * l + 1], offs[2 * l + 2], solver, lr, momentum,
                                       nesterov, beta1, beta2, eps, rate, l2 * scale)
            ok = ok and good
            sq_new += part
        if not ok:
            return np.nan, np.nan, step, start
        sq = sq_new
        step += 1
    return data_total, penalty_total, step, n


#: Narrow networks on large batches: the same algorithm (the compiled core's
#: feature-major layout gains nothing in array expressions).
train_columns = train_epoch
#: The NumPy core computes the row-block kernels' results whole, serially.
train_blocks = train_epoch


def train_rows(X, y, Y, w, order, params, grads, state1, state2, step, sizes, act, output,
               solver, lr, momentum, nesterov, beta1, beta2, eps, l2, batch_size, work):
    """``train_epoch`` for SGD on batches of one row (dense X), with its Python
    work per row cut down: every layer's views are made once per epoch, the
    gradient of all layers goes into ``grads`` (the delta below from the
    weights before the update, as in ``train_epoch``), then one flat update
    of all the parameters, the L2 term added through a mask of the weights.
    Returns what ``train_epoch`` does."""
    with np.errstate(over="ignore", invalid="ignore"):
        return _train_rows(X, y, Y, w, order, params, grads, state1, step, sizes, act, output,
                           lr, momentum, nesterov, l2)


def _train_rows(X, y, Y, w, order, params, grads, state1, step, sizes, act, output, lr,
                momentum, nesterov, l2):
    L = sizes.shape[0] - 1
    offs = _layers(sizes)
    layers = [_weights(params, sizes, offs, l) for l in range(L)]
    grad_views = [_weights(grads, sizes, offs, l) for l in range(L)]
    flat_w = [params[offs[2 * l] : offs[2 * l + 1]] for l in range(L)]
    is_w = np.zeros_like(params)
    for l in range(L):
        is_w[offs[2 * l] : offs[2 * l + 1]] = 1.0
    acts = [None] + [np.empty(int(sizes[l]), dtype=params.dtype) for l in range(1, L + 1)]
    below = [None] + [np.empty(int(sizes[l]), dtype=params.dtype) for l in range(1, L)]
    D = np.empty(int(sizes[L]), dtype=params.dtype)
    tmp = np.empty_like(params)
    n = order.shape[0]
    weighted = w.shape[0] > 0
    data_total = penalty_total = 0.0
    sq = -1.0
    for s in range(n):
        r = order[s]
        weight = float(w[r]) if weighted else 1.0
        if weight == 0.0:
            continue
        a = X[r]
        for l, (W, b) in enumerate(layers):
            z = acts[l + 1]
            np.dot(a, W, out=z)
            z += b
            if l < L - 1 and act in _ACTIVATE:
                _ACTIVATE[act](z, z)
            a = z
        scale = 1.0 / weight
        if output == SOFTMAX:
            label = y[r]
            z = acts[L].astype(np.float64)
            top = z.max()
            e = np.exp(z - top)
            total = e.sum()
            data = weight * (float(np.log(total)) - (z[label] - top))
            e /= total
            e[label] -= 1.0
            D[...] = e
        else:
            data = output_rows(acts[L][None, :], y, Y, w, order, s, scale, output, D[None, :])
        penalty = 0.0
        if l2 > 0:
            if sq < 0:
                sq = sum(_squares_if_finite(f)[1] for f in flat_w)
            penalty = 0.5 * l2 * sq
        if not np.isfinite(data + penalty):
            return np.nan, np.nan, step, s
        data_total += data * scale
        penalty_total += penalty * scale
        d = D
        for l in range(L - 1, -1, -1):
            gW, gb = grad_views[l]
            np.multiply((X[r] if l == 0 else acts[l])[:, None], d, out=gW)
            gb[...] = d
            if l > 0:
                np.dot(layers[l][0], d, out=below[l])
                act_backward(acts[l], below[l], act, below[l])
                d = below[l]
        np.multiply(params, is_w, out=tmp)
        tmp *= l2 * scale
        grads += tmp
        state1 *= momentum
        np.multiply(grads, lr, out=tmp)
        state1 -= tmp
        if nesterov:
            tmp *= -1.0
            tmp += momentum * state1
            params += tmp
        else:
            params += state1
        if not _all_finite(state1, params):
            return np.nan, np.nan, step, s
        sq = sum(_squares_if_finite(f)[1] for f in flat_w)
        step += 1
    return data_total, penalty_total, step, n


def loss_gradient(X, y, Y, w, params, grads, sizes, act, output, l2, chunk, work):
    """The loss of the whole data set and its gradient (the compiled twin's
    algorithm, ``chunk`` rows at a time). Returns (data loss, penalty)."""
    L = sizes.shape[0] - 1
    offs = _layers(sizes)
    M = _matrix(X, int(sizes[0]))
    n = M.shape[0]
    rows_all = np.empty(0, dtype=np.int64)
    weight = _batch_weight(w, np.arange(n))
    scale = 1.0 / weight if weight > 0 else 0.0
    data = 0.0
    grads[...] = 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            out = np.empty((m, int(sizes[L])), dtype=params.dtype)
            acts = _forward_rows(M[start : start + m], params, sizes, offs, act, out)
            D = np.empty_like(out)
            data += output_rows(out, y, Y, w, rows_all, start, scale, output, D)
            for l in range(L - 1, -1, -1):
                gW = np.empty((int(sizes[l]), int(sizes[l + 1])), dtype=params.dtype)
                gb = np.empty(int(sizes[l + 1]), dtype=params.dtype)
                D = _backward(acts, D, params, sizes, offs, act, l, gW, gb)
                GW, Gb = _weights(grads, sizes, offs, l)
                GW += gW
                Gb += gb
        for l in range(L):
            GW, _ = _weights(grads, sizes, offs, l)
            GW += l2 * scale * _weights(params, sizes, offs, l)[0]
    return data * scale, 0.5 * l2 * _penalty_squares(params, sizes, offs) * scale


loss_gradient_blocks = loss_gradient
