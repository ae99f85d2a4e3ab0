"""The training engine shared by ``fastmlp.MLP`` and ``fastmlp.sklearn``.

One stochastic loop (epochs of the whole-epoch kernel, the stopping rule,
early stopping on a validation set, the learning-rate schedules) and one
L-BFGS driver (scipy's L-BFGS-B on the compiled loss-and-gradient call) for
every model. ``Engine`` is a base class: a model prepares its data and
hyper-parameters (``Data``, ``Settings``) and answers a few hooks (the order
of each epoch's rows, the validation score, progress messages); the engine
owns the rest.

The rules are scikit-learn's ``MLPClassifier``'s:

- an epoch whose loss is not below ``best_loss_ - tol`` (or, with a
  validation set, whose score is not above ``best_validation_score_ + tol``)
  counts as no improvement; training stops once more than
  ``n_iter_no_change`` epochs in a row count, unless the 'adaptive' schedule
  divides the learning rate by 5 instead (while it is above 1e-6);
- with a validation set the weights of the best-scoring epoch are restored
  at the end of ``fit``; a model may also end such a ``fit`` there when an
  epoch overflows (``_diverged``), instead of raising ``DivergenceError``;
- 'invscaling' sets the rate to ``lr / (t + 1) ** power_t`` after each
  epoch, t being the samples seen so far;
- the loss of an epoch is the mean over its batches of each batch's loss
  (data loss over the batch's weight plus ``0.5 * alpha * sum(W**2)`` over the
  same), weighted by the batch's rows.
"""

import functools
import time
from dataclasses import dataclass

import numpy as np

from . import kernels, threads
from .errors import DivergenceError, NotFittedError
from .kernels import ACTIVATIONS, OUTPUTS, SOLVERS
from .kernels.api import epoch_path, loss_path, n_rows, read_only, work_size
from .network import Network


@functools.lru_cache(maxsize=64)
def _work_size(sizes, rows, sparse):
    """``work_size`` of a layout (a tuple), remembered: ``partial_fit`` asks
    for the same one on every call."""
    return work_size(sizes, rows, sparse=sparse)


_NO_LABELS = np.empty(0, dtype=np.int64)
_NO_WEIGHTS = np.empty(0, dtype=np.float64)
#: Rows per chunk of the full-batch loss and gradient (L-BFGS): bounds its memory.
LBFGS_CHUNK = 4096


def _scipy_takes_iprint():
    """scipy's L-BFGS-B stopped taking ``iprint`` in 1.15."""
    import scipy

    major, minor = (int(v) for v in scipy.__version__.split(".")[:2])
    return (major, minor) < (1, 15)


_SCIPY_IPRINT = _scipy_takes_iprint()


@dataclass
class Data:
    """A data set ready for the kernels: X (array or CSR triple, in the
    network's dtype) with ``n_features`` columns, integer labels y (softmax
    output) or targets Y (2-D, in X's dtype), and sample weights w (float64;
    empty: all 1)."""

    X: object
    y: np.ndarray = None
    Y: np.ndarray = None
    w: np.ndarray = None
    n_features: int = None

    def __post_init__(self):
        dense = isinstance(self.X, np.ndarray)
        if self.y is None:
            self.y = _NO_LABELS
        if self.w is None:
            self.w = _NO_WEIGHTS
        if self.Y is None:
            self.Y = np.empty((0, 0), dtype=self.X.dtype if dense else self.X[0].dtype)
        if self.n_features is None:
            if not dense:
                raise ValueError("sparse X needs n_features")
            self.n_features = self.X.shape[1]

    @property
    def n(self):
        return n_rows(self.X)

    @property
    def sparse(self):
        return not isinstance(self.X, np.ndarray)

    def take(self, rows):
        """The rows ``rows`` (an index array) of every part."""
        rows = np.asarray(rows, dtype=np.int64)
        if isinstance(self.X, np.ndarray):
            X = np.ascontiguousarray(self.X[rows])
        else:
            data, indices, indptr = self.X
            counts = indptr[rows + 1] - indptr[rows]
            new_ptr = np.zeros(rows.shape[0] + 1, dtype=indptr.dtype)
            np.cumsum(counts, out=new_ptr[1:])
            at = np.repeat(indptr[rows] - new_ptr[:-1], counts) + np.arange(new_ptr[-1])
            X = (data[at], indices[at], new_ptr)
        return Data(X, self.y[rows] if self.y.shape[0] else self.y,
                    self.Y[rows] if self.Y.shape[0] else self.Y,
                    self.w[rows] if self.w.shape[0] else self.w, self.n_features)


