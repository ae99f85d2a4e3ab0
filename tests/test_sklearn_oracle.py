"""One epoch of fastmlp's kernels against scikit-learn's MLP from the same weights.

scikit-learn (float64) is an independent implementation of the same algorithm:
minibatch SGD or Adam, an output layer whose delta is output - target (softmax
with cross-entropy, logistic with binary cross-entropy for two classes and for
multilabel targets, identity with squared error, exp with Poisson deviance),
the L2 penalty ``alpha`` and sample weights divided by the batch's weight. Both
start from the same weights and visit the rows in order. scikit-learn is the
oracle: this module imports it unconditionally and fails where it is missing.

One difference of scale is part of the contract: for squared error
scikit-learn reports the loss averaged over the outputs, while its gradient
(and fastmlp's kernels, whose loss is the sum over outputs) is that of the sum;
the weights therefore agree exactly and the losses by the factor of outputs.
"""

import warnings

import numpy as np
import pytest
from sklearn import neural_network as sk

from fastmlp.kernels import get, n_params
from fastmlp.network import Network

SK_ACTIVATION = {"identity": "identity", "sigmoid": "logistic", "tanh": "tanh", "relu": "relu"}

#: target name -> (fastmlp output, scikit-learn class, loss, n_outputs)
TARGETS = {
    "binary": ("logistic", sk.MLPClassifier, None, 1),
    "multiclass": ("softmax", sk.MLPClassifier, None, 3),
    "multilabel": ("logistic", sk.MLPClassifier, None, 3),
    "regression": ("squared", sk.MLPRegressor, "squared_error", 1),
    "multi-output": ("squared", sk.MLPRegressor, "squared_error", 2),
    "poisson": ("poisson", sk.MLPRegressor, "poisson", 1),
}


def make_problem(target, n=30, seed=11):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    y = {"binary": lambda: (X[:, 0] + 0.3 * rng.standard_normal(n) > 0).astype(int),
         "multiclass": lambda: np.argmax(X[:, :3] + 0.5 * rng.standard_normal((n, 3)), axis=1),
         "multilabel": lambda: (X[:, :3] + 0.5 * rng.standard_normal((n, 3)) > 0).astype(int),
         "regression": lambda: X[:, 0] - 0.5 * X[:, 1] ** 2,
         "multi-output": lambda: np.c_[X[:, 0] - 0.5 * X[:, 1] ** 2, np.tanh(X[:, 2])],
         "poisson": lambda: rng.poisson(np.exp(0.4 * X[:, 0])).astype(float)}[target]()
    return X, y


def sklearn_epoch(target, activation, solver, nesterov, batch, coefs, intercepts, X, y, w):
    output, cls, loss, _ = TARGETS[target]
    kw = dict(hidden_layer_sizes=tuple(W.shape[1] for W in coefs[:-1]),
              activation=SK_ACTIVATION[activation], solver=solver, alpha=1e-2,
              batch_size=batch, learning_rate_init=0.01, momentum=0.9,
              nesterovs_momentum=nesterov, shuffle=False, random_state=0)
    if loss is not None:
        kw["loss"] = loss
    # a first call with a negligible step only sets scikit-learn's model up
    model = cls(**{**kw, "learning_rate_init": 1e-12})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if target == "multilabel":  # the label columns, required on the first call
            model.partial_fit(X, y, classes=np.arange(y.shape[1]))
        elif cls is sk.MLPClassifier:
            model.partial_fit(X, y, classes=np.unique(y))
        else:
            model.partial_fit(X, y)
    model.set_params(learning_rate_init=0.01)
    # restart from the given weights with a fresh optimiser
    model.coefs_ = [W.copy() for W in coefs]
    model.intercepts_ = [b.copy() for b in intercepts]
    del model._optimizer
    model.loss_curve_ = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.partial_fit(X, y, sample_weight=w)
    return model


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("activation", ["identity", "sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("solver,nesterov", [("sgd", False), ("sgd", True), ("adam", False)])
@pytest.mark.parametrize("batch", [1, 8])
def test_one_epoch_matches_sklearn(backend, target, activation, solver, nesterov, batch,
                                   weighted):
    output, _, _, k = TARGETS[target]
    X, y = make_problem(target)
    n = len(X)
    w = np.random.default_rng(2).uniform(0.3, 2.0, n) if weighted else None
    sizes = np.array([4, 6, 5, k])
    params = np.random.default_rng(12).uniform(-0.5, 0.5, n_params(sizes))
    net = Network(sizes, activation, output, params.copy(), solver)
    coefs, intercepts = net.views(params)
    ref = sklearn_epoch(target, activation, solver, nesterov, batch, coefs, intercepts, X, y, w)

    target_values = y if output == "softmax" else np.asarray(y, dtype=np.float64).reshape(n, k)
    data_loss, penalty, step, done = get(backend).train_epoch(
        X, target_values, np.arange(n), net.params, net.grads, net.state1, net.state2, 0, sizes,
        activation, output, solver, 0.01, 0.9, nesterov, l2=1e-2, batch_size=batch,
        sample_weight=w)
    assert done == n and step == -(-n // batch)
    for W, Wref in zip(net.coefs + net.intercepts, ref.coefs_ + ref.intercepts_):
        np.testing.assert_allclose(W, Wref, rtol=1e-9, atol=1e-12)
    assert not np.allclose(net.params, params)  # training moved the weights
    scale = 1.0 / k if output == "squared" else 1.0  # scikit-learn's mean over outputs
    np.testing.assert_allclose(data_loss * scale + penalty, ref.loss_curve_[-1], rtol=1e-9)
