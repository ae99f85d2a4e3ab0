"""``MLP``: a multilayer perceptron for classification and regression."""

import time
import warnings

import numpy as np

from . import checks, kernels, threads
from .errors import ConvergenceWarning, DivergenceError, NotFittedError
from .kernels import ACTIVATIONS, OUTPUTS, SOLVERS, n_params
from .net import init_params, views


class MLP:
    """A multilayer perceptron trained by minibatch SGD or Adam.

    The task follows ``y`` unless ``task`` forces it: integer, bool, string or
    object labels mean classification (softmax output, cross-entropy loss,
    ``predict`` returns the original labels); floating-point targets, 1-D or
    2-D, mean regression (identity output, squared error).

    Parameters
    ----------
    hidden : tuple of int
        Widths of the hidden layers.
    activation : {'relu', 'tanh', 'sigmoid', 'identity'}
        Activation of the hidden layers.
    solver : {'adam', 'sgd'}
    lr : float
        Learning rate (> 0).
    momentum, nesterov : float in [0, 1], bool
        SGD momentum and whether it is Nesterov's.
    batch_size : int
        Rows per minibatch; clipped to the number of rows.
    epochs : int
        Most passes over the data in ``fit``.
    l2 : float
        L2 penalty on the weights (not the biases), scaled like scikit-learn's alpha.
    tol, patience : float, int
        ``fit`` stops once the loss has not fallen by ``tol`` for ``patience`` epochs.
    shuffle : bool
        Shuffle the rows every epoch.
    dtype : {'float32', 'float64'}
        Precision of the weights and of all arithmetic but the loss sums (float64).
    random_state : None, int or numpy Generator
        Source of the initial weights and the shuffles.
    verbose : bool
        Print the loss and time of every epoch.
    backend : None, 'numba' or 'numpy'
        Kernels to use; None means the process-wide choice (``FASTMLP_BACKEND``).
    task : {'auto', 'classification', 'regression'}
        Override the rule above.
    n_threads : None or int
        Threads for the kernels and BLAS; None lets fastmlp choose.

    Attributes (after ``fit``)
    --------------------------
    coefs_, intercepts_ : lists of arrays, the weights (n_in, n_out) and biases per layer
    loss_curve_ : list of float, the mean training loss of every epoch
    n_iter_ : int, epochs run
    classes_ : array of the labels (classification only)
    n_features_in_ : int
    backend_ : str, the backend that trained the model
    """

    def __init__(self, hidden=(100,), activation="relu", *, solver="adam", lr=1e-3,
                 momentum=0.9, nesterov=False, batch_size=200, epochs=200, l2=1e-4, tol=1e-4,
                 patience=10, shuffle=True, dtype="float32", random_state=None, verbose=False,
                 backend=None, task="auto", n_threads=None):
        self.hidden = hidden
        self.activation = activation
        self.solver = solver
        self.lr = lr
        self.momentum = momentum
        self.nesterov = nesterov
        self.batch_size = batch_size
        self.epochs = epochs
        self.l2 = l2
        self.tol = tol
        self.patience = patience
        self.shuffle = shuffle
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose
        self.backend = backend
        self.task = task
        self.n_threads = n_threads

    # ------------------------------------------------------------- helpers
    def get_params(self):
        """The constructor's arguments as a dict."""
        return {name: getattr(self, name) for name in _PARAM_NAMES}

    def set_params(self, **params):
        for name, value in params.items():
            if name not in _PARAM_NAMES:
                raise ValueError(f"unknown parameter {name!r}; valid: {', '.join(_PARAM_NAMES)}")
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = MLP().get_params()
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if not _same(v, defaults[k])]
        return f"MLP({', '.join(changed)})"

    def _fitted(self):
        if not hasattr(self, "_params"):
            raise NotFittedError("this MLP is not fitted yet: call fit or partial_fit first")

    def _backend_module(self):
        return kernels.get(self.backend) if self.backend is not None else kernels.get(kernels.BACKEND)

    # ------------------------------------------------------------ training
    def fit(self, X, y):
        """Train from fresh weights for up to ``epochs`` epochs. Returns self."""
        hp = checks.check_params(self)
        X, target = self._prepare(X, y, hp, classes=None, first=True)
        self._start(X.shape[1], target, hp)
        best, stall = np.inf, 0
        with threads.limits(self.n_threads, self.backend_):
            for _ in range(hp["epochs"]):
                loss = self._epoch(X, target, hp)
                stall = stall + 1 if loss > best - hp["tol"] else 0
                best = min(best, loss)
                if stall >= hp["patience"]:
                    break
        if stall >= hp["patience"]:
            if self.verbose:
                print(f"converged: the loss improved less than tol={self.tol} "
                      f"for {self.patience} epochs")
        else:
            warnings.warn(
                f"MLP stopped after epochs={hp['epochs']} while the loss was still improving "
                f"by more than tol={self.tol}; raise epochs or lr for a converged model",
                ConvergenceWarning, stacklevel=2)
        self._work = None
        return self

    def partial_fit(self, X, y, classes=None):
        """One epoch over (X, y), keeping weights and optimiser state. Returns self.

        On the first call ``classes`` lists every label training will see
        (default: the labels of this first y).
        """
        hp = checks.check_params(self)
        first = not hasattr(self, "_params")
        X, target = self._prepare(X, y, hp, classes=classes, first=first)
        if first:
            self._start(X.shape[1], target, hp)
        with threads.limits(self.n_threads, self.backend_):
            self._epoch(X, target, hp)
        return self

    def _prepare(self, X, y, hp, classes, first):
        if first:
            Xc = checks.check_X(X, hp["dtype"])
            task = self.task
            classify = checks.is_classification(y) if task == "auto" else task == "classification"
        else:
            Xc = checks.check_X(X, self._dtype, self.n_features_in_)
            classify = self._output == OUTPUTS["softmax"]
        yc = checks.check_y(y, Xc.shape[0], classify)
        if not classify:
            if not first and yc.shape[1] != self._sizes[-1]:
                raise ValueError(f"y has {yc.shape[1]} target columns; the model was fitted "
                                 f"with {self._sizes[-1]}")
            self._y_1d = np.ndim(y) == 1 if first else self._y_1d
            return Xc, yc.astype(Xc.dtype)
        if first:
            labels = np.unique(yc) if classes is None else np.unique(checks._as_array(classes, "classes"))
            if labels.shape[0] < 2:
                raise ValueError(f"classification needs at least 2 classes, y has only "
                                 f"{labels.tolist()}")
        else:
            labels = self.classes_
            if classes is not None and not np.array_equal(
                    np.unique(checks._as_array(classes, "classes")), labels):
                raise ValueError(f"classes={np.asarray(classes).tolist()} differs from the "
                                 f"classes_ {labels.tolist()} the model was started with")
        codes = _encode(yc, labels)
        self.classes_ = labels  # only once y is known to be valid
        return Xc, codes

    def _start(self, n_features, target, hp):
        """Fresh weights, optimiser state and bookkeeping."""
        classify = target.ndim == 1
        self._output = OUTPUTS["softmax"] if classify else OUTPUTS["squared"]
        if classify:
            n_out = len(self.classes_)
        else:
            n_out = target.shape[1]
            self.__dict__.pop("classes_", None)
        self._sizes = np.array((n_features,) + hp["hidden"] + (n_out,), dtype=np.int64)
        self._dtype = np.dtype(hp["dtype"])
        self._rng = (self.random_state if isinstance(self.random_state, np.random.Generator)
                     else np.random.default_rng(self.random_state))
        self._params = init_params(self._sizes, self.activation, self._rng, self._dtype)
        self._grads = np.zeros_like(self._params)
        self._state1 = np.zeros_like(self._params)
        self._state2 = np.zeros_like(self._params) if self.solver == "adam" else self._state1
        self._solver = self.solver
        self._act = ACTIVATIONS[self.activation]
        self._step = 0
        self._work = None
        self.coefs_, self.intercepts_ = views(self._params, self._sizes)
        self.n_features_in_ = int(n_features)
        self.loss_curve_ = []
        self.n_iter_ = 0
        self.backend_ = self.backend if self.backend is not None else kernels.BACKEND

    def _epoch(self, X, target, hp):
        """One epoch through the backend's whole-epoch kernel; returns its loss."""
        if self.solver != self._solver or ACTIVATIONS[self.activation] != self._act:
            raise ValueError("solver or activation changed after training started; "
                             "call fit to start over")
        core = kernels.get(self.backend_)._core
        n = X.shape[0]
        batch = min(hp["batch_size"], n)
        size = kernels.get(self.backend_).work_size(self._sizes, batch)
        if self._work is None or self._work.size < size or self._work.dtype != self._dtype:
            self._work = np.empty(size, dtype=self._dtype)
        order = self._rng.permutation(n) if self.shuffle else np.arange(n)
        classify = target.ndim == 1
        y = target if classify else _NO_LABELS
        Y = target if not classify else np.empty((0, 0), dtype=self._dtype)
        announce = self.verbose and _first_use(core.train_epoch, X)
        if announce:
            print(f"fastmlp: preparing the numba kernels for {X.dtype} (compiled on first use, "
                  "then loaded from the disk cache) ...", flush=True)
        t0 = time.perf_counter()
        loss, step, done = core.train_epoch(
            X, y, Y, order, self._params, self._grads, self._state1, self._state2,
            self._step, self._sizes, self._act, self._output,
            SOLVERS[self.solver], hp["lr"], hp["momentum"], bool(self.nesterov), hp["l2"],
            batch, self._work)
        self._step = step
        if announce:
            print(f"fastmlp: kernels ready in {time.perf_counter() - t0:.1f} s", flush=True)
        if done < n:
            raise DivergenceError(
                f"training diverged in epoch {self.n_iter_ + 1} at the batch starting at row "
                f"{done} of the shuffled data: the loss or a weight stopped being finite. "
                f"The model keeps the last finite weights. Try a smaller lr (now {self.lr}), "
                f"scaled inputs (largest |X| is {float(np.abs(X).max()):.3g}) or dtype='float64'.")
        self.n_iter_ += 1
        self.loss_curve_.append(loss)
        if self.verbose:
            print(f"epoch {self.n_iter_}: loss {loss:.6f} ({time.perf_counter() - t0:.3f} s)")
        return loss

    # ---------------------------------------------------------- prediction
    def _forward(self, X):
        """(outputs, argmax of each row) of the fitted network for X."""
        self._fitted()
        if not (type(X) is np.ndarray and X.dtype == self._dtype and X.ndim == 2
                and X.flags.c_contiguous and X.shape[0] and X.shape[1] == self.n_features_in_):
            X = checks.check_X(X, self._dtype, self.n_features_in_)
        # an array already in shape and dtype goes straight to the kernel, which
        # reports the first row with a non-finite input or output
        core = kernels.get(self.backend_)._core
        if self.n_threads is None:
            out, labels, bad = core.predict_rows(X, self._params, self._sizes, self._act,
                                                 self._output)
        else:
            with threads.limits(self.n_threads, self.backend_):
                out, labels, bad = core.predict_rows(X, self._params, self._sizes, self._act,
                                                     self._output)
        if bad >= 0:
            checks.check_X(X, self._dtype, self.n_features_in_)  # names a bad input value
            raise ValueError(f"the network's output for row {bad} is not finite: its inputs are "
                             f"too large for {self._dtype} (largest |X| in that row is "
                             f"{float(np.abs(X[bad]).max()):.3g}); scale the inputs")
        return out, labels

    def predict_proba(self, X):
        """Class probabilities, one row per sample summing to 1 (classification)."""
        self._fitted()
        if self._output != OUTPUTS["softmax"]:
            raise AttributeError("predict_proba is for classification; this model is a regressor")
        return self._forward(X)[0]

    def predict(self, X):
        """Labels (classification) or predicted values (regression)."""
        out, labels = self._forward(X)
        if self._output == OUTPUTS["softmax"]:
            return self.classes_[labels]
        return out[:, 0].copy() if self._y_1d else out

    def score(self, X, y):
        """Accuracy (classification) or R^2 averaged over outputs (regression)."""
        pred = self.predict(X)
        if self._output == OUTPUTS["softmax"]:
            y = checks.check_y(y, len(pred), True)
            return float(np.mean(pred == y))
        Y = checks.check_y(y, len(pred), False)
        if Y.shape[1] != self._sizes[-1]:
            raise ValueError(f"y has {Y.shape[1]} target columns; the model was fitted "
                             f"with {self._sizes[-1]}")
        P = np.asarray(pred, dtype=np.float64).reshape(Y.shape)
        ss_res = ((Y - P) ** 2).sum(axis=0)
        ss_tot = ((Y - Y.mean(axis=0)) ** 2).sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = np.where(ss_tot > 0, 1 - ss_res / ss_tot, np.where(ss_res == 0, 1.0, 0.0))
        return float(np.mean(r2))

    def save(self, path):
        """Write the fitted model to the file ``path`` (exactly that name),
        atomically; returns the path. Format and guarantees: ``fastmlp.io``."""
        from .io import save

        return save(self, path)

    @classmethod
    def load(cls, path):
        """A model written by ``save``, bit-exact with its optimiser state;
        loading never unpickles or runs code from the file."""
        from .io import load

        return load(path, cls=cls)

    @property
    def n_params_(self):
        self._fitted()
        return n_params(self._sizes)


