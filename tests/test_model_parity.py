"""The two backends train identically: each is the other's oracle.

Comparisons are elementwise: |a - b| <= rtol * |b| + atol, where atol is the
rounding a value of the layer's typical size can pick up (``ATOL`` times the
root mean square of the reference layer), so that small entries are checked
too and not only relative to the largest one.
"""

import itertools
import warnings

import numpy as np
import pytest
import scipy.sparse

from fastmlp import MLP

RTOL = {"float64": 1e-9, "float32": 2e-4}
ATOL = {"float64": 1e-11, "float32": 2e-5}


def assert_same(a, b, dtype, what):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = float(np.sqrt(np.mean(b * b))) if b.size else 0.0
    np.testing.assert_allclose(a, b, rtol=RTOL[dtype], atol=ATOL[dtype] * scale,
                               err_msg=what)


def make_data(task, n=45, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    if task == "classification":
        y = np.argmax(X[:, :3] + 0.3 * rng.standard_normal((n, 3)), axis=1)
    else:
        y = np.stack([X[:, 0] - X[:, 1], np.tanh(X[:, 2])], axis=1)
    return X, y


def train(backend, X, y, fit_kw=None, **kw):
    model = MLP(backend=backend, random_state=7, **{"epochs": 5, "tol": 0.0,
                                                      "patience": 100, **kw})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y, **(fit_kw or {}))
    return model


def compare(a, b, X, dtype, task):
    assert a.backend_ == "numba" and b.backend_ == "numpy"
    assert a.n_iter_ == b.n_iter_
    assert_same(a.loss_curve_, b.loss_curve_, dtype, "loss_curve_")
    for i, (Wa, Wb) in enumerate(zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_)):
        assert Wa.dtype == np.dtype(dtype)
        assert_same(Wa, Wb, dtype, f"layer array {i}")
    if task == "classification":
        pa, pb = a.predict_proba(X), b.predict_proba(X)
        assert_same(pa, pb, dtype, "predict_proba")
        # labels agree wherever the top probability is not a near tie
        top2 = np.sort(pb, axis=1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > 1e-3
        assert np.array_equal(a.predict(X)[clear], b.predict(X)[clear])
    else:
        assert_same(a.predict(X), b.predict(X), dtype, "predict")


GRID = list(itertools.product(
    ["identity", "sigmoid", "tanh", "relu"],
    ["classification", "regression"],
    [("sgd", False), ("sgd", True), ("adam", False)],
    [1, 7, None],  # one row, a batch leaving an odd remainder (45 = 6 * 7 + 3), everything
))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("activation,task,solver,batch", GRID)
def test_backends_train_identically(activation, task, solver, batch, dtype):
    X, y = make_data(task)
    name, nesterov = solver
    kw = dict(hidden=(5, 4), activation=activation, solver=name, nesterov=nesterov,
              lr=0.01, batch_size=batch or len(X), dtype=dtype, l2=1e-3)
    a, b = train("numba", X, y, **kw), train("numpy", X, y, **kw)
    assert len(a.loss_curve_) == 5
    compare(a, b, X, dtype, task)
    # training changed the weights: the comparison is not between two initial states
    c = MLP(backend="numpy", random_state=7, epochs=1, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c.partial_fit(X, y)
    moved = np.max(np.abs(a.coefs_[0] - c.coefs_[0]))
    assert moved > 3 * (RTOL[dtype] * np.abs(c.coefs_[0]).max() + ATOL[dtype])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_backends_agree_with_weights_sparse_input_and_validation(task, dtype):
    X, y = make_data(task, n=80)
    X[np.abs(X) < 0.7] = 0.0
    w = np.random.default_rng(3).uniform(0.2, 3.0, len(X))
    kw = dict(hidden=(6,), activation="tanh", lr=0.02, batch_size=16, dtype=dtype,
              validation=0.25, epochs=6)
    for X_in in (X, scipy.sparse.csr_matrix(X)):
        a = train("numba", X_in, y, fit_kw={"sample_weight": w}, **kw)
        b = train("numpy", X_in, y, fit_kw={"sample_weight": w}, **kw)
        compare(a, b, X, dtype, task)
        assert_same(a.validation_scores_, b.validation_scores_, dtype, "validation_scores_")


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_backends_agree_on_lbfgs(task):
    X, y = make_data(task, n=60)
    kw = dict(hidden=(5,), activation="tanh", solver="lbfgs", dtype="float64", epochs=15)
    a, b = train("numba", X, y, **kw), train("numpy", X, y, **kw)
    assert a.n_iter_ == b.n_iter_ > 5
    for Wa, Wb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert_same(Wa, Wb, "float64", "lbfgs weights")
    assert_same(a.loss_, b.loss_, "float64", "loss_")


def test_sparse_and_dense_input_give_the_same_model():
    X, y = make_data("classification", n=60)
    X[np.abs(X) < 0.5] = 0.0
    for backend in ("numba", "numpy"):
        dense = train(backend, X, y, hidden=(5,), dtype="float64")
        sparse = train(backend, scipy.sparse.csc_matrix(X), y, hidden=(5,), dtype="float64")
        for Wa, Wb in zip(dense.coefs_ + dense.intercepts_, sparse.coefs_ + sparse.intercepts_):
            assert_same(Wa, Wb, "float64", f"{backend} dense vs sparse")
        np.testing.assert_array_equal(dense.predict(X), sparse.predict(scipy.sparse.csr_matrix(X)))