@dataclass
class Settings:
    """A model's hyper-parameters, checked and in the engine's terms."""

    solver: str
    lr: float
    alpha: float
    batch_size: int
    max_iter: int
    tol: float
    n_iter_no_change: float
    lr_schedule: str = "constant"
    power_t: float = 0.5
    momentum: float = 0.9
    nesterov: bool = False
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    max_fun: int = 15000
    n_threads: object = None
    #: factor of the data loss in the reported loss (scikit-learn averages the
    #: squared error over outputs; its gradient is of the sum)
    loss_scale: float = 1.0


#: (backend, epoch kernel, kind of X) already compiled or loaded in this process.
_PREPARED = set()

def _prepared_key(kern, X, path):
    """What numba compiles the epoch kernel ``path`` for: the backend, and X's
    dtypes and whether it is dense (the kernels take every X read-only:
    ``api.read_only``)."""
    kind = X.dtype.str if isinstance(X, np.ndarray) else tuple(a.dtype.str for a in X)
    return kern.name, path, kind


def _first_use(kern, X, path):
    """Whether the compiled epoch kernel ``path`` has not yet run on inputs like
    X in this process (the NumPy backend compiles nothing). Once it has, the
    answer is remembered: asking numba costs microseconds per call."""
    key = _prepared_key(kern, X, path)
    if key in _PREPARED:
        return False
    kernel = getattr(kern._core, path, None)
    # a kernel that takes compiled functions by address: the compiled one behind it
    signatures = getattr(getattr(kernel, "compiled", kernel), "signatures", None)
    if signatures is None:
        return False
    from numba import typeof

    kind = typeof(read_only(X))
    if any(sig[0] == kind for sig in signatures):
        _PREPARED.add(key)
        return False
    return True


class LearningRate:
    """The step size of each epoch under one of scikit-learn's schedules."""

    def __init__(self, schedule, lr, power_t):
        self.schedule = schedule
        self.initial = lr
        self.power_t = power_t
        self.value = float(lr)

    def epoch_end(self, samples_seen):
        if self.schedule == "invscaling":
            self.value = self.initial / (samples_seen + 1) ** self.power_t

    def stalled(self):
        """Called when the stopping rule fires: whether training goes on
        (the 'adaptive' schedule divides the rate by 5 while it is above 1e-6)."""
        if self.schedule != "adaptive" or self.value <= 1e-6:
            return False
        self.value /= 5.0
        return True


