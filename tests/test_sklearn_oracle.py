"""One epoch of fastmlp's kernels against scikit-learn's MLP from the same weights.

scikit-learn (float64) is an independent implementation of the same algorithm:
minibatch SGD, softmax + cross-entropy (three classes) or identity + squared
error, L2 penalty ``alpha`` scaled by the batch size. Both start from the same
weights and visit the rows in order.
"""

import warnings

import numpy as np
import pytest

from fastmlp.kernels import get, n_params
from fastmlp.net import views

sklearn_nn = pytest.importorskip("sklearn.neural_network")

SK_ACTIVATION = {"identity": "identity", "sigmoid": "logistic", "tanh": "tanh", "relu": "relu"}


def sklearn_epoch(task, activation, solver, nesterov, batch, coefs, intercepts, X, y):
    cls = sklearn_nn.MLPClassifier if task == "classification" else sklearn_nn.MLPRegressor
    kw = dict(hidden_layer_sizes=tuple(W.shape[1] for W in coefs[:-1]),
              activation=SK_ACTIVATION[activation], solver=solver, alpha=1e-2,
              batch_size=batch, learning_rate_init=0.01,
              momentum=0.9, nesterovs_momentum=nesterov, shuffle=False, random_state=0)
    model = cls(**kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if task == "classification":
            model.partial_fit(X, y, classes=np.unique(y))
        else:
            model.partial_fit(X, y)
    # restart from our weights with a fresh optimiser
    model.coefs_ = [W.copy() for W in coefs]
    model.intercepts_ = [b.copy() for b in intercepts]
    del model._optimizer
    model.loss_curve_ = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.partial_fit(X, y)
    return model


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("activation", ["identity", "sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("solver,nesterov", [("sgd", False), ("sgd", True), ("adam", False)])
@pytest.mark.parametrize("batch", [1, 8])
def test_one_epoch_matches_sklearn(backend, task, activation, solver, nesterov, batch):
    rng = np.random.default_rng(11)
    n = 30
    X = rng.standard_normal((n, 4))
    if task == "classification":
        y = np.argmax(X[:, :3] + 0.5 * rng.standard_normal((n, 3)), axis=1)
        n_out = 3
        target = y
    else:
        y = X[:, 0] - 0.5 * X[:, 1] ** 2
        n_out = 1
        target = y[:, None]
    sizes = np.array([4, 6, 5, n_out])
    params = rng.uniform(-0.5, 0.5, n_params(sizes))
    coefs, intercepts = views(params, sizes)
    ref = sklearn_epoch(task, activation, solver, nesterov, batch, coefs, intercepts, X, y)

    be = get(backend)
    p = params.copy()
    grads, s1, s2 = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    work = np.empty(be.work_size(sizes, batch))
    lr = 0.01
    loss, step, done = be.train_epoch(
        X, target, np.arange(n), p, grads, s1, s2, 0, sizes, activation,
        "softmax" if task == "classification" else "squared", solver, lr, 0.9, nesterov, 1e-2,
        batch, work)
    assert done == n and step == -(-n // batch)
    ours_W, ours_b = views(p, sizes)
    for W, Wref in zip(ours_W + ours_b, ref.coefs_ + ref.intercepts_):
        np.testing.assert_allclose(W, Wref, rtol=1e-9, atol=1e-12)
    assert not np.allclose(p, params)  # training moved the weights
    np.testing.assert_allclose(loss, ref.loss_curve_[-1], rtol=1e-9)
