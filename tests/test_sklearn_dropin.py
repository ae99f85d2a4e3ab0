"""fastmlp.sklearn against scikit-learn itself: the estimator checks, and the same
models, attributes, rules and errors as ``sklearn.neural_network``.

scikit-learn is the oracle here, so this module imports it unconditionally: where
it is missing the module fails to import and the suite fails (``.ci/run``
installs it through the ``test`` extra).

The drop-in draws the initial weights, the shuffles and the early-stopping split
from the same random generator as scikit-learn, so a model fitted with the same
``random_state`` starts from identical weights and visits the rows in the same
order; everything else must then agree to rounding (float64, relative 1e-9).
"""

import inspect
import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse
from sklearn import neural_network as sk
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.estimator_checks import (
    check_sample_weight_equivalence_on_dense_data,
    check_sample_weight_equivalence_on_sparse_data,
    parametrize_with_checks,
)

from fastmlp import DivergenceError
from fastmlp.datasets import load_digits, split, standardize
from fastmlp.sklearn import MLPClassifier, MLPRegressor

RTOL = 1e-9
EXTRAS = ("class_weight", "dtype", "backend", "n_threads")

_rng = np.random.default_rng(0)
X = _rng.standard_normal((150, 6))
TARGETS = {
    "binary": (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int),
    "multiclass": np.array(["a", "b", "c"])[np.argmax(X[:, :3] + 0.5 * _rng.standard_normal(
        (150, 3)), axis=1)],
    "multilabel": (X[:, :3] + 0.3 * _rng.standard_normal((150, 3)) > 0).astype(int),
    "regression": X[:, 0] - X[:, 1] ** 2,
    "multi-output": np.c_[X[:, 0] - X[:, 1] ** 2, np.tanh(X[:, 2])],
    "poisson": _rng.poisson(np.exp(0.3 * X[:, 0])).astype(float),
}
CLASSIFICATION = ("binary", "multiclass", "multilabel")
WEIGHTS = _rng.uniform(0.5, 2.0, 150)


def pair(target, **kw):
    """(fastmlp's, scikit-learn's) estimator for ``target`` with parameters ``kw``."""
    if target in CLASSIFICATION:
        return MLPClassifier(**kw), sk.MLPClassifier(**kw)
    if target == "poisson":
        kw = {"loss": "poisson", **kw}
    return MLPRegressor(**kw), sk.MLPRegressor(**kw)


def fit_both(target, X_=X, sample_weight=None, **kw):
    ours, theirs = pair(target, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X_, TARGETS[target], sample_weight=sample_weight)
        theirs.fit(X_, TARGETS[target], sample_weight=sample_weight)
    return ours, theirs


def assert_same_model(ours, theirs, rtol=RTOL):
    assert len(ours.coefs_) == len(theirs.coefs_)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_,
                    strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.t_ == theirs.t_
    # losses of order 1 (or small: a fitted model's), compared to 1e-9 of 1 at least
    np.testing.assert_allclose(ours.loss_, theirs.loss_, rtol=rtol, atol=rtol)
    if hasattr(theirs, "loss_curve_"):
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=rtol, atol=rtol)


# ------------------------------------------------------------ estimator checks
@parametrize_with_checks([MLPClassifier(max_iter=100), MLPRegressor(max_iter=100)])
def test_sklearn_estimator_checks(estimator, check):
    """Every check of scikit-learn's, with the parameters its own test suite gives
    its MLPs (max_iter=100), none expected to fail."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


@pytest.mark.parametrize("check", [check_sample_weight_equivalence_on_dense_data,
                                   check_sample_weight_equivalence_on_sparse_data])
@pytest.mark.parametrize("estimator", [
    MLPClassifier(max_iter=100, solver="lbfgs"),
    MLPRegressor(max_iter=100, solver="sgd", tol=1e-2, random_state=42)],
    ids=["classifier-lbfgs", "regressor-sgd"])
def test_sample_weight_equivalence_with_sklearns_parameters(estimator, check):
    """scikit-learn runs these checks on its own MLPs with these parameters
    (PER_ESTIMATOR_CHECK_PARAMS); they pass with them too."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(type(estimator).__name__, estimator)


@pytest.mark.parametrize("ours,theirs", [(MLPClassifier, sk.MLPClassifier),
                                         (MLPRegressor, sk.MLPRegressor)])