class Engine:
    """Training and prediction of a network (``self._net``) for a model.

    A model calls ``_start`` (fresh network), ``_train`` (stochastic epochs) or
    ``_train_lbfgs``, and ``_outputs`` (prediction). It implements the hooks
    ``_epoch_order``, ``_validation_score`` and ``_report``, and may override
    ``_full_batch_order``, ``_not_converged`` and ``_divergence_advice``.
    """

    # ------------------------------------------------------------- network
    @property
    def coefs_(self):
        """The weight matrix of each layer, (n_in, n_out): views into the
        network; assigning ``coefs_[i] = W`` or ``coefs_ = [...]`` writes the
        network's weights (same shapes)."""
        return self._network("coefs_").coefs

    @coefs_.setter
    def coefs_(self, values):
        self._network("coefs_").assign(coefs=values)

    @property
    def intercepts_(self):
        """The bias vector of each layer: views into the network, assignable
        like ``coefs_``."""
        return self._network("intercepts_").intercepts

    @intercepts_.setter
    def intercepts_(self, values):
        self._network("intercepts_").assign(intercepts=values)

    def _network(self, attribute=None):
        net = self.__dict__.get("_net")
        if net is None:
            if attribute is not None:
                raise AttributeError(f"{type(self).__name__} has no {attribute} before it is "
                                     "fitted")
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit "
                                 "or partial_fit first")
        return net

    def _kernels(self):
        return kernels.get(self.backend_)

    def __sizeof__(self):
        """Bytes held, the network's arrays included: dask's scheduler weighs a
        model by this when it decides whether to move it or the data."""
        size = object.__sizeof__(self)
        net = self.__dict__.get("_net")
        if net is not None:
            arrays = [net.params, net.grads, net.state1, net.state2, self._best_params]
            seen = set()
            for a in arrays:
                if a is not None and id(a) not in seen:
                    seen.add(id(a))
                    size += a.nbytes
        return size

    def _start(self, sizes, activation, output, params, solver, backend, early_stopping=False):
        """A fresh network and fresh training records (scikit-learn's: with
        early stopping the best score and its weights are tracked, else the best
        loss; L-BFGS keeps neither)."""
        self._net = Network(sizes, activation, output, params, solver)
        self.backend_ = backend if backend is not None else kernels.BACKEND
        self.n_iter_ = 0
        self.t_ = 0
        self._lr = None
        self._best_params = None
        if solver == "lbfgs":
            return
        self.loss_curve_ = []
        self._no_improvement_count = 0
        if early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
            self._best_params = params.copy()
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None

    def _check_layout(self, sizes, activation, output, solver, dtype):
        """Refuse to continue training a network whose layout or solver the
        hyper-parameters no longer describe."""
        net = self._net
        if (activation == net.activation and output == net.output and solver == net.solver
                and np.dtype(dtype) == net.dtype and net.sizes.tolist() == list(sizes)):
            return
        now = dict(layers=net.sizes.tolist(), activation=net.activation, output=net.output,
                   solver=net.solver, dtype=net.dtype.name)
        asked = dict(layers=[int(s) for s in sizes], activation=activation, output=output,
                     solver=solver, dtype=np.dtype(dtype).name)
        changed = [f"{k}: {now[k]} -> {asked[k]}" for k in now if now[k] != asked[k]]
        if changed:
            raise ValueError("the network's layout, solver or dtype changed after training "
                             f"started ({'; '.join(changed)}); call fit to start over")

    # ------------------------------------------------------- stochastic fit
    def _train(self, data, s, validation=None, incremental=False):
        """Epochs of ``s.solver`` over ``data`` until the stopping rule, or one
        epoch when ``incremental``. ``validation``: (Data, targets, weights)
        scored after every epoch, for early stopping. Returns whether the
        stopping rule ended training."""
        net = self._net
        kern = self._kernels()
        if self._lr is None or not incremental:
            self._lr = LearningRate(s.lr_schedule, s.lr, s.power_t)
        batch = max(1, min(s.batch_size, data.n))
        work = np.empty(_work_size(tuple(net.sizes.tolist()), batch, data.sparse),
                        dtype=net.dtype)
        act, output, solver = (ACTIVATIONS[net.activation], OUTPUTS[net.output],
                               SOLVERS[net.solver])
        stopped = False
        self._report("start", max_iter=1 if incremental else s.max_iter, rows=data.n,
                     incremental=incremental)
        try:
            stopped = self._epochs(data, s, validation, incremental, kern, batch, work,
                                   act, output, solver)
        except KeyboardInterrupt:
            if not self._interrupted():
                raise
        finally:
            self._report("end", stopped=stopped)
        if validation is not None and not incremental and self._best_params is not None:
            np.copyto(net.params, self._best_params)
        return stopped

    def _epochs(self, data, s, validation, incremental, kern, batch, work, act, output,
                solver):
        """The loop of ``_train``; returns whether the stopping rule ended it."""
        net = self._net
        stopped = False
        path = epoch_path(data.X, net.sizes, batch, output, solver)
        preparing = _first_use(kern, data.X, path)
        if preparing:
            self._report("prepare", backend=kern.name, dtype=net.dtype.name)
        with threads.limits(s.n_threads, self.backend_, path):
            for epoch in range(s.max_iter):
                t0 = time.perf_counter()
                order = (self._full_batch_order(data.n) if batch >= data.n
                         else self._epoch_order(data.n))
                data_loss, penalty, step, done = kern._epoch(
                    data.X, data.y, data.Y, data.w, order, net.params, net.grads, net.state1,
                    net.state2, net.step, net.sizes, act, output, solver, self._lr.value,
                    s.momentum, s.nesterov, s.beta1, s.beta2, s.epsilon, s.alpha, batch, work)
                if done < data.n:
                    message = self._divergence_message(data, order, done, s)
                    if validation is None or incremental or not self._diverged(message):
                        raise DivergenceError(message)
                    self._record_diverged_epoch(t0, s)
                    stopped = True
                    break
                net.step = step
                if preparing:
                    self._report("prepared", seconds=time.perf_counter() - t0)
                    _PREPARED.add(_prepared_key(kern, data.X, path))
                    preparing = False
                loss = np.float64((data_loss * s.loss_scale + penalty) / data.n)
                score = (None if validation is None else
                         lambda: self._validation_score(*validation))
                if self._epoch_end(loss, data.n, s, t0, score):
                    stopped = True
                    break
                if incremental:
                    break
            else:
                if not incremental:
                    self._not_converged(s)
        return stopped

    def _record_diverged_epoch(self, t0, s):
        """The epoch that overflowed, in the records of a run that stops there
        and keeps its best validation epoch: a NaN loss and a NaN score (the
        kernel has put the weights and the optimiser state back as they were
        before it; ``_train`` then restores the best epoch's weights)."""
        nan = float("nan")
        self.n_iter_ += 1
        self.loss_ = np.float64(nan)
        self.loss_curve_.append(self.loss_)
        self.validation_scores_.append(nan)
        self._report("epoch", epoch=self.n_iter_, loss=self.loss_, score=nan,
                     seconds=time.perf_counter() - t0, max_iter=s.max_iter)

    def _epoch_end(self, loss, rows, s, t0, score=None):
        """Record an epoch of ``rows`` rows whose mean training loss was
        ``loss``, begun at ``time.perf_counter()`` ``t0``, and apply the stopping
        rule; ``score``: None, or a callable giving the validation score of the
        current parameters. Returns whether training stops."""
        validating = score is not None
        self.n_iter_ += 1
        self.t_ += rows
        self.loss_ = loss
        self.loss_curve_.append(loss)
        if validating:
            score = score()
            self.validation_scores_.append(score)
        self._update_no_improvement(loss, score, s.tol)
        self._lr.epoch_end(self.t_)
        self._report("epoch", epoch=self.n_iter_, loss=loss, score=score,
                     seconds=time.perf_counter() - t0, max_iter=s.max_iter)
        if self._no_improvement_count > s.n_iter_no_change:
            keep_going = self._net.solver == "sgd" and self._lr.stalled()
            self._report("stall", validation=validating, tol=s.tol,
                         n_iter_no_change=s.n_iter_no_change, lr=self._lr.value,
                         stopping=not keep_going)
            if not keep_going:
                return True
            self._no_improvement_count = 0
        return False

    def _update_no_improvement(self, loss, score, tol):
        if score is not None:
            if score < self.best_validation_score_ + tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_params = self._net.params.copy()
        else:
            if loss > self.best_loss_ - tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if loss < self.best_loss_:
                self.best_loss_ = loss

    def _divergence_message(self, data, order, done, s):
        X = data.X if isinstance(data.X, np.ndarray) else data.X[0]
        top = float(np.abs(X).max()) if X.size else 0.0
        return (f"training diverged in epoch {self.n_iter_ + 1} at the batch starting at row "
                f"{done} of the epoch's order: the loss or a weight stopped being finite. "
                f"The parameters are back at their values before that epoch. "
                f"{self._divergence_advice(s, top)}")

    def _divergence_advice(self, s, largest):
        return (f"Try a smaller learning rate (now {s.lr}), scaled inputs (largest |X| is "
                f"{largest:.3g}) or float64.")

    def _not_converged(self, s):
        """Training used every epoch without the stopping rule firing."""

    def _diverged(self, message):
        """An epoch of a ``fit`` with a validation set overflowed (``message``
        says where): return True to stop there, record the epoch with a NaN
        loss and score, and keep the best validation epoch's weights; False to
        raise ``DivergenceError``."""
        return False

    def _interrupted(self):
        """Ctrl-C between two epochs: return True to end training there and
        keep the model (the parameters are those of the last whole epoch),
        False to let the KeyboardInterrupt through."""
        return False

    # --------------------------------------------------------------- L-BFGS
    def _train_lbfgs(self, data, s, iprint=-1):
        """scipy's L-BFGS-B from the current parameters to its end, on ``data``
        in this process (``_lbfgs``). Returns scipy's result object."""
        net = self._net
        kern = self._kernels()
        chunk = max(1, min(LBFGS_CHUNK, data.n))
        work = np.empty(_work_size(tuple(net.sizes.tolist()), chunk, data.sparse),
                        dtype=net.dtype)
        act, output = ACTIVATIONS[net.activation], OUTPUTS[net.output]

        def loss_and_grad(params):
            data_loss, penalty = kern._loss_gradient(
                data.X, data.y, data.Y, data.w, params, net.grads, net.sizes, act, output,
                s.alpha, chunk, work)
            return data_loss * s.loss_scale + penalty, net.grads

        return self._lbfgs(loss_and_grad, s, iprint, loss_path(net.sizes, chunk))

    def _lbfgs(self, loss_and_grad, s, iprint=-1, path=None):
        """scipy's L-BFGS-B from the current parameters to its end, the driver
        of every L-BFGS fit. ``loss_and_grad(params)`` returns the loss at the
        network's flat parameters ``params`` and its gradient (flat, in the same
        layout); ``path``: the kernel it runs in this process, whose threads
        ``n_threads`` sets (None: it runs none here); the solver's own steps
        run on one BLAS thread (``threads.driver``). Returns scipy's result
        object (the parameters hold its solution).

        scipy sees the parameters as scikit-learn packs them, every layer's
        weights and then every layer's biases, so that its arithmetic is
        scikit-learn's, step for step."""
        import scipy.optimize

        net = self._net
        coefs, intercepts = net.views(np.arange(net.params.shape[0]))
        packed = np.concatenate([W.ravel() for W in coefs] + intercepts)

        def fun(x):
            net.params[packed] = x
            loss, grads = loss_and_grad(net.params)
            return loss, grads[packed].astype(np.float64)

        options = {"maxfun": s.max_fun, "maxiter": s.max_iter, "gtol": s.tol}
        if iprint >= 0 and _SCIPY_IPRINT:
            options["iprint"] = iprint
        with threads.driver(self.backend_), threads.limits(s.n_threads, self.backend_, path):
            result = scipy.optimize.minimize(fun, net.params[packed].astype(np.float64),
                                             method="L-BFGS-B", jac=True, options=options)
        if not np.all(np.isfinite(result.x)):
            raise DivergenceError("L-BFGS produced non-finite weights; scale the inputs "
                                  "(their largest magnitude decides the first steps)")
        net.params[packed] = result.x
        self.loss_ = np.float64(result.fun)
        return result

    # ----------------------------------------------------------- prediction
    def _outputs(self, X):
        """(outputs, argmax per row) of the fitted network for kernel input X.
        One row goes through plain loops, not BLAS: no thread cap to set."""
        net = self._net
        args = (X, net.params, net.sizes, ACTIVATIONS[net.activation], OUTPUTS[net.output])
        n_threads = getattr(self, "n_threads", None)
        if n_threads is None or n_rows(X) == 1:
            out, labels, bad = self._kernels()._predict(*args)
        else:
            with threads.limits(n_threads, self.backend_):
                out, labels, bad = self._kernels()._predict(*args)
        if bad >= 0:
            self._nonfinite_output(X, bad)
        return out, labels

    def _nonfinite_output(self, X, row):
        """A row's input or output is not finite: raise ValueError saying which."""
        if isinstance(X, np.ndarray):
            values, columns = X[row], np.arange(X.shape[1])
        else:
            lo, hi = X[2][row], X[2][row + 1]
            values, columns = X[0][lo:hi], X[1][lo:hi]
        if not np.all(np.isfinite(values)):
            at = int(np.argmin(np.isfinite(values)))
            raise ValueError(f"X holds a non-finite value ({values[at]}) at row {row}, column "
                             f"{int(columns[at])}; remove or impute NaN and inf first")
        top = float(np.abs(values).max()) if values.size else 0.0
        raise ValueError(f"the network's output for row {row} is not finite: its inputs are "
                         f"too large for {self._net.dtype} (largest |X| in that row is "
                         f"{top:.3g}); scale the inputs")

    # ------------------------------------------------------------------ hooks
    def _epoch_order(self, n):
        """The order in which an epoch visits the n rows."""
        raise NotImplementedError

    def _full_batch_order(self, n):
        """The order of an epoch whose one batch holds all n rows. It changes
        only the rounding of the gradient's sums, so a model may return the
        rows in their own order (``np.arange(n)``) and save a shuffle that
        costs more than a narrow network's epoch; by default it is
        ``_epoch_order(n)``, whose random draws a model may need to keep."""
        return self._epoch_order(n)

    def _validation_score(self, data, targets, weights):
        """The score of the current network on a validation set."""
        raise NotImplementedError

    def _report(self, event, **info):
        """Progress of ``_train``: 'start' (max_iter, rows, incremental) before the
        first epoch; 'prepare' (backend, dtype) when the compiled kernels are first
        used in this process (numba compiles them, or loads them from its disk
        cache) and 'prepared' (seconds, the first epoch included) after that
        epoch; 'epoch' (epoch, loss, score, seconds, max_iter) after each epoch,
        'stall' (validation, tol, n_iter_no_change, lr, stopping) when the
        stopping rule fires, 'end' (stopped) when training ends, normally or not."""
