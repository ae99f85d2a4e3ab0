"""Shared inputs and helpers for the kernel tests.

* ``NASTY``: the nasty inputs every kernel test is parametrized over (1 row,
  1 column, logits of +-1e4 and +-1e30, all-equal rows, a mix of tiny and
  large values, ...), each used in float32 and float64 (``DTYPES``).
* the ``backends`` fixture (a dict) and ``get_backend(name)``: the public kernels of
  the two backends, ``fastmlp.kernels.get('numba')`` and ``get('numpy')``
  (``api.Kernels`` objects).
* ``in_dtype``: a float64 reference rounded to the kernel's dtype (inf on overflow).
* ``assert_close``: the comparison used everywhere, with a tolerance that is
  relative to the dtype plus an error scale that the caller derives from the
  magnitudes the kernel works with (see its docstring).
* The Hypothesis profile ``fastmlp`` (40 examples, no deadline), sized for a
  2-core CI machine; ``fastmlp-ci-quick`` (15) and ``fastmlp-thorough`` (500) can
  be chosen with ``FASTMLP_HYPOTHESIS_PROFILE`` or ``--hypothesis-profile``.

The test modules import the plain data and helpers from here
(``from conftest import ...``), which works with pytest's default import mode.
"""

import math
import os
from dataclasses import dataclass

import numpy as np
import pytest

import reference as ref
from fastmlp import kernels

try:
    from hypothesis import HealthCheck, settings
except ImportError:  # the property tests need hypothesis; the others do not
    settings = None

if settings is not None:
    settings.register_profile(
        "fastmlp",
        max_examples=40,
        deadline=None,  # numba compiles (or loads from its cache) on a kernel's first call
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )
    settings.register_profile("fastmlp-ci-quick", parent=settings.get_profile("fastmlp"),
                              max_examples=15)
    settings.register_profile("fastmlp-thorough", parent=settings.get_profile("fastmlp"),
                              max_examples=500)
    settings.load_profile(os.environ.get("FASTMLP_HYPOTHESIS_PROFILE", "fastmlp"))


BACKEND_NAMES = kernels.BACKENDS  # ("numba", "numpy")
DTYPES = (np.float32, np.float64)

#: Relative tolerance per dtype: a few hundred ulps of the dtype, far below any real bug.
RTOL = {np.float32: 1e-5, np.float64: 1e-12}
#: Absolute floor per dtype: a little above the smallest normal number, so that results
#: which underflow (exp of a very negative number, stored as a subnormal or as 0) compare
#: equal, while any value of ordinary size is still checked relatively.
FLOOR = {np.float32: 1e-37, np.float64: 1e-300}


def dtype_key(dtype):
    return np.dtype(dtype).type


# ------------------------------------------------------------------ backends
@pytest.fixture(scope="session")
def backends():
    """Both backends' public kernels, as a dict name -> ``api.Kernels``."""
    return {name: kernels.get(name) for name in BACKEND_NAMES}


def get_backend(name):
    """The public kernels (``api.Kernels``) of backend ``name``."""
    return kernels.get(name)


# --------------------------------------------------------------- nasty inputs
@dataclass(frozen=True)
class Nasty:
    """One nasty 2-D input, given in float64 and used in every dtype of ``DTYPES``.

    ``huge``: holds values of +-1e30; used only where finite results are expected for
    them (the softmax family, binary cross-entropy and its gradient) or where the
    reference's infinities are compared as they are (Poisson).
    """

    name: str
    values: tuple
    huge: bool = False

    def array(self, dtype):
        return np.array(self.values, dtype=dtype)

    @property
    def shape(self):
        return np.array(self.values).shape