def test_constructor_is_sklearns_plus_the_extras(ours, theirs):
    mine = inspect.signature(ours).parameters
    ref = inspect.signature(theirs).parameters
    assert list(mine)[: len(ref)] == list(ref)
    for name, param in ref.items():
        assert mine[name].default == param.default, name
        assert mine[name].kind == param.kind, name
    extras = [p for p in mine if p not in ref]
    assert extras == [e for e in EXTRAS if e in mine]
    assert all(mine[e].default is None for e in extras)


def test_methods_and_their_signatures_are_sklearns():
    for ours, theirs in ((MLPClassifier, sk.MLPClassifier), (MLPRegressor, sk.MLPRegressor)):
        for name in ("fit", "partial_fit", "predict", "score", "predict_proba",
                     "predict_log_proba"):
            if not hasattr(theirs, name):
                assert not hasattr(ours, name), name
                continue
            assert (inspect.signature(getattr(ours, name))
                    == inspect.signature(getattr(theirs, name))), name


# ------------------------------------------------------------ the same models
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_same_random_state_gives_sklearns_model(solver, target, weighted):
    kw = dict(hidden_layer_sizes=(7, 5), solver=solver, max_iter=15, random_state=3,
              activation="relu" if target == "poisson" else "tanh",
              learning_rate_init=0.01, batch_size=32)
    ours, theirs = fit_both(target, sample_weight=WEIGHTS if weighted else None, **kw)
    assert_same_model(ours, theirs)
    if target in CLASSIFICATION:
        np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
        np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X),
                                   rtol=RTOL, atol=1e-12)
    else:
        np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=RTOL, atol=1e-12)
    assert ours.score(X, TARGETS[target]) == pytest.approx(theirs.score(X, TARGETS[target]),
                                                           rel=RTOL)


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_from_identical_initial_weights(solver, target):
    """Both start from the same given weights (warm_start after assigning coefs_ and
    intercepts_): one epoch of sgd/adam, or a whole lbfgs run, gives the same model."""
    y = TARGETS[target]
    ours, theirs = pair(target, hidden_layer_sizes=(6,), solver=solver, warm_start=True,
                        max_iter=1 if solver != "lbfgs" else 50, random_state=0,
                        learning_rate_init=0.02, batch_size=16, activation="logistic")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, y)
        theirs.fit(X, y)
        rng = np.random.default_rng(5)
        weights = [rng.uniform(-0.4, 0.4, W.shape) for W in theirs.coefs_]
        biases = [rng.uniform(-0.4, 0.4, b.shape) for b in theirs.intercepts_]
        theirs.coefs_ = [W.copy() for W in weights]
        theirs.intercepts_ = [b.copy() for b in biases]
        ours.coefs_ = weights
        ours.intercepts_ = biases
        ours.fit(X, y)
        theirs.fit(X, y)
    assert_same_model(ours, theirs)


@pytest.mark.parametrize("target", ["multiclass", "binary", "regression"])
def test_early_stopping_picks_sklearns_epoch(target):
    ours, theirs = fit_both(target, hidden_layer_sizes=(8,), early_stopping=True,
                            validation_fraction=0.2, n_iter_no_change=4, max_iter=300,
                            learning_rate_init=0.01, random_state=1)
    assert ours.n_iter_ == theirs.n_iter_ < 300
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=RTOL)
    assert ours.best_validation_score_ == pytest.approx(theirs.best_validation_score_,
                                                        rel=RTOL)
    assert ours.best_loss_ is None and theirs.best_loss_ is None
    assert_same_model(ours, theirs)  # the best epoch's weights, restored


@pytest.mark.parametrize("schedule", ["constant", "invscaling", "adaptive"])
@pytest.mark.parametrize("nesterov", [False, True])
def test_learning_rate_schedules(schedule, nesterov):
    ours, theirs = fit_both("multiclass", hidden_layer_sizes=(7,), solver="sgd",
                            learning_rate=schedule, nesterovs_momentum=nesterov, max_iter=200,
                            learning_rate_init=0.1, n_iter_no_change=3, tol=1e-3,
                            random_state=3)
    assert_same_model(ours, theirs)


