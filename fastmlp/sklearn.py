"""scikit-learn's ``MLPClassifier`` and ``MLPRegressor``, on fastmlp's engine.

    from fastmlp.sklearn import MLPClassifier     # instead of sklearn.neural_network

The classes have scikit-learn 1.9's constructor parameters and defaults,
methods, fitted attributes and rules: the same input validation (scikit-learn's
own), the same random draws for the initial weights, the shuffles and the
early-stopping split (so a ``random_state`` gives the same model, up to
rounding), the same stopping rule, learning-rate schedules, ``warm_start`` and
``partial_fit`` behaviour. The arithmetic runs in fastmlp's kernels, with three
differences that change no result beyond rounding: the loss is computed from
the logits (log-sum-exp, softplus) instead of from probabilities clipped at
the dtype's epsilon, so ``loss_curve_`` can differ where a sample's predicted
probability of its class is below 1e-16 (float64); a training run that
overflows stops with ``fastmlp.DivergenceError`` (a ``ValueError`` whose
message starts with scikit-learn's) keeping finite weights, where scikit-learn
finishes with NaN weights and then raises a ``ValueError`` (with
``early_stopping=True`` both keep the best validation epoch's weights and
record the overflowing epoch's validation score as NaN; fastmlp stops there
with a ``ConvergenceWarning``, scikit-learn runs on); and negative sample
weights are refused.

Extra parameters (after scikit-learn's):

- ``class_weight``: None, 'balanced' or a dict label -> weight; multiplies each
  sample's weight by its class's (scikit-learn's MLP has no such parameter);
- ``dtype``: None (scikit-learn's rule: float32 X trains in float32, anything
  else in float64), 'float32' (the fast path: float64 X is converted once) or
  'float64';
- ``backend``: None (``FASTMLP_BACKEND``), 'numba' or 'numpy';
- ``n_threads``: None or a cap on the BLAS and numba threads of each call.

Requires scikit-learn (``pip install fastmlp[sklearn]``).
"""

import contextlib
import warnings
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as _SklearnClassifier
from sklearn.neural_network import MLPRegressor as _SklearnRegressor
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target, unique_labels
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from .engine import Data, Engine, Settings
from .errors import DivergenceError
from .kernels import ACTIVATIONS, BACKENDS, OUTPUTS
from .kernels.api import as_input
from .network import STOCHASTIC

__all__ = ["MLPClassifier", "MLPRegressor"]

_EXTRA_CONSTRAINTS = {
    "class_weight": [StrOptions({"balanced"}), dict, None],
    "dtype": [StrOptions({"float32", "float64"}), None],
    "backend": [StrOptions(set(BACKENDS)), None],
    "n_threads": [Interval(Integral, 1, None, closed="left"), None],
}


