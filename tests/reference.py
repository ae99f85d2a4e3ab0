"""Slow, obviously-correct references for every public kernel of fastmlp.

Everything here is a plain Python loop over rows and columns, computed with
Python floats (float64) and the ``math`` module: no NumPy arithmetic, no
vectorisation, no tricks beyond the textbook ones (subtracting the row
maximum before ``exp``, ``math.fsum`` for sums). Inputs may be NumPy arrays
of any float dtype (they are read with ``.tolist()``, which is exact); results
are returned as float64 NumPy arrays (or Python floats for scalars) so tests
can compare them with the kernels.

The references are deliberately independent of ``fastmlp.kernels``: nothing
is imported from it, so a bug shared by both backends shows up here.
"""

import math

import numpy as np

ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu")
ADAM_BETA1, ADAM_BETA2, ADAM_EPS = 0.9, 0.999, 1e-8  # what train_epoch uses


# ---------------------------------------------------------------- helpers
def _rows(a):
    """A 2-D array as a list of lists of Python floats."""
    a = np.asarray(a)
    assert a.ndim == 2, a.shape
    return [[float(v) for v in row] for row in a.tolist()]


def _vec(a):
    a = np.asarray(a)
    assert a.ndim == 1, a.shape
    return [float(v) for v in a.tolist()]


def _sum(values):
    """math.fsum, or a plain sum where fsum refuses (an infinity or an overflow)."""
    values = list(values)
    try:
        return math.fsum(values)
    except (OverflowError, ValueError):
        return sum(values)


def _out(rows):
    return np.array(rows, dtype=np.float64).reshape(len(rows), -1 if rows and rows[0] else 0)


def sigmoid(s):
    """1 / (1 + exp(-s)), written so that exp never overflows."""
    if s >= 0:
        return 1.0 / (1.0 + math.exp(-s))
    e = math.exp(s)
    return e / (1.0 + e)


def relu(s):
    """max(s, 0); NaN stays NaN."""
    if math.isnan(s):
        return s
    return s if s > 0 else 0.0


def activate(name, s):
    if name == "identity":
        return s
    if name == "sigmoid":
        return sigmoid(s)
    if name == "tanh":
        return math.tanh(s)
    if name == "relu":
        return relu(s)
    raise ValueError(name)


def activation_derivative_from_output(name, a):
    """f'(s) written in terms of the activation's output a = f(s)."""
    if name == "identity":
        return 1.0
    if name == "sigmoid":
        return a * (1.0 - a)
    if name == "tanh":
        return 1.0 - a * a
    if name == "relu":
        return 1.0 if a > 0 else 0.0
    raise ValueError(name)


# ------------------------------------------------------- matrix + activation
def matmul_bias(X, W, b):
    """X @ W + b by loops (lists of lists in, list of lists out)."""
    n, k = len(X), len(W)
    h = len(b)
    out = []
    for i in range(n):
        row = []
        for j in range(h):
            terms = [X[i][p] * W[p][j] for p in range(k)]
            terms.append(b[j])
            row.append(_sum(terms))
        out.append(row)
    return out


def linear(X, W, b, activation="identity"):
    """f(X @ W + b) with W of shape (n_in, n_out)."""
    S = matmul_bias(_rows(X), _rows(W), _vec(b))
    return _out([[activate(activation, s) for s in row] for row in S])


def linear_sigmoid(X, W, b):
    return linear(X, W, b, "sigmoid")


def linear_tanh(X, W, b):
    return linear(X, W, b, "tanh")


def linear_relu(X, W, b):
    return linear(X, W, b, "relu")


def _backward_one(activation, a, d):
    if activation == "relu":  # pass dA through where the unit was active, else exactly 0
        return d if a > 0 else 0.0
    return d * activation_derivative_from_output(activation, a)


def act_backward(activation, A, dA):
    A, dA = _rows(A), _rows(dA)
    return _out([[_backward_one(activation, A[i][j], dA[i][j]) for j in range(len(A[i]))]
                 for i in range(len(A))])