def test_warm_start_and_partial_fit_sequences():
    y = TARGETS["multiclass"]
    ours, theirs = pair("multiclass", hidden_layer_sizes=(7,), random_state=2, max_iter=5,
                        warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for estimator in (ours, theirs):
            estimator.fit(X, y)
            estimator.fit(X[:100], y[:100])  # warm start: fresh optimiser, same weights
            for start in range(0, 150, 40):
                estimator.partial_fit(X[start : start + 40], y[start : start + 40])
    assert_same_model(ours, theirs)
    assert ours.n_iter_ == theirs.n_iter_ == 1  # scikit-learn counts the current call


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_input_without_densifying(fmt):
    Xs = scipy.sparse.random(150, 40, density=0.1, format=fmt, random_state=0) * 3
    y = TARGETS["multiclass"]
    ours, theirs = pair("multiclass", hidden_layer_sizes=(9,), random_state=0, max_iter=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(Xs, y)
        theirs.fit(Xs, y)
    assert_same_model(ours, theirs)
    np.testing.assert_allclose(ours.predict_proba(Xs), theirs.predict_proba(Xs), rtol=RTOL,
                               atol=1e-12)


def test_float32_input_trains_in_float32_like_sklearn():
    X32 = X.astype(np.float32)
    ours, theirs = fit_both("multiclass", X_=X32, hidden_layer_sizes=(8,), max_iter=5,
                            random_state=0)
    assert all(W.dtype == np.float32 for W in ours.coefs_ + ours.intercepts_)
    assert_same_model(ours, theirs, rtol=2e-4)
    assert ours.predict_proba(X32).dtype == theirs.predict_proba(X32).dtype


def test_dtype_float32_forces_the_fast_path_on_float64_input():
    ours = MLPClassifier((8,), max_iter=5, random_state=0, dtype="float32")
    exact = MLPClassifier((8,), max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, TARGETS["multiclass"])
        exact.fit(X, TARGETS["multiclass"])
    assert all(W.dtype == np.float32 for W in ours.coefs_)
    assert ours.predict_proba(X).dtype == np.float32
    for a, b in zip(ours.coefs_, exact.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


# ------------------------------------------------------------ attributes
@pytest.mark.parametrize("early_stopping", [False, True])
@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_fitted_attributes_are_sklearns(solver, target, early_stopping):
    ours, theirs = fit_both(target, hidden_layer_sizes=(5, 4), max_iter=4, random_state=0,
                            solver=solver, early_stopping=early_stopping)
    public = {name for name in vars(theirs) if name.endswith("_") and not name.startswith("_")}
    public |= {"coefs_", "intercepts_"}
    for name in sorted(public):
        mine, ref = getattr(ours, name), getattr(theirs, name)
        assert type(mine) is type(ref) or (isinstance(ref, list) and isinstance(mine, list)), name
        if isinstance(ref, np.ndarray):
            assert mine.shape == ref.shape and mine.dtype == ref.dtype, name
        elif isinstance(ref, list) and ref and isinstance(ref[0], np.ndarray):
            assert [a.shape for a in mine] == [a.shape for a in ref], name
        elif isinstance(ref, list):
            assert len(mine) == len(ref), name
        elif name not in ("loss_", "best_loss_", "best_validation_score_"):
            assert mine == ref, name
    for name in ("loss_curve_", "best_loss_", "validation_scores_", "best_validation_score_"):
        assert hasattr(ours, name) == hasattr(theirs, name), name


def test_feature_names_in_from_a_dataframe():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    ours, theirs = fit_both("binary", X_=frame, hidden_layer_sizes=(4,), max_iter=3,
                            random_state=0)
    np.testing.assert_array_equal(ours.feature_names_in_, theirs.feature_names_in_)
    renamed = frame.rename(columns={"f0": "other"})
    for estimator in (ours, theirs):
        with pytest.raises(ValueError, match="feature names"):
            estimator.predict(renamed)


def test_binary_has_one_logistic_output_and_multilabel_predicts_indicators():
    ours, theirs = fit_both("binary", hidden_layer_sizes=(4,), max_iter=3, random_state=0)
    assert ours.out_activation_ == theirs.out_activation_ == "logistic"
    assert ours.coefs_[-1].shape == theirs.coefs_[-1].shape == (4, 1)
    assert ours.predict_proba(X).shape == (150, 2)
    ours, theirs = fit_both("multilabel", hidden_layer_sizes=(4,), max_iter=3, random_state=0)
    assert ours.predict(X).shape == theirs.predict(X).shape == (150, 3)
    np.testing.assert_allclose(ours.predict_log_proba(X), theirs.predict_log_proba(X),
                               rtol=RTOL, atol=1e-12)
    ours, theirs = fit_both("poisson", hidden_layer_sizes=(4,), max_iter=3, random_state=0)
    assert ours.out_activation_ == theirs.out_activation_ == "exp"


# ------------------------------------------------------------ errors
def _refusals():
    y = TARGETS["multiclass"]
    return [
        ("nan", lambda e: e.fit(np.where(np.arange(6) == 2, np.nan, X), y)),
        ("inf-predict", lambda e: e.fit(X, y).predict(np.full((2, 6), np.inf))),
        ("1d-X", lambda e: e.fit(X[:, 0], y)),
        ("features", lambda e: e.fit(X, y).predict(X[:, :4])),
        ("lengths", lambda e: e.fit(X, y[:-1])),
        ("one-class-sample-weight-shape", lambda e: e.fit(X, y, sample_weight=np.ones(3))),
        ("partial-fit-first-without-classes", lambda e: e.partial_fit(X, y)),
        ("partial-fit-early-stopping",
         lambda e: e.set_params(early_stopping=True).partial_fit(X, y, classes=["a", "b", "c"])),
        ("hidden-zero", lambda e: e.set_params(hidden_layer_sizes=(3, 0)).fit(X, y)),
        ("bad-solver", lambda e: e.set_params(solver="newton").fit(X, y)),
        ("bad-alpha", lambda e: e.set_params(alpha=-1.0).fit(X, y)),
        ("bad-momentum", lambda e: e.set_params(momentum=1.5).fit(X, y)),
        ("unfitted-predict", lambda e: e.predict(X)),
        ("new-class-partial-fit",
         lambda e: e.partial_fit(X, y, classes=["a", "b", "c"]).partial_fit(X, np.full(150, "z"))),
        ("warm-start-new-classes",
         lambda e: e.set_params(warm_start=True).fit(X, y).fit(X, np.full(150, "z"))),
    ]


@pytest.mark.parametrize("name,call", _refusals(), ids=[n for n, _ in _refusals()])
def test_refusals_raise_what_sklearn_raises(name, call):
    ours, theirs = MLPClassifier((4,), max_iter=2), sk.MLPClassifier((4,), max_iter=2)
    outcomes = []
    for estimator in (ours, theirs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                call(estimator)
            except Exception as exc:  # noqa: BLE001 - the exception is what is compared
                outcomes.append((type(exc), str(exc)))
            else:
                outcomes.append(None)
    assert outcomes[1] is not None, "scikit-learn accepted it"
    assert outcomes[0] is not None, f"fastmlp accepted what scikit-learn refuses: {outcomes[1]}"
    assert outcomes[0][0] is outcomes[1][0], outcomes
    assert outcomes[0][1].replace("fastmlp.sklearn.", "") == outcomes[1][1], outcomes


def test_partial_fit_of_lbfgs_is_absent_for_the_classifier_as_in_sklearn():
    for estimator in (MLPClassifier(solver="lbfgs"), sk.MLPClassifier(solver="lbfgs")):
        assert not hasattr(estimator, "partial_fit")
    for estimator in (MLPRegressor(solver="lbfgs"), sk.MLPRegressor(solver="lbfgs")):
        assert hasattr(estimator, "partial_fit")


def test_invalid_parameters_raise_sklearns_invalid_parameter_error():
    for value, name in ((-1, "max_iter"), ("relu6", "activation"), (0, "learning_rate_init")):
        for estimator in (MLPClassifier(), sk.MLPClassifier()):
            with pytest.raises(InvalidParameterError, match=f"The '{name}' parameter of "
                                                            "MLPClassifier must be"):
                estimator.set_params(**{name: value}).fit(X, TARGETS["binary"])
    with pytest.raises(InvalidParameterError, match="The 'backend' parameter"):
        MLPClassifier(backend="cuda").fit(X, TARGETS["binary"])
    with pytest.raises(InvalidParameterError, match="The 'dtype' parameter"):
        MLPRegressor(dtype="float16").fit(X, TARGETS["regression"])


def test_a_refused_call_changes_nothing():
    model = MLPClassifier((4,), max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, TARGETS["multiclass"])
    before = pickle.dumps(model)
    for bad in (lambda: model.partial_fit(X[:, :5], TARGETS["multiclass"]),
                lambda: model.partial_fit(np.full((3, 6), np.nan), ["a", "b", "c"]),
                lambda: model.partial_fit(X, np.full(150, "new")),
                lambda: model.set_params(hidden_layer_sizes=(9,)).partial_fit(
                    X, TARGETS["multiclass"])):
        with pytest.raises(ValueError):
            bad()
        model.set_params(hidden_layer_sizes=(4,))
        assert pickle.dumps(model) == before


def test_changed_layout_is_refused_by_partial_fit():
    model = MLPClassifier((4,), random_state=0).partial_fit(X, TARGETS["binary"], classes=[0, 1])
    model.set_params(hidden_layer_sizes=(6,))
    with pytest.raises(ValueError, match=r"layers: \[6, 4, 1\] -> \[6, 6, 1\]"):
        model.partial_fit(X, TARGETS["binary"])
    model.set_params(hidden_layer_sizes=(4,), activation="tanh")
    with pytest.raises(ValueError, match="activation: relu -> tanh"):
        model.partial_fit(X, TARGETS["binary"])


def test_divergence_is_a_value_error_and_leaves_finite_weights():
    model = MLPRegressor(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=1e6,
                         max_iter=20, random_state=0)
    with pytest.raises(ValueError, match="diverged") as info:
        model.fit(X * 1e3, TARGETS["regression"] * 1e3)
    assert isinstance(info.value, DivergenceError)
    assert all(np.isfinite(W).all() for W in model.coefs_ + model.intercepts_)


def test_divergence_message_starts_with_sklearns():
    """scikit-learn's test_nonfinite_params: its words first, fastmlp's detail after."""
    rng = np.random.RandomState(0)
    X_huge = np.finfo(np.float64).max * rng.uniform(size=(10, 2))
    y = rng.standard_normal(size=10)
    for solver in ("adam", "sgd"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            with pytest.raises(ValueError) as info:
                MLPRegressor(solver=solver).fit(X_huge, y)
        message = str(info.value)
        assert message.startswith("Solver produced non-finite parameter weights. The input "
                                  "data may contain large values and need to be preprocessed. ")
        assert isinstance(info.value, DivergenceError)
        assert "scale the inputs" in message or "scaled inputs" in message


def _diverging(max_iter):
    """scikit-learn's test_mlp_diverging_loss: identity units and a learning rate
    of 1 on iris overflow after a few epochs."""
    from sklearn.datasets import load_iris

    X_iris, y_iris = load_iris(return_X_y=True)
    model = MLPRegressor(hidden_layer_sizes=100, activation="identity", solver="sgd",
                         learning_rate_init=1, max_iter=max_iter, early_stopping=True,
                         n_iter_no_change=10, random_state=0)
    return model, X_iris, y_iris


def test_divergence_with_early_stopping_keeps_the_best_epoch():
    model, X_iris, y_iris = _diverging(20)
    with pytest.warns(ConvergenceWarning, match="diverged in epoch") as record:
        model.fit(X_iris, y_iris)
    scores = model.validation_scores_
    overflowed = model.n_iter_
    assert len(record) == 1 and f"epoch {overflowed}" in str(record[0].message)
    assert 1 < overflowed < 20  # it stopped at the overflow, before max_iter
    assert len(scores) == len(model.loss_curve_) == overflowed
    assert isinstance(scores[-1], float) and np.isnan(scores[-1]) and np.isnan(model.loss_)
    assert np.isfinite(model.loss_curve_[:-1]).all() and np.isfinite(scores[0])
    best = int(np.nanargmax(scores))  # (an epoch before may score NaN: outputs overflow)
    assert model.best_validation_score_ == scores[best]
    # the weights are those of a run that ends at the best epoch (same draws)
    shorter, _, _ = _diverging(best + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        shorter.fit(X_iris, y_iris)
    for ours, expected in zip(model.coefs_ + model.intercepts_,
                              shorter.coefs_ + shorter.intercepts_):
        np.testing.assert_array_equal(ours, expected)
    assert np.isfinite(model._net.state1).all()  # the optimiser state too (SGD's velocity)
    assert np.isfinite(model.predict(X_iris)).all()
    # without a validation set to fall back on, the same run is an error
    model.set_params(early_stopping=False)
    with pytest.raises(DivergenceError, match="Solver produced non-finite parameter weights"):
        model.fit(X_iris, y_iris)
    assert all(np.isfinite(W).all() for W in model.coefs_ + model.intercepts_)


def test_negative_poisson_targets_are_refused():
    with pytest.raises(ValueError, match="negative"):
        MLPRegressor(loss="poisson").fit(X, TARGETS["regression"])


# ------------------------------------------------------------ fastmlp's extras
def test_class_weight_is_sample_weight_by_class():
    y = TARGETS["multiclass"]
    for class_weight in ("balanced", {"a": 3.0, "b": 1.0, "c": 0.5}):
        weighted = MLPClassifier((5,), max_iter=4, random_state=0, class_weight=class_weight)
        by_rows = MLPClassifier((5,), max_iter=4, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            weighted.fit(X, y, sample_weight=WEIGHTS)
            by_rows.fit(X, y, sample_weight=WEIGHTS * compute_sample_weight(class_weight, y))
        assert_same_model(weighted, by_rows, rtol=1e-12)
    with pytest.raises(ValueError, match="multilabel"):
        MLPClassifier(class_weight="balanced").fit(X, TARGETS["multilabel"])


def test_backends_give_the_same_model():
    models = []
    for backend in ("numba", "numpy"):
        model = MLPClassifier((6,), max_iter=5, random_state=0, backend=backend)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            models.append(model.fit(X, TARGETS["multiclass"]))
    assert_same_model(*models, rtol=1e-10)
    assert models[0].backend_ == "numba" and models[1].backend_ == "numpy"


def test_n_threads_changes_nothing_but_threads():
    a, b = (MLPClassifier((6,), max_iter=3, random_state=0, n_threads=n) for n in (1, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a.fit(X, TARGETS["binary"])
        b.fit(X, TARGETS["binary"])
    assert_same_model(a, b, rtol=1e-12)


# ------------------------------------------------------------ the protocol
def test_clone_pickle_grid_search_and_pipeline():
    model = MLPClassifier((5,), max_iter=30, random_state=0)
    assert clone(model).get_params() == model.get_params()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search = GridSearchCV(model, {"hidden_layer_sizes": [(3,), (6,)], "alpha": [1e-4, 1e-1]},
                              cv=3).fit(X, TARGETS["multiclass"])
        reference = GridSearchCV(sk.MLPClassifier((5,), max_iter=30, random_state=0),
                                 {"hidden_layer_sizes": [(3,), (6,)], "alpha": [1e-4, 1e-1]},
                                 cv=3).fit(X, TARGETS["multiclass"])
        scores = cross_val_score(make_pipeline(StandardScaler(), model), X,
                                 TARGETS["multiclass"], cv=3)
    assert search.best_params_ == reference.best_params_
    np.testing.assert_allclose(search.cv_results_["mean_test_score"],
                               reference.cv_results_["mean_test_score"], rtol=RTOL)
    assert scores.shape == (3,)
    restored = pickle.loads(pickle.dumps(search.best_estimator_))
    np.testing.assert_array_equal(restored.predict_proba(X),
                                  search.best_estimator_.predict_proba(X))


def test_unfitted_model_has_no_weights():
    model = MLPClassifier()
    assert not hasattr(model, "coefs_")
    with pytest.raises(NotFittedError):
        model.predict(X)


def test_same_accuracy_on_digits_over_ten_seeds():
    X_all, y_all = load_digits()
    ours, theirs = [], []
    for seed in range(10):
        X_train, X_test, y_train, y_test = split(X_all, y_all, 0.25, random_state=seed)
        X_train, X_test = standardize(X_train, X_test)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            ours.append(MLPClassifier(random_state=seed, max_iter=40)
                        .fit(X_train, y_train).score(X_test, y_test))
            theirs.append(sk.MLPClassifier(random_state=seed, max_iter=40)
                          .fit(X_train, y_train).score(X_test, y_test))
    n_test = len(y_test)
    assert abs(np.mean(ours) - np.mean(theirs)) <= 1.0 / n_test, (ours, theirs)
    assert np.mean(ours) > 0.95
