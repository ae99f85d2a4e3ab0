"""For the tests of ``parallel_compile``: small compiled functions, each
returning a value that tells it was compiled for the right types and caching
on disk (the helpers pass what they compile through numba's cache); and a
first fit on the row-block kernels, run in a fresh process and in the tests'
own."""

import hashlib

import numpy as np
from numba import njit


@njit(cache=True)
def scaled_sum(x, factor):
    total = 0.0
    for v in x:
        total += v
    return total * factor


@njit(cache=True)
def first_and_last(x):
    return x[0], x[x.shape[0] - 1]


@njit(cache=True)
def count_above(x, limit):
    n = 0
    for v in x:
        if v > limit:
            n += 1
    return n


@njit(cache=False)
def not_cached(x):
    return x.shape[0]


def first_fit_weights():
    """The sha256 of the weights of a small model trained on the row-block
    kernels (float32, batches of 128 rows)."""
    import fastmlp

    rng = np.random.default_rng(1)
    X = rng.standard_normal((400, 12)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    model = fastmlp.MLP(hidden=(40,), batch_size=128, epochs=3, random_state=0,
                        dtype="float32").fit(X, y)
    params = np.concatenate([a.ravel() for a in model.coefs_ + model.intercepts_])
    return hashlib.sha256(params.tobytes()).hexdigest()
