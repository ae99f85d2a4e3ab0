"""The model trains: the hand-written networks that get stuck, real data, the API."""

import warnings

import numpy as np
import pytest

from fastmlp import MLP, ConvergenceWarning, DivergenceError, NotFittedError
from fastmlp.datasets import load_breast_cancer, load_digits, split, standardize

BACKENDS = ["numba", "numpy"]


def separable(n, d, seed):
    """Two linearly separable classes with a margin."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(d)
    X = rng.standard_normal((n, d))
    margin = X @ w / np.linalg.norm(w)
    X = X[np.abs(margin) > 0.2]
    return X, (X @ w > 0).astype(int)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ionosphere_shaped_network_learns(backend):
    # 34 features, hidden (20, 20) sigmoid, softmax output, batch size 1
    X, y = separable(351, 34, seed=1)
    model = MLP((20, 20), "sigmoid", solver="sgd", lr=0.01, batch_size=1, epochs=30,
                random_state=0, backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    curve = model.loss_curve_
    assert curve[-1] < curve[0] / 10, curve
    pred = model.predict(X)
    assert set(pred) == {0, 1}
    assert model.score(X, y) > 0.97


@pytest.mark.parametrize("backend", BACKENDS)
def test_pulsar_shaped_network_learns(backend):
    # 8 features, one tanh hidden layer of 3 units, full batch
    X, y = separable(14318, 8, seed=2)
    model = MLP((3,), "tanh", solver="adam", lr=0.05, batch_size=len(X), epochs=300,
                random_state=0, backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    curve = model.loss_curve_
    assert curve[-1] < curve[0] / 10, (curve[0], curve[-1])
    assert set(model.predict(X)) == {0, 1}
    assert model.score(X, y) > 0.97


def _accuracies(load, seeds):
    from sklearn.neural_network import MLPClassifier

    X, y = load()
    ours, theirs = [], []
    for seed in seeds:
        X_train, X_test, y_train, y_test = split(X, y, 0.25, random_state=seed)
        X_train, X_test = standardize(X_train, X_test)
        # the defaults of both libraries match: (100,) relu, adam, lr 1e-3, L2 1e-4,
        # batch 200, 200 epochs, tol 1e-4 over 10 epochs
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours.append(MLP(random_state=seed).fit(X_train, y_train).score(X_test, y_test))
            ref = MLPClassifier(random_state=seed).fit(X_train, y_train)
            theirs.append(ref.score(X_test, y_test))
    return np.array(ours), np.array(theirs), len(y_test)


@pytest.mark.parametrize("load", [load_digits, load_breast_cancer])
def test_real_data_accuracy_matches_sklearn(load):
    pytest.importorskip("sklearn")
    ours, theirs, n_test = _accuracies(load, seeds=range(8))
    assert ours.min() > 0.93
    # the mean over 8 splits may trail scikit-learn's by less than one test sample
    assert ours.mean() >= theirs.mean() - 1.0 / n_test, (ours, theirs)


def test_string_labels_and_probabilities():
    X, y = separable(300, 5, seed=3)
    labels = np.array(["no", "yes"])[y]
    model = MLP((8,), epochs=50, random_state=0, lr=0.01).fit(X, labels)
    assert list(model.classes_) == ["no", "yes"]
    assert set(model.predict(X)) <= {"no", "yes"}
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert model.score(X, labels) > 0.95


def test_regression_rule_and_forcing():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((400, 3))
    y = X[:, 0] - 2 * X[:, 1]
    model = MLP((16,), epochs=300, lr=0.01, random_state=0, dtype="float64").fit(X, y)
    assert not hasattr(model, "classes_")
    assert model.predict(X).shape == (400,)
    assert model.score(X, y) > 0.98
    Y = np.stack([y, -y], axis=1)
    two = MLP((16,), epochs=100, lr=0.01, random_state=0).fit(X, Y)
    assert two.predict(X).shape == (400, 2)
    # integer targets mean classes unless regression is forced
    yi = np.round(y).astype(int)
    assert hasattr(MLP((4,), epochs=2).fit(X, yi), "classes_")
    forced = MLP((4,), epochs=2, task="regression").fit(X, yi)
    assert not hasattr(forced, "classes_") and forced.predict(X).dtype == np.float32


def test_partial_fit_continues_and_keeps_state():
    X, y = separable(200, 4, seed=5)
    a = MLP((6,), random_state=0, lr=0.01)
    for _ in range(3):
        a.partial_fit(X, y)
    assert a.n_iter_ == 3 and len(a.loss_curve_) == 3
    b = MLP((6,), random_state=0, lr=0.01, epochs=3, tol=0.0, patience=100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        b.fit(X, y)
    np.testing.assert_array_equal(a.loss_curve_, b.loss_curve_)
    for Wa, Wb in zip(a.coefs_, b.coefs_):
        np.testing.assert_array_equal(Wa, Wb)
    with pytest.raises(ValueError, match="not in classes_"):
        a.partial_fit(X, y + 5)


def test_partial_fit_classes_cover_later_labels():
    X, y = separable(100, 4, seed=6)
    model = MLP((4,), random_state=0).partial_fit(X, y, classes=[0, 1, 2])
    assert list(model.classes_) == [0, 1, 2]
    model.partial_fit(X, np.full(len(X), 2))
    assert model.predict_proba(X).shape == (len(X), 3)


def test_early_stopping_and_convergence_warning():
    X, y = separable(200, 4, seed=7)
    with pytest.warns(ConvergenceWarning, match="epochs=3"):
        MLP((4,), epochs=3, random_state=0).fit(X, y)
    model = MLP((4,), epochs=500, tol=1e-2, patience=3, random_state=0, lr=0.01).fit(X, y)
    assert model.n_iter_ < 500
    # replay the rule: the stall count first reaches patience at the last epoch
    best, stall, stalls = np.inf, 0, []
    for loss in model.loss_curve_:
        stall = stall + 1 if loss > best - 1e-2 else 0
        best = min(best, loss)
        stalls.append(stall)
    assert stalls[-1] == 3 and max(stalls[:-1]) < 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_divergence_stops_with_finite_weights(backend):
    X, y = separable(200, 4, seed=8)
    model = MLP((8,), "relu", solver="sgd", lr=1e6, batch_size=10, epochs=20,
                random_state=0, backend=backend)
    with pytest.raises(DivergenceError, match="smaller lr"):
        model.fit(X, y)
    for W in model.coefs_ + model.intercepts_:
        assert np.isfinite(W).all()
    assert np.abs(model.coefs_[0]).max() > 10  # the weights did blow up before the stop
    try:
        proba = model.predict_proba(X)
    except ValueError as exc:  # outputs that overflow are refused, never NaN
        assert "not finite" in str(exc)
    else:
        assert np.isfinite(proba).all()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_is_honoured(dtype):
    X, y = separable(100, 4, seed=9)
    model = MLP((5,), dtype=dtype, epochs=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    assert all(W.dtype == np.dtype(dtype) for W in model.coefs_ + model.intercepts_)
    assert model.predict_proba(X).dtype == np.dtype(dtype)
    assert all(isinstance(v, float) for v in model.loss_curve_)


def test_not_fitted_and_repr():
    model = MLP((3,), lr=0.5)
    assert repr(model) == "MLP(hidden=(3,), lr=0.5)"
    with pytest.raises(NotFittedError, match="not fitted"):
        model.predict(np.zeros((1, 2)))
    assert repr(MLP()) == "MLP()"


def test_same_seed_same_model_and_different_seed_differs():
    X, y = separable(150, 4, seed=10)
    fits = [MLP((5,), epochs=5, random_state=s, tol=0).fit(X, y) for s in (1, 1, 2)]
    np.testing.assert_array_equal(fits[0].coefs_[0], fits[1].coefs_[0])
    assert not np.array_equal(fits[0].coefs_[0], fits[2].coefs_[0])
