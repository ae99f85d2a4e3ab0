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
        # the training defaults agree ((100,) relu, adam, lr 1e-3, L2 1e-4, batch 200,
        # at most 200 epochs, the same stopping rule with tol 1e-4 and 10 epochs);
        # the networks do not: MLP starts ReLU layers He-uniform with zero biases and
        # classifies two classes with a 2-unit softmax, scikit-learn starts every layer
        # Glorot-uniform (biases too) and uses one logistic unit; its drop-in,
        # fastmlp.sklearn, is the one that matches scikit-learn exactly
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours.append(MLP(random_state=seed).fit(X_train, y_train).score(X_test, y_test))
            ref = MLPClassifier(random_state=seed).fit(X_train, y_train)
            theirs.append(ref.score(X_test, y_test))
    return np.array(ours), np.array(theirs), len(y_test)


@pytest.mark.parametrize("load", [load_digits, load_breast_cancer])
def test_real_data_accuracy_matches_sklearn(load):
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


def test_convergence_warning_when_epochs_run_out():
    X, y = separable(200, 4, seed=7)
    with pytest.warns(ConvergenceWarning, match="epochs=3"):
        MLP((4,), epochs=3, random_state=0).fit(X, y)


def test_stopping_rule_counts_epochs_without_improvement():
    """The documented rule, worked by hand: with a tol larger than any loss, no epoch
    but the first (which improves on the initial best of +inf) improves by tol, so
    after epoch k the count of epochs without improvement is k - 1, and training stops
    at the first epoch where it exceeds patience: k = patience + 2."""
    X, y = separable(200, 4, seed=7)
    for patience in (1, 3, 6):
        model = MLP((4,), epochs=500, tol=1e9, patience=patience, random_state=0).fit(X, y)
        assert model.n_iter_ == patience + 2
        assert model.best_loss_ == min(model.loss_curve_)
    # tol 0 on a loss that keeps falling: no epoch counts, every epoch runs
    with pytest.warns(ConvergenceWarning):
        model = MLP((4,), epochs=30, tol=0.0, patience=1, lr=0.003, random_state=0).fit(X, y)
    assert model.n_iter_ == 30 and np.all(np.diff(model.loss_curve_) < 0)


