"""check_gradients: finite differences against the kernels' gradient.

The expectations are independent of the code under test: a closed-form
gradient for a network without hidden layers, a gradient spoiled on purpose
by a known factor (whose relative error is then known exactly), and models
of every output layer whose gradient must agree to far below the tolerance.
"""

import warnings

import numpy as np
import pytest

import fastmlp
from fastmlp import MLP, NotFittedError, check_gradients, kernels
from fastmlp.gradcheck import GradientCheck


def data(n=120, d=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.argmax(X @ rng.standard_normal((d, k)) + 0.5 * rng.standard_normal((n, k)), axis=1)
    return X, y


def fitted(*args, X=None, y=None, epochs=5, **kwargs):
    if X is None:
        X, y = data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastmlp.ConvergenceWarning)
        return MLP(*args, epochs=epochs, random_state=0, **kwargs).fit(X, y)


class Spoiled:
    """The model's kernels, with the gradient of the parameters [start, stop)
    multiplied by ``factor`` after every loss-and-gradient call."""

    def __init__(self, inner, start, stop, factor):
        self.inner, self.start, self.stop, self.factor = inner, start, stop, factor

    def _loss_gradient(self, *args):
        result = self.inner._loss_gradient(*args)
        grads = args[5]
        grads[self.start:self.stop] *= self.factor
        return result


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "identity"])
@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_a_correct_gradient_agrees_far_below_the_tolerance(activation, backend):
    X, y = data()
    model = fitted((7, 4), activation, X=X, y=y, backend=backend)
    check = check_gradients(model, X, y)
    assert isinstance(check, GradientCheck)
    assert check.ok
    assert check.max_rel_error < 1e-5
    assert [c.shape for c in check.layers] == [(5, 7), (7, 4), (4, 3)]
    assert all(c.checked == min(40, (c.shape[0] + 1) * c.shape[1]) for c in check.layers)


def test_regression_and_float32_models_are_checked_in_float64():
    X, _ = data()
    Y = np.column_stack([np.sin(X[:, 0]), X[:, 1] * X[:, 2]])
    model = fitted((6,), "tanh", X=X, y=Y, dtype="float32", l2=0.1)
    assert model._net.dtype == np.float32
    check = check_gradients(model, X, Y)
    assert check.max_rel_error < 1e-5


def test_the_loss_and_gradient_size_match_the_closed_form_of_softmax_regression():
    """Without hidden layers the network is multinomial logistic regression:
    loss = mean cross-entropy + 0.5 * l2 * sum(W**2) / n, and its gradient is
    X.T @ (P - Y) / n + l2 * W / n for W and mean(P - Y) for b."""
    X, y = data(n=60)
    l2 = 0.3
    model = fitted((), "relu", X=X, y=y, dtype="float64", l2=l2)
    W = model.coefs_[0].astype(np.float64)
    b = model.intercepts_[0].astype(np.float64)
    Z = X @ W + b
    Z -= Z.max(axis=1, keepdims=True)
    P = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)
    Y = np.eye(3)[y]
    n = len(y)
    loss = -np.mean(np.log(P[np.arange(n), y])) + 0.5 * l2 * np.sum(W * W) / n
    dW = X.T @ (P - Y) / n + l2 * W / n
    check = check_gradients(model, X, y, max_rows=1000)
    assert check.rows == n
    assert check.loss == pytest.approx(loss, rel=1e-12)
    assert check.layers[0].grad_rms == pytest.approx(np.sqrt(np.mean(dW ** 2)), rel=1e-10)
    assert check.layers[0].weight_rms == pytest.approx(np.sqrt(np.mean(W ** 2)), rel=1e-12)
    assert check.max_rel_error < 1e-5