_PARAM_NAMES = ("hidden", "activation", "solver", "lr", "momentum", "nesterov", "batch_size",
                "epochs", "l2", "tol", "patience", "shuffle", "dtype", "random_state", "verbose",
                "backend", "task", "n_threads")
_NO_LABELS = np.empty(0, dtype=np.int64)


def _encode(y, labels):
    """The class codes of y (int64 positions in sorted ``labels``); refuses a
    label that is not in ``labels``."""
    k = labels.shape[0]
    if (y.dtype.kind in "iu" and labels.dtype.kind in "iu" and labels[0] == 0
            and labels[-1] == k - 1 and 0 <= y.min() and y.max() < k):
        return np.ascontiguousarray(y, dtype=np.int64)  # labels are 0..k-1: y is its own code
    codes = np.clip(np.searchsorted(labels, y), 0, k - 1)
    unknown = labels[codes] != y
    if np.any(unknown):
        bad = np.unique(y[unknown])[:5].tolist()
        raise ValueError(f"y holds labels not in classes_ {labels.tolist()}: {bad}")
    return codes.astype(np.int64)


def _first_use(kernel, X):
    """Whether a compiled ``kernel`` has not yet run on arrays like X in this process."""
    signatures = getattr(kernel, "signatures", None)
    if signatures is None:  # the NumPy backend compiles nothing
        return False
    from numba import typeof

    return not any(sig[0] == typeof(X) for sig in signatures)


def _same(a, b):
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return a is b
