"""The two backends train identically: each is the other's oracle."""

import itertools
import warnings

import numpy as np
import pytest

from fastmlp import MLP


def rel_diff(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def make_data(task, n=45, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    if task == "classification":
        y = np.argmax(X[:, :3] + 0.3 * rng.standard_normal((n, 3)), axis=1)
    else:
        y = np.stack([X[:, 0] - X[:, 1], np.tanh(X[:, 2])], axis=1)
    return X, y


def train(backend, X, y, **kw):
    model = MLP(backend=backend, epochs=5, tol=0.0, patience=100, random_state=7, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y)
    return model


GRID = list(itertools.product(
    ["identity", "sigmoid", "tanh", "relu"],
    ["classification", "regression"],
    [("sgd", False), ("sgd", True), ("adam", False)],
    [1, 7, None],  # one row, a batch leaving an odd remainder (45 = 6 * 7 + 3), everything
))


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-9), ("float32", 1e-4)])
@pytest.mark.parametrize("activation,task,solver,batch", GRID)
def test_backends_train_identically(activation, task, solver, batch, dtype, tol):
    X, y = make_data(task)
    name, nesterov = solver
    kw = dict(hidden=(5, 4), activation=activation, solver=name, nesterov=nesterov,
              lr=0.01, batch_size=batch or len(X), dtype=dtype,
              l2=1e-3)
    a = train("numba", X, y, **kw)
    b = train("numpy", X, y, **kw)
    assert a.backend_ == "numba" and b.backend_ == "numpy"
    assert len(a.loss_curve_) == len(b.loss_curve_) == 5
    assert rel_diff(a.loss_curve_, b.loss_curve_) <= tol
    for Wa, Wb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert Wa.dtype == np.dtype(dtype)
        assert rel_diff(Wa, Wb) <= tol
    if task == "classification":
        pa, pb = a.predict_proba(X), b.predict_proba(X)
        assert rel_diff(pa, pb) <= tol
        np.testing.assert_allclose(pa.sum(axis=1), 1.0, rtol=1e-5 if dtype == "float32" else 1e-12)
        # labels agree wherever the top probability is not a near tie
        top2 = np.sort(pb, axis=1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > 10 * tol
        assert np.array_equal(a.predict(X)[clear], b.predict(X)[clear])
    else:
        assert rel_diff(a.predict(X), b.predict(X)) <= tol
    # training changed the weights: the comparison is not between two initial states
    c = MLP(backend="numpy", random_state=7, epochs=1, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c.partial_fit(X, y)
    assert rel_diff(a.coefs_[0], c.coefs_[0]) > tol
