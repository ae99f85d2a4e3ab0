"""Slow, obviously-correct references for every public kernel of fastmlp.

Everything here is a plain Python loop over rows and columns, computed with
Python floats (float64) and the ``math`` module: no NumPy arithmetic, no
vectorisation, no tricks beyond the textbook ones (subtracting the row
maximum before ``exp``, ``log1p`` for softplus, ``math.fsum`` for sums).
Inputs may be NumPy arrays of any float dtype (they are read with
``.tolist()``, which is exact) or, for the network functions, scipy.sparse
matrices (read through ``toarray()``, which adds repeated entries up);
results are returned as float64 NumPy arrays (or Python floats for scalars)
so tests can compare them with the kernels.

The references are deliberately independent of ``fastmlp.kernels``: nothing
is imported from fastmlp, so a bug shared by both backends shows up here. The
training references follow the textbook order (forward, every layer's
gradient, then every layer's update), not the kernels' fused sweep.
"""

import math

import numpy as np

ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu")
OUTPUTS = ("softmax", "squared", "logistic", "poisson")


# ---------------------------------------------------------------- helpers
def _rows(a):
    """A 2-D array (or scipy.sparse matrix) as a list of lists of Python floats."""
    if hasattr(a, "toarray"):
        a = a.toarray()
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


def exp(s):
    """math.exp, with inf where the result overflows float64."""
    try:
        return math.exp(s)
    except OverflowError:
        return math.inf


def sigmoid(s):
    """1 / (1 + exp(-s)), written so that exp never overflows."""
    if s >= 0:
        return 1.0 / (1.0 + math.exp(-s))
    e = math.exp(s)
    return e / (1.0 + e)


def softplus(s):
    """log(1 + exp(s)): s + log1p(exp(-s)) for s > 0, so that exp never overflows."""
    if s > 0:
        return s + math.log1p(math.exp(-s))
    return math.log1p(math.exp(s))


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


def _cross_entropy_row(z, label):
    top = max(z)
    log_s = math.log(_sum(math.exp(v - top) for v in z))
    return (top - z[label]) + log_s  # log-sum-exp minus the label's logit


def _logistic_term(z, t):
    """-t log p - (1 - t) log(1 - p) for p = sigmoid(z): log p = -softplus(-z) and
    log(1 - p) = -softplus(z), so no probability is rounded first."""
    return t * softplus(-z) + (1.0 - t) * softplus(z)


def _poisson_term(z, t):
    """The Poisson deviance t log(t / p) - t + p at p = exp(z) (log p = z; 0 log 0 = 0)."""
    return (t * (math.log(t) - z) if t > 0 else 0.0) - t + exp(z)


def row_loss_and_output(output, z, target):
    """(loss of one row, output values of the row) for the logits z of the row and its
    target: an integer label (softmax) or a list of values (the other outputs)."""
    if output == "softmax":
        return _cross_entropy_row(z, target), _softmax_row(z)
    if output == "squared":
        return 0.5 * _sum((v - t) * (v - t) for v, t in zip(z, target)), list(z)
    if output == "logistic":
        return _sum(_logistic_term(v, t) for v, t in zip(z, target)), [sigmoid(v) for v in z]
    if output == "poisson":
        return _sum(_poisson_term(v, t) for v, t in zip(z, target)), [exp(v) for v in z]
    raise ValueError(output)


def _target_row(output, target, k):
    """The one-hot row of a label (softmax), or the target row itself."""
    if output == "softmax":
        return [1.0 if j == target else 0.0 for j in range(k)]
    return target


def _targets(output, target):
    if output == "softmax":
        return [int(v) for v in np.asarray(target).tolist()]
    return _rows(target)


def _mean_loss(output, Z, target):
    Z, T = _rows(Z), _targets(output, target)
    return _sum(row_loss_and_output(output, z, t)[0] for z, t in zip(Z, T)) / max(len(Z), 1)


def _mean_loss_backward(output, Z, target):
    """(output - target) / n."""
    Z, T = _rows(Z), _targets(output, target)
    n = len(Z)
    out = []
    for z, t in zip(Z, T):
        p = row_loss_and_output(output, z, t)[1]
        t = _target_row(output, t, len(z))
        out.append([(p[j] - t[j]) / n for j in range(len(z))])
    return _out(out)


def cross_entropy(Z, y):
    """Mean over rows of -log softmax(z)[label], by log-sum-exp."""
    return _mean_loss("softmax", Z, y)


def cross_entropy_backward(Z, y):
    """(softmax(Z) - onehot(y)) / n."""
    return _mean_loss_backward("softmax", Z, y)


def squared_error(Z, Y):
    """Mean over rows of 0.5 * sum((z - y)**2)."""
    return _mean_loss("squared", Z, Y)


