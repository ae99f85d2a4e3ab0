"""Finite-difference check of the whole network's gradient, on both backends.

``train_epoch`` on one full batch leaves in ``grads`` the gradient of the loss
it returns, taken at the parameters before its update; the loss itself is
evaluated at nearby parameters by further one-batch epochs on copies.
"""

import numpy as np
import pytest

from fastmlp.kernels import get, n_params

SIZES = np.array([4, 5, 3, 3])


def loss_and_grad(backend, params, X, target, activation, output, l2):
    be = get(backend)
    p = params.copy()
    grads = np.zeros_like(p)
    state = np.zeros_like(p)
    work = np.empty(be.work_size(SIZES, len(X)), dtype=p.dtype)
    loss, _, done = be.train_epoch(X, target, np.arange(len(X)), p, grads, state, state, 0,
                                   SIZES, activation, output, "sgd", 1e-3, 0.0, False, l2,
                                   len(X), work)
    assert done == len(X)
    return loss, grads


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("output", ["softmax", "squared"])
@pytest.mark.parametrize("activation", ["identity", "sigmoid", "tanh", "relu"])
def test_gradient_matches_finite_differences(backend, activation, output):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((9, SIZES[0]))
    if output == "softmax":
        target = rng.integers(0, SIZES[-1], size=9)
    else:
        target = rng.standard_normal((9, SIZES[-1]))
    params = rng.standard_normal(n_params(SIZES)) * 0.7
    l2 = 0.1
    _, grad = loss_and_grad(backend, params, X, target, activation, output, l2)
    h = 1e-6
    numeric = np.empty_like(params)
    for i in range(params.size):
        step = np.zeros_like(params)
        step[i] = h
        up, _ = loss_and_grad(backend, params + step, X, target, activation, output, l2)
        down, _ = loss_and_grad(backend, params - step, X, target, activation, output, l2)
        numeric[i] = (up - down) / (2 * h)
    assert np.abs(grad).max() > 1e-3  # a real gradient, not zeros on both sides
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7)