def sigmoid_backward(A, dA):
    """dA * A * (1 - A)."""
    return act_backward("sigmoid", A, dA)


def tanh_backward(A, dA):
    """dA * (1 - A**2)."""
    return act_backward("tanh", A, dA)


def relu_backward(A, dA):
    """dA where A > 0, else 0."""
    return act_backward("relu", A, dA)


# ---------------------------------------------------- softmax and the losses
def _softmax_row(z):
    top = max(z)
    e = [math.exp(v - top) for v in z]
    s = _sum(e)
    return [v / s for v in e]


def _log_softmax_row(z):
    top = max(z)
    log_s = math.log(_sum(math.exp(v - top) for v in z))
    return [(v - top) - log_s for v in z]


def softmax(Z):
    """Row-wise exp(z - max) / sum(exp(z - max))."""
    return _out([_softmax_row(z) for z in _rows(Z)])


def log_softmax(Z):
    """Row-wise (z - max) - log(sum(exp(z - max)))."""
    return _out([_log_softmax_row(z) for z in _rows(Z)])


def _cross_entropy_terms(Z, y):
    terms = []
    for z, label in zip(Z, y):
        top = max(z)
        log_s = math.log(_sum(math.exp(v - top) for v in z))
        terms.append((top - z[label]) + log_s)  # log-sum-exp minus the label's logit
    return terms


def cross_entropy(Z, y):
    """Mean over rows of -log softmax(z)[label], by log-sum-exp."""
    Z, y = _rows(Z), [int(v) for v in np.asarray(y).tolist()]
    return _sum(_cross_entropy_terms(Z, y)) / max(len(Z), 1)


def cross_entropy_backward(Z, y):
    """(softmax(Z) - onehot(y)) / n."""
    Z, y = _rows(Z), [int(v) for v in np.asarray(y).tolist()]
    n = len(Z)
    out = []
    for z, label in zip(Z, y):
        p = _softmax_row(z)
        out.append([(p[j] - (1.0 if j == label else 0.0)) / n for j in range(len(z))])
    return _out(out)


def squared_error(Z, Y):
    """Mean over rows of 0.5 * sum((z - y)**2)."""
    Z, Y = _rows(Z), _rows(Y)
    rows = [0.5 * _sum((z - t) * (z - t) for z, t in zip(zr, yr)) for zr, yr in zip(Z, Y)]
    return _sum(rows) / max(len(Z), 1)


def squared_error_backward(Z, Y):
    """(Z - Y) / n."""
    Z, Y = _rows(Z), _rows(Y)
    n = len(Z)
    return _out([[(z - t) / n for z, t in zip(zr, yr)] for zr, yr in zip(Z, Y)])


# --------------------------------------------------------------- optimisers
def sgd_update(params, grads, velocity, lr, momentum=0.9, nesterov=False):
    """Returns (new params, new velocity) as float64 arrays.

    velocity = momentum * velocity - lr * g; params += velocity
    (Nesterov: params += momentum * velocity - lr * g, with the new velocity).
    """
    p, g, v = _vec(params), _vec(grads), _vec(velocity)
    new_p, new_v = [], []
    for i in range(len(p)):
        vi = momentum * v[i] - lr * g[i]
        if nesterov:
            pi = p[i] + (momentum * vi - lr * g[i])
        else:
            pi = p[i] + vi
        new_p.append(pi)
        new_v.append(vi)
    return np.array(new_p), np.array(new_v)


def adam_update(params, grads, m, v, step, lr, beta1=0.9, beta2=0.999, eps=1e-8):
    """Returns (new params, new m, new v) as float64 arrays.

    ``step`` counts updates including this one (t >= 1):
    m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
    params -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps).
    """
    p, g, m1, m2 = _vec(params), _vec(grads), _vec(m), _vec(v)
    t = int(step)
    rate = lr * math.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
    new_p, new_m, new_v = [], [], []
    for i in range(len(p)):
        a = beta1 * m1[i] + (1.0 - beta1) * g[i]
        b = beta2 * m2[i] + (1.0 - beta2) * g[i] * g[i]
        new_m.append(a)
        new_v.append(b)
        new_p.append(p[i] - rate * a / (math.sqrt(b) + eps))
    return np.array(new_p), np.array(new_m), np.array(new_v)