def squared_error_backward(Z, Y):
    """(Z - Y) / n."""
    return _mean_loss_backward("squared", Z, Y)


def binary_cross_entropy(Z, Y):
    """Mean over rows of sum(-y log p - (1 - y) log(1 - p)), p = sigmoid(z)."""
    return _mean_loss("logistic", Z, Y)


def binary_cross_entropy_backward(Z, Y):
    """(sigmoid(Z) - Y) / n."""
    return _mean_loss_backward("logistic", Z, Y)


def poisson_deviance(Z, Y):
    """Mean over rows of sum(y log(y / p) - y + p), p = exp(z), 0 log 0 = 0."""
    return _mean_loss("poisson", Z, Y)


def poisson_deviance_backward(Z, Y):
    """(exp(Z) - Y) / n."""
    return _mean_loss_backward("poisson", Z, Y)


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


def _forward_lists(X, layers, activation):
    """([A0 = X, A1, ..., A_{L-1}] the inputs of every layer, Z the last layer's logits)."""
    acts = [X]
    L = len(layers)
    for l, (W, b) in enumerate(layers):
        S = matmul_bias(acts[-1], W, b)
        if l == L - 1:
            return acts, S
        acts.append([[activate(activation, s) for s in row] for row in S])


def _output_rows(output, Z):
    if output == "softmax":
        return [_softmax_row(z) for z in Z]
    if output == "squared":
        return Z
    if output == "logistic":
        return [[sigmoid(v) for v in z] for z in Z]
    if output == "poisson":
        return [[exp(v) for v in z] for z in Z]
    raise ValueError(output)


def forward(X, params, sizes, activation="relu", output="softmax"):
    """Network output: hidden ``activation`` on all layers but the last; the last layer is
    linear, followed by a row softmax ('softmax'), nothing ('squared'), the sigmoid
    ('logistic') or exp ('poisson')."""
    sizes = [int(s) for s in sizes]
    _, Z = _forward_lists(_rows(X), unpack(params, sizes), activation)
    return _out(_output_rows(output, Z))


def _weight_squares(layers):
    return _sum(w * w for W, _ in layers for row in W for w in row)


def _batch(Xr, T, weights, rows, layers, sizes, activation, output, l2, total_weight):
    """Loss and gradient of the rows ``rows``: returns (sum of weighted row losses,
    0.5 * l2 * sum(W**2), [(gW, gb) per layer]), the gradient being that of
    (weighted loss sum + 0.5 * l2 * sum(W**2)) / total_weight."""
    L = len(layers)
    acts, Z = _forward_lists([Xr[r] for r in rows], layers, activation)
    k = sizes[-1]
    data_terms, D = [], []
    for i, r in enumerate(rows):
        loss, p = row_loss_and_output(output, Z[i], T[r])
        t = _target_row(output, T[r], k)
        data_terms.append(weights[r] * loss)
        D.append([weights[r] * (p[j] - t[j]) / total_weight for j in range(k)])
    data = _sum(data_terms)
    penalty = 0.5 * l2 * _weight_squares(layers) if l2 > 0 else 0.0
    m = len(rows)
    grads = [None] * L
    for l in range(L - 1, -1, -1):
        W, _ = layers[l]
        A_prev = acts[l]
        n_in, n_out = sizes[l], sizes[l + 1]
        gW = [[_sum(A_prev[i][a] * D[i][c] for i in range(m)) + l2 * W[a][c] / total_weight
               for c in range(n_out)] for a in range(n_in)]
        gb = [_sum(D[i][c] for i in range(m)) for c in range(n_out)]
        grads[l] = (gW, gb)
        if l > 0:  # the delta of the layer below, from this layer's W (not yet updated)
            D = [[_backward_one(activation, A_prev[i][a],
                                _sum(D[i][c] * W[a][c] for c in range(n_out)))
                  for a in range(n_in)] for i in range(m)]
    return data, penalty, grads


def _flat_grads(grads):
    return [v for gW, gb in grads for v in [w for row in gW for w in row] + gb]


def _weights(sample_weight, n):
    return [1.0] * n if sample_weight is None else _vec(sample_weight)