NASTY = (
    Nasty("one_row", ((0.5, -1.25, 3.0, 0.0, 2.0, -7.5),)),
    Nasty("one_col", ((-2.0,), (0.0,), (1.5,), (3.0,), (-0.25,), (7.0,))),
    Nasty("one_by_one", ((0.75,),)),
    Nasty("logits_1e4", ((1e4, -1e4, 0.0, 1.0),
                         (-1e4, -1e4, -1e4, -1e4),
                         (1e4, 9999.0, 9998.5, -1e4),
                         (5e3, -1e4, 1e4, 1e4))),
    Nasty("logits_1e30", ((1e30, -1e30, 0.0, 1.0),
                          (-1e30, -1e30, 1e30, 5.0),
                          (3.0, -1e30, -2.0, 0.5)), huge=True),
    Nasty("logits_1e30_ties", ((1e30, 1e30, -1e30),
                               (-1e30, -1e30, -1e30),
                               (1e30, -1e30, 1e30)), huge=True),
    Nasty("constant_rows", ((3.0, 3.0, 3.0, 3.0),
                            (-2.0, -2.0, -2.0, -2.0),
                            (0.0, 0.0, 0.0, 0.0),
                            (1e-3, 1e-3, 1e-3, 1e-3))),
    Nasty("identical_rows", ((0.3, -1.7, 2.2),) * 5),
    Nasty("mixed_scale", ((1e-8, -2.5e-6, 3.0, -1.5e3, 0.0),
                          (7e2, 1e-12, -4e-4, 12.5, -0.1),
                          (-1e-20, 1e-20, 5e-5, -2e2, 1.0))),
    Nasty("tiny", ((1e-9, -2e-9, 3e-10),
                   (-1e-12, 5e-13, 0.0),
                   (2e-30, -1e-30, 4e-31))),
)
NASTY_BY_NAME = {case.name: case for case in NASTY}
ORDINARY = tuple(case for case in NASTY if not case.huge)


# ------------------------------------------------- derived operands (no RNG)
def pattern(shape, salt=0):
    """A fixed, irregular float64 array of moderate values in [-1, 1] (no randomness)."""
    n = int(np.prod(shape))
    i = np.arange(n, dtype=np.float64)
    return np.sin(1.7 * i + 0.37 * salt + 0.5).reshape(shape)


def labels_for(n, k):
    """Fixed integer labels in [0, k) for n rows."""
    return (np.arange(n, dtype=np.int64) * 7 + 3) % k


def linear_operands(case, dtype):
    """X, W, b for the linear kernels: X is the nasty array, W (k, h) and b fixed; b is
    scaled with the input so that tiny inputs give tiny pre-activations."""
    X = case.array(dtype)
    k = X.shape[1]
    h = 1 if k == 1 else 3
    W = pattern((k, h), 1).astype(dtype)
    top = float(np.max(np.abs(X.astype(np.float64)))) or 1.0
    b = (0.1 * top * pattern((h,), 2)).astype(dtype)
    return X, W, b


# ----------------------------------------------------------------- comparing
def assert_close(got, ref, dtype, scale=0.0, extra=0.0, what="", rtol=None):
    """Check |got - ref| <= rtol * (|ref| + scale) + extra + FLOOR elementwise.

    ``ref`` is the float64 reference. ``scale`` (broadcast against ``ref``) is the
    magnitude of the terms the result is made of where they can cancel (for X @ W + b,
    |X| @ |W| + |b|): an error of a few ulps of those terms is not a bug, even when the
    result itself is near 0. ``extra`` is an absolute allowance for a known, documented
    rounding step (e.g. log-sum-exp rounded next to a large row maximum).
    """
    key = dtype_key(dtype)
    rtol = RTOL[key] if rtol is None else rtol
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != reference {ref.shape}"
    same_special = (got == ref) | (np.isnan(got) & np.isnan(ref))
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(got - ref)
        tol = rtol * (np.abs(ref) + np.abs(scale)) + extra + FLOOR[key]
        bad = ~same_special & ~(err <= tol)
    if bad.any():
        idx = np.argwhere(bad)[:5] if bad.ndim else [()]
        lines = [f"  at {tuple(int(v) for v in i)}: got {got[tuple(i)]!r}, reference "
                 f"{ref[tuple(i)]!r}, |err| {err[tuple(i)]:.3g} > tol {np.broadcast_to(tol, ref.shape)[tuple(i)]:.3g}"
                 for i in idx]
        raise AssertionError(f"{what}: {int(bad.sum())} of {bad.size} values off "
                             f"({np.dtype(dtype).name}, rtol {rtol:g}):\n" + "\n".join(lines))