def test_a_wrong_gradient_is_caught_in_its_layer_with_its_size():
    """A layer's gradient scaled by 1.01 is off by 0.01 / 1.01 relative to the
    finite differences (which follow the true loss); the other layers stay exact."""
    X, y = data()
    model = fitted((6, 4), "tanh", X=X, y=y)
    sizes = model._net.sizes
    start = (sizes[0] + 1) * sizes[1]  # the second layer's W and b
    stop = start + (sizes[1] + 1) * sizes[2]
    check = check_gradients(model, X, y, per_layer=1000,
                            kernels=Spoiled(kernels.get("numba"), start, stop, 1.01))
    assert not check.ok
    errors = [c.max_rel_error for c in check.layers]
    assert errors[1] == pytest.approx(0.01 / 1.01, rel=1e-3)
    assert errors[0] < 1e-5 and errors[2] < 1e-5
    assert check.max_rel_error == errors[1]
    assert "DISAGREES" in str(check)


def test_a_sign_error_in_one_bias_is_located():
    X, y = data()
    model = fitted((4,), "sigmoid", X=X, y=y)
    sizes = model._net.sizes
    at = sizes[0] * sizes[1] + 2  # bias 2 of the first layer
    check = check_gradients(model, X, y, per_layer=1000,
                            kernels=Spoiled(kernels.get("numpy"), at, at + 1, -1.0))
    assert check.layers[0].worst == ("b", 2)
    assert check.layers[0].max_rel_error == pytest.approx(2.0, rel=1e-4)
    assert check.layers[1].max_rel_error < 1e-5


def test_the_model_is_not_changed():
    X, y = data()
    model = fitted((5,), "relu", X=X, y=y)
    params = model._net.params.copy()
    grads = model._net.grads.copy()
    state = dict(model.__dict__)
    check_gradients(model, X, y)
    assert np.array_equal(model._net.params, params)
    assert np.array_equal(model._net.grads, grads)
    assert model.__dict__.keys() == state.keys()
    assert all(model.__dict__[k] is v for k, v in state.items())


def test_subsets_of_rows_and_parameters_are_used_when_asked():
    X, y = data(n=300)
    model = fitted((10,), "relu", X=X, y=y)
    check = check_gradients(model, X, y, max_rows=50, per_layer=7)
    assert check.rows == 50
    assert [c.checked for c in check.layers] == [7, 7]
    assert check.max_rel_error < 1e-5


def test_scikit_learn_drop_ins_are_checked():
    pytest.importorskip("sklearn")
    from fastmlp.sklearn import MLPClassifier, MLPRegressor

    X, y = data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        binary = MLPClassifier((5,), max_iter=5, random_state=0).fit(X, y == 1)  # logistic output
        multi = MLPClassifier((5,), activation="logistic", max_iter=5, random_state=0).fit(X, y)
        poisson = MLPRegressor(loss="poisson", hidden_layer_sizes=(5,), max_iter=5,
                               random_state=0).fit(X, np.exp(0.3 * X[:, 0]))
    assert binary._net.output == "logistic" and multi._net.output == "softmax"
    assert check_gradients(binary, X, y == 1).max_rel_error < 1e-5
    assert check_gradients(multi, X, y).max_rel_error < 1e-5
    assert check_gradients(poisson, X, np.exp(0.3 * X[:, 0])).max_rel_error < 1e-5


def test_bad_arguments_are_refused_by_name():
    X, y = data()
    with pytest.raises(NotFittedError, match="not fitted"):
        check_gradients(MLP(), X, y)
    model = fitted((3,), "relu", X=X, y=y)
    with pytest.raises(ValueError, match="eps"):
        check_gradients(model, X, y, eps=0.0)
    with pytest.raises(ValueError, match="eps must be below"):
        check_gradients(model, X, y, eps=0.5)
    with pytest.raises(ValueError, match="max_rows"):
        check_gradients(model, X, y, max_rows=0)
    with pytest.raises(TypeError, match="per_layer"):
        check_gradients(model, X, y, per_layer="10")
    with pytest.raises(ValueError, match="labels not in"):
        check_gradients(model, X, y + 7)
    with pytest.raises(ValueError, match="features"):
        check_gradients(model, X[:, :4], y)
    with pytest.raises(ValueError, match="samples"):
        check_gradients(model, X, y[:-1])


def test_the_report_lists_every_layer():
    X, y = data()
    text = str(check_gradients(fitted((6, 4), "tanh", X=X, y=y), X, y))
    assert "agrees" in text
    assert "5x6" in text and "6x4" in text and "4x3" in text
