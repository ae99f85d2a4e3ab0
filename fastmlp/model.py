"""``MLP``: a multilayer perceptron for classification and regression."""

import functools
import time
import warnings

import numpy as np

from . import checks
from . import io as _io
from .engine import Data, Engine, Settings
from .errors import ConvergenceWarning
from .kernels.api import n_rows
from .network import STOCHASTIC, init_params

#: ``task='auto'`` warns when integer labels have more distinct values than this
#: (they may be a quantity) or float targets that are all whole numbers have at
#: most this many (they may be class labels).
MANY_CLASSES = 20


class MLP(Engine):
    """A multilayer perceptron trained by minibatch SGD, Adam or L-BFGS.

    The task follows ``y`` unless ``task`` forces it: integer, bool, string or
    object labels mean classification (softmax output, cross-entropy loss,
    ``predict`` returns the original labels); floating-point targets, 1-D or
    2-D, mean regression (identity output, squared error). With
    ``task='auto'`` a warning says which ``task=`` to pass when ``y`` looks
    like the other kind: float targets that are all whole numbers with few
    distinct values, or integer labels with many.

    Parameters
    ----------
    hidden : tuple of int
        Widths of the hidden layers.
    activation : {'relu', 'tanh', 'sigmoid', 'identity'}
        Activation of the hidden layers.
    solver : {'adam', 'sgd', 'lbfgs'}
        'lbfgs' (full batch, scipy's L-BFGS-B) runs to convergence in ``fit``;
        it has no ``partial_fit``.
    lr : float
        Learning rate (> 0) of sgd and adam.
    momentum, nesterov : float in [0, 1], bool
        SGD momentum and whether it is Nesterov's.
    batch_size : int
        Rows per minibatch; clipped to the number of rows.
    epochs : int
        Most passes over the data in ``fit`` (iterations for lbfgs).
    l2 : float
        L2 penalty on the weights (not the biases), scaled like scikit-learn's alpha.
    tol, patience : float, int
        ``fit`` stops once more than ``patience`` epochs in a row improved the
        best loss (or validation score) by less than ``tol``. For lbfgs,
        ``tol`` is the gradient tolerance.
    validation : float in [0, 1)
        Fraction of the rows ``fit`` holds out (stratified for classification)
        to score after every epoch; training then stops on the validation
        score and keeps the weights of the best-scoring epoch. 0: none.
    shuffle : bool
        Shuffle the rows every epoch (not when one batch holds every row: the
        order would change only the rounding of its sums).
    dtype : {'float32', 'float64'}
        Precision of the weights and of all arithmetic but the loss sums (float64).
    random_state : None, int or numpy Generator
        Source of the initial weights, the validation split and the shuffles.
    verbose : bool
        Print the loss (and validation score) and time of every epoch.
    backend : None, 'numba' or 'numpy'
        Kernels to use; None means the process-wide choice (``FASTMLP_BACKEND``).
    task : {'auto', 'classification', 'regression'}
        Override the rule above.
    n_threads : None or int
        Threads of this model's calls: numba's threads where the network
        trains in row blocks (the weights are then the same for any count),
        else the cap on BLAS's threads; None: the cores this process may use
        (capped by ``OMP_NUM_THREADS`` and ``NUMBA_NUM_THREADS`` where set).

    Attributes (after ``fit``)
    --------------------------
    coefs_, intercepts_ : lists of arrays, the weights (n_in, n_out) and biases
        per layer; views into the network (assigning ``coefs_[i] = W`` writes it)
    loss_, loss_curve_ : the last epoch's mean training loss, and every epoch's
    best_loss_ : the lowest loss (None with a validation set)
    validation_scores_, best_validation_score_ : accuracy or R^2 on the held-out
        rows per epoch, and the best (None without a validation set)
    n_iter_ : int, epochs run (all calls together); t_ : rows trained on
    classes_ : array of the labels (classification only)
    n_features_in_ : int
    backend_ : str, the backend that trained the model
    """

    def __init__(self, hidden=(100,), activation="relu", *, solver="adam", lr=1e-3,
                 momentum=0.9, nesterov=False, batch_size=200, epochs=200, l2=1e-4, tol=1e-4,
                 patience=10, validation=0.0, shuffle=True, dtype="float32", random_state=None,
                 verbose=False, backend=None, task="auto", n_threads=None):
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
        self.validation = validation
        self.shuffle = shuffle
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose
        self.backend = backend
        self.task = task
        self.n_threads = n_threads

    # ------------------------------------------------- estimator protocol
    def get_params(self, deep=True):
        """The constructor's arguments as a dict (``deep`` is accepted for
        scikit-learn's protocol; MLP holds no nested estimators)."""
        return {name: getattr(self, name) for name in PARAM_NAMES}

    def set_params(self, **params):
        """Set constructor arguments by name; returns self. A change of the
        network's layout, solver or dtype takes effect at the next ``fit``
        (``partial_fit`` refuses it)."""
        for name in params:
            if name not in PARAM_NAMES:
                raise ValueError(f"unknown parameter {name!r} for MLP; valid parameters: "
                                 f"{', '.join(PARAM_NAMES)}")
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def __sklearn_tags__(self):
        from sklearn.utils import ClassifierTags, InputTags, RegressorTags, Tags, TargetTags

        kind = {"classification": "classifier", "regression": "regressor"}.get(self.task)
        return Tags(estimator_type=kind, target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags() if kind == "classifier" else None,
                    regressor_tags=RegressorTags() if kind == "regressor" else None,
                    input_tags=InputTags(sparse=True))

    def __repr__(self):
        defaults = MLP().get_params()
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if not _same(v, defaults[k])]
        return f"MLP({', '.join(changed)})"

    # ------------------------------------------------------------ training
    def fit(self, X, y, sample_weight=None):
        """Train from fresh weights until the stopping rule or ``epochs``. Returns self."""
        hp = checks.check_params(self)
        task = self.task if self.task != "auto" else _auto_task(y)
        data, targets, labels, y_1d = self._prepare(X, y, sample_weight, hp, task, None)
        rng, sizes, params = self._initial(data, hp, labels)
        validation = None
        if hp["validation"] > 0 and self.solver in STOCHASTIC:
            data, validation = _hold_out(data, targets, labels is not None, hp["validation"],
                                         rng)
        self._begin(rng, sizes, params, labels, y_1d, early_stopping=validation is not None)
        s = self._settings(hp)
        if self.solver == "lbfgs":
            result = self._train_lbfgs(data, s)
            self.n_iter_ = int(result.nit)
            if result.status == 1:
                self._not_converged(s)
        else:
            self._train(data, s, validation)
        return self

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over (X, y), keeping weights and optimiser state. Returns self.

        On the first call ``classes`` lists every label training will see
        (default: the labels of this first y).
        """
        hp = checks.check_params(self)
        if self.solver not in STOCHASTIC:
            raise ValueError(f"partial_fit needs a stochastic solver (sgd or adam), not "
                             f"solver={self.solver!r}")
        first = "_net" not in self.__dict__
        if first:
            task = self.task if self.task != "auto" else _auto_task(y)
        else:
            task = "classification" if self._net.output == "softmax" else "regression"
            self._check_layout(_sizes_like(self._net, hp), self.activation, self._net.output,
                               self.solver, hp["dtype"])
        data, _, labels, y_1d = self._prepare(X, y, sample_weight, hp, task, classes, first)
        if first:
            self._begin(*self._initial(data, hp, labels), labels, y_1d)
        elif self._lr is not None and self._lr.initial != hp["lr"]:
            self._lr = None  # set_params(lr=...) between calls takes effect
        self._train(data, self._settings(hp), incremental=True)
        return self

    def _settings(self, hp):
        return Settings(solver=self.solver, lr=hp["lr"], alpha=hp["l2"],
                        batch_size=hp["batch_size"], max_iter=hp["epochs"], tol=hp["tol"],
                        n_iter_no_change=hp["patience"], momentum=hp["momentum"],
                        nesterov=bool(self.nesterov), n_threads=self.n_threads)

    def _initial(self, data, hp, labels):
        """(random generator, layer widths, initial parameters) of a fresh network
        for ``data``; the parameters are the generator's first draws."""
        rng = (self.random_state if isinstance(self.random_state, np.random.Generator)
               else np.random.default_rng(self.random_state))
        n_out = labels.shape[0] if labels is not None else data.Y.shape[1]
        sizes = (data.n_features,) + hp["hidden"] + (n_out,)
        return rng, sizes, init_params(sizes, self.activation, rng, hp["dtype"])

    def _begin(self, rng, sizes, params, labels, y_1d, early_stopping=False):
        """Start training records and a fresh network of these parameters."""
        self._rng = rng
        self._start(sizes, self.activation, "softmax" if labels is not None else "squared",
                    params, self.solver, self.backend, early_stopping=early_stopping)
        self.n_features_in_ = int(sizes[0])
        if labels is not None:
            self.classes_ = labels
        else:
            self.__dict__.pop("classes_", None)
            self._y_1d = y_1d

    def _prepare(self, X, y, sample_weight, hp, task, classes, first=True):
        """(Data for the kernels, y as checked, the labels or None, whether a
        regression y is 1-D), or a ValueError/TypeError before anything changes.
        ``first``: a fresh network (else the fitted one's dtype, features,
        outputs and classes apply)."""
        dtype = hp["dtype"] if first else self._net.dtype
        n_features = None if first else self.n_features_in_
        if checks.is_sparse(X):
            Xk = checks.check_sparse_X(X, dtype, n_features)
            width = X.shape[1]
        else:
            Xk = checks.check_X(X, dtype, n_features)
            width = Xk.shape[1]
        n = n_rows(Xk)
        classify = task == "classification"
        yc = checks.check_y(y, n, classify)
        w = checks.check_sample_weight(sample_weight, n)
        if not classify:
            if not first and yc.shape[1] != self._net.sizes[-1]:
                raise ValueError(f"y has {yc.shape[1]} target columns; the model was fitted "
                                 f"with {int(self._net.sizes[-1])}")
            y_1d = np.ndim(y) == 1 if first else self._y_1d
            return (Data(Xk, Y=np.ascontiguousarray(yc, dtype=dtype), w=w, n_features=width),
                    yc, None, y_1d)
        if first:
            labels = (np.unique(yc) if classes is None
                      else np.unique(checks._as_array(classes, "classes")))
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
        return Data(Xk, y=codes, w=w, n_features=width), codes, labels, None

    # ------------------------------------------------------- engine hooks
    def _epoch_order(self, n):
        return self._rng.permutation(n) if self.shuffle else np.arange(n)

    def _full_batch_order(self, n):
        # one batch holds every row: its order changes only the rounding of the sums
        return _rows_in_order(n)

    def _validation_score(self, data, targets, weights):
        out, labels = self._outputs(data.X)
        w = None if weights.shape[0] == 0 else weights
        if self._net.output == "softmax":
            return float(np.average(labels == targets, weights=w))
        return _r2(targets, out.astype(np.float64), w)

    def _report(self, event, **info):
        """Training progress for ``verbose=True``: a progress bar per ``fit`` on a
        terminal, a plain line per epoch elsewhere (``fastmlp.progress``)."""
        if not self.verbose:
            return
        if event == "start":
            from .progress import Progress

            self.__dict__["_progress"] = Progress(info["max_iter"], info["incremental"])
            return
        display = self.__dict__.get("_progress")
        if display is None:
            return
        if event == "end":
            del self.__dict__["_progress"]
        display.report(event, **info)

    def _not_converged(self, s):
        warnings.warn(
            f"MLP stopped after epochs={s.max_iter} while the loss was still improving "
            f"by more than tol={s.tol}; raise epochs or lr for a converged model",
            ConvergenceWarning, stacklevel=5)  # fit -> _train -> _epochs -> here

    def _divergence_advice(self, s, largest):
        return (f"Try a smaller lr (now {self.lr}), scaled inputs (largest |X| is "
                f"{largest:.3g}) or dtype='float64'.")

    # ---------------------------------------------------------- prediction
    def _predict_input(self, X):
        # a few attribute lookups fewer than the general checks: they count in
        # the microseconds that predicting one row takes
        net = self.__dict__.get("_net") or self._network()
        dtype = net.params.dtype
        if (type(X) is np.ndarray and X.dtype == dtype and X.ndim == 2
                and X.flags.c_contiguous and X.shape[0] and X.shape[1] == self.n_features_in_):
            return X  # the kernel itself reports the first non-finite row
        if checks.is_sparse(X):
            return checks.check_sparse_X(X, dtype, self.n_features_in_)
        return checks.check_X(X, dtype, self.n_features_in_)

    def predict_proba(self, X):
        """Class probabilities, one row per sample summing to 1 (classification)."""
        net = self._network()
        if net.output != "softmax":
            raise AttributeError("predict_proba is for classification; this model is a regressor")
        return self._outputs(self._predict_input(X))[0]

    def predict(self, X):
        """Labels (classification) or predicted values (regression)."""
        out, labels = self._outputs(self._predict_input(X))
        if self._net.output == "softmax":
            return self.classes_[labels]
        return out[:, 0].copy() if self._y_1d else out

    def score(self, X, y, sample_weight=None):
        """Accuracy (classification) or R^2 averaged over outputs (regression)."""
        pred = self.predict(X)
        w = None if sample_weight is None else checks.check_sample_weight(sample_weight,
                                                                           len(pred))
        if self._net.output == "softmax":
            y = checks.check_y(y, len(pred), True)
            return float(np.average(pred == y, weights=w))
        Y = checks.check_y(y, len(pred), False)
        if Y.shape[1] != self._net.sizes[-1]:
            raise ValueError(f"y has {Y.shape[1]} target columns; the model was fitted "
                             f"with {int(self._net.sizes[-1])}")
        return _r2(Y, np.asarray(pred, dtype=np.float64).reshape(Y.shape), w)

    @property
    def n_params_(self):
        """Number of weights and biases."""
        return int(self._network().params.shape[0])

    # --------------------------------------------------------------- state
    def save(self, path, *, extra=None):
        """Write the fitted model to the file ``path`` (exactly that name),
        atomically; returns the path. ``extra``: more values or arrays to keep
        in the file (``load(..., extra=True)`` returns them). Format and
        guarantees: ``fastmlp.io``."""
        return _io.save(self, path, extra=extra)

    @classmethod
    def load(cls, path, *, extra=False):
        """A model written by ``save``, bit-exact with its optimiser state;
        loading never unpickles or runs code from the file. With ``extra=True``:
        (model, the extra dict it was saved with)."""
        return _io.load(path, cls, extra=extra)

    def _state(self):
        """(values, arrays): everything a fitted MLP holds. ``values`` are plain
        Python values (and the model's random Generator); ``_from_state``
        restores the model from both."""
        net_values, arrays = self._network().state()
        values = {
            "hyper_parameters": self.get_params(),
            "network": net_values,
            "backend": self.backend_,
            "rng": self._rng,
            "n_iter": int(self.n_iter_),
            "t": int(self.t_),
            "n_features_in": int(self.n_features_in_),
            "y_1d": None if "classes_" in self.__dict__ else bool(self._y_1d),
        }
        if self._net.solver in STOCHASTIC:
            values.update(
                loss=float(self.loss_) if "loss_" in self.__dict__ else None,
                best_loss=None if self.best_loss_ is None else float(self.best_loss_),
                no_improvement_count=int(self._no_improvement_count),
                best_validation_score=(None if self.best_validation_score_ is None
                                       else float(self.best_validation_score_)))
            arrays["loss_curve"] = np.asarray(self.loss_curve_, dtype=np.float64)
            if self.validation_scores_ is not None:
                arrays["validation_scores"] = np.asarray(self.validation_scores_,
                                                         dtype=np.float64)
        elif "loss_" in self.__dict__:
            values["loss"] = float(self.loss_)
        if "classes_" in self.__dict__:
            arrays["classes"] = self.classes_
        return values, arrays

    @classmethod
    def _from_state(cls, values, arrays):
        """The model ``_state`` gave; raises ValueError naming what does not fit."""
        from .kernels import BACKENDS
        from .network import Network

        try:
            model = cls(**values["hyper_parameters"])
        except TypeError as exc:
            raise ValueError(f"the file's hyper-parameters do not fit this fastmlp's MLP "
                             f"({exc}); it was written by a different fastmlp version") from None
        checks.check_params(model)
        net = Network.from_state(values["network"], arrays)
        model._net = net
        if values.get("backend") not in BACKENDS:
            raise ValueError(f"backend {values.get('backend')!r}")
        for key in ("n_iter", "t", "n_features_in"):
            value = values.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{key} must be an integer >= 0, got {value!r}")
        model.backend_ = values["backend"]
        model._rng = values["rng"]
        model.n_iter_ = values["n_iter"]
        model.t_ = values["t"]
        model.n_features_in_ = values["n_features_in"]
        if int(net.sizes[0]) != model.n_features_in_:
            raise ValueError(f"{model.n_features_in_} features but the first layer has "
                             f"{int(net.sizes[0])} inputs")
        model._lr = None
        model._best_params = None
        if net.solver in STOCHASTIC:
            curve = arrays["loss_curve"]
            if curve.ndim != 1 or curve.shape[0] != model.n_iter_:
                raise ValueError(f"loss_curve has shape {curve.shape} for n_iter {model.n_iter_}")
            model.loss_curve_ = list(np.asarray(curve, dtype=np.float64))
            if values.get("loss") is not None:
                model.loss_ = np.float64(values["loss"])
            best = values.get("best_loss")
            model.best_loss_ = None if best is None else np.float64(best)
            model._no_improvement_count = values.get("no_improvement_count", 0)
            scores = arrays.get("validation_scores")
            model.validation_scores_ = None if scores is None else [float(v) for v in scores]
            model.best_validation_score_ = values.get("best_validation_score")
        elif values.get("loss") is not None:
            model.loss_ = np.float64(values["loss"])
        if net.output == "softmax":
            classes = arrays.get("classes")
            if classes is None or classes.shape != (int(net.sizes[-1]),):
                raise ValueError(f"a classifier with {int(net.sizes[-1])} outputs needs as "
                                 "many classes")
            model.classes_ = classes
        else:
            if values.get("y_1d") not in (True, False):
                raise ValueError(f"y_1d {values.get('y_1d')!r}")
            model._y_1d = values["y_1d"]
        return model


