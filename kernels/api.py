"""The public kernels: ``Kernels(core)`` checks arguments, then lets a core compute.

``fastmlp.kernels.get("numba")`` and ``get("numpy")`` are ``Kernels`` over
``numba_core`` and ``numpy_core``; the two cores define the same functions with
the same signatures, and only they differ.

All arrays are float32 or float64, one dtype per call; label arrays are
integers. ``out`` must be C-contiguous with the result's shape and dtype, and
share no memory with an input; when it is given nothing is allocated (the
inputs being C-contiguous). Parameters are one flat vector
``[W0, b0, W1, b1, ...]`` (row-major W of shape (n_in, n_out)) for layer widths
``sizes``.

The methods whose names start with ``_`` skip the checks: fastmlp's models
call them with arrays they have validated already.
"""

import numbers

import numpy as np

from .codes import ACTIVATIONS, ADAM, IDENTITY, LOGISTIC, OUTPUTS, POISSON, RELU, SIGMOID
from .codes import SOFTMAX, SOLVERS, SQUARED, TANH
from .blocks import columns_plan, columns_stride, rows_plan
from .config import BLOCKS_MAX_PARAMS, COLUMNS_MAX_WIDTH, COLUMNS_MIN_BATCH

FLOATS = (np.float32, np.float64)
_NO_ROWS = np.empty(0, dtype=np.int64)
_NO_WEIGHTS = np.empty(0, dtype=np.float64)


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


def _out(out, shape, dtype, *inputs):
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy array, got {type(out).__name__}")
    if out.shape != tuple(shape) or out.dtype != dtype:
        raise ValueError(f"out must have shape {tuple(shape)} and dtype {dtype}, "
                         f"got {out.shape} {out.dtype}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out must be a writeable C-contiguous array")
    for name, a in inputs:
        if np.shares_memory(out, a):
            raise ValueError(f"out overlaps the input {name}; pass a separate array")
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


def work_size(sizes, batch_size, sparse=False):
    """Length of the ``work`` array that ``train_epoch`` (batches of
    ``batch_size`` rows) and ``loss_gradient`` (chunks of that many) need,
    whichever kernel ``epoch_path`` picks: the batch's input rows (not for
    ``sparse`` X, read in place), every layer's activations, two deltas of the
    widest layer, and one layer's gradient; for the row-block kernels the same
    per block (without the layer's gradient) and a gradient per block."""
    widths = _sizes(sizes).tolist()  # Python ints: a few NumPy reductions cost more here
    rows = int(batch_size)
    layer = max((a + 1) * b for a, b in zip(widths[:-1], widths[1:]))
    inputs = 0 if sparse else widths[0]
    per_row = inputs + sum(widths[1:]) + 2 * max(widths[1:])
    need = rows * per_row + layer
    total = _n_params(widths)
    if row_blocks(widths, rows):
        nb, block_rows = rows_plan(rows)
        need = max(need, nb * (block_rows * per_row + total))
    if not sparse and _narrow(widths, rows):
        nb, block_rows = columns_plan(rows)
        stride = columns_stride(block_rows)
        need = max(need, nb * (stride * (sum(widths) + 2 * max(widths[1:])) + total))
    return need


def _n_params(widths):
    return sum((a + 1) * b for a, b in zip(widths[:-1], widths[1:]))


def row_blocks(sizes, batch_size):
    """The cost model: whether batches of ``batch_size`` rows of a network of
    layer widths ``sizes`` train in row blocks (``train_blocks``, numba's
    threads) rather than whole (``train_epoch``, BLAS's threads): when the
    batch splits into two blocks or more and the network has at most
    ``BLOCKS_MAX_PARAMS`` parameters. It reads the layout alone, never the
    number of threads."""
    widths = [int(v) for v in sizes]
    return rows_plan(int(batch_size))[0] >= 2 and _n_params(widths) <= BLOCKS_MAX_PARAMS