# ------------------------------------------------------------------ network
def n_params(sizes):
    return sum((sizes[l] + 1) * sizes[l + 1] for l in range(len(sizes) - 1))


def unpack(params, sizes):
    """[(W_l as list of rows (sizes[l] x sizes[l+1]), b_l as list)] from the flat vector
    [W0.ravel(), b0, W1.ravel(), b1, ...] (row-major W)."""
    flat = _vec(params) if not isinstance(params, list) else params
    assert len(flat) == n_params(sizes), (len(flat), sizes)
    layers, off = [], 0
    for l in range(len(sizes) - 1):
        n_in, n_out = int(sizes[l]), int(sizes[l + 1])
        W = [[flat[off + i * n_out + j] for j in range(n_out)] for i in range(n_in)]
        off += n_in * n_out
        b = [flat[off + j] for j in range(n_out)]
        off += n_out
        layers.append((W, b))
    return layers


def _forward_lists(X, layers, activation, output):
    """All activations [A0 = X, A1, ..., AL]; AL is the softmax or the identity output."""
    acts = [X]
    L = len(layers)
    for l, (W, b) in enumerate(layers):
        S = matmul_bias(acts[-1], W, b)
        act = activation if l < L - 1 else "identity"
        acts.append([[activate(act, s) for s in row] for row in S])
    if output == "softmax":
        acts[-1] = [_softmax_row(z) for z in acts[-1]]
    elif output != "squared":
        raise ValueError(output)
    return acts


def forward(X, params, sizes, activation="relu", output="softmax"):
    """Network output: hidden ``activation`` on all layers but the last; the last layer is
    linear, followed by a row softmax (output='softmax') or nothing (output='squared')."""
    sizes = [int(s) for s in sizes]
    acts = _forward_lists(_rows(X), unpack(params, sizes), activation, output)
    return _out(acts[-1])


