"""What differs between the two kinds of fastmlp model that ``DataParallel``
trains: how each is set up on the client, how a row block is checked and
encoded for it, and its training records after an L-BFGS fit.

``family(estimator)`` returns ``SklearnModels`` (``fastmlp.sklearn``'s
``MLPClassifier``, ``MLPRegressor``) or ``MLPModels`` (``fastmlp.MLP``), or
raises TypeError. Each family sets a model up from small stand-ins for the
data: a few rows of zeros in X's dtype and columns, and in y the labels found
in all blocks (classification) or y's first rows (regression), so that the
model's own checks, label encoding and initial weights are those of an
in-memory fit on the whole data.
"""

import copy

import numpy as np

from ..network import STOCHASTIC


def family(estimator):
    """The family of a fastmlp model; TypeError for anything else."""
    from ..model import MLP
    from ..sklearn import _BaseMLP

    if isinstance(estimator, _BaseMLP):
        return SklearnModels
    if isinstance(estimator, MLP):
        return MLPModels
    raise TypeError(f"DataParallel trains fastmlp's models (fastmlp.MLP, "
                    f"fastmlp.sklearn.MLPClassifier or MLPRegressor), got "
                    f"{type(estimator).__module__}.{type(estimator).__name__}")


class SklearnModels:
    """``fastmlp.sklearn``'s ``MLPClassifier`` and ``MLPRegressor``: the steps of
    their ``fit`` before training, and their records after it."""

    @staticmethod
    def classify(est):
        """True or False: whether y holds labels (None: decided from y)."""
        return est._is_classifier()

    @staticmethod
    def warm(est):
        return bool(est.warm_start)

    @staticmethod
    def validation_fraction(est):
        return est.validation_fraction if est.early_stopping and est.solver in STOCHASTIC else 0.0

    @staticmethod
    def random_state(est):
        return est._random_state

    @staticmethod
    def start(est, X, y, n_rows):
        """Set ``est`` up for a fit on ``n_rows`` rows like X, y (its stand-ins),
        as its ``fit`` does: checks, labels, fresh weights (or, with
        ``warm_start``, the fitted ones and a fresh optimiser). Returns the
        engine's Settings."""
        from sklearn.utils import check_random_state

        from ..sklearn import _ACTIVATIONS, _OUT_ACTIVATIONS

        hidden = est.hidden_layer_sizes
        hidden = list(hidden) if hasattr(hidden, "__iter__") else [hidden]
        if np.any(np.array(hidden) <= 0):
            raise ValueError("hidden_layer_sizes must be > 0, got %s." % hidden)
        est._validate_params()
        first_pass = "_net" not in est.__dict__ or not est.warm_start
        X, y = est._validate_input(X, y, incremental=False, reset=first_pass)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        layer_units = [X.shape[1]] + hidden + [y.shape[1]]
        output = est._output(y)
        if not first_pass:
            est._check_layout(layer_units, _ACTIVATIONS[est.activation], output,
                              est._net.solver, est._net.dtype)
        est._random_state = check_random_state(est.random_state)
        if first_pass:
            dtype = np.dtype(est.dtype) if est.dtype is not None else X.dtype
            params = est._initial_params(layer_units, dtype)
            est._start(layer_units, _ACTIVATIONS[est.activation], output, params, est.solver,
                       est.backend, early_stopping=est.early_stopping and est.solver in STOCHASTIC)
            est.n_outputs_ = y.shape[1]
            est.n_layers_ = len(layer_units)
            est.out_activation_ = _OUT_ACTIVATIONS[output]
        else:
            est._net.reset_optimizer(est.solver)
        est.n_iter_ = 0  # scikit-learn counts the epochs of the current call
        return est._settings(n_rows, y.shape[1])

    @staticmethod
    def for_workers(est, labels, counts):
        """The copy of a set-up model that prepares blocks: it checks each block
        against the whole data's classes, and a 'balanced' class weight is
        computed from the whole data's class counts (``labels``, ``counts``)."""
        model = copy.deepcopy(est)
        model.warm_start = False
        if est._is_classifier() and est.class_weight == "balanced" and labels.ndim == 1:
            model.class_weight = dict(zip(labels.tolist(),
                                          (counts.sum() / (len(labels) * counts)).tolist()))
        return model

    @staticmethod
    def prepare(model, X, y, sample_weight):
        from sklearn.utils.validation import _check_sample_weight

        X, y = model._validate_input(X, y, incremental=True, reset=False)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, ensure_non_negative=True)
        sample_weight = model._with_class_weight(y, sample_weight)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        return model._data(X, y, sample_weight, model._net.dtype)

    @staticmethod
    def lbfgs_iprint(est):
        return 1 if est.verbose else -1

    @staticmethod
    def lbfgs_done(est, result, s):
        from sklearn.utils.optimize import _check_optimize_result

        est.n_iter_ = _check_optimize_result("lbfgs", result, est.max_iter)


class MLPModels:
    """``fastmlp.MLP``: the steps of its ``fit`` before training, and its
    records after it."""

    @staticmethod
    def classify(est):
        return {"classification": True, "regression": False}.get(est.task)

    @staticmethod
    def warm(est):
        return False

    @staticmethod
    def validation_fraction(est):
        return est.validation if est.solver in STOCHASTIC else 0.0

    @staticmethod
    def random_state(est):
        return est._rng

    @staticmethod
    def start(est, X, y, n_rows):
        from .. import checks
        from ..model import _auto_task

        hp = checks.check_params(est)
        task = est.task if est.task != "auto" else _auto_task(y)
        data, _, labels, y_1d = est._prepare(X, y, None, hp, task, None)
        rng, sizes, params = est._initial(data, hp, labels)
        est._begin(rng, sizes, params, labels, y_1d,
                   early_stopping=hp["validation"] > 0 and est.solver in STOCHASTIC)
        return est._settings(hp)

    @staticmethod
    def for_workers(est, labels, counts):
        return copy.deepcopy(est)

    @staticmethod
    def prepare(model, X, y, sample_weight):
        from .. import checks

        hp = checks.check_params(model)
        task = "classification" if model._net.output == "softmax" else "regression"
        return model._prepare(X, y, sample_weight, hp, task, None, first=False)[0]

    @staticmethod
    def lbfgs_iprint(est):
        return -1

    @staticmethod
    def lbfgs_done(est, result, s):
        est.n_iter_ = int(result.nit)
        if result.status == 1:
            est._not_converged(s)