#: The constructor's arguments, in order.
PARAM_NAMES = ("hidden", "activation", "solver", "lr", "momentum", "nesterov", "batch_size",
               "epochs", "l2", "tol", "patience", "validation", "shuffle", "dtype",
               "random_state", "verbose", "backend", "task", "n_threads")


def _auto_task(y):
    """The task ``task='auto'`` picks for y, with a warning where y looks like
    the other kind."""
    arr = checks._as_array(y, "y")
    if checks.is_classification(y):
        if arr.dtype.kind in "iu":
            distinct = np.unique(arr).shape[0]
            if distinct > MANY_CLASSES:
                warnings.warn(
                    f"y holds {distinct} distinct integer values, which MLP treats as "
                    f"{distinct} classes; if y is a quantity, pass task='regression' (--task "
                    "regression on the command line; task='classification' keeps the classes "
                    "and silences this)",
                    UserWarning, stacklevel=3)
        return "classification"
    if arr.dtype.kind == "f" and arr.size:
        finite = arr[np.isfinite(arr)]
        if finite.size and np.all(finite == np.round(finite)):
            distinct = np.unique(finite)
            if distinct.shape[0] <= MANY_CLASSES:
                shown = ", ".join(f"{v:g}" for v in distinct[:5])
                more = ", ..." if distinct.shape[0] > 5 else ""
                warnings.warn(
                    f"y holds float values that are all whole numbers, {distinct.shape[0]} "
                    f"distinct ({shown}{more}), which MLP treats as regression targets; if "
                    "they are class labels, pass task='classification' (--task "
                    "classification on the command line) or integer labels; "
                    "task='regression' silences this", UserWarning, stacklevel=3)
    return "regression"