def train_epoch(X, target, order, params, grads, state1, state2, step, sizes, activation,
                output, solver, lr, momentum=0.9, nesterov=False, beta1=0.9, beta2=0.999,
                eps=1e-8, l2=0.0, batch_size=200, sample_weight=None, dtype=np.float64):
    """One epoch of minibatch training, by loops, in the textbook order.

    For each batch (rows ``order[start:start + batch_size]``, the last one smaller), with
    w_r the rows' weights (all 1 when ``sample_weight`` is None) and S their sum:

    - a batch with S = 0 is skipped (nothing to learn from; no update, no step);
    - forward; the batch's data loss is sum_r w_r loss_r / S and its penalty
      0.5 * l2 * sum(W**2) / S; when either is not finite the epoch fails;
    - the gradient of their sum: output delta D_r = w_r (output_r - target_r) / S
      (softmax against the one-hot label, identity, sigmoid or exp), dW = A_prev^T D +
      l2 * W / S, db = column sums of D, D_prev = (D W^T) * f'(A_prev) with the W before
      any update; then the update of every layer: sgd (``state1`` the velocity) or adam
      (``state1``, ``state2`` the moments, with ``beta1``, ``beta2``, ``eps``), ``step``
      counting updates. When any new parameter or optimiser value is not finite in
      ``dtype`` (|value| > its largest number, or NaN) the epoch fails.

    A failed epoch changes nothing: it returns NaN losses, the ``step`` given, rows done
    = the start of the failing batch, and params, state1, state2 as they were at the
    call; its grads are None (the kernels leave them unspecified).

    ``dtype`` is the storage dtype of the arrays: what the kernels keep in arrays between
    batches (params, grads, optimiser state) is rounded to it.

    Returns (data loss, penalty, step, rows done, params, grads, state1, state2), the
    arrays as float64; each loss part is the sum over batches of the batch's value times
    its rows, divided by len(order).
    """
    if np.dtype(dtype) == np.float64:
        store = float
    else:
        def store(v):
            with np.errstate(over="ignore"):  # inf where it overflows: ``fits`` catches it
                return float(np.array(v, dtype=dtype))
    limit = float(np.finfo(dtype).max)

    def fits(values):
        return all(abs(v) <= limit for v in values)  # False for NaN

    sizes = [int(s) for s in sizes]
    Xr = _rows(X)
    T = _targets(output, target)
    weights = _weights(sample_weight, len(Xr))
    order = [int(i) for i in np.asarray(order).tolist()]
    p0, s10, s20 = (np.array([store(v) for v in _vec(a)]) for a in (params, state1, state2))
    p, s1, s2 = list(p0), list(s10), list(s20)
    g = [store(v) for v in _vec(grads)]
    n = len(order)
    data_total = penalty_total = 0.0
    t = int(step)
    for start in range(0, n, batch_size):
        rows = order[start:start + batch_size]
        m = len(rows)
        S = _sum(weights[r] for r in rows)
        if S == 0:
            continue
        layers = unpack(p, sizes)
        data, penalty, batch_grads = _batch(Xr, T, weights, rows, layers, sizes, activation,
                                            output, l2, S)
        if not (math.isfinite(data) and math.isfinite(penalty)):
            return math.nan, math.nan, int(step), start, p0, None, s10, s20
        data_total += data / S * m
        penalty_total += penalty / S * m
        g = [store(v) for v in _flat_grads(batch_grads)]
        t += 1
        if solver == "adam":
            rate = lr * math.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
            new_s1, new_s2, new_p = [], [], []
            for i in range(len(p)):
                a = beta1 * s1[i] + (1.0 - beta1) * g[i]
                b = beta2 * s2[i] + (1.0 - beta2) * g[i] * g[i]
                new_s1.append(a)
                new_s2.append(b)
                new_p.append(p[i] - rate * a / (math.sqrt(b) + eps))
        elif solver == "sgd":
            new_s1, new_s2, new_p = [], s2, []
            for i in range(len(p)):
                v = momentum * s1[i] - lr * g[i]
                new_s1.append(v)
                new_p.append(p[i] + (momentum * v - lr * g[i] if nesterov else v))
        else:
            raise ValueError(solver)
        if not (fits(new_p) and fits(new_s1) and fits(new_s2)):
            return math.nan, math.nan, int(step), start, p0, None, s10, s20
        p = [store(v) for v in new_p]
        s1 = [store(v) for v in new_s1]
        s2 = [store(v) for v in new_s2]
    n = max(n, 1)
    return (data_total / n, penalty_total / n, t, len(order), np.array(p), np.array(g),
            np.array(s1), np.array(s2))


def loss_gradient(X, target, params, sizes, activation, output, l2=0.0, sample_weight=None):
    """The loss of the whole data set and its gradient, by loops: with S the total weight
    (rows when ``sample_weight`` is None; S must be > 0), returns (data loss, penalty,
    gradient) = (sum_r w_r loss_r / S, 0.5 * l2 * sum(W**2) / S, the gradient of their
    sum as a float64 array)."""
    sizes = [int(s) for s in sizes]
    Xr = _rows(X)
    weights = _weights(sample_weight, len(Xr))
    S = _sum(weights)
    if not S > 0:
        raise ValueError("the total sample weight must be > 0")
    data, penalty, grads = _batch(Xr, _targets(output, target), weights, range(len(Xr)),
                                  unpack(params, sizes), sizes, activation, output, l2, S)
    return data / S, penalty / S, np.array(_flat_grads(grads))