def in_dtype(values, dtype):
    """Float64 reference values rounded to ``dtype`` (inf where they overflow it), as
    float64: what a kernel that stores the exact result in ``dtype`` returns."""
    with np.errstate(over="ignore"):
        return np.asarray(values, dtype=np.float64).astype(dtype).astype(np.float64)


def assert_close_normwise(got, ref, dtype, rtol, what=""):
    """|got - ref| <= rtol * (|ref| + max|ref|): elementwise, but with an absolute part at
    the size of the whole array (for results of many chained steps, like training)."""
    ref = np.asarray(ref, dtype=np.float64)
    top = float(np.max(np.abs(ref))) if ref.size else 0.0
    assert_close(got, ref, dtype, scale=top, what=what, rtol=rtol)


# ------------------------------------------- kernel tables and error scales
LINEAR = {"linear": "identity", "linear_sigmoid": "sigmoid", "linear_tanh": "tanh",
          "linear_relu": "relu"}
LIPSCHITZ = {"identity": 1.0, "sigmoid": 0.25, "tanh": 1.0, "relu": 1.0}


def linear_scale(X, W, b, activation):
    """Error scale of f(X @ W + b): |X| @ |W| + |b| times the activation's Lipschitz
    constant (rounding the terms of the product cannot be avoided)."""
    X, W, b = (np.abs(np.asarray(a, dtype=np.float64)) for a in (X, W, b))
    return LIPSCHITZ[activation] * (X @ W + b)


BACKWARD = {"sigmoid_backward": "sigmoid", "tanh_backward": "tanh", "relu_backward": "relu"}


def backward_scale(kernel, A, dA):
    A, dA = np.abs(A.astype(np.float64)), np.abs(dA.astype(np.float64))
    if kernel == "sigmoid_backward":
        return dA * A * (1.0 + A)
    if kernel == "tanh_backward":
        return dA * (1.0 + A * A)
    return 0.0


def forward_error_scale(X, params, sizes, activation, output):
    """Magnitude that rounding errors in the forward pass are relative to.

    Layer by layer: the error of X @ W + b is bounded by (|A| @ |W| + |b|) plus the
    incoming error pushed through |W|; the activation multiplies it by its Lipschitz
    constant and adds its own rounding (|output|); softmax turns a logit error e into at
    most 2 * p * max(e) + p; the sigmoid output to 0.25 * e + p; exp to p * (e + 1).
    """
    A = np.asarray(X, dtype=np.float64)
    E = np.zeros_like(A)
    flat = np.asarray(params, dtype=np.float64)
    off, L = 0, len(sizes) - 1
    for l in range(L):
        n_in, n_out = sizes[l], sizes[l + 1]
        W = flat[off:off + n_in * n_out].reshape(n_in, n_out)
        b = flat[off + n_in * n_out:off + (n_in + 1) * n_out]
        off += (n_in + 1) * n_out
        act = activation if l < L - 1 else "identity"
        A_next = ref.linear(A, W, b, act)
        E = LIPSCHITZ[act] * (np.abs(A) @ np.abs(W) + np.abs(b) + E @ np.abs(W)) \
            + np.abs(A_next)
        A = A_next
    if output == "softmax":
        P = ref.softmax(A)
        return 2.0 * P * E.max(axis=1, keepdims=True) + P
    with np.errstate(over="ignore"):  # a tolerance, not a reference: NumPy will do
        if output == "logistic":
            return 0.25 * E + 1.0 / (1.0 + np.exp(-A))
        if output == "poisson":
            return np.exp(A) * (E + 1.0)
    return E


def random_net(sizes, dtype, seed):
    rng = np.random.default_rng(seed)
    parts = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        parts.append(rng.normal(scale=1.0 / math.sqrt(n_in), size=n_in * n_out))
        parts.append(rng.normal(scale=0.3, size=n_out))
    return np.concatenate(parts).astype(dtype)


#: Training solvers as (solver, nesterov); tolerances of whole training epochs.
SOLVERS = {"sgd": ("sgd", False), "nesterov": ("sgd", True), "adam": ("adam", False)}
EPOCH_RTOL = {np.float32: 1e-4, np.float64: 1e-10}