class _BaseMLP(Engine, BaseEstimator):
    """What the classifier and the regressor share: scikit-learn's ``_fit`` on
    fastmlp's engine."""

    # ------------------------------------------------------------------ fit
    def _fit(self, X, y, sample_weight=None, incremental=False):
        with _unchanged_on_error(self):  # a refused call changes nothing
            hidden = self.hidden_layer_sizes
            if not hasattr(hidden, "__iter__"):
                hidden = [hidden]
            hidden = list(hidden)
            if np.any(np.array(hidden) <= 0):
                raise ValueError("hidden_layer_sizes must be > 0, got %s." % hidden)
            if incremental and self.early_stopping:
                raise ValueError("partial_fit does not support early_stopping=True")
            first_pass = "_net" not in self.__dict__ or (not self.warm_start
                                                         and not incremental)
            X, y = self._validate_input(X, y, incremental, reset=first_pass)
            if sample_weight is not None:
                sample_weight = _check_sample_weight(sample_weight, X,
                                                     ensure_non_negative=True)
            sample_weight = self._with_class_weight(y, sample_weight)
            if y.ndim == 1:
                y = y.reshape((-1, 1))
            layer_units = [X.shape[1]] + hidden + [y.shape[1]]
            output = self._output(y)
            if not first_pass:
                # a warm-start fit may switch solvers (its optimiser starts afresh, as
                # in scikit-learn); partial_fit continues the one it has
                solver = self.solver if incremental else self._net.solver
                self._check_layout(layer_units, _ACTIVATIONS[self.activation], output,
                                   solver, self._net.dtype)
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            dtype = np.dtype(self.dtype) if self.dtype is not None else X.dtype
            params = self._initial_params(layer_units, dtype)
            self._start(layer_units, _ACTIVATIONS[self.activation], output, params,
                        self.solver, self.backend,
                        early_stopping=self.early_stopping and self.solver in STOCHASTIC)
            self.n_outputs_ = y.shape[1]
            self.n_layers_ = len(layer_units)
            self.out_activation_ = _OUT_ACTIVATIONS[output]
        elif not incremental:
            self._net.reset_optimizer(self.solver)
        dtype = self._net.dtype
        try:
            if self.solver == "lbfgs":
                s = self._settings(X.shape[0], y.shape[1])
                result = self._train_lbfgs(self._data(X, y, sample_weight, dtype), s,
                                           iprint=1 if self.verbose else -1)
                self.n_iter_ = _check_optimize_result("lbfgs", result, self.max_iter)
            else:
                self._fit_stochastic(X, y, sample_weight, dtype, incremental)
        except DivergenceError as exc:  # scikit-learn's words first, then where and why
            raise DivergenceError(f"{_NON_FINITE} {exc}") from None
        return self

    def _fit_stochastic(self, X, y, sample_weight, dtype, incremental):
        validation = None
        if self.early_stopping:
            stratify = y if self._is_classifier() and self.n_outputs_ == 1 else None
            parts = train_test_split(
                X, y, *([] if sample_weight is None else [sample_weight]),
                random_state=self._random_state, test_size=self.validation_fraction,
                stratify=stratify)
            X, X_val, y, y_val = parts[:4]
            sample_weight, w_val = (parts[4], parts[5]) if sample_weight is not None else (
                None, None)
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
            if self._is_classifier():
                y_val = self._label_binarizer.inverse_transform(y_val)
            validation = (self._data(X_val, None, None, dtype), y_val, w_val)
        n = X.shape[0]
        self._sample_idx = np.arange(n, dtype=int)
        if self.batch_size != "auto" and self.batch_size > n:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is "
                          "going to be clipped")
        self.n_iter_ = 0  # scikit-learn counts the epochs of the current call
        self._train(self._data(X, y, sample_weight, dtype), self._settings(n, y.shape[1]),
                    validation, incremental)

    def _settings(self, n_samples, n_outputs):
        sgd = self.solver == "sgd"
        scale = 1.0 / n_outputs if self._loss_name() == "squared_error" else 1.0
        batch = min(200, n_samples) if self.batch_size == "auto" else int(
            np.clip(self.batch_size, 1, n_samples))
        return Settings(
            solver=self.solver, lr=self.learning_rate_init, alpha=self.alpha, batch_size=batch,
            max_iter=self.max_iter, tol=self.tol, n_iter_no_change=self.n_iter_no_change,
            lr_schedule=self.learning_rate if sgd else "constant", power_t=self.power_t,
            momentum=self.momentum, nesterov=self.nesterovs_momentum, beta1=self.beta_1,
            beta2=self.beta_2, epsilon=self.epsilon, max_fun=self.max_fun,
            n_threads=self.n_threads, loss_scale=scale)

    def _initial_params(self, layer_units, dtype):
        """scikit-learn's initialisation, draw for draw: per layer, W then b
        uniform in +-sqrt(factor / (fan_in + fan_out)), factor 2 for logistic
        hidden units, else 6."""
        factor = 2.0 if self.activation == "logistic" else 6.0
        parts = []
        for fan_in, fan_out in zip(layer_units[:-1], layer_units[1:]):
            bound = np.sqrt(factor / (fan_in + fan_out))
            parts.append(self._random_state.uniform(-bound, bound, (fan_in, fan_out)).ravel())
            parts.append(self._random_state.uniform(-bound, bound, fan_out))
        return np.concatenate(parts).astype(dtype)

    def _data(self, X, y, sample_weight, dtype):
        """Data for the kernels: X in ``dtype`` (dense C-contiguous or CSR) and
        y in the output layer's terms."""
        Xk = as_input(X, dtype, convert=True)
        w = None if sample_weight is None else np.ascontiguousarray(sample_weight,
                                                                    dtype=np.float64)
        if y is None:
            return Data(Xk, w=w, n_features=X.shape[1])
        if self._net.output == "softmax":
            return Data(Xk, y=np.ascontiguousarray(np.argmax(y, axis=1), dtype=np.int64), w=w,
                        n_features=X.shape[1])
        return Data(Xk, Y=np.ascontiguousarray(y, dtype=dtype), w=w, n_features=X.shape[1])

    # ----------------------------------------------------------- engine hooks
    def _epoch_order(self, n):
        if self.shuffle:
            # scikit-learn's sklearn.utils.shuffle(sample_idx, random_state=...),
            # which permutes the previous epoch's order
            self._sample_idx = self._sample_idx[self._random_state.permutation(n)]
            return self._sample_idx
        return self._sample_idx

    def _validation_score(self, data, targets, weights):
        pred = self._predict_from(data.X)
        if np.issubdtype(pred.dtype, np.floating) and not np.isfinite(pred).all():
            return np.nan
        return self._score_function(targets, pred, sample_weight=weights)

    def _report(self, event, **info):
        if not self.verbose:
            return
        if event == "epoch":
            print("Iteration %d, loss = %.8f" % (info["epoch"], info["loss"]))
            if info["score"] is not None:
                print("Validation score: %f" % info["score"])
        elif event == "stall":
            what = "Validation score" if info["validation"] else "Training loss"
            msg = ("%s did not improve more than tol=%f for %d consecutive epochs."
                   % (what, info["tol"], info["n_iter_no_change"]))
            if not info["stopping"]:
                print(msg + " Setting learning rate to %f" % info["lr"])
            elif self.solver == "sgd" and self.learning_rate == "adaptive":
                print(msg + " Learning rate too small. Stopping.")
            else:
                print(msg + " Stopping.")

    def _not_converged(self, s):
        warnings.warn("Stochastic Optimizer: Maximum iterations (%d) reached and the "
                      "optimization hasn't converged yet." % self.max_iter, ConvergenceWarning)

    def _interrupted(self):
        warnings.warn("Training interrupted by user.")
        return True

    def _diverged(self, message):
        # scikit-learn lets such a run finish on the best validation epoch's weights
        warnings.warn(f"{message} Training stopped there (that epoch's validation score is "
                      "NaN), and the weights of the best validation epoch were restored.",
                      ConvergenceWarning)
        return True

    # ------------------------------------------------------------- predict
    def _forward_pass_fast(self, X, check_input=True):
        """The network's output for X (validated as scikit-learn does)."""
        if check_input:
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        return self._outputs(as_input(X, self._net.dtype, convert=True))[0]

    def _predict_from(self, Xk):
        """Predictions for kernel input Xk (validation inside training): NaN
        where the network's output is not finite, never an error."""
        net = self._net
        out, _, _ = self._kernels()._predict(Xk, net.params, net.sizes,
                                             ACTIVATIONS[net.activation], OUTPUTS[net.output])
        return self._to_predictions(out)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def __sklearn_is_fitted__(self):
        return "_net" in self.__dict__


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """scikit-learn's ``MLPClassifier`` (same parameters, attributes and results),
    trained by fastmlp's compiled kernels. See the module docstring for the
    extra parameters ``class_weight``, ``dtype``, ``backend`` and ``n_threads``
    and for the few differences."""

    _parameter_constraints = {**_SklearnClassifier._parameter_constraints,
                              **_EXTRA_CONSTRAINTS}

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 class_weight=None, dtype=None, backend=None, n_threads=None):
        _store_arguments(self, locals())

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X and target(s) y (class labels, or a
        2-D indicator matrix for multilabel); ``sample_weight`` weighs each
        sample's loss. Returns self."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y) (sgd and adam), keeping weights and optimiser
        state; ``classes`` lists every class on the first call. Returns self."""
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def _check_solver(self):
        if self.solver not in STOCHASTIC:
            raise AttributeError("partial_fit is only available for stochastic optimizers. "
                                 "%s is not stochastic." % self.solver)
        return True

    def _is_classifier(self):
        return True

    def _loss_name(self):
        return "log_loss"

    def _output(self, y):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if "classes_" not in self.__dict__ or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in "
                        f"the previous call to fit. Previously got {self.classes_}, `y` has "
                        f"{classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` "
                                 f"has {self.classes_}. 'y' has {classes}.")
        return X, self._label_binarizer.transform(y).astype(bool)

    def _with_class_weight(self, y, sample_weight):
        """sample_weight times each sample's class weight (``class_weight``)."""
        if self.class_weight is None:
            return sample_weight
        if y.ndim == 2 and y.shape[1] > 1 and self._label_binarizer.y_type_ != "multiclass":
            raise ValueError("class_weight is not supported for multilabel y")
        labels = self._label_binarizer.inverse_transform(y)
        weights = compute_sample_weight(self.class_weight, labels)
        return weights if sample_weight is None else weights * sample_weight

    def _to_predictions(self, out):
        if self.n_outputs_ == 1:
            out = out.ravel()
        return self._label_binarizer.inverse_transform(out)

    def _score_function(self, y, pred, sample_weight=None):
        return accuracy_score(y, pred, sample_weight=sample_weight)

    def predict(self, X):
        """The predicted classes (a 2-D indicator matrix for multilabel)."""
        check_is_fitted(self)
        return self._to_predictions(self._forward_pass_fast(X))

    def predict_proba(self, X):
        """Probability estimates, (n_samples, n_classes); for multilabel the
        probability of each label."""
        check_is_fitted(self)
        y_pred = self._forward_pass_fast(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        if y_pred.ndim == 1:
            return np.vstack([1 - y_pred, y_pred]).T
        return y_pred

    def predict_log_proba(self, X):
        """The logarithm of ``predict_proba``."""
        y_prob = self.predict_proba(X)
        return np.log(y_prob, out=y_prob)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """scikit-learn's ``MLPRegressor`` (same parameters, attributes and results,
    squared error or Poisson loss), trained by fastmlp's compiled kernels. See
    the module docstring for the extra parameters and the few differences."""

    _parameter_constraints = {**_SklearnRegressor._parameter_constraints,
                              **{k: v for k, v in _EXTRA_CONSTRAINTS.items()
                                 if k != "class_weight"}}

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 dtype=None, backend=None, n_threads=None):
        _store_arguments(self, locals())

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X and target(s) y; ``sample_weight``
        weighs each sample's loss. Returns self."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    # scikit-learn's MLPRegressor offers partial_fit for every solver (lbfgs
    # then runs to convergence from the current weights); so does this one
    @available_if(lambda est: est._check_solver)
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y), keeping weights and optimiser state. Returns self."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def _check_solver(self):
        return True

    def _is_classifier(self):
        return False

    def _loss_name(self):
        return self.loss

    def _output(self, y):
        return "poisson" if self.loss == "poisson" else "squared"

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             y_numeric=True, dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError("Some value(s) of y are negative which is not allowed for "
                             "Poisson regression.")
        return X, y

    def _with_class_weight(self, y, sample_weight):
        return sample_weight

    def _to_predictions(self, out):
        return out.ravel() if out.shape[1] == 1 else out

    def _score_function(self, y, pred, sample_weight=None):
        return r2_score(y, pred, sample_weight=sample_weight)

    def predict(self, X):
        """The predicted values, (n_samples,) or (n_samples, n_outputs)."""
        check_is_fitted(self)
        return self._to_predictions(self._forward_pass_fast(X))


def _store_arguments(estimator, arguments):
    """What an estimator's __init__ does and all it does: keep each argument
    under its own name (``arguments`` is the __init__'s locals())."""
    for name, value in arguments.items():
        if name != "self":
            setattr(estimator, name, value)


@contextlib.contextmanager
def _unchanged_on_error(estimator):
    """Put the estimator's attributes back as they were if the block raises
    (scikit-learn's validation sets some, e.g. ``n_features_in_``, as it goes)."""
    saved = dict(estimator.__dict__)
    try:
        yield
    except BaseException:
        estimator.__dict__.clear()
        estimator.__dict__.update(saved)
        raise


#: scikit-learn's message for a run that ends with non-finite weights.
_NON_FINITE = ("Solver produced non-finite parameter weights. The input data may contain large "
               "values and need to be preprocessed.")
_ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
_OUT_ACTIVATIONS = {"softmax": "softmax", "logistic": "logistic", "squared": "identity",
                    "poisson": "exp"}
