"""The public kernel functions, built once over each backend's core.

``make(core)`` returns the functions below bound to ``core`` (the module
``numba_core`` or ``numpy_core``). They check their arguments (dtype, shape,
contiguity, the ``out`` array), then let the core write the result. Both
backends therefore share names, signatures and docstrings; the cores are what
differ.

All arrays are float32 or float64, one dtype per call; label arrays are
integers. ``out`` must be C-contiguous with the result's shape and dtype; when
it is given nothing is allocated (the inputs being C-contiguous).
"""

import numbers

import numpy as np

FLOATS = (np.float32, np.float64)
ACTIVATIONS = {"identity": 0, "sigmoid": 1, "tanh": 2, "relu": 3}
OUTPUTS = {"softmax": 0, "squared": 1}
SOLVERS = {"sgd": 0, "adam": 1}
_NO_ORDER = np.empty(0, dtype=np.int64)

NAMES = (
    "linear", "linear_sigmoid", "linear_tanh", "linear_relu",
    "sigmoid_backward", "tanh_backward", "relu_backward",
    "softmax", "log_softmax", "cross_entropy", "cross_entropy_backward",
    "squared_error", "squared_error_backward",
    "sgd_update", "adam_update",
    "forward", "train_epoch", "work_size",
)


# ------------------------------------------------------------------ checks
def _array(name, a, ndim, dtype=None):
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(a).__name__}")
    if a.dtype.type not in FLOATS:
        raise TypeError(f"{name} must be float32 or float64, got {a.dtype}")
    if dtype is not None and a.dtype != dtype:
        raise TypeError(f"{name} has dtype {a.dtype} but the other arrays are {dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    return np.ascontiguousarray(a)


def _out(out, shape, dtype):
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy array, got {type(out).__name__}")
    if out.shape != tuple(shape) or out.dtype != dtype:
        raise ValueError(f"out must have shape {tuple(shape)} and dtype {dtype}, "
                         f"got {out.shape} {out.dtype}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out must be a writeable C-contiguous array")
    return out


def _labels(y, rows, classes):
    y = np.asarray(y)
    if y.dtype.kind not in "iu":
        raise TypeError(f"y must hold integer labels, got dtype {y.dtype}")
    if y.shape != (rows,):
        raise ValueError(f"y must have shape ({rows},) to match the rows, got {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= classes):
        raise ValueError(f"labels must lie in [0, {classes}), got [{y.min()}, {y.max()}]")
    return np.ascontiguousarray(y, dtype=np.int64)


def _code(table, kind, name):
    try:
        return table[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown {kind} {name!r}; valid: {', '.join(table)}") from None


def _sizes(sizes):
    sizes = np.ascontiguousarray(sizes, dtype=np.int64)
    if sizes.ndim != 1 or sizes.size < 2 or sizes.min() < 1:
        raise ValueError(f"sizes must list at least 2 positive layer widths, got {sizes}")
    return sizes


def n_params(sizes):
    """Number of entries of the flat parameter vector for layer widths ``sizes``."""
    sizes = np.asarray(sizes, dtype=np.int64)
    return int(np.sum((sizes[:-1] + 1) * sizes[1:]))


def make(core):
    """The public kernel functions over ``core``, as a dict name -> function."""

    def linear_act(act):
        def fn(X, W, b, out=None):
            X = _array("X", X, 2)
            W = _array("W", W, 2, X.dtype)
            b = _array("b", b, 1, X.dtype)
            if X.shape[1] != W.shape[0] or b.shape[0] != W.shape[1]:
                raise ValueError(f"shapes do not chain: X {X.shape}, W {W.shape}, b {b.shape}")
            out = _out(out, (X.shape[0], W.shape[1]), X.dtype)
            core.linear(X, W, b, act, out)
            return out

        return fn

    def backward_act(act):
        def fn(A, dA, out=None):
            A = _array("A", A, 2)
            dA = _array("dA", dA, 2, A.dtype)
            if A.shape != dA.shape:
                raise ValueError(f"A {A.shape} and dA {dA.shape} must have the same shape")
            out = _out(out, A.shape, A.dtype)
            core.act_backward(A, dA, act, out)
            return out

        return fn

    def rowwise(kernel):
        def fn(Z, out=None):
            Z = _array("Z", Z, 2)
            out = _out(out, Z.shape, Z.dtype)
            kernel(Z, out)
            return out

        return fn

    def cross_entropy(Z, y):
        Z = _array("Z", Z, 2)
        y = _labels(y, *Z.shape)
        return core.cross_entropy_sum(Z, y) / max(Z.shape[0], 1)

    def cross_entropy_backward(Z, y, out=None):
        Z = _array("Z", Z, 2)
        y = _labels(y, *Z.shape)
        out = _out(out, Z.shape, Z.dtype)
        core.cross_entropy_rows(Z, y, _NO_ORDER, 0, 1.0 / max(Z.shape[0], 1), out, out)
        return out

    def _targets(Z, Y):
        Z = _array("Z", Z, 2)
        Y = _array("Y", Y, 2, Z.dtype)
        if Y.shape != Z.shape:
            raise ValueError(f"Y {Y.shape} and Z {Z.shape} must have the same shape")
        return Z, Y

    def squared_error(Z, Y):
        Z, Y = _targets(Z, Y)
        scratch = np.empty_like(Z)
        return core.squared_error_rows(Z, Y, _NO_ORDER, 0, 1.0, scratch) / max(Z.shape[0], 1)

    def squared_error_backward(Z, Y, out=None):
        Z, Y = _targets(Z, Y)
        out = _out(out, Z.shape, Z.dtype)
        core.squared_error_rows(Z, Y, _NO_ORDER, 0, 1.0 / max(Z.shape[0], 1), out)
        return out

    def _flat(params, *others):
        if not isinstance(params, np.ndarray) or params.dtype.type not in FLOATS:
            raise TypeError("params must be a float32 or float64 numpy array")
        for name, a in zip(("grads", "state", "state"), others):
            if not isinstance(a, np.ndarray) or a.dtype != params.dtype or a.shape != params.shape:
                raise ValueError(f"{name} must be an array of params' shape {params.shape} "
                                 f"and dtype {params.dtype}")
        for a in (params,) + others:
            if a.ndim != 1 or not a.flags.c_contiguous or not a.flags.writeable:
                raise ValueError("optimiser arrays must be writeable, 1-D and C-contiguous")

    def sgd_update(params, grads, velocity, lr, momentum=0.9, nesterov=False):
        _flat(params, grads, velocity)
        core.sgd_update(params, grads, velocity, float(lr), float(momentum), bool(nesterov))
        return params

    def adam_update(params, grads, m, v, step, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        _flat(params, grads, m, v)
        if int(step) < 1:
            raise ValueError(f"step counts updates including this one and must be >= 1, got {step}")
        core.adam_update(params, grads, m, v, int(step), float(lr), float(beta1), float(beta2),
                         float(eps))
        return params

    def forward(X, params, sizes, activation="relu", output="softmax", out=None, work=None):
        act = _code(ACTIVATIONS, "activation", activation)
        outk = _code(OUTPUTS, "output", output)
        sizes = _sizes(sizes)
        X = _array("X", X, 2)
        params = _array("params", params, 1, X.dtype)
        if X.shape[1] != sizes[0] or params.shape[0] != n_params(sizes):
            raise ValueError(f"X {X.shape} and params {params.shape} do not fit sizes {sizes}")
        out = _out(out, (X.shape[0], int(sizes[-1])), X.dtype)
        need = X.shape[0] * (int(sizes[1:-1].max()) if sizes.size > 2 else 1)
        if work is None:
            work = np.empty(2 * need, dtype=X.dtype)
        elif (not isinstance(work, np.ndarray) or work.dtype != X.dtype or work.ndim != 1
              or work.shape[0] < 2 * need or not work.flags.c_contiguous
              or not work.flags.writeable):
            raise ValueError(f"work must be a writeable, C-contiguous 1-D {X.dtype} array of at "
                             f"least {2 * need} entries (2 x rows x widest hidden layer)")
        core.forward(X, params, sizes, act, outk, work[:need], work[need:2 * need], out)
        return out

    def work_size(sizes, batch_size):
        """Length of the ``work`` array that ``train_epoch`` needs."""
        sizes = _sizes(sizes)
        return int(batch_size) * int(sizes.sum() + 2 * sizes[1:].max())

    def train_epoch(X, target, order, params, grads, state1, state2, step, sizes, activation,
                    output, solver, lr, momentum, nesterov, l2, batch_size, work):
        act = _code(ACTIVATIONS, "activation", activation)
        outk = _code(OUTPUTS, "output", output)
        solv = _code(SOLVERS, "solver", solver)
        sizes = _sizes(sizes)
        X = _array("X", X, 2)
        if X.shape[1] != sizes[0]:
            raise ValueError(f"X has {X.shape[1]} columns but sizes[0] is {sizes[0]}")
        _flat(params, grads, state1, state2)
        if params.shape[0] != n_params(sizes):
            raise ValueError(f"params has {params.shape[0]} entries; sizes {sizes.tolist()} "
                             f"need {n_params(sizes)}")
        if (not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool)
                or batch_size < 1):
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if not isinstance(work, np.ndarray):
            raise TypeError(f"work must be a numpy array, got {type(work).__name__}")
        if params.dtype != X.dtype or work.dtype != X.dtype:
            raise TypeError(f"X, params and work must share one dtype, got "
                            f"{X.dtype}, {params.dtype}, {work.dtype}")
        if (work.ndim != 1 or work.size < work_size(sizes, batch_size)
                or not work.flags.c_contiguous or not work.flags.writeable):
            raise ValueError(f"work must be a writeable, C-contiguous 1-D array of at least "
                             f"{work_size(sizes, batch_size)} entries, got shape {work.shape}")
        if outk == OUTPUTS["softmax"]:
            y = _labels(target, X.shape[0], int(sizes[-1]))
            Y = np.empty((0, 0), dtype=X.dtype)
        else:
            Y = _array("target", target, 2, X.dtype)
            if Y.shape != (X.shape[0], sizes[-1]):
                raise ValueError(f"target must have shape {(X.shape[0], int(sizes[-1]))} for "
                                 f"squared output, got {Y.shape}")
            y = _NO_ORDER
        order = np.ascontiguousarray(order, dtype=np.int64)
        if order.size and (order.min() < 0 or order.max() >= X.shape[0]):
            raise ValueError("order must index rows of X")
        loss, step, done = core.train_epoch(
            X, y, Y, order, params, grads, state1, state2, int(step), sizes, act, outk, solv,
            float(lr), float(momentum), bool(nesterov), float(l2), int(batch_size), work)
        return float(loss), int(step), int(done)

    functions = dict(
        linear=linear_act(ACTIVATIONS["identity"]),
        linear_sigmoid=linear_act(ACTIVATIONS["sigmoid"]),
        linear_tanh=linear_act(ACTIVATIONS["tanh"]),
        linear_relu=linear_act(ACTIVATIONS["relu"]),
        sigmoid_backward=backward_act(ACTIVATIONS["sigmoid"]),
        tanh_backward=backward_act(ACTIVATIONS["tanh"]),
        relu_backward=backward_act(ACTIVATIONS["relu"]),
        softmax=rowwise(core.softmax),
        log_softmax=rowwise(core.log_softmax),
        cross_entropy=cross_entropy,
        cross_entropy_backward=cross_entropy_backward,
        squared_error=squared_error,
        squared_error_backward=squared_error_backward,
        sgd_update=sgd_update,
        adam_update=adam_update,
        forward=forward,
        train_epoch=train_epoch,
        work_size=work_size,
    )
    for name, fn in functions.items():
        fn.__name__ = fn.__qualname__ = name
        fn.__doc__ = DOCS[name]
        fn.__module__ = core.__name__.replace("_core", "_backend")
    return functions


DOCS = {
    "linear": "out = X @ W + b, with W of shape (n_in, n_out).",
    "linear_sigmoid": "out = sigmoid(X @ W + b), the activation fused onto the product.",
    "linear_tanh": "out = tanh(X @ W + b), the activation fused onto the product.",
    "linear_relu": "out = max(X @ W + b, 0), the activation fused onto the product (NaN stays NaN).",
    "sigmoid_backward": "out = dA * A * (1 - A), from the sigmoid's output A.",
    "tanh_backward": "out = dA * (1 - A**2), from the tanh's output A.",
    "relu_backward": "out = dA where A > 0, else 0, from the ReLU's output A.",
    "softmax": "Row-wise softmax, exp(Z - max) / sum: finite for any finite logits.",
    "log_softmax": "Row-wise log-softmax, Z - max - log(sum(exp(Z - max))).",
    "cross_entropy": ("Mean cross-entropy of logits Z (n, k) against integer labels y (n,), "
                      "by log-sum-exp; a float accumulated in float64."),
    "cross_entropy_backward": "out = (softmax(Z) - onehot(y)) / n: the gradient of cross_entropy.",
    "squared_error": "Mean over rows of 0.5 * sum((Z - Y)**2); a float accumulated in float64.",
    "squared_error_backward": "out = (Z - Y) / n: the gradient of squared_error.",
    "sgd_update": ("In place: velocity = momentum * velocity - lr * grads, then params += "
                   "velocity (Nesterov: params += momentum * velocity - lr * grads). "
                   "Returns params."),
    "adam_update": ("In place Adam step number ``step`` (>= 1, counting this one) with bias "
                    "correction; m and v are the moment estimates. Returns params."),
    "forward": ("Network output for the rows of X, parameters packed flat as [W0, b0, W1, b1, "
                "...] for layer widths ``sizes``: probabilities (output='softmax') or values "
                "(output='squared'). ``work``: scratch of 2 x rows x widest hidden layer "
                "entries (allocated when not given)."),
    "train_epoch": ("One epoch of minibatch training over the rows of X in ``order``: forward, "
                    "loss, backward and optimiser update for every batch, parameters, "
                    "gradients and optimiser state flat and updated in place, ``work`` scratch "
                    "of work_size(sizes, batch_size) entries. ``target`` holds integer labels "
                    "(softmax output) or a 2-D array of values (squared output). Returns "
                    "(mean loss, step, rows done); rows done < len(order) means a batch's loss "
                    "was not finite and training stopped before its update."),
    "work_size": "Length of the ``work`` array that ``train_epoch`` needs.",
}