def _narrow(widths, batch_size):
    return batch_size >= COLUMNS_MIN_BATCH and max(widths[1:]) <= COLUMNS_MAX_WIDTH


def as_input(X, dtype, n_features=None, convert=False):
    """X for the training and prediction kernels: a C-contiguous ``dtype``
    array, or a scipy.sparse matrix as a CSR triple (data in ``dtype``,
    indices and indptr as they are: repeated entries add up, as in scipy);
    never densified. A dense X of another dtype is refused, or converted
    when ``convert``."""
    if hasattr(X, "tocsr") and hasattr(X, "nnz"):
        csr = X.tocsr()
        if n_features is not None and csr.shape[1] != n_features:
            raise ValueError(f"X has {csr.shape[1]} columns but sizes[0] is {n_features}")
        return (np.ascontiguousarray(csr.data, dtype=dtype), np.ascontiguousarray(csr.indices),
                np.ascontiguousarray(csr.indptr))
    if convert and isinstance(X, np.ndarray):
        X = np.ascontiguousarray(X, dtype=dtype)
    X = _array("X", X, 2, dtype)
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"X has {X.shape[1]} columns but sizes[0] is {n_features}")
    return X


def n_rows(X):
    """Rows of a kernel input (array or CSR triple)."""
    return X.shape[0] if isinstance(X, np.ndarray) else X[2].shape[0] - 1


#: The core functions that train an epoch (``epoch_path`` picks one): one
#: signature, the same results up to rounding.
EPOCH_KERNELS = ("train_epoch", "train_rows", "train_columns", "train_blocks")

#: The full-batch loss-and-gradient functions (``loss_path`` picks one).
LOSS_KERNELS = ("loss_gradient", "loss_gradient_blocks")

#: The kernels that split rows into blocks run by numba's threads (in the
#: numba core; the NumPy core computes them serially): their results do not
#: depend on the number of threads.
ROW_BLOCK_KERNELS = ("train_blocks", "train_columns", "loss_gradient_blocks")


def epoch_path(X, sizes, batch_size, output, solver):
    """The core function that trains an epoch of these arguments; each core
    defines all four, with one signature and the same results up to
    rounding: ``train_rows`` for SGD on batches of one row, ``train_columns``
    for narrow networks on batches of ``COLUMNS_MIN_BATCH`` rows or more
    (every layer after the input at most ``COLUMNS_MAX_WIDTH`` wide; softmax
    over at least 2 classes), both for dense X; ``train_blocks`` where
    ``row_blocks`` says so; ``train_epoch`` for the rest. Each compiled one
    is its own entry point: a fit compiles only its own."""
    widths = sizes.tolist()
    if isinstance(X, np.ndarray):
        if batch_size == 1:
            return "train_rows" if solver != ADAM else "train_epoch"
        if _narrow(widths, batch_size) and (output != SOFTMAX or widths[-1] >= 2):
            return "train_columns"
    return "train_blocks" if row_blocks(widths, batch_size) else "train_epoch"


def loss_path(sizes, chunk):
    """The core function that computes the full-batch loss and gradient in
    chunks of ``chunk`` rows: in row blocks where ``row_blocks`` says so."""
    return "loss_gradient_blocks" if row_blocks(sizes, chunk) else "loss_gradient"


def _targets_for(output, target, rows, k, dtype):
    """(labels, values) for ``train_epoch``/``loss_gradient``: integer labels for
    a softmax output, else a (rows, k) array of targets in ``dtype``."""
    if output == SOFTMAX:
        return _labels(target, rows, k), np.empty((0, 0), dtype=dtype)
    Y = _array("target", target, 2, dtype)
    if Y.shape != (rows, k):
        raise ValueError(f"target must have shape {(rows, k)} for this output, got {Y.shape}")
    if not np.all(np.isfinite(Y)):
        raise ValueError("target holds NaN or inf")
    if output == LOGISTIC and (Y.min(initial=0) < 0 or Y.max(initial=0) > 1):
        raise ValueError("targets of a logistic output must lie in [0, 1]")
    if output == POISSON and Y.min(initial=0) < 0:
        raise ValueError("targets of a poisson output (counts) must be >= 0")
    return _NO_ROWS, Y