def train_epoch(X, target, order, params, grads, state1, state2, step, sizes, activation,
                output, solver, lr, momentum, nesterov, l2, batch_size, dtype=np.float64):
    """One epoch of minibatch training, by loops.

    For each batch (rows ``order[start:start + batch_size]``, the last one smaller):
    forward; batch loss = mean over the m rows (cross-entropy of the softmax against integer
    labels, or 0.5 * sum of squares against 2-D targets) + 0.5 * l2 * sum(W^2) / m; stop
    (returning NaN) before the update when it is not finite; gradients dW = A_prev^T D +
    l2 * W / m and db = column sums of D, with D = (P - onehot) / m or (Z - Y) / m at the
    output and D_prev = (D W^T) * f'(A_prev) below; then one sgd (with ``state1`` the
    velocity) or adam (``state1``, ``state2`` the moments; betas 0.9, 0.999, eps 1e-8)
    update, with ``step`` counting updates. The update is all or nothing: when any new
    parameter or optimiser value would not be finite in ``dtype`` (|value| > its largest
    finite number, or NaN), the epoch stops there, before the update, returning NaN (the
    gradients of that batch are kept).

    ``dtype`` is the storage dtype of the arrays: what the kernels keep in arrays between
    batches (params, grads, optimiser state) is rounded to it.

    Returns (loss, step, rows done, params, grads, state1, state2) with the arrays as
    float64; loss = sum over batches of batch_loss * m, divided by len(order).
    """
    if np.dtype(dtype) == np.float64:
        store = float
    else:
        def store(v):
            return float(np.array(v, dtype=dtype))
    limit = float(np.finfo(dtype).max)

    def fits(values):
        return all(abs(v) <= limit for v in values)  # False for NaN

    sizes = [int(s) for s in sizes]
    Xr = _rows(X)
    order = [int(i) for i in np.asarray(order).tolist()]
    if output == "softmax":
        labels = [int(v) for v in np.asarray(target).tolist()]
    else:
        T = _rows(target)
    p = [store(v) for v in _vec(params)]
    g = [store(v) for v in _vec(grads)]
    s1 = [store(v) for v in _vec(state1)]
    s2 = [store(v) for v in _vec(state2)]
    n = len(order)
    L = len(sizes) - 1
    total = 0.0

    def result(loss, done):
        return loss, step, done, np.array(p), np.array(g), np.array(s1), np.array(s2)

    for start in range(0, n, batch_size):
        rows = order[start:start + batch_size]
        m = len(rows)
        layers = unpack(p, sizes)
        acts = _forward_lists([Xr[r] for r in rows], layers, activation, output)
        out = acts[-1]
        # loss (summed over the batch's rows) and the output delta D
        if output == "softmax":
            y = [labels[r] for r in rows]
            Zout = matmul_bias(acts[-2], *layers[-1])  # the logits, for log-sum-exp
            batch_sum = _sum(_cross_entropy_terms(Zout, y))
            D = [[(out[i][j] - (1.0 if j == y[i] else 0.0)) / m for j in range(sizes[-1])]
                 for i in range(m)]
        else:
            Y = [T[r] for r in rows]
            batch_sum = _sum(0.5 * (out[i][j] - Y[i][j]) * (out[i][j] - Y[i][j])
                                  for i in range(m) for j in range(sizes[-1]))
            D = [[(out[i][j] - Y[i][j]) / m for j in range(sizes[-1])] for i in range(m)]
        penalty = 0.0
        if l2 > 0:
            penalty = 0.5 * l2 * _sum(w * w for W, _ in layers for row in W for w in row)
        batch_loss = (batch_sum + penalty) / m  # mean over rows + 0.5 * l2 * sum(W^2) / m
        if not math.isfinite(batch_loss):
            return result(math.nan, start)
        total += batch_loss * m
        # backward
        new_grads = [None] * L
        for l in range(L - 1, -1, -1):
            W, _ = layers[l]
            A_prev = acts[l]
            n_in, n_out = sizes[l], sizes[l + 1]
            gW = [[_sum(A_prev[i][a] * D[i][c] for i in range(m)) + l2 * W[a][c] / m
                   for c in range(n_out)] for a in range(n_in)]
            gb = [_sum(D[i][c] for i in range(m)) for c in range(n_out)]
            new_grads[l] = (gW, gb)
            if l > 0:
                D = [[_backward_one(activation, A_prev[i][a],
                                    _sum(D[i][c] * W[a][c] for c in range(n_out)))
                      for a in range(n_in)] for i in range(m)]
        g = [store(v) for gW, gb in new_grads for v in [w for row in gW for w in row] + gb]
        # update (all or nothing)
        t = step + 1
        if solver == "adam":
            rate = lr * math.sqrt(1.0 - ADAM_BETA2**t) / (1.0 - ADAM_BETA1**t)
            new_s1, new_s2, new_p = [], [], []
            for i in range(len(p)):
                a = ADAM_BETA1 * s1[i] + (1.0 - ADAM_BETA1) * g[i]
                b = ADAM_BETA2 * s2[i] + (1.0 - ADAM_BETA2) * g[i] * g[i]
                new_s1.append(a)
                new_s2.append(b)
                new_p.append(p[i] - rate * a / (math.sqrt(b) + ADAM_EPS))
        elif solver == "sgd":
            new_s1, new_s2, new_p = [], s2, []
            for i in range(len(p)):
                v = momentum * s1[i] - lr * g[i]
                new_s1.append(v)
                if nesterov:
                    new_p.append(p[i] + (momentum * v - lr * g[i]))
                else:
                    new_p.append(p[i] + v)
        else:
            raise ValueError(solver)
        if not (fits(new_p) and fits(new_s1) and fits(new_s2)):
            return result(math.nan, start)
        p = [store(v) for v in new_p]
        s1 = [store(v) for v in new_s1]
        s2 = [store(v) for v in new_s2]
        step = t
    return result(total / n, n)