def test_validation_fraction_stops_on_the_score_and_keeps_the_best_weights():
    X, y = separable(400, 4, seed=12)
    model = MLP((8,), lr=0.05, epochs=300, validation=0.25, patience=4, tol=1e-9,
                random_state=0).fit(X, y)
    scores = model.validation_scores_
    assert len(scores) == model.n_iter_ == len(model.loss_curve_) < 300
    assert model.best_validation_score_ == max(scores) and model.best_loss_ is None
    best = int(np.argmax(scores))
    # stops patience + 1 epochs after the last improvement of the best score
    assert model.n_iter_ >= best + 1 + 4
    # the weights kept are the best epoch's: retraining up to that epoch gives them
    again = MLP((8,), lr=0.05, epochs=best + 1, validation=0.25, patience=10**6, tol=0.0,
                random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        again.fit(X, y)
    np.testing.assert_array_equal(model._net.params, again._net.params)


@pytest.mark.parametrize("backend", BACKENDS)
def test_divergence_puts_back_the_weights_of_before_the_call(backend):
    """Two good epochs, then a learning rate that blows up within an epoch (after
    some of its batches were applied): the failing call leaves the parameters and
    the optimiser state exactly as they were before it."""
    X, y = separable(200, 4, seed=8)
    X = X * 10
    model = MLP((8,), "identity", solver="sgd", lr=0.01, batch_size=10, random_state=0,
                backend=backend)
    model.partial_fit(X, y).partial_fit(X, y)
    params, velocity, step = model._net.params.copy(), model._net.state1.copy(), model._net.step
    model.set_params(lr=1e6)
    with pytest.raises(DivergenceError, match=r"batch starting at row [1-9]\d* .*smaller lr"):
        model.partial_fit(X, y)
    np.testing.assert_array_equal(model._net.params, params)
    np.testing.assert_array_equal(model._net.state1, velocity)
    assert model._net.step == step and model.n_iter_ == 2 and len(model.loss_curve_) == 2
    model.set_params(lr=0.01).partial_fit(X, y)  # and training goes on from there
    assert model.n_iter_ == 3 and np.isfinite(model._net.params).all()
    with pytest.raises(DivergenceError):
        MLP((8,), "identity", solver="sgd", lr=1e6, batch_size=10, random_state=0,
            backend=backend).fit(X, y)


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


# --------------------------------------------------------------- the traps
def test_shuffle_reorders_minibatches_but_not_one_full_batch():
    """With one batch of every row the order only permutes the terms of the
    batch's sums, so a full-batch fit takes the rows in order: shuffle on or off,
    the same model. With smaller batches shuffling changes the batches."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((64, 4))
    y = (X[:, 0] - X[:, 2] > 0).astype(int)

    def fit(batch, shuffle):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return MLP((5,), "tanh", solver="sgd", batch_size=batch, epochs=5, shuffle=shuffle,
                       dtype="float64", random_state=1).fit(X, y)

    full_on, full_off = fit(64, True), fit(64, False)
    for a, b in zip(full_on.coefs_ + full_on.intercepts_, full_off.coefs_ + full_off.intercepts_):
        np.testing.assert_array_equal(a, b)
    assert full_on.loss_curve_ == full_off.loss_curve_
    small_on, small_off = fit(8, True), fit(8, False)
    assert not np.array_equal(small_on.coefs_[0], small_off.coefs_[0])


def test_float_targets_that_look_like_labels_warn_with_the_task_to_pass():
    X, y = separable(100, 4, seed=13)
    with pytest.warns(UserWarning, match=r"all whole numbers, 2 distinct \(0, 1\).*"
                                         r"task='classification'"):
        model = MLP((4,), epochs=2).fit(X, y.astype(float))
    assert not hasattr(model, "classes_")  # the rule itself is unchanged
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        MLP((4,), epochs=2, task="regression").fit(X, y.astype(float))
        MLP((4,), epochs=2).fit(X, y.astype(float) + 0.5)  # not whole numbers


def test_integer_targets_with_many_values_warn_with_the_task_to_pass():
    rng = np.random.default_rng(14)
    X = rng.standard_normal((300, 3))
    ages = rng.integers(18, 80, 300)
    with pytest.warns(UserWarning, match=r"\d+ distinct integer values.*task='regression'"):
        model = MLP((4,), epochs=1).fit(X, ages)
    assert len(model.classes_) == len(np.unique(ages))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        MLP((4,), epochs=1, task="classification").fit(X, ages)
        MLP((4,), epochs=1).fit(X, ages % 10)  # ten classes: no warning


def test_changed_layout_is_refused_by_partial_fit():
    X, y = separable(100, 4, seed=15)
    model = MLP((5,), random_state=0).partial_fit(X, y)
    before = model._net.params.copy()
    for change, message in (({"hidden": (7,)}, r"layers: \[4, 5, 2\] -> \[4, 7, 2\]"),
                            ({"activation": "tanh"}, "activation: relu -> tanh"),
                            ({"solver": "sgd"}, "solver: adam -> sgd"),
                            ({"dtype": "float64"}, "dtype: float32 -> float64")):
        model.set_params(**change)
        with pytest.raises(ValueError, match=message + ".*call fit to start over"):
            model.partial_fit(X, y)
        model.set_params(hidden=(5,), activation="relu", solver="adam", dtype="float32")
    np.testing.assert_array_equal(model._net.params, before)
    model.set_params(hidden=(7,)).fit(X, y)  # fit starts over with the new layout
    assert model.coefs_[0].shape == (4, 7)


def test_assigning_coefs_and_intercepts_takes_effect():
    X, y = separable(100, 4, seed=16)
    model = MLP((5,), epochs=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    W0 = np.zeros((4, 5), dtype=np.float32)
    model.coefs_[0] = W0
    b1 = np.array([3.0, -3.0], dtype=np.float32)
    model.intercepts_[1] = b1
    # every hidden unit is now relu(0 + b0) = relu(b0): the same output for every row
    hidden = np.maximum(model.intercepts_[0], 0)
    logits = hidden @ model.coefs_[1] + b1
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(model.predict_proba(X), np.tile(expected, (len(X), 1)),
                               rtol=1e-6)
    model.coefs_ = [np.ones((4, 5)), np.ones((5, 2))]
    assert model.coefs_[1].dtype == np.float32 and np.all(model.coefs_[0] == 1)
    with pytest.raises(ValueError, match=r"coefs_\[0\] has shape \(4, 5\)"):
        model.coefs_[0] = np.zeros((4, 6))
    with pytest.raises(ValueError, match="must hold 2 arrays"):
        model.coefs_ = [np.ones((4, 5))]
    with pytest.raises(TypeError, match="length is fixed"):
        model.coefs_.append(np.ones((2, 2)))


def test_mlp_follows_the_estimator_protocol():
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = separable(240, 4, seed=17)
    model = MLP((6,), epochs=20, lr=0.01, random_state=0, task="classification")
    copy = clone(model)
    assert copy is not model and copy.get_params() == model.get_params()
    assert model.get_params(deep=True) == model.get_params(deep=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        grid = {"hidden": [(2,), (8,)], "lr": [1e-4, 0.05]}
        search = GridSearchCV(model, grid, cv=KFold(3)).fit(X, y)
        # the same search by hand: every candidate's mean score over the same folds
        by_hand = {}
        for hidden in grid["hidden"]:
            for lr in grid["lr"]:
                fold_scores = []
                for train, test in KFold(3).split(X):
                    candidate = MLP(**{**model.get_params(), "hidden": hidden, "lr": lr})
                    fold_scores.append(candidate.fit(X[train], y[train]).score(X[test], y[test]))
                by_hand[(hidden, lr)] = np.mean(fold_scores)
        best = max(by_hand, key=by_hand.get)
        assert search.best_params_ == {"hidden": best[0], "lr": best[1]}
        assert search.best_score_ == pytest.approx(by_hand[best])
        scores = cross_val_score(clone(model).set_params(epochs=80, lr=0.05), X, y, cv=4)
        pipe = Pipeline([("scale", StandardScaler()), ("mlp", model)])
        pipe.set_params(mlp__hidden=(5,), mlp__epochs=30).fit(X, y)
    assert scores.shape == (4,) and scores.min() > 0.8
    assert pipe.named_steps["mlp"].coefs_[0].shape == (4, 5)
    assert pipe.score(X, y) > 0.9
    with pytest.raises(ValueError, match="unknown parameter 'hiden'"):
        model.set_params(hiden=(3,))