def _weights_for(sample_weight, rows):
    if sample_weight is None:
        return _NO_WEIGHTS
    w = np.ascontiguousarray(sample_weight, dtype=np.float64)
    if w.shape != (rows,):
        raise ValueError(f"sample_weight must have shape ({rows},), got {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("sample_weight must hold finite values >= 0")
    return w


def _flat_state(params, *others):
    if not isinstance(params, np.ndarray) or params.dtype.type not in FLOATS:
        raise TypeError("params must be a float32 or float64 numpy array")
    for name, a in others:
        if not isinstance(a, np.ndarray) or a.dtype != params.dtype or a.shape != params.shape:
            raise ValueError(f"{name} must be an array of params' shape {params.shape} "
                             f"and dtype {params.dtype}")
    for a in (params,) + tuple(a for _, a in others):
        if a.ndim != 1 or not a.flags.c_contiguous or not a.flags.writeable:
            raise ValueError("parameter and optimiser arrays must be writeable, 1-D and "
                             "C-contiguous")
    named = [("params", params)] + list(others)
    for i, (name_a, a) in enumerate(named):
        for name_b, b in named[i + 1 :]:
            if a is not b and np.may_share_memory(a, b):
                raise ValueError(f"{name_a} and {name_b} share memory; pass separate arrays "
                                 "(only the SGD solver's two state arguments may be one array)")


def _positive_int(value, name):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _work(work, need, dtype):
    """The ``work`` scratch of an epoch or a loss: ``need`` entries of ``dtype``,
    allocated when not given."""
    if work is None:
        return np.empty(need, dtype=dtype)
    if not isinstance(work, np.ndarray):
        raise TypeError(f"work must be a numpy array, got {type(work).__name__}")
    if work.dtype != dtype:
        raise TypeError(f"X, params and work must share one dtype, got {dtype} and "
                        f"{work.dtype}")
    if (work.ndim != 1 or work.size < need or not work.flags.c_contiguous
            or not work.flags.writeable):
        raise ValueError(f"work must be a writeable, C-contiguous 1-D array of at least "
                         f"{need} entries, got shape {work.shape}")
    return work


def read_only(X):
    """Kernel input X as the compiled kernels take it: a read-only view of a
    dense array, or of each array of a CSR triple. Writeable arrays and
    read-only ones (a pandas frame's values, a memory map) then share one
    compiled signature instead of compiling every kernel twice."""
    if not isinstance(X, np.ndarray):
        return tuple(read_only(a) for a in X)
    X = X.view()
    X.setflags(write=False)
    return X


class Kernels:
    """fastmlp's public kernels over one core (``numba_core`` or ``numpy_core``)."""

    def __init__(self, name, core):
        self.name = name
        self._core = core
        #: Whether the core's row-block kernels may run in parallel here
        #: (cores without serial twins run their only version).
        self._parallel_ok = getattr(core, "parallel_ok", None)

    def _kernel(self, name):
        """The core's function ``name``, or its serial twin where the core
        says its threads cannot run (a forked child, numba's workqueue layer)."""
        if name in ROW_BLOCK_KERNELS and self._parallel_ok is not None and not self._parallel_ok():
            name += "_serial"
        return getattr(self._core, name)

    def _threads(self, path, n_threads):
        """The thread settings of a call of kernel ``path`` (``fastmlp.threads``)."""
        from .. import threads

        if n_threads is not None:
            n_threads = _positive_int(n_threads, "n_threads")
        return threads.limits(n_threads, self.name, path)

    def __repr__(self):
        return f"<fastmlp kernels: {self.name}>"

    # ------------------------------------------------------- layer kernels
    def _linear(self, X, W, b, act, out):
        X = _array("X", X, 2)
        W = _array("W", W, 2, X.dtype)
        b = _array("b", b, 1, X.dtype)
        if X.shape[1] != W.shape[0] or b.shape[0] != W.shape[1]:
            raise ValueError(f"shapes do not chain: X {X.shape}, W {W.shape}, b {b.shape}")
        out = _out(out, (X.shape[0], W.shape[1]), X.dtype, ("X", X), ("W", W), ("b", b))
        self._core.linear(X, W, b, act, out)
        return out

    def linear(self, X, W, b, out=None):
        """out = X @ W + b, with W of shape (n_in, n_out)."""
        return self._linear(X, W, b, IDENTITY, out)

    def linear_sigmoid(self, X, W, b, out=None):
        """out = sigmoid(X @ W + b), the activation fused onto the product."""
        return self._linear(X, W, b, SIGMOID, out)

    def linear_tanh(self, X, W, b, out=None):
        """out = tanh(X @ W + b), the activation fused onto the product."""
        return self._linear(X, W, b, TANH, out)

    def linear_relu(self, X, W, b, out=None):
        """out = max(X @ W + b, 0), the activation fused onto the product (NaN stays NaN)."""
        return self._linear(X, W, b, RELU, out)

    def _backward(self, A, dA, act, out):
        A = _array("A", A, 2)
        dA = _array("dA", dA, 2, A.dtype)
        if A.shape != dA.shape:
            raise ValueError(f"A {A.shape} and dA {dA.shape} must have the same shape")
        out = _out(out, A.shape, A.dtype, ("A", A), ("dA", dA))
        self._core.act_backward(A, dA, act, out)
        return out

    def sigmoid_backward(self, A, dA, out=None):
        """out = dA * A * (1 - A), from the sigmoid's output A."""
        return self._backward(A, dA, SIGMOID, out)

    def tanh_backward(self, A, dA, out=None):
        """out = dA * (1 - A**2), from the tanh's output A."""
        return self._backward(A, dA, TANH, out)

    def relu_backward(self, A, dA, out=None):
        """out = dA where A > 0, else 0, from the ReLU's output A."""
        return self._backward(A, dA, RELU, out)

    # ------------------------------------------------ softmax and the losses
    def softmax(self, Z, out=None):
        """Row-wise softmax, exp(Z - max) / sum: finite for any finite logits."""
        Z = _array("Z", Z, 2)
        out = _out(out, Z.shape, Z.dtype, ("Z", Z))
        self._core.softmax(Z, out)
        return out

    def log_softmax(self, Z, out=None):
        """Row-wise log-softmax, Z - max - log(sum(exp(Z - max)))."""
        Z = _array("Z", Z, 2)
        out = _out(out, Z.shape, Z.dtype, ("Z", Z))
        self._core.log_softmax(Z, out)
        return out

    def _loss(self, Z, target, output, out):
        """(mean loss over rows, gradient (output - target) / n in ``out``)."""
        Z = _array("Z", Z, 2)
        y, Y = _targets_for(output, target, Z.shape[0], Z.shape[1], Z.dtype)
        P = Z.copy()
        D = _out(out, Z.shape, Z.dtype, ("Z", Z), ("target", Y), ("y", y))
        n = max(Z.shape[0], 1)
        total = self._core.output_rows(P, y, Y, _NO_WEIGHTS, _NO_ROWS, 0, 1.0 / n, output, D)
        return total / n, D

    def cross_entropy(self, Z, y):
        """Mean cross-entropy of logits Z (n, k) against integer labels y (n,), by
        log-sum-exp; a float accumulated in float64."""
        return self._loss(Z, y, SOFTMAX, None)[0]

    def cross_entropy_backward(self, Z, y, out=None):
        """out = (softmax(Z) - onehot(y)) / n: the gradient of cross_entropy."""
        return self._loss(Z, y, SOFTMAX, out)[1]

    def squared_error(self, Z, Y):
        """Mean over rows of 0.5 * sum((Z - Y)**2); a float accumulated in float64."""
        return self._loss(Z, Y, SQUARED, None)[0]

    def squared_error_backward(self, Z, Y, out=None):
        """out = (Z - Y) / n: the gradient of squared_error."""
        return self._loss(Z, Y, SQUARED, out)[1]

    def binary_cross_entropy(self, Z, Y):
        """Mean over rows of sum(-Y log p - (1 - Y) log(1 - p)), p = sigmoid(Z), for
        logits Z and 0/1 targets Y of the same shape, computed as
        softplus(Z) - Y * Z (no rounding of p first); a float in float64."""
        return self._loss(Z, Y, LOGISTIC, None)[0]

    def binary_cross_entropy_backward(self, Z, Y, out=None):
        """out = (sigmoid(Z) - Y) / n: the gradient of binary_cross_entropy."""
        return self._loss(Z, Y, LOGISTIC, out)[1]

    def poisson_deviance(self, Z, Y):
        """Mean over rows of sum(Y log(Y / p) - Y + p) with p = exp(Z) (0 log 0 = 0),
        for log-rates Z and counts Y >= 0; a float in float64."""
        return self._loss(Z, Y, POISSON, None)[0]

    def poisson_deviance_backward(self, Z, Y, out=None):
        """out = (exp(Z) - Y) / n: the gradient of poisson_deviance."""
        return self._loss(Z, Y, POISSON, out)[1]

    # ------------------------------------------------------------ optimisers
    def sgd_update(self, params, grads, velocity, lr, momentum=0.9, nesterov=False):
        """In place: velocity = momentum * velocity - lr * grads, then params +=
        velocity (Nesterov: params += momentum * velocity - lr * grads). Returns
        params."""
        _flat_state(params, ("grads", grads), ("velocity", velocity))
        self._core.sgd_update(params, grads, velocity, float(lr), float(momentum),
                              bool(nesterov))
        return params

    def adam_update(self, params, grads, m, v, step, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        """In place Adam step number ``step`` (>= 1, counting this one) with bias
        correction; m and v are the moment estimates. Returns params."""
        _flat_state(params, ("grads", grads), ("m", m), ("v", v))
        if int(step) < 1:
            raise ValueError(f"step counts updates including this one and must be >= 1, "
                             f"got {step}")
        self._core.adam_update(params, grads, m, v, int(step), float(lr), float(beta1),
                               float(beta2), float(eps))
        return params

    # --------------------------------------------------------------- network
    def _network(self, sizes, params, activation, output):
        act = _code(ACTIVATIONS, "activation", activation)
        outk = _code(OUTPUTS, "output", output)
        sizes = _sizes(sizes)
        if not isinstance(params, np.ndarray) or params.dtype.type not in FLOATS:
            raise TypeError("params must be a float32 or float64 numpy array")
        params = _array("params", params, 1)
        if params.shape[0] != n_params(sizes):
            raise ValueError(f"params has {params.shape[0]} entries; sizes {sizes.tolist()} "
                             f"need {n_params(sizes)}")
        return sizes, params, act, outk

    def forward(self, X, params, sizes, activation="relu", output="softmax", out=None,
                work=None):
        """Network output for the rows of X: softmax probabilities, sigmoid
        probabilities (output='logistic'), values ('squared') or rates exp(z)
        ('poisson'). ``work``: scratch of 2 x rows x widest hidden layer entries
        (allocated when not given)."""
        sizes, params, act, outk = self._network(sizes, params, activation, output)
        X = _array("X", X, 2, params.dtype)
        if X.shape[1] != sizes[0]:
            raise ValueError(f"X {X.shape} and params {params.shape} do not fit sizes {sizes}")
        out = _out(out, (X.shape[0], int(sizes[-1])), X.dtype, ("X", X), ("params", params))
        need = X.shape[0] * (int(sizes[1:-1].max()) if sizes.size > 2 else 1)
        if work is None:
            work = np.empty(2 * need, dtype=X.dtype)
        elif (not isinstance(work, np.ndarray) or work.dtype != X.dtype or work.ndim != 1
              or work.shape[0] < 2 * need or not work.flags.c_contiguous
              or not work.flags.writeable):
            raise ValueError(f"work must be a writeable, C-contiguous 1-D {X.dtype} array of "
                             f"at least {2 * need} entries (2 x rows x widest hidden layer)")
        self._core.forward(X, params, sizes, act, outk, work[:need], work[need : 2 * need], out)
        return out

    def predict(self, X, params, sizes, activation="relu", output="softmax"):
        """(outputs, argmax of each row, first row whose input or output is not
        finite or -1) for X dense or scipy.sparse: one compiled call."""
        sizes, params, act, outk = self._network(sizes, params, activation, output)
        return self._predict(as_input(X, params.dtype, int(sizes[0])), params, sizes, act, outk)

    def _predict(self, X, params, sizes, act, output):
        if type(X) is np.ndarray:  # read_only and n_rows written out: one row takes microseconds
            m = X.shape[0]
            X = X.view()
            X.setflags(write=False)
        else:
            m = n_rows(X)
            X = read_only(X)
        out = np.empty((m, sizes[-1]), dtype=params.dtype)
        labels = np.empty(m, dtype=np.int64)
        bad = self._core.predict_rows(X, params, sizes, act, output, out, labels)
        return out, labels, bad

    def work_size(self, sizes, batch_size, sparse=False):
        """Length of the ``work`` array that ``train_epoch`` and ``loss_gradient`` need
        (for ``sparse`` X: no block for gathered input rows)."""
        return work_size(sizes, batch_size, sparse)

    def train_epoch(self, X, target, order, params, grads, state1, state2, step, sizes,
                    activation, output, solver, lr, momentum=0.9, nesterov=False, beta1=0.9,
                    beta2=0.999, eps=1e-8, l2=0.0, batch_size=200, work=None,
                    sample_weight=None, n_threads=None):
        """One epoch of minibatch training over the rows of X (dense or
        scipy.sparse) in ``order``: for every batch, forward, loss, and per layer
        from the top: gradient, the delta for the layer below, and the optimiser
        step (L2 term ``l2 * W / batch weight``). Parameters, gradients and
        optimiser state are flat and updated in place; ``grads`` keeps the last
        batch's gradient. ``target`` holds integer labels (softmax output) or a
        2-D array of targets (other outputs). ``sample_weight`` (None: all 1)
        weighs each row's loss; a batch's loss and gradient are divided by its
        total weight. ``work``: ``work_size(sizes, batch_size)`` entries of
        scratch (allocated when not given).

        Returns (data loss, penalty, step, rows done): the loss of the rows and
        the L2 penalty, each the sum over batches of the batch's value times its
        rows, divided by len(order). If a batch's loss or any new value is not
        finite, the epoch stops, the parameters and optimiser state are put back
        as they were at the call, and rows done (< len(order)) is where the
        failing batch starts.

        ``n_threads``: the threads of a row-block kernel (None: every core
        this process may use; the result is the same for any count), or the
        cap on BLAS's threads for the others (None: no cap)."""
        sizes, params, act, outk = self._network(sizes, params, activation, output)
        solv = _code(SOLVERS, "solver", solver)
        X = as_input(X, params.dtype, int(sizes[0]))
        rows = n_rows(X)
        _flat_state(params, ("grads", grads), ("state1", state1), ("state2", state2))
        batch_size = _positive_int(batch_size, "batch_size")
        if not isinstance(step, numbers.Integral) or isinstance(step, bool) or step < 0:
            raise ValueError(f"step counts the updates done so far and must be an integer "
                             f">= 0, got {step!r}")
        y, Y = _targets_for(outk, target, rows, int(sizes[-1]), params.dtype)
        w = _weights_for(sample_weight, rows)
        order = np.asarray(order)
        if order.size and order.dtype.kind not in "iu":
            raise TypeError(f"order must hold integer row indices, got dtype {order.dtype}")
        order = np.ascontiguousarray(order, dtype=np.int64)
        if order.ndim != 1 or (order.size and (order.min() < 0 or order.max() >= rows)):
            raise ValueError("order must be a 1-D array of row indices of X")
        work = _work(work, work_size(sizes, batch_size, sparse=not isinstance(X, np.ndarray)),
                     params.dtype)
        with self._threads(epoch_path(X, sizes, batch_size, outk, solv), n_threads):
            data, penalty, step, done = self._epoch(
                X, y, Y, w, order, params, grads, state1, state2, int(step), sizes, act, outk,
                solv, float(lr), float(momentum), bool(nesterov), float(beta1), float(beta2),
                float(eps), float(l2), batch_size, work)
        n = max(order.shape[0], 1)
        return data / n, penalty / n, step, done

    def _epoch(self, X, y, Y, w, order, params, grads, state1, state2, step, sizes, act,
               output, solver, lr, momentum, nesterov, beta1, beta2, eps, l2, batch_size,
               work):
        """``train_epoch`` of the core on checked arguments, all or nothing:
        a failed epoch puts params and state back as they were."""
        saved = [a.copy() for a in _distinct(params, state1, state2)]
        X = read_only(X)
        epoch_kernel = self._kernel(epoch_path(X, sizes, batch_size, output, solver))
        data, penalty, new_step, done = epoch_kernel(
            X, y, Y, w, order, params, grads, state1, state2, step, sizes, act, output, solver,
            lr, momentum, nesterov, beta1, beta2, eps, l2, batch_size, work)
        if done < order.shape[0]:
            for a, copy in zip(_distinct(params, state1, state2), saved):
                np.copyto(a, copy)
            return data, penalty, step, done
        return data, penalty, new_step, done

    def loss_gradient(self, X, target, params, grads, sizes, activation, output, l2=0.0,
                      chunk=4096, work=None, sample_weight=None, n_threads=None):
        """The loss of the whole data set and its gradient, for full-batch
        solvers: with S the total sample weight (rows when unweighted), returns
        (data loss, penalty) = (sum of weighted row losses / S, 0.5 * l2 *
        sum(W**2) / S) and writes the gradient of their sum to ``grads``. Rows
        are taken ``chunk`` at a time (``work``: ``work_size(sizes, chunk)``
        entries, allocated when not given); ``n_threads`` as for ``train_epoch``."""
        sizes, params, act, outk = self._network(sizes, params, activation, output)
        X = as_input(X, params.dtype, int(sizes[0]))
        rows = n_rows(X)
        _flat_state(params, ("grads", grads))
        chunk = _positive_int(chunk, "chunk")
        y, Y = _targets_for(outk, target, rows, int(sizes[-1]), params.dtype)
        w = _weights_for(sample_weight, rows)
        work = _work(work, work_size(sizes, chunk, sparse=not isinstance(X, np.ndarray)),
                     params.dtype)
        with self._threads(loss_path(sizes, chunk), n_threads):
            return self._loss_gradient(X, y, Y, w, params, grads, sizes, act, outk, float(l2),
                                       chunk, work)

    def _loss_gradient(self, X, y, Y, w, params, grads, sizes, act, output, l2, chunk, work):
        loss_kernel = self._kernel(loss_path(sizes, chunk))
        data, penalty = loss_kernel(read_only(X), y, Y, w, params, grads, sizes, act, output,
                                    l2, chunk, work)
        return float(data), float(penalty)


def _distinct(*arrays):
    """The arrays, each once (the SGD solver passes one state array twice)."""
    seen = []
    for a in arrays:
        if not any(a is b for b in seen):
            seen.append(a)
    return seen


#: The public kernels by name, as the methods above.
NAMES = tuple(name for name in vars(Kernels) if not name.startswith("_"))
