"""Small compiled functions for the tests of ``parallel_compile``: each
returns a value that tells it was compiled for the right types, and caches
on disk (the helpers pass what they compile through numba's cache)."""

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