def _sizes_like(net, hp):
    """The layer widths the current hyper-parameters ask of a fitted network."""
    return (int(net.sizes[0]),) + hp["hidden"] + (int(net.sizes[-1]),)


def _hold_out(data, targets, stratify, fraction, rng):
    """(training Data, validation (Data, targets, weights)): ``fraction`` of the
    rows (of each class when ``stratify``) drawn by ``rng``."""
    n = data.n
    held = np.zeros(n, dtype=bool)
    groups = [np.flatnonzero(targets == c) for c in np.unique(targets)] if stratify else [
        np.arange(n)]
    for rows in groups:
        rows = rng.permutation(rows)
        held[rows[: int(round(fraction * rows.shape[0]))]] = True
    if held.sum() < 2 or held.sum() == n:
        raise ValueError(f"validation={fraction} of {n} rows leaves {int(held.sum())} for "
                         "validation and {} for training; use a larger or smaller "
                         "fraction".format(n - int(held.sum())))
    train, val = np.flatnonzero(~held), np.flatnonzero(held)
    val_data = data.take(val)
    return data.take(train), (val_data, targets[val], val_data.w)


@functools.lru_cache(maxsize=1)
def _rows_in_order(n):
    """np.arange(n): one array for every full-batch epoch of n rows (the
    kernels only read an epoch's order). Kept here rather than on the model,
    which would otherwise carry it into every pickle."""
    return np.arange(n)


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


def _r2(Y, P, w=None):
    """R^2 of predictions P for targets Y (2-D), averaged over outputs, rows
    weighted by w (None: equally); 1 for a perfectly predicted constant target,
    0 for an imperfectly predicted one."""
    Y = np.asarray(Y, dtype=np.float64).reshape(len(Y), -1)
    P = np.asarray(P, dtype=np.float64).reshape(Y.shape)
    w = np.ones(len(Y)) if w is None else np.asarray(w, dtype=np.float64)
    ss_res = (w[:, None] * (Y - P) ** 2).sum(axis=0)
    ss_tot = (w[:, None] * (Y - np.average(Y, axis=0, weights=w)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ss_tot > 0, 1 - ss_res / ss_tot, np.where(ss_res == 0, 1.0, 0.0))
    return float(np.mean(r2))


def _same(a, b):
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return a is b
