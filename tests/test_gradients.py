"""Finite-difference checks of the whole network's gradient, on both backends.

The loss is ``loss_gradient``'s (data loss + penalty) over all rows, with the rows
weighted or not and X dense or CSR. Its central differences in every parameter must
equal the gradient ``loss_gradient`` writes to ``grads``, and the gradient a one-batch
``train_epoch`` over the same rows (in another order) leaves in ``grads``, taken at the
parameters before its update, L2 term included.
"""

import numpy as np
import pytest
import scipy.sparse

from fastmlp.kernels import get, n_params

SIZES = [4, 5, 3, 3]
N = 9
L2 = 0.1
H = 1e-6


def problem(output, weighted, sparse, seed=3):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, SIZES[0]))
    if sparse:
        X[rng.random(X.shape) < 0.4] = 0.0
        X = scipy.sparse.csr_matrix(X)
    k = SIZES[-1]
    if output == "softmax":
        target = rng.integers(0, k, size=N)
    elif output == "squared":
        target = rng.standard_normal((N, k))
    elif output == "logistic":
        target = (rng.random((N, k)) < 0.5).astype(np.float64)
    else:  # poisson counts, zeros among them
        target = rng.poisson(1.0, size=(N, k)).astype(np.float64)
    weights = None
    if weighted:
        weights = rng.uniform(0.2, 2.0, N)
        weights[4] = 0.0
    params = rng.standard_normal(n_params(SIZES)) * 0.5
    return X, target, weights, params


def full_loss_and_grad(be, params, X, target, weights, activation, output):
    grads = np.full_like(params, np.nan)
    data, penalty = be.loss_gradient(X, target, params, grads, SIZES, activation, output,
                                     l2=L2, chunk=4, sample_weight=weights)
    return data + penalty, grads


def one_batch_epoch_grad(be, params, X, target, weights, activation, output):
    p = params.copy()
    grads = np.full_like(p, np.nan)
    state = np.zeros_like(p)
    order = np.random.default_rng(1).permutation(N)
    data, penalty, step, done = be.train_epoch(
        X, target, order, p, grads, state, state.copy(), 0, SIZES, activation, output, "sgd",
        1e-3, momentum=0.0, l2=L2, batch_size=N, sample_weight=weights)
    assert (step, done) == (1, N)
    return data + penalty, grads


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("output", ["softmax", "squared", "logistic", "poisson"])
@pytest.mark.parametrize("activation", ["identity", "sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_gradient_matches_finite_differences(backend, activation, output, weighted, sparse):
    be = get(backend)
    X, target, weights, params = problem(output, weighted, sparse)
    loss, grad = full_loss_and_grad(be, params, X, target, weights, activation, output)
    numeric = np.empty_like(params)
    for i in range(params.size):
        step = np.zeros_like(params)
        step[i] = H
        up, _ = full_loss_and_grad(be, params + step, X, target, weights, activation, output)
        down, _ = full_loss_and_grad(be, params - step, X, target, weights, activation, output)
        numeric[i] = (up - down) / (2 * H)
    assert np.abs(numeric).max() > 1e-3  # a real gradient, not zeros on both sides
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7,
                               err_msg="loss_gradient's gradient")
    epoch_loss, epoch_grad = one_batch_epoch_grad(be, params, X, target, weights, activation,
                                                  output)
    assert epoch_loss == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(epoch_grad, numeric, rtol=1e-5, atol=1e-7,
                               err_msg="the gradient a one-batch train_epoch leaves")
