"""The public kernels of both backends against the loop references in ``reference.py``.

Every kernel of ``fastmlp.kernels.api.NAMES`` is checked on both backends
(``kernels.get('numba')`` and ``kernels.get('numpy')``, ``api.Kernels`` objects) and both
dtypes, on the nasty inputs of ``conftest.NASTY``; then ``predict`` on dense and sparse
input, the ``out=`` contract (overlap with an input refused), the argument checks (some
through a tripwire core that fails when reached), a few mathematical properties, the
interface of the two cores, ``work_size`` against what the kernels touch, and whole
training epochs and full-data gradients against the references over a grid of
activations, outputs, solvers, batch layouts, weights and input formats.
"""

import ast
import importlib
import inspect
import math

import numpy as np
import pytest
import scipy.sparse
from numba import njit

import reference as ref
from conftest import (
    BACKEND_NAMES,
    BACKWARD,
    DTYPES,
    EPOCH_RTOL,
    LINEAR,
    NASTY,
    ORDINARY,
    RTOL,
    SOLVERS,
    assert_close,
    assert_close_normwise,
    backward_scale,
    dtype_key,
    forward_error_scale,
    get_backend,
    in_dtype,
    labels_for,
    linear_operands,
    linear_scale,
    pattern,
    random_net,
)
from fastmlp import kernels
from fastmlp.kernels import api, codes, config, numba_core, numpy_core
from fastmlp.kernels.numba_core._setup import CompiledOnly

OUTPUTS = ref.OUTPUTS


def dname(dtype):
    return np.dtype(dtype).name


def grid(cases, kernels_=(None,)):
    """pytest params (kernel?, backend, dtype, case)."""
    params = []
    for kernel in kernels_:
        for backend in BACKEND_NAMES:
            for dtype in DTYPES:
                for case in cases:
                    head = () if kernel is None else (kernel,)
                    ident = "-".join(([kernel] if kernel else []) + [backend, dname(dtype),
                                                                    case.name])
                    params.append(pytest.param(*head, backend, dtype, case, id=ident))
    return params


# ================================================================ linear
@pytest.mark.parametrize("kernel,backend,dtype,case",
                         grid(ORDINARY, kernels_=tuple(LINEAR)))
def test_linear_family_matches_reference(kernel, backend, dtype, case):
    fn = getattr(get_backend(backend), kernel)
    X, W, b = linear_operands(case, dtype)
    got = fn(X, W, b)
    assert got.dtype == dtype and got.shape == (X.shape[0], W.shape[1])
    act = LINEAR[kernel]
    assert_close(got, ref.linear(X, W, b, act), dtype, scale=linear_scale(X, W, b, act),
                 what=kernel)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel", tuple(LINEAR))
def test_linear_family_blas_sized_product(kernel, backend, dtype):
    """A product above numba's SMALL_GEMM threshold goes through BLAS, not the loops;
    rows of at least NARROW columns take the wide rows' bias-and-activation passes."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(64, 32)).astype(dtype)
    W = rng.normal(scale=0.3, size=(32, 16)).astype(dtype)
    b = rng.normal(size=16).astype(dtype)
    assert X.shape[0] * W.shape[0] * W.shape[1] > config.SMALL_GEMM
    assert W.shape[1] >= config.NARROW
    got = getattr(get_backend(backend), kernel)(X, W, b)
    act = LINEAR[kernel]
    assert_close(got, ref.linear(X, W, b, act), dtype, scale=linear_scale(X, W, b, act),
                 what=kernel)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_relu_keeps_nan(backend, dtype):
    X = np.array([[np.nan, 1.0], [-1.0, 2.0]], dtype=dtype)
    W = np.eye(2, dtype=dtype)
    b = np.zeros(2, dtype=dtype)
    got = get_backend(backend).linear_relu(X, W, b)
    assert np.isnan(got[0]).all()  # NaN * 0 is NaN: the whole row
    assert got[1, 0] == 0.0 and got[1, 1] == 2.0


# ================================================================ backward
def backward_operands(kernel, case, dtype):
    """A = the activation's output on the nasty values (so saturated 0/1/+-1 included),
    dA = the nasty values with the columns reversed."""
    Z = case.array(dtype)
    A = ref.linear(Z, np.eye(Z.shape[1]), np.zeros(Z.shape[1]), BACKWARD[kernel]).astype(dtype)
    dA = np.ascontiguousarray(Z[:, ::-1])
    return A, dA


@pytest.mark.parametrize("kernel,backend,dtype,case", grid(ORDINARY, kernels_=tuple(BACKWARD)))
def test_backward_family_matches_reference(kernel, backend, dtype, case):
    A, dA = backward_operands(kernel, case, dtype)
    got = getattr(get_backend(backend), kernel)(A, dA)
    assert got.dtype == dtype and got.shape == A.shape
    expected = getattr(ref, kernel)(A, dA)
    assert_close(got, expected, dtype, scale=backward_scale(kernel, A, dA), what=kernel)


# ============================================================ softmax family
@pytest.mark.parametrize("backend,dtype,case", grid(NASTY))
def test_softmax_matches_reference(backend, dtype, case):
    Z = case.array(dtype)
    got = get_backend(backend).softmax(Z)
    assert got.dtype == dtype and got.shape == Z.shape
    assert_close(got, ref.softmax(Z), dtype, what="softmax")


@pytest.mark.parametrize("backend,dtype,case", grid(NASTY))
def test_log_softmax_matches_reference(backend, dtype, case):
    Z = case.array(dtype)
    got = get_backend(backend).log_softmax(Z)
    assert got.dtype == dtype and got.shape == Z.shape
    # scale=1: an absolute rtol for values near 0 (the log of a sum near 1)
    assert_close(got, ref.log_softmax(Z), dtype, scale=1.0, what="log_softmax")


@pytest.mark.parametrize("backend,dtype,case", grid(NASTY))
def test_cross_entropy_matches_reference(backend, dtype, case):
    Z = case.array(dtype)
    y = labels_for(*Z.shape)
    got = get_backend(backend).cross_entropy(Z, y)
    assert isinstance(got, float)
    assert math.isfinite(got)
    assert_close(got, ref.cross_entropy(Z, y), dtype, scale=1.0, what="cross_entropy")


@pytest.mark.parametrize("backend,dtype,case", grid(NASTY))
def test_cross_entropy_backward_matches_reference(backend, dtype, case):
    Z = case.array(dtype)
    n, k = Z.shape
    y = labels_for(n, k)
    got = get_backend(backend).cross_entropy_backward(Z, y)
    assert got.dtype == dtype and got.shape == Z.shape
    P = ref.softmax(Z)
    assert_close(got, ref.cross_entropy_backward(Z, y), dtype, scale=P / n,
                 what="cross_entropy_backward")


@pytest.mark.parametrize("backend", BACKEND_NAMES)
@pytest.mark.parametrize("label_dtype", [np.int32, np.uint8, np.int64])
def test_cross_entropy_accepts_any_integer_labels(backend, label_dtype):
    Z = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    y = np.array([1, 2], dtype=label_dtype)
    b = get_backend(backend)
    assert_close(b.cross_entropy(Z, y), ref.cross_entropy(Z, y), np.float64, scale=1.0)
    assert_close(b.cross_entropy(Z, [1, 2]), ref.cross_entropy(Z, y), np.float64, scale=1.0)


# ============================================================ squared error
def squared_operands(case, dtype):
    Z = case.array(dtype)
    Y = (np.roll(case.array(np.float64), 1, axis=0) * 0.5 + 0.25).astype(dtype)
    return Z, Y


@pytest.mark.parametrize("backend,dtype,case", grid(ORDINARY))
def test_squared_error_matches_reference(backend, dtype, case):
    Z, Y = squared_operands(case, dtype)
    got = get_backend(backend).squared_error(Z, Y)
    assert isinstance(got, float)
    assert_close(got, ref.squared_error(Z, Y), dtype, what="squared_error")


@pytest.mark.parametrize("backend,dtype,case", grid(ORDINARY))
def test_squared_error_backward_matches_reference(backend, dtype, case):
    Z, Y = squared_operands(case, dtype)
    got = get_backend(backend).squared_error_backward(Z, Y)
    assert got.dtype == dtype and got.shape == Z.shape
    assert_close(got, ref.squared_error_backward(Z, Y), dtype, what="squared_error_backward")


# ==================================================== binary cross-entropy
def binary_targets(shape, dtype):
    """Fixed 0/1 targets, both values in every column of more than one row."""
    i, j = np.indices(shape)
    return ((i + 2 * j) % 3 == 0).astype(dtype)


def count_targets(shape, dtype):
    """Fixed counts 0..3 (zeros included) for the Poisson deviance."""
    i, j = np.indices(shape)
    return ((3 * i + j) % 4).astype(dtype)


def _per_row_mean(terms):
    return np.sum(terms, axis=1).mean()


@pytest.mark.parametrize("backend,dtype,case", grid(NASTY))
def test_binary_cross_entropy_matches_reference(backend, dtype, case):
    """Finite for any finite logits, +-1e4 and +-1e30 included: softplus(z) - y z with no
    probability rounded to 0 or 1 first."""
    Z = case.array(dtype)
    Y = binary_targets(Z.shape, dtype)
    got = get_backend(backend).binary_cross_entropy(Z, Y)
    assert isinstance(got, float)
    assert math.isfinite(got)
    z, y = Z.astype(np.float64), Y.astype(np.float64)
    # the terms softplus(z) and y z cancel where y = 1 and z is large: error relative to them
    scale = _per_row_mean(np.logaddexp(0.0, z) + np.abs(y * z))
    assert_close(got, ref.binary_cross_entropy(Z, Y), dtype, scale=scale,
                 what="binary_cross_entropy")


@pytest.mark.parametrize("backend,dtype,case", grid(NASTY))
def test_binary_cross_entropy_backward_matches_reference(backend, dtype, case):
    Z = case.array(dtype)
    Y = binary_targets(Z.shape, dtype)
    n = Z.shape[0]
    got = get_backend(backend).binary_cross_entropy_backward(Z, Y)
    assert got.dtype == dtype and got.shape == Z.shape
    assert np.all(np.isfinite(got))
    P = 1.0 / (1.0 + np.exp(-np.clip(Z.astype(np.float64), -700, 700)))
    assert_close(got, ref.binary_cross_entropy_backward(Z, Y), dtype,
                 scale=(P + Y.astype(np.float64)) / n, what="binary_cross_entropy_backward")


@pytest.mark.parametrize("backend", BACKEND_NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_cross_entropy_of_extreme_logits(backend, dtype):
    """Right answers are 0 or |z|: the loss of a confident right (wrong) answer."""
    b = get_backend(backend)
    Z = np.array([[1e4, -1e4], [-1e4, 1e4]], dtype=dtype)
    Y = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=dtype)
    assert b.binary_cross_entropy(Z, Y) == 0.0
    assert b.binary_cross_entropy(Z, 1 - Y) == 2e4
    np.testing.assert_array_equal(b.binary_cross_entropy_backward(Z, Y), 0.0)
    np.testing.assert_array_equal(b.binary_cross_entropy_backward(Z, 1 - Y),
                                  (Y - (1 - Y)) / 2)


# ========================================================== Poisson deviance
def poisson_scale(Z, Y):
    """Magnitude of the deviance's terms y log y, y z, y and exp(z), per row mean."""
    z, y = Z.astype(np.float64), Y.astype(np.float64)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        ylogy = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0)), 0.0)
        return _per_row_mean(np.abs(ylogy) + np.abs(y * z) + y + np.exp(z))


@pytest.mark.parametrize("backend,dtype,case", grid(NASTY))
def test_poisson_deviance_matches_reference(backend, dtype, case):
    """exp(z) overflows to inf for the +1e4 and +1e30 logits: so does the reference."""
    Z = case.array(dtype)
    Y = count_targets(Z.shape, dtype)
    got = get_backend(backend).poisson_deviance(Z, Y)
    assert isinstance(got, float)
    expected = ref.poisson_deviance(Z, Y)
    assert_close(got, expected, dtype, scale=poisson_scale(Z, Y), what="poisson_deviance")


@pytest.mark.parametrize("backend,dtype,case", grid(NASTY))
def test_poisson_deviance_backward_matches_reference(backend, dtype, case):
    Z = case.array(dtype)
    Y = count_targets(Z.shape, dtype)
    n = Z.shape[0]
    got = get_backend(backend).poisson_deviance_backward(Z, Y)
    assert got.dtype == dtype and got.shape == Z.shape
    with np.errstate(over="ignore"):
        scale = (np.exp(Z.astype(np.float64)) + Y) / n
    assert_close(got, in_dtype(ref.poisson_deviance_backward(Z, Y), dtype), dtype,
                 scale=scale, what="poisson_deviance_backward")


@pytest.mark.parametrize("backend", BACKEND_NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_poisson_deviance_of_very_negative_logits_and_zero_counts(backend, dtype):
    """Rates exp(-1e4) = 0 and counts of 0 give finite losses (0 log 0 = 0)."""
    b = get_backend(backend)
    Z = np.array([[-1e4, 0.0, 2.0], [-1e4, -1e4, 1.0], [-1e4, -3.0, 0.5]], dtype=dtype)
    Y = np.array([[0.0, 0.0, 3.0], [2.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=dtype)
    loss = b.poisson_deviance(Z, Y)
    G = b.poisson_deviance_backward(Z, Y)
    assert math.isfinite(loss) and np.all(np.isfinite(G))
    assert_close(loss, ref.poisson_deviance(Z, Y), dtype, scale=poisson_scale(Z, Y))
    assert_close(G, ref.poisson_deviance_backward(Z, Y), dtype,
                 scale=(np.exp(Z.astype(np.float64)) + Y) / 3)
    # rows of zero counts and zero rates: exactly zero loss and gradient
    zero = b.poisson_deviance(Z[:1, :1], Y[:1, :1])
    assert zero == 0.0 and b.poisson_deviance_backward(Z[:1, :1], Y[:1, :1])[0, 0] == 0.0


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_poisson_deviance_backward_keeps_a_float32_delta_that_fits(backend):
    """exp(89) = 4.49e38 does not fit float32, but the delta (exp(z) - y) / n = 2.24e38
    does: the kernel must store that, not an infinity from rounding exp(z) first."""
    b = get_backend(backend)
    Z = np.full((2, 1), 89.0, dtype=np.float32)
    Y = np.zeros((2, 1), dtype=np.float32)
    expected = in_dtype(ref.poisson_deviance_backward(Z, Y), np.float32)
    assert np.all(np.isfinite(expected))
    assert_close(b.poisson_deviance_backward(Z, Y), expected, np.float32,
                 what="poisson_deviance_backward")


# ================================================================ optimisers
def optimiser_operands(case, dtype):
    flat = case.array(np.float64).ravel()
    params = flat.astype(dtype)
    grads = (0.5 * flat[::-1]).astype(dtype)
    s1 = (0.1 * pattern(flat.shape, 3)).astype(dtype)
    s2 = (np.abs(pattern(flat.shape, 4)) * 0.01).astype(dtype)
    return params, grads, s1, s2


def _f64(a):
    return np.asarray(a, dtype=np.float64)


@pytest.mark.parametrize("nesterov", [False, True], ids=["plain", "nesterov"])
@pytest.mark.parametrize("backend,dtype,case", grid(ORDINARY))
def test_sgd_update_matches_reference(backend, dtype, case, nesterov):
    params, grads, velocity, _ = optimiser_operands(case, dtype)
    lr, momentum = 0.05, 0.9
    exp_p, exp_v = ref.sgd_update(params, grads, velocity, lr, momentum, nesterov)
    mv, lg = np.abs(momentum * _f64(velocity)), np.abs(lr * _f64(grads))
    p0, g0 = params.copy(), grads.copy()
    got = get_backend(backend).sgd_update(params, grads, velocity, lr, momentum, nesterov)
    assert got is params
    np.testing.assert_array_equal(grads, g0)  # the gradient is read, not changed
    assert_close(velocity, exp_v, dtype, scale=mv + lg, what="velocity")
    assert_close(params, exp_p, dtype, scale=np.abs(_f64(p0)) + 2 * (mv + lg), what="params")


@pytest.mark.parametrize("step", [1, 7])
@pytest.mark.parametrize("backend,dtype,case", grid(ORDINARY))
def test_adam_update_matches_reference(backend, dtype, case, step):
    params, grads, m, v = optimiser_operands(case, dtype)
    lr, b1, b2, eps = 0.01, 0.8, 0.99, 1e-7
    exp_p, exp_m, exp_v = ref.adam_update(params, grads, m, v, step, lr, b1, b2, eps)
    m_scale = b1 * np.abs(_f64(m)) + (1 - b1) * np.abs(_f64(grads))
    p0 = params.copy()
    got = get_backend(backend).adam_update(params, grads, m, v, step, lr, b1, b2, eps)
    assert got is params
    assert_close(m, exp_m, dtype, scale=m_scale, what="m")
    assert_close(v, exp_v, dtype, what="v")
    assert_close(params, exp_p, dtype, scale=np.abs(_f64(p0)) + np.abs(exp_p - _f64(p0)),
                 what="params")


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_adam_update_default_hyperparameters(backend):
    rng = np.random.default_rng(3)
    params, grads = rng.normal(size=11), rng.normal(size=11)
    m, v = rng.normal(size=11) * 0.1, np.abs(rng.normal(size=11)) * 0.1
    exp = ref.adam_update(params, grads, m, v, 2, 0.001)
    get_backend(backend).adam_update(params, grads, m, v, 2, 0.001)
    for got, e, what in zip((params, m, v), exp, ("params", "m", "v")):
        assert_close(got, e, np.float64, scale=np.abs(e), what=what)


# ================================================================= forward
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("activation", ref.ACTIVATIONS)
@pytest.mark.parametrize("backend,dtype,case", grid(ORDINARY))
def test_forward_matches_reference(backend, dtype, case, activation, output):
    X = case.array(dtype)
    sizes = [X.shape[1], 4, 3, 2]
    params = random_net(sizes, dtype, seed=len(case.name))
    got = get_backend(backend).forward(X, params, sizes, activation, output)
    assert got.dtype == dtype and got.shape == (X.shape[0], 2)
    expected = in_dtype(ref.forward(X, params, sizes, activation, output), dtype)
    assert_close(got, expected, dtype,
                 scale=forward_error_scale(X, params, sizes, activation, output),
                 what="forward")


@pytest.mark.parametrize("sizes", [[3, 1], [3, 4], [2, 5, 1], [3, 6, 2, 5, 4], [3, 20, 2]],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("backend", BACKEND_NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_layer_counts(backend, dtype, sizes):
    rng = np.random.default_rng(11)
    X = rng.normal(size=(5, sizes[0])).astype(dtype)
    params = random_net(sizes, dtype, seed=sum(sizes))
    for output in OUTPUTS:
        got = get_backend(backend).forward(X, params, sizes, "tanh", output)
        assert_close(got, ref.forward(X, params, sizes, "tanh", output), dtype,
                     scale=forward_error_scale(X, params, sizes, "tanh", output),
                     what=f"forward {output}")


# ================================================================= predict
def sparse_formats(X):
    """X as CSR, CSC, and CSR with one stored entry split in two (scipy adds repeated
    entries up)."""
    csr = scipy.sparse.csr_matrix(X)
    dup = csr.copy()
    r = int(np.argmax(np.diff(dup.indptr) > 0))  # the first row that stores something
    p = dup.indptr[r]
    data = np.insert(dup.data, p, dup.data[p] * 0.25)
    data[p + 1] *= 0.75
    dup = scipy.sparse.csr_matrix((data, np.insert(dup.indices, p, dup.indices[p]),
                                   np.concatenate([dup.indptr[:r + 1], dup.indptr[r + 1:] + 1])),
                                  shape=X.shape)
    assert dup.nnz == csr.nnz + 1
    return {"csr": csr, "csc": scipy.sparse.csc_matrix(X), "csr-repeated": dup}


def predict_problem(dtype, sizes, n, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, sizes[0]))
    X[rng.random(X.shape) < 0.4] = 0.0
    X[2] = 0.0  # an empty row
    return X.astype(dtype), random_net(sizes, dtype, seed + 1)


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("activation", ref.ACTIVATIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_predict_dense_and_sparse_match_reference(backend, dtype, activation, output):
    b = get_backend(backend)
    sizes = [5, 6, 3]
    X, params = predict_problem(dtype, sizes, 9, seed=4)
    expected = ref.forward(X, params, sizes, activation, output)
    top2 = np.sort(expected, axis=1)[:, -2:]
    assert np.all(top2[:, 1] - top2[:, 0] > 1e-3)  # no near ties: the argmax is defined
    out, labels, bad = b.predict(X, params, sizes, activation, output)
    assert out.dtype == dtype and out.shape == (9, 3) and labels.shape == (9,)
    assert_close(out, expected, dtype,
                 scale=forward_error_scale(X, params, sizes, activation, output),
                 what="predict")
    np.testing.assert_array_equal(labels, np.argmax(expected, axis=1))
    assert bad == -1
    for fmt, S in sparse_formats(X).items():
        s_out, s_labels, s_bad = b.predict(S, params, sizes, activation, output)
        assert s_out.dtype == dtype, fmt
        assert_close(s_out, out, dtype,
                     scale=forward_error_scale(X, params, sizes, activation, output),
                     what=f"predict {fmt} vs dense")
        np.testing.assert_array_equal(s_labels, labels)
        assert s_bad == -1


@pytest.mark.parametrize("fmt", ["dense", "csr", "csc"])
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_predict_reports_the_first_non_finite_row(backend, dtype, fmt):
    """The first row whose input (dense, or a stored sparse value) or output is NaN or
    inf; -1 when there is none."""
    b = get_backend(backend)
    sizes = [4, 5, 2]
    X, params = predict_problem(dtype, sizes, 8, seed=5)
    as_fmt = {"dense": lambda A: A, "csr": scipy.sparse.csr_matrix,
              "csc": scipy.sparse.csc_matrix}[fmt]
    for cells, first in [([(6, 1, np.inf)], 6), ([(4, 3, np.nan), (3, 0, -np.inf)], 3),
                         ([(5, 0, np.nan), (7, 2, np.inf)], 5)]:
        Xb = X.copy()
        for r, c, v in cells:
            Xb[r, c] = v
        assert b.predict(as_fmt(Xb), params, sizes, "relu", "softmax")[2] == first
    # a finite input whose output overflows: rates exp(z) of a huge z
    one = [4, 1]
    p1 = np.concatenate([np.ones(4), [0.0]]).astype(dtype)
    Xo = np.abs(X) * 0.01
    Xo[[3, 6], 0] = 1e3
    out, _, bad = b.predict(as_fmt(Xo), p1, one, "identity", "poisson")
    assert bad == 3
    assert np.isinf(out[3, 0]) and np.all(np.isfinite(np.delete(out, [3, 6], axis=0)))


@pytest.mark.parametrize("fmt", ["dense", "csr"])
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_predict_finds_non_finite_values_anywhere_in_wide_rows(backend, dtype, fmt):
    """Rows wide enough for the check to run in vector lanes: a NaN or inf in any
    column, in a lane or in the tail after the last full vector, marks its row;
    the extreme finite values (the largest, the smallest subnormal, -0.0) do not
    (their columns have zero weights, so the outputs stay finite too)."""
    b = get_backend(backend)
    sizes = [67, 3, 2]
    X, params = predict_problem(dtype, sizes, 12, seed=8)
    info = np.finfo(dtype)
    extremes = {(1, 0): info.max, (1, 33): -info.max, (1, 66): -0.0,
                (4, 5): info.smallest_subnormal, (4, 17): -info.smallest_subnormal,
                (4, 64): info.tiny, (8, 40): info.max}
    for (r, c), v in extremes.items():
        X[r, c] = v
        params[c * sizes[1] : (c + 1) * sizes[1]] = 0.0  # the first layer's row of column c
    params[20 * sizes[1] : 21 * sizes[1]] = 2.0  # a huge value in column 20 overflows
    as_fmt = {"dense": lambda A: A, "csr": scipy.sparse.csr_matrix}[fmt]
    assert b.predict(as_fmt(X), params, sizes, "relu", "softmax")[2] == -1
    for row, col, v in [(0, 0, np.nan), (3, 15, np.inf), (5, 16, -np.inf), (9, 63, np.nan),
                        (11, 64, np.inf), (10, 66, -np.nan), (6, 31, np.inf), (1, 34, np.nan)]:
        Xb = X.copy()
        Xb[row, col] = v
        if row:  # a finite row before it whose output is not: the input's check comes first
            Xb[row - 1, 20] = info.max
        assert b.predict(as_fmt(Xb), params, sizes, "relu", "softmax")[2] == row, (row, col, v)


@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_predict_over_several_chunks(backend, dtype):
    """More rows than one forward pass of ``predict`` takes (config.PREDICT_CHUNK): every
    chunk's rows are right, and a bad output row in a later chunk is reported by its
    index in the whole X."""
    b = get_backend(backend)
    sizes = [3, 4, 2]
    n = config.PREDICT_CHUNK + 37
    rng = np.random.default_rng(6)
    X = rng.normal(size=(n, 3)).astype(dtype)
    params = random_net(sizes, dtype, 7)
    sample = np.r_[0:2, config.PREDICT_CHUNK - 2:config.PREDICT_CHUNK + 3, n - 2:n]
    expected = ref.forward(X[sample], params, sizes, "sigmoid", "logistic")
    for Xin in (X, scipy.sparse.csr_matrix(X)):
        out, labels, bad = b.predict(Xin, params, sizes, "sigmoid", "logistic")
        assert out.shape == (n, 2) and bad == -1
        assert_close(out[sample], expected, dtype,
                     scale=forward_error_scale(X[sample], params, sizes, "sigmoid", "logistic"),
                     what="predict")
        np.testing.assert_array_equal(labels, np.argmax(out, axis=1))
    huge = config.PREDICT_CHUNK + 5
    Xh = X.copy()
    Xh[huge] = 1e3
    p1 = np.concatenate([np.ones(3), [0.0]]).astype(dtype)
    for Xin in (Xh, scipy.sparse.csr_matrix(Xh)):
        assert b.predict(Xin, p1, [3, 1], "identity", "poisson")[2] == huge


# ============================================================ out= contract
def _array_calls(dtype):
    """(name, args, result shape) for every kernel that takes ``out``."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(4, 3)).astype(dtype)
    W = rng.normal(size=(3, 2)).astype(dtype)
    b = rng.normal(size=2).astype(dtype)
    A = rng.uniform(0.1, 0.9, size=(4, 3)).astype(dtype)
    dA = rng.normal(size=(4, 3)).astype(dtype)
    y = np.array([0, 2, 1, 2])
    sizes = [3, 5, 2]
    params = random_net(sizes, dtype, 1)
    calls = [(name, (X, W, b), (4, 2)) for name in LINEAR]
    calls += [(name, (A, dA), (4, 3)) for name in BACKWARD]
    calls += [("softmax", (X,), (4, 3)), ("log_softmax", (X,), (4, 3)),
              ("cross_entropy_backward", (X, y), (4, 3)),
              ("squared_error_backward", (X, dA), (4, 3)),
              ("binary_cross_entropy_backward", (X, binary_targets((4, 3), dtype)), (4, 3)),
              ("poisson_deviance_backward", (X, count_targets((4, 3), dtype)), (4, 3)),
              ("forward", (X, params, sizes, "relu", "softmax"), (4, 2))]
    return calls


OUT_KERNELS = [c[0] for c in _array_calls(np.float64)]


def test_every_kernel_with_out_is_covered():
    takes_out = {name for name in api.NAMES
                 if "out" in inspect.signature(getattr(api.Kernels, name)).parameters}
    assert takes_out == set(OUT_KERNELS)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", OUT_KERNELS)
def test_out_is_written_and_returned(name, backend, dtype):
    fn = getattr(get_backend(backend), name)
    args, shape = next((a, s) for n, a, s in _array_calls(dtype) if n == name)
    fresh = fn(*args)
    assert fresh.shape == shape and fresh.dtype == dtype and fresh.flags.c_contiguous
    out = np.full(shape, np.nan, dtype=dtype)
    result = fn(*args, out=out)
    assert result is out
    np.testing.assert_array_equal(out, fresh)
    # filled again over old contents (no accumulation into out)
    out[...] = 123.0
    assert fn(*args, out=out) is out
    np.testing.assert_array_equal(out, fresh)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_uses_given_scratch(backend, dtype):
    """forward's hidden layers go to ``work`` when it is given (old contents ignored);
    scratch that is too small, of another dtype or read-only is refused."""
    fn = get_backend(backend).forward
    rng = np.random.default_rng(8)
    sizes = [3, 7, 5, 2]
    X = rng.normal(size=(6, 3)).astype(dtype)
    params = random_net(sizes, dtype, 2)
    fresh = fn(X, params, sizes, "tanh", "softmax")
    work = np.full(2 * 6 * 7 + 3, np.nan, dtype=dtype)
    out = np.empty((6, 2), dtype=dtype)
    assert fn(X, params, sizes, "tanh", "softmax", out=out, work=work) is out
    np.testing.assert_array_equal(out, fresh)
    other = np.float64 if dtype is np.float32 else np.float32
    frozen = np.empty(2 * 6 * 7, dtype=dtype)
    frozen.flags.writeable = False
    for bad in (np.empty(2 * 6 * 7 - 1, dtype=dtype), np.empty(2 * 6 * 7, dtype=other),
                np.empty((2, 6 * 7), dtype=dtype), frozen, [0.0] * 100):
        with pytest.raises(ValueError, match=r"work must be .* at least 84 entries"):
            fn(X, params, sizes, "tanh", "softmax", work=bad)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", OUT_KERNELS)
def test_bad_out_is_rejected(name, backend, dtype):
    fn = getattr(get_backend(backend), name)
    args, shape = next((a, s) for n, a, s in _array_calls(dtype) if n == name)
    other = np.float64 if dtype is np.float32 else np.float32
    wrong_shape = (shape[0] + 1, shape[1])
    with pytest.raises(ValueError, match="out must have shape"):
        fn(*args, out=np.empty(wrong_shape, dtype=dtype))
    with pytest.raises(ValueError, match="out must have shape"):
        fn(*args, out=np.empty(shape[::-1] if shape[0] != shape[1] else (1,) + shape,
                               dtype=dtype))
    with pytest.raises(ValueError, match="out must have shape .* and dtype"):
        fn(*args, out=np.empty(shape, dtype=other))
    with pytest.raises(ValueError, match="out must have shape"):
        fn(*args, out=np.empty(shape[0] * shape[1], dtype=dtype))
    strided = np.empty((shape[0], 2 * shape[1]), dtype=dtype)[:, ::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        fn(*args, out=strided)
    fortran = np.empty(shape, dtype=dtype, order="F")
    assert not fortran.flags.c_contiguous  # every shape above has 2 dimensions > 1
    with pytest.raises(ValueError, match="C-contiguous"):
        fn(*args, out=fortran)
    frozen = np.empty(shape, dtype=dtype)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        fn(*args, out=frozen)
    with pytest.raises(TypeError, match="out must be a numpy array"):
        fn(*args, out=np.empty(shape, dtype=dtype).tolist())


# ----------------------------------------------------- out= overlapping inputs
class _TripwireCore:
    """A core whose every function fails the test: only the API's checks may run."""

    def __getattr__(self, name):
        def reached(*args, **kwargs):
            raise AssertionError(f"core.{name} was called: the API did not reject the arguments")

        return reached


TRIPWIRE = api.Kernels("tripwire", _TripwireCore())


def _sharing(arrays, index, out_shape, offset):
    """``arrays`` with arrays[index] replaced by an equal array that lives in a larger
    buffer, and an ``out`` of ``out_shape`` in that buffer starting ``offset`` entries
    after it (offset 0 and the same shape: the input itself)."""
    a = arrays[index]
    out_size = int(np.prod(out_shape))
    buf = np.zeros(max(a.size, offset + out_size) + 1, dtype=a.dtype)
    view = buf[:a.size].reshape(a.shape)
    view[...] = a
    if a.dtype.kind == "f":
        out = buf[offset:offset + out_size].reshape(out_shape)
    else:  # integer labels: out reads the same bytes as floats of its own dtype
        out = buf.view(np.float64)[offset:offset + out_size].reshape(out_shape)
    args = list(arrays)
    args[index] = view
    return args, out


def _overlap_cases():
    """(kernel, index of the input out overlaps, its name in the message)."""
    cases = []
    for name, args, _ in _array_calls(np.float64):
        arg_names = list(inspect.signature(getattr(api.Kernels, name)).parameters)[1:]  # no self
        for i, a in enumerate(args):
            if isinstance(a, np.ndarray):
                cases.append((name, i, arg_names[i]))
    return cases


OVERLAPS = _overlap_cases()
LABEL_OVERLAP = ("cross_entropy_backward", 1, "y")


def _check_overlap_refused(kernels_, name, index, arg_name):
    args, shape = next((a, s) for n, a, s in _array_calls(np.float64) if n == name)
    fn = getattr(kernels_, name)
    offsets = [1]
    if args[index].shape == shape and args[index].dtype == np.float64:
        offsets.append(0)  # out is the input itself
    for offset in offsets:
        shared, out = _sharing(args, index, shape, offset)
        assert np.shares_memory(out, shared[index])
        with pytest.raises(ValueError, match=r"out overlaps the input"):
            fn(*shared, out=out)


@pytest.mark.parametrize("name,index,arg_name", OVERLAPS,
                         ids=[f"{n}-{a}" for n, _, a in OVERLAPS])
def test_out_overlapping_an_input_is_refused_by_the_api(name, index, arg_name):
    """Checked through the tripwire core: a call that is not refused reaches the core and
    fails there, whatever a real core would have done with the aliased memory (the
    compiled core reads the labels while it writes ``out``)."""
    _check_overlap_refused(TRIPWIRE, name, index, arg_name)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
@pytest.mark.parametrize("name,index,arg_name",
                         [c for c in OVERLAPS if c != LABEL_OVERLAP],
                         ids=[f"{n}-{a}" for n, i, a in OVERLAPS if (n, i, a) != LABEL_OVERLAP])
def test_out_overlapping_an_input_is_refused(backend, name, index, arg_name):
    """The same through both backends (the integer labels are left to the tripwire test
    above: were they let through, the compiled core would overwrite the labels it is
    about to read and index memory with the result)."""
    _check_overlap_refused(get_backend(backend), name, index, arg_name)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
@pytest.mark.parametrize("name", OUT_KERNELS)
def test_non_contiguous_inputs_are_accepted(name, backend):
    """Inputs may be any strided view (the API copies them); results are unchanged."""
    fn = getattr(get_backend(backend), name)
    args, _ = next((a, s) for n, a, s in _array_calls(np.float64) if n == name)
    strided = []
    for a in args:
        if isinstance(a, np.ndarray) and a.dtype.kind == "f":
            big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
            big[..., ::2] = a
            a = big[..., ::2]
            assert not a.flags.c_contiguous
        strided.append(a)
    np.testing.assert_array_equal(fn(*strided), fn(*args))


# ============================================================== input checks
def _ok(dtype=np.float64):
    rng = np.random.default_rng(9)
    return dict(X=rng.normal(size=(4, 3)).astype(dtype), W=rng.normal(size=(3, 2)).astype(dtype),
                b=rng.normal(size=2).astype(dtype), y=np.array([0, 1, 2, 1]),
                A=rng.uniform(0.1, 0.9, size=(4, 3)).astype(dtype))


@pytest.mark.parametrize("backend", BACKEND_NAMES)
@pytest.mark.parametrize("name", tuple(LINEAR))
def test_linear_checks(backend, name):
    fn = getattr(get_backend(backend), name)
    ok = _ok()
    X, W, b = ok["X"], ok["W"], ok["b"]
    with pytest.raises(TypeError, match="X must be float32 or float64, got int64"):
        fn(X.astype(np.int64), W, b)
    with pytest.raises(TypeError, match="W must be float32 or float64, got int32"):
        fn(X, W.astype(np.int32), b)
    with pytest.raises(TypeError, match="W has dtype float32 but the other arrays are float64"):
        fn(X, W.astype(np.float32), b)
    with pytest.raises(TypeError, match="b has dtype float64 but the other arrays are float32"):
        fn(X.astype(np.float32), W.astype(np.float32), b)
    with pytest.raises(TypeError, match="X must be a numpy array, got list"):
        fn(X.tolist(), W, b)
    with pytest.raises(ValueError, match=r"X must be 2-D, got shape \(12,\)"):
        fn(X.ravel(), W, b)
    with pytest.raises(ValueError, match="b must be 1-D"):
        fn(X, W, b[None, :])
    with pytest.raises(ValueError, match="W must be 2-D"):
        fn(X, W[None], b)
    with pytest.raises(ValueError, match="shapes do not chain"):
        fn(X, W[:2], b)
    with pytest.raises(ValueError, match="shapes do not chain"):
        fn(X, W, np.zeros(3))


@pytest.mark.parametrize("backend", BACKEND_NAMES)
@pytest.mark.parametrize("name", tuple(BACKWARD))
def test_backward_checks(backend, name):
    fn = getattr(get_backend(backend), name)
    A = _ok()["A"]
    with pytest.raises(TypeError, match="A must be float32 or float64"):
        fn(A.astype(np.int64), A)
    with pytest.raises(TypeError, match="dA has dtype float32 but the other arrays are float64"):
        fn(A, A.astype(np.float32))
    with pytest.raises(ValueError, match="must have the same shape"):
        fn(A, A[:3])
    with pytest.raises(ValueError, match="dA must be 2-D"):
        fn(A, A.ravel())


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_softmax_family_checks(backend):
    b = get_backend(backend)
    X, y = _ok()["X"], _ok()["y"]
    for fn in (b.softmax, b.log_softmax):
        with pytest.raises(TypeError, match="Z must be float32 or float64, got int64"):
            fn(np.ones((2, 3), dtype=np.int64))
        with pytest.raises(ValueError, match="Z must be 2-D"):
            fn(np.ones(3))
    for fn in (b.cross_entropy, b.cross_entropy_backward):
        with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\), got \[0, 3\]"):
            fn(X, np.array([0, 1, 3, 1]))
        with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\), got \[-1, 2\]"):
            fn(X, np.array([0, -1, 2, 1]))
        with pytest.raises(TypeError, match="y must hold integer labels, got dtype float64"):
            fn(X, y.astype(np.float64))
        with pytest.raises(TypeError, match="y must hold integer labels, got dtype bool"):
            fn(X, np.array([True, False, True, False]))
        with pytest.raises(ValueError, match=r"y must have shape \(4,\) to match the rows"):
            fn(X, y[:3])
        with pytest.raises(ValueError, match=r"y must have shape \(4,\)"):
            fn(X, y[:, None])
        with pytest.raises(TypeError, match="Z must be float32 or float64"):
            fn(X.astype(np.int32), y)


@pytest.mark.parametrize("loss", ["squared_error", "binary_cross_entropy", "poisson_deviance"])
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_loss_with_targets_checks(backend, loss):
    b = get_backend(backend)
    X = _ok()["X"]
    for fn in (getattr(b, loss), getattr(b, loss + "_backward")):
        with pytest.raises(ValueError, match=r"target must have shape \(4, 3\) for this output, "
                                             r"got \(4, 2\)"):
            fn(X, X[:, :2])
        with pytest.raises(ValueError, match=r"target must have shape \(4, 3\)"):
            fn(X, X[:3])
        with pytest.raises(TypeError, match="target has dtype float32 but the other arrays are "
                                            "float64"):
            fn(X, X.astype(np.float32))
        with pytest.raises(TypeError, match="target must be float32 or float64"):
            fn(X, X.astype(np.int64))
        with pytest.raises(ValueError, match="target must be 2-D"):
            fn(X, X.ravel())
        with pytest.raises(TypeError, match="Z must be float32 or float64"):
            fn(X.astype(np.int64), X)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_optimiser_checks(backend):
    b = get_backend(backend)
    p = np.zeros(5)
    with pytest.raises(TypeError, match="params must be a float32 or float64 numpy array"):
        b.sgd_update(np.zeros(5, dtype=np.int64), p.copy(), p.copy(), 0.1)
    with pytest.raises(TypeError, match="params must be a float32 or float64"):
        b.adam_update([0.0] * 5, p.copy(), p.copy(), p.copy(), 1, 0.1)
    with pytest.raises(ValueError, match=r"grads must be an array of params' shape \(5,\) "
                                         r"and dtype float64"):
        b.sgd_update(p.copy(), np.zeros(5, dtype=np.float32), p.copy(), 0.1)
    with pytest.raises(ValueError, match="grads must be an array of params' shape"):
        b.sgd_update(p.copy(), np.zeros(4), p.copy(), 0.1)
    with pytest.raises(ValueError, match="velocity must be an array of params' shape"):
        b.sgd_update(p.copy(), p.copy(), np.zeros(6), 0.1)
    with pytest.raises(ValueError, match="m must be an array of params' shape"):
        b.adam_update(p.copy(), p.copy(), [0.0] * 5, p.copy(), 1, 0.1)
    with pytest.raises(ValueError, match="v must be an array of params' shape"):
        b.adam_update(p.copy(), p.copy(), p.copy(), np.zeros(5, dtype=np.float32), 1, 0.1)
    with pytest.raises(ValueError, match="writeable, 1-D and C-contiguous"):
        b.sgd_update(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3)), 0.1)
    strided = np.zeros(10)[::2]
    with pytest.raises(ValueError, match="writeable, 1-D and C-contiguous"):
        b.sgd_update(strided, p.copy(), p.copy(), 0.1)
    frozen = np.zeros(5)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writeable, 1-D and C-contiguous"):
        b.sgd_update(p.copy(), p.copy(), frozen, 0.1)
    for step in (0, -3):
        with pytest.raises(ValueError, match=f"must be >= 1, got {step}"):
            b.adam_update(p.copy(), p.copy(), p.copy(), p.copy(), step, 0.1)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_forward_and_predict_checks(backend):
    b = get_backend(backend)
    sizes = [3, 4, 2]
    X = _ok()["X"]
    params = random_net(sizes, np.float64, 0)
    for fn in (b.forward, b.predict):
        with pytest.raises(ValueError, match="unknown activation 'softplus'; valid: identity, "
                                             "sigmoid, tanh, relu"):
            fn(X, params, sizes, "softplus")
        with pytest.raises(ValueError, match="unknown output 'hinge'; valid: softmax, squared, "
                                             "logistic, poisson"):
            fn(X, params, sizes, "relu", "hinge")
        with pytest.raises(ValueError, match="sizes must list at least 2 positive layer widths"):
            fn(X, params, [3])
        with pytest.raises(ValueError, match="sizes must list at least 2 positive"):
            fn(X, params, [3, 0, 2])
        with pytest.raises(ValueError, match=r"params has 25 entries; sizes \[3, 4, 2\] need 26"):
            fn(X, params[:-1], sizes)
        with pytest.raises(TypeError, match="X has dtype float64 but the other arrays are "
                                            "float32"):
            fn(X, params.astype(np.float32), sizes)
        with pytest.raises(TypeError, match="X must be float32 or float64"):
            fn(X.astype(np.int64), params, sizes)
        with pytest.raises(TypeError, match="params must be a float32 or float64 numpy array"):
            fn(X, params.tolist(), sizes)
    with pytest.raises(ValueError, match="do not fit sizes"):
        b.forward(X[:, :2], params, sizes)
    with pytest.raises(ValueError, match="X has 2 columns but sizes"):
        b.predict(X[:, :2], params, sizes)
    with pytest.raises(ValueError, match="X has 2 columns but sizes"):
        b.predict(scipy.sparse.csr_matrix(X[:, :2]), params, sizes)


def _epoch_args(dtype=np.float64, output="softmax", sizes=(3, 4, 2), n=6, batch_size=4):
    rng = np.random.default_rng(2)
    sizes = list(sizes)
    X = rng.normal(size=(n, sizes[0])).astype(dtype)
    target = (rng.integers(0, sizes[-1], n) if output == "softmax"
              else rng.normal(size=(n, sizes[-1])).astype(dtype))
    params = random_net(sizes, dtype, 4)
    zeros = [np.zeros(params.size, dtype=dtype) for _ in range(3)]
    work = np.zeros(api.work_size(sizes, batch_size), dtype=dtype)
    return dict(X=X, target=target, order=np.arange(n), params=params, grads=zeros[0],
                state1=zeros[1], state2=zeros[2], step=0, sizes=sizes, activation="relu",
                output=output, solver="sgd", lr=0.1, momentum=0.9, nesterov=False, l2=0.0,
                batch_size=batch_size, work=work, sample_weight=None)


def _gradient_args(**changes):
    e = _epoch_args()
    args = dict(X=e["X"], target=e["target"], params=e["params"], grads=e["grads"],
                sizes=e["sizes"], activation="relu", output="softmax", l2=0.0, chunk=4,
                work=e["work"], sample_weight=None)
    args.update(changes)
    return args


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_train_epoch_checks(backend):
    fn = get_backend(backend).train_epoch

    def call(**changes):
        args = _epoch_args()
        args.update(changes)
        return fn(**args)

    with pytest.raises(ValueError, match="unknown solver 'lbfgs'; valid: sgd, adam"):
        call(solver="lbfgs")
    with pytest.raises(ValueError, match="unknown activation"):
        call(activation="elu")
    with pytest.raises(ValueError, match="unknown output"):
        call(output="hinge")
    order_error = "order must be a 1-D array of row indices of X"
    with pytest.raises(ValueError, match=order_error):
        call(order=np.array([0, 1, 6]))
    with pytest.raises(ValueError, match=order_error):
        call(order=np.array([-1, 0]))
    with pytest.raises(ValueError, match=order_error):
        call(order=np.zeros((2, 2), dtype=np.int64))
    work_error = r"work must be a writeable, C-contiguous 1-D array of at least \d+ entries"
    with pytest.raises(ValueError, match=work_error):
        call(work=np.zeros(5))
    with pytest.raises(ValueError, match=work_error):
        call(work=np.zeros((200, 2)))
    with pytest.raises(TypeError, match="X, params and work must share one dtype"):
        call(work=np.zeros(200, dtype=np.float32))
    with pytest.raises(TypeError, match="work must be a numpy array, got list"):
        call(work=[0.0] * 200)
    with pytest.raises(ValueError, match="labels must lie in"):
        call(target=np.array([0, 1, 2, 0, 1, 0]))
    with pytest.raises(ValueError, match=r"y must have shape \(6,\)"):
        call(target=np.array([0, 1, 0]))
    with pytest.raises(TypeError, match="y must hold integer labels"):
        call(target=np.zeros(6))
    for output in ("squared", "logistic", "poisson"):
        with pytest.raises(TypeError, match="target has dtype float32"):
            call(output=output, target=np.zeros((6, 2), dtype=np.float32))
        with pytest.raises(ValueError, match="target must be 2-D"):
            call(output=output, target=np.zeros(6))
        with pytest.raises(ValueError, match=r"target must have shape \(6, 2\) for this output"):
            call(output=output, target=np.zeros((6, 3)))
    with pytest.raises(TypeError, match="X must be float32 or float64"):
        call(X=np.zeros((6, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="X has 2 columns but sizes"):
        call(X=scipy.sparse.csr_matrix(np.zeros((6, 2))))
    with pytest.raises(ValueError, match="grads must be an array of params' shape"):
        call(grads=np.zeros(3))
    with pytest.raises(ValueError, match="state2 must be an array of params' shape"):
        call(state2=np.zeros(26, dtype=np.float32))
    with pytest.raises(ValueError, match="sizes must list"):
        call(sizes=[3])
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(6,\), got \(5,\)"):
        call(sample_weight=np.ones(5))
    for bad in ([1, 1, -1, 1, 1, 1], [1, 1, np.nan, 1, 1, 1], [1, 1, np.inf, 1, 1, 1]):
        with pytest.raises(ValueError, match="sample_weight must hold finite values >= 0"):
            call(sample_weight=np.array(bad, dtype=np.float64))
    for bad in (0, -2, 2.5, True):
        with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
            call(batch_size=bad)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_loss_gradient_checks(backend):
    fn = get_backend(backend).loss_gradient
    with pytest.raises(ValueError, match="unknown output"):
        fn(**_gradient_args(output="hinge"))
    with pytest.raises(ValueError, match="chunk must be an integer >= 1"):
        fn(**_gradient_args(chunk=0))
    with pytest.raises(ValueError, match=r"work must be .* of at least \d+ entries"):
        fn(**_gradient_args(work=np.zeros(5)))
    with pytest.raises(ValueError, match="grads must be an array of params' shape"):
        fn(**_gradient_args(grads=np.zeros(4)))
    with pytest.raises(ValueError, match="labels must lie in"):
        fn(**_gradient_args(target=np.array([0, 1, 2, 0, 1, 0])))
    with pytest.raises(ValueError, match=r"target must have shape \(6, 2\)"):
        fn(**_gradient_args(output="poisson", target=np.zeros((6, 1))))
    with pytest.raises(ValueError, match="sample_weight must hold finite values >= 0"):
        fn(**_gradient_args(sample_weight=-np.ones(6)))
    with pytest.raises(ValueError, match="X has 4 columns but sizes"):
        fn(**_gradient_args(X=np.zeros((6, 4))))


# -------------------------------------------- the tripwire: checks only, no core
_UNCHECKED = [
    pytest.param(dict(X=np.zeros((6, 2))), "X|sizes", id="X-columns-vs-sizes"),
    pytest.param(dict(X=scipy.sparse.csr_matrix(np.zeros((6, 4)))), "X|sizes",
                 id="sparse-X-columns-vs-sizes"),
    pytest.param(dict(params=np.zeros(5), grads=np.zeros(5), state1=np.zeros(5),
                      state2=np.zeros(5)), "params|sizes", id="params-length-vs-sizes"),
    pytest.param(dict(output="squared", target=np.zeros((6, 1))), "target|shape",
                 id="target-shape"),
    pytest.param(dict(output="logistic", target=np.zeros((2, 2))), "target|shape",
                 id="target-rows"),
    pytest.param(dict(target=np.array([0, 1, 2, 0, 1, 0])), "labels", id="label-too-large"),
    pytest.param(dict(order=np.array([0, 6])), "order", id="order-past-the-rows"),
    pytest.param(dict(order=np.array([-1])), "order", id="order-negative"),
    pytest.param(dict(batch_size=0), "batch_size", id="batch_size-0"),
    pytest.param(dict(batch_size=-2), "batch_size", id="batch_size-negative"),
    pytest.param(dict(work=np.zeros(400)[::2]), "work", id="work-non-contiguous"),
    pytest.param(dict(work=np.zeros(api.work_size([3, 4, 2], 4) - 1)), "work",
                 id="work-one-short"),
    pytest.param(dict(sample_weight=np.ones(7)), "sample_weight", id="weights-too-long"),
    pytest.param(dict(sample_weight=np.array([1.0, -1, 1, 1, 1, 1])), "sample_weight",
                 id="weights-negative"),
]


@pytest.mark.parametrize("changes,match", _UNCHECKED)
def test_train_epoch_rejects_inconsistent_arguments(changes, match):
    """Checked through the tripwire core, never through a real one (which would read or
    write past the arrays)."""
    args = _epoch_args()
    args.update(changes)
    with pytest.raises((TypeError, ValueError), match=match):
        TRIPWIRE.train_epoch(**args)


_UNCHECKED_GRADIENT = [
    pytest.param(dict(X=np.zeros((6, 2))), "X|sizes", id="X-columns-vs-sizes"),
    pytest.param(dict(params=np.zeros(5), grads=np.zeros(5)), "params|sizes",
                 id="params-length-vs-sizes"),
    pytest.param(dict(output="squared", target=np.zeros((5, 2))), "target|shape",
                 id="target-rows"),
    pytest.param(dict(chunk=-1), "chunk", id="chunk-negative"),
    pytest.param(dict(work=np.zeros(api.work_size([3, 4, 2], 4) - 1)), "work",
                 id="work-one-short"),
    pytest.param(dict(sample_weight=np.ones(5)), "sample_weight", id="weights-too-short"),
]


@pytest.mark.parametrize("changes,match", _UNCHECKED_GRADIENT)
def test_loss_gradient_rejects_inconsistent_arguments(changes, match):
    with pytest.raises((TypeError, ValueError), match=match):
        TRIPWIRE.loss_gradient(**_gradient_args(**changes))


def test_tripwire_core_sees_only_valid_calls():
    """The tripwire itself: a valid call reaches the core, an invalid one does not."""
    with pytest.raises(AssertionError, match="core.train_epoch was called"):
        TRIPWIRE.train_epoch(**_epoch_args())
    with pytest.raises(AssertionError, match="core.loss_gradient was called"):
        TRIPWIRE.loss_gradient(**_gradient_args())
    with pytest.raises(AssertionError, match="core.softmax was called"):
        TRIPWIRE.softmax(np.zeros((2, 3)), out=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="order must be a 1-D array of row indices"):
        TRIPWIRE.train_epoch(**dict(_epoch_args(), order=np.array([7])))


# ================================================================ properties
@pytest.mark.parametrize("backend,dtype,case", grid(NASTY))
def test_softmax_rows_are_finite_and_sum_to_one(backend, dtype, case):
    P = get_backend(backend).softmax(case.array(dtype))
    assert np.all(np.isfinite(P))
    assert np.all(P >= 0) and np.all(P <= 1)
    np.testing.assert_allclose(P.astype(np.float64).sum(axis=1), 1.0,
                               rtol=0, atol=20 * np.finfo(dtype).eps * P.shape[1])


@pytest.mark.parametrize("backend,dtype", [(b, d) for b in BACKEND_NAMES for d in DTYPES])
@pytest.mark.parametrize("magnitude", [1e4, 1e30])
def test_softmax_of_extreme_logits(backend, dtype, magnitude):
    b = get_backend(backend)
    Z = np.array([[magnitude, -magnitude], [-magnitude, magnitude], [magnitude, magnitude],
                  [-magnitude, -magnitude]], dtype=dtype)
    expected = np.array([[1, 0], [0, 1], [0.5, 0.5], [0.5, 0.5]])
    np.testing.assert_array_equal(b.softmax(Z), expected)
    y = np.array([0, 1, 0, 1])
    G = b.cross_entropy_backward(Z[:1], y[:1])
    assert np.all(np.isfinite(G)) and np.all(G == 0)
    assert b.cross_entropy(Z[:2], y[:2]) == 0.0
    assert b.cross_entropy(Z[:2], 1 - y[:2]) == 2 * float(Z.dtype.type(magnitude))


TIE_GRID = [pytest.param(b, d, mag, id=f"{b}-{dname(d)}-{mag:g}")
            for b in BACKEND_NAMES for d in DTYPES for mag in (0.0, 3.0, 1e4, 1e30)]


@pytest.mark.parametrize("backend,dtype,magnitude", TIE_GRID)
def test_log_softmax_of_tied_rows(backend, dtype, magnitude):
    """Rows with j ties at the maximum: log_softmax there is -log(j), whatever the size."""
    b = get_backend(backend)
    Z = np.array([[magnitude, magnitude, -abs(magnitude) - 1e6],
                  [-magnitude] * 3,
                  [magnitude] * 3], dtype=dtype)
    expected = np.array([-math.log(2), -math.log(2), -math.log(3), -math.log(3),
                         -math.log(3), -math.log(3), -math.log(3)])
    got = b.log_softmax(Z)
    picked = np.array([got[0, 0], got[0, 1], got[1, 0], got[1, 1], got[1, 2], got[2, 0],
                       got[2, 2]])
    np.testing.assert_allclose(picked, expected, rtol=10 * RTOL[dtype_key(dtype)])


@pytest.mark.parametrize("backend,dtype,magnitude", TIE_GRID)
def test_cross_entropy_of_constant_rows_is_log_k(backend, dtype, magnitude):
    b = get_backend(backend)
    Z = np.full((3, 4), magnitude, dtype=dtype)
    Z[1] = -magnitude
    loss = b.cross_entropy(Z, np.array([0, 3, 1]))
    assert loss == pytest.approx(math.log(4), rel=10 * RTOL[dtype_key(dtype)])


@pytest.mark.parametrize("backend,dtype,case", grid(NASTY))
def test_log_softmax_is_log_of_softmax(backend, dtype, case):
    b = get_backend(backend)
    Z = case.array(dtype)
    P = b.softmax(Z).astype(np.float64)
    LS = b.log_softmax(Z).astype(np.float64)
    where = P > 1e-6
    rtol = 10 * RTOL[dtype_key(dtype)]
    np.testing.assert_allclose(LS[where], np.log(P[where]), rtol=rtol, atol=rtol)
    assert np.all(np.isfinite(LS))
    assert np.all(LS <= 0)


@pytest.mark.parametrize("backend,dtype,case", grid(NASTY))
def test_cross_entropy_backward_rows_sum_to_zero(backend, dtype, case):
    Z = case.array(dtype)
    G = get_backend(backend).cross_entropy_backward(Z, labels_for(*Z.shape))
    n = Z.shape[0]
    sums = G.astype(np.float64).sum(axis=1)
    np.testing.assert_allclose(sums, 0.0, rtol=0, atol=10 * np.finfo(dtype).eps / n)


@pytest.mark.parametrize("backend,dtype,case", grid(NASTY))
def test_binary_cross_entropy_is_symmetric(backend, dtype, case):
    """Swapping the classes (z -> -z, y -> 1 - y) changes neither the loss nor, up to its
    sign, the gradient; and the loss is >= 0."""
    b = get_backend(backend)
    Z = case.array(dtype)
    Y = binary_targets(Z.shape, dtype)
    loss, flipped = b.binary_cross_entropy(Z, Y), b.binary_cross_entropy(-Z, 1 - Y)
    assert loss >= 0
    assert flipped == pytest.approx(loss, rel=10 * RTOL[dtype_key(dtype)], abs=1e-300)
    np.testing.assert_allclose(b.binary_cross_entropy_backward(-Z, 1 - Y),
                               -b.binary_cross_entropy_backward(Z, Y),
                               rtol=10 * RTOL[dtype_key(dtype)], atol=1e-37)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_poisson_deviance_is_zero_at_the_counts(backend, dtype):
    """The deviance of rates equal to the counts is 0 (and its gradient 0); any other rate
    gives a positive deviance."""
    b = get_backend(backend)
    Y = count_targets((5, 3), np.float64) + 0.5
    Z = np.log(Y).astype(dtype)
    Y = Y.astype(dtype)
    tol = 20 * np.finfo(dtype).eps * float(np.max(Y))
    assert abs(b.poisson_deviance(Z, Y)) <= tol * Y.size
    np.testing.assert_allclose(b.poisson_deviance_backward(Z, Y), 0.0, atol=tol)
    assert b.poisson_deviance((Z + 0.1).astype(dtype), Y) > 0.1 * 0.1 / 4
    assert b.poisson_deviance((Z - 0.1).astype(dtype), Y) > 0.1 * 0.1 / 4


def _central_difference(f, X, h):
    """d f(X)[i, j] / d X[i, j] for an elementwise f, by central differences."""
    return (f(X + h) - f(X - h)) / (2 * h)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel", tuple(BACKWARD))
def test_activation_backward_is_derivative_of_forward(kernel, backend, dtype):
    """backward(f(S), G) == G * f'(S), with f' from finite differences of the backend's own
    fused linear kernel (in float64)."""
    b = get_backend(backend)
    act = BACKWARD[kernel]
    S = 4.0 * pattern((5, 6), 8)
    if act == "relu":
        S = np.where(np.abs(S) < 0.1, 0.5, S)  # keep off the kink
    G = pattern((5, 6), 9)
    eye, zero = np.eye(6), np.zeros(6)
    forward64 = getattr(b, "linear_" + act)
    deriv = _central_difference(lambda V: forward64(V, eye, zero), S, 1e-6)
    A = forward64(S, eye, zero).astype(dtype)
    got = getattr(b, kernel)(A, G.astype(dtype))
    atol = 1e-8 if dtype is np.float64 else 1e-6
    np.testing.assert_allclose(got, G * deriv, rtol=1e-6 if dtype is np.float64 else 1e-5,
                               atol=atol)


def _loss_gradient_by_differences(loss, Z, h=1e-6):
    g = np.zeros_like(Z)
    for idx in np.ndindex(*Z.shape):
        up, down = Z.copy(), Z.copy()
        up[idx] += h
        down[idx] -= h
        g[idx] = (loss(up) - loss(down)) / (2 * h)
    return g


def _loss_targets(loss, n):
    if loss == "cross_entropy":
        return labels_for(n, 3)
    if loss == "binary_cross_entropy":
        return binary_targets((n, 3), np.float64)
    if loss == "poisson_deviance":
        return count_targets((n, 3), np.float64)
    return pattern((n, 3), 12)


@pytest.mark.parametrize("n", [1, 4])
@pytest.mark.parametrize("loss", ["cross_entropy", "squared_error", "binary_cross_entropy",
                                  "poisson_deviance"])
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_loss_backward_is_gradient(backend, loss, n):
    b = get_backend(backend)
    Z = 2.0 * pattern((n, 3), 10)
    T = _loss_targets(loss, n)
    fd = _loss_gradient_by_differences(lambda V: getattr(b, loss)(V, T), Z)
    got = getattr(b, loss + "_backward")(Z, T)
    assert np.abs(got).max() > 1e-3
    np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-9)


# ================================================================ large arrays
@pytest.mark.parametrize("backend", BACKEND_NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_large_arrays(backend, dtype):
    """Arrays of 2100 x 80 (long loops, many rows): sampled rows equal the reference and
    the two backends agree everywhere."""
    b, other = get_backend(backend), get_backend("numpy" if backend == "numba" else "numba")
    rng = np.random.default_rng(12)
    Z = (rng.normal(size=(2100, 80)) * 5).astype(dtype)
    A = rng.uniform(0.01, 0.99, size=Z.shape).astype(dtype)
    sample = np.r_[0:3, 1049:1052, 2097:2100]
    rtol = RTOL[dtype_key(dtype)]
    for name, fn_ref, scale in (("softmax", ref.softmax, 0.0),
                                ("log_softmax", ref.log_softmax, 1.0)):
        got = getattr(b, name)(Z)
        assert_close(got[sample], fn_ref(Z[sample]), dtype, scale=scale, what=name)
        assert_close(got, getattr(other, name)(Z), dtype, scale=1.0, rtol=4 * rtol, what=name)
    for name in BACKWARD:
        got = getattr(b, name)(A, Z)
        scale = backward_scale(name, A[sample], Z[sample])
        assert_close(got[sample], getattr(ref, name)(A[sample], Z[sample]), dtype,
                     scale=scale, what=name)
        assert_close(got, getattr(other, name)(A, Z), dtype,
                     scale=backward_scale(name, A, Z), rtol=4 * rtol, what=name)
    Y = binary_targets(Z.shape, dtype)
    got = b.binary_cross_entropy_backward(Z, Y)
    assert_close(got[sample], ref.binary_cross_entropy_backward(Z[sample], Y[sample]) *
                 len(sample) / len(Z), dtype, scale=1.0 / len(Z), what="bce_backward")
    assert_close(got, other.binary_cross_entropy_backward(Z, Y), dtype, scale=1.0 / len(Z),
                 rtol=4 * rtol, what="bce_backward")
    flat = Z.ravel()
    for nesterov in (False, True):
        p, v = flat.copy(), A.ravel().copy()
        exp_p, exp_v = ref.sgd_update(p[::997], flat[::997], v[::997], 0.01, 0.9, nesterov)
        b.sgd_update(p, flat, v, 0.01, 0.9, nesterov)
        assert_close(v[::997], exp_v, dtype, scale=1.0, what="velocity")
        assert_close(p[::997], exp_p, dtype, scale=np.abs(flat[::997]) + 1, what="params")
    p, m, v = flat.copy(), A.ravel() - 0.5, A.ravel().copy()
    exp = ref.adam_update(p[::997], flat[::997], m[::997], v[::997], 3, 0.01)
    b.adam_update(p, flat, m, v, 3, 0.01)
    for got, e, what in zip((p, m, v), exp, ("params", "m", "v")):
        assert_close(got[::997], e, dtype, scale=np.abs(e) + 1, what=what)


# ============================================================ the two cores
def _core_calls():
    """{name: number of positional arguments} of every ``self._core.NAME(...)`` call in
    ``api.Kernels``, read from its source, and of its calls of the epoch kernel that
    ``api.epoch_path`` picks (any of ``api.EPOCH_KERNELS``) and of the loss kernel
    that ``api.loss_path`` picks (any of ``api.LOSS_KERNELS``)."""
    tree = ast.parse(inspect.getsource(api.Kernels))
    calls = {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Attribute)
                and node.func.value.attr == "_core"
                and isinstance(node.func.value.value, ast.Name)
                and node.func.value.value.id == "self"):
            assert not node.keywords, f"core.{node.func.attr} called with keywords"
            assert calls.setdefault(node.func.attr, len(node.args)) == len(node.args)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("epoch_kernel", "loss_kernel")):  # self._kernel(NAME)
            for name in (api.EPOCH_KERNELS if node.func.id == "epoch_kernel"
                         else api.LOSS_KERNELS):
                assert calls.setdefault(name, len(node.args)) == len(node.args)
    return calls


def _parameter_names(fn):
    return list(inspect.signature(fn).parameters)


def test_both_cores_define_every_function_the_api_calls():
    """numba_core and numpy_core are written separately: each must define every function
    ``api.Kernels`` calls, with the same parameter names, as many as the call passes."""
    from numba.core.registry import CPUDispatcher

    calls = _core_calls()
    assert {"linear", "act_backward", "softmax", "log_softmax", "output_rows", "sgd_update",
            "adam_update", "forward", "predict_rows", "train_epoch", "train_rows",
            "train_columns", "train_blocks", "loss_gradient", "loss_gradient_blocks"} <= set(calls)
    for name, n_args in sorted(calls.items()):
        compiled = getattr(numba_core, name, None)
        plain = getattr(numpy_core, name, None)
        passes = ["forward", "loss", "backward"]
        by_address = {"train_epoch": passes + ["update"], "train_blocks": passes + ["update"],
                      "train_columns": ["columns", "update"],
                      "loss_gradient_blocks": passes}.get(name)
        if by_address:
            # Python functions over compiled ones, to which they pass a block's passes
            # and/or the update of a span of parameters by address
            behind = getattr(numba_core, f"_{name}_by")
            assert isinstance(behind, CPUDispatcher), f"numba_core._{name}_by is not compiled"
            assert _parameter_names(behind.py_func) == _parameter_names(compiled) + by_address
            twin = getattr(numba_core, f"_{name}_serial_by", behind)
            assert not isinstance(behind, CompiledOnly) and not isinstance(twin, CompiledOnly)
        else:
            assert isinstance(compiled, CPUDispatcher), f"numba_core.{name} is not compiled"
            assert not isinstance(compiled, CompiledOnly), f"Python cannot call {name}"
            compiled = compiled.py_func
        assert inspect.isfunction(plain), f"numpy_core.{name} is missing"
        names = _parameter_names(compiled)
        assert names == _parameter_names(plain), name
        assert len(names) == n_args, f"{name}: the API passes {n_args} arguments, not {len(names)}"


def test_a_function_compiled_for_compiled_callers_only_refuses_python():
    """Most compiled functions have no wrapper for Python (``config.JIT``): calling one from
    Python raises a TypeError naming it (numba would jump to a wrapper never generated),
    while compiled code calls it as usual."""
    A = np.arange(6.0).reshape(2, 3)
    B = np.arange(12.0).reshape(3, 4)
    C = np.empty((2, 4))
    assert isinstance(numba_core.gemm_nn, CompiledOnly)
    with pytest.raises(TypeError, match="products.gemm_nn is compiled without an entry point"):
        numba_core.gemm_nn(A, B, C)
    # linear (which Python may call) computes its product by gemm_nn
    numba_core.linear(A, B, np.zeros(4), codes.IDENTITY, C)
    np.testing.assert_array_equal(C, A @ B)


def test_get_returns_one_kernels_object_per_backend(backends):
    for name, k in backends.items():
        assert isinstance(k, api.Kernels) and k.name == name
        assert kernels.get(name) is k
        assert k._core is {"numba": numba_core, "numpy": numpy_core}[name]
    assert kernels.get() is kernels.get(kernels.BACKEND)


def test_module_attributes_delegate_to_the_process_backend():
    active = kernels.get(kernels.BACKEND)
    for name in api.NAMES:
        attr = getattr(kernels, name)
        if name == "work_size":  # the module-level function, the same for every backend
            assert attr is api.work_size
            continue
        assert attr.__self__ is active and attr.__func__ is getattr(api.Kernels, name), name
    with pytest.raises(AttributeError, match="has no attribute 'make'"):
        kernels.make  # noqa: B018


def test_get_rejects_unknown_backend():
    with pytest.raises(ValueError, match="unknown fastmlp backend 'cuda'; valid backends: "
                                         "numba, numpy"):
        kernels.get("cuda")


# ========================================================== n_params, work_size
@pytest.mark.parametrize("sizes", [[3, 2], [5, 4, 3], [2, 7, 1, 9]])
def test_n_params(sizes):
    assert kernels.n_params(sizes) == ref.n_params(sizes)
    assert kernels.n_params(np.array(sizes)) == ref.n_params(sizes)


@pytest.mark.parametrize("sizes,batch,expected", [
    # batch input 4 x 2 + activations 4 x 3 + two deltas 2 x 4 x 3 + W, b of (2 + 1) x 3
    ([2, 3], 4, 8 + 12 + 24 + 9),
    # input 2 x 3 + activations 2 x (5 + 2) + deltas 2 x 2 x 5 + largest layer (3 + 1) x 5
    ([3, 5, 2], 2, 6 + 14 + 20 + 20),
    # input 4 + activation 1 + deltas 2 + W, b 5
    ([4, 1], 1, 4 + 1 + 2 + 5),
    # input 3 x 1 + activations 3 x (8 + 2 + 6) + deltas 2 x 3 x 8 + largest (2 + 1) x 6
    ([1, 8, 2, 6], 3, 3 + 48 + 48 + 18),
])
def test_work_size_of_small_networks(sizes, batch, expected, backends):
    assert api.work_size(sizes, batch) == expected
    for k in backends.values():
        assert k.work_size(sizes, batch) == expected
    # sparse X is read in place: no block for the batch's gathered input rows
    assert api.work_size(sizes, batch, sparse=True) == expected - batch * sizes[0]


SENTINEL = 1234.5


#: (sizes, batch size, solver) whose epoch each kernel trains (``api.epoch_path``).
EVERY_EPOCH_KERNEL = {"train_rows": ([5, 7, 3], 1, "sgd"),
                      "train_columns": ([5, 7, 3], 40, "adam"),
                      "train_blocks": ([5, 40, 3], 64, "adam"),
                      "train_epoch": ([5, 40, 3], 8, "sgd")}


@pytest.mark.parametrize("path", sorted(EVERY_EPOCH_KERNEL))
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_the_epoch_kernels_leave_order_as_it_was(backend, dtype, path):
    """Every epoch kernel only reads ``order``: the model passes one array of
    the rows in their own order to every full-batch epoch."""
    sizes, batch, solver = EVERY_EPOCH_KERNEL[path]
    n = 130
    assert api.epoch_path(np.zeros((n, sizes[0]), dtype), np.array(sizes), batch,
                          codes.SOFTMAX, codes.SOLVERS[solver]) == path
    X, target, _, params, grads, s1, s2 = epoch_problem(dtype, "softmax", sizes, n, 3)
    order = np.random.default_rng(4).permutation(n)
    before = order.copy()
    for _ in range(2):
        get_backend(backend).train_epoch(X, target, order, params, grads, s1, s2, 0, sizes,
                                         "tanh", "softmax", solver, 0.01, batch_size=batch)
    np.testing.assert_array_equal(order, before)




@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_work_size_is_enough_and_is_all_the_kernels_touch(backend, dtype, sparse):
    """train_epoch and loss_gradient on ``work`` of exactly work_size entries, the head of
    a larger sentinel-filled buffer: nothing past it changes, the results are those of a
    run with scratch the API allocates; one entry fewer is refused. (The NumPy core
    allocates its own scratch and leaves ``work`` alone; the compiled core uses it.)"""
    b = get_backend(backend)
    for sizes, batch, order in (([3, 7, 2, 4], 3, [4, 0, 3, 3, 1, 2, 5]),
                                ([5, 2, 6], 1, [2, 0, 1]), ([2, 9], 4, [1, 2, 0, 3, 4])):
        n = 6
        X, target, _, params, _, s1, s2 = epoch_problem(dtype, "squared", sizes, n, 1,
                                                        sparse=sparse)
        need = b.work_size(sizes, batch, sparse=sparse)
        buf = np.full(need + 50, SENTINEL, dtype=dtype)
        results = []
        for work in (buf[:need], None):
            p, g, a, c = params.copy(), np.zeros_like(params), s1.copy(), s2.copy()
            out = b.train_epoch(X, target, np.array(order), p, g, a, c, 0, sizes, "tanh",
                                "squared", "adam", 0.01, l2=0.01, batch_size=batch, work=work)
            gg = np.zeros_like(params)
            out += b.loss_gradient(X, target, p, gg, sizes, "tanh", "squared", l2=0.01,
                                   chunk=batch, work=work)
            results.append((out, p, g, a, c, gg))
        np.testing.assert_array_equal(buf[need:], SENTINEL)
        if backend == "numba":
            assert np.any(buf[:need] != SENTINEL)  # the compiled core did work in it
        (out1, *arrays1), (out2, *arrays2) = results
        assert out1 == out2
        for a1, a2 in zip(arrays1, arrays2):
            np.testing.assert_array_equal(a1, a2)
        with pytest.raises(ValueError, match=f"at least {need} entries"):
            b.train_epoch(X, target, np.array(order), params.copy(), np.zeros_like(params),
                          s1.copy(), s2.copy(), 0, sizes, "tanh", "squared", "adam", 0.01,
                          batch_size=batch, work=buf[:need - 1])
        with pytest.raises(ValueError, match=f"at least {need} entries"):
            b.loss_gradient(X, target, params.copy(), np.zeros_like(params), sizes, "tanh",
                            "squared", chunk=batch, work=buf[:need - 1])


# ============================================================== train_epoch
def targets_for(output, n, k, dtype, rng):
    """Integer labels (softmax), normal values (squared), 0/1 (logistic) or counts with
    zeros among them (poisson)."""
    if output == "softmax":
        return rng.integers(0, k, n)
    if output == "squared":
        return rng.normal(size=(n, k)).astype(dtype)
    if output == "logistic":
        return (rng.random((n, k)) < 0.5).astype(dtype)
    return rng.poisson(1.0, size=(n, k)).astype(dtype)


def epoch_problem(dtype, output, sizes, n, seed, weighted=False, sparse=False):
    """(X, target, sample_weight, params, grads, state1, state2): X dense or CSR (about
    40% zeros), weights in [0.2, 2] with row 1's 0 (or None)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, sizes[0]))
    if sparse:
        X[rng.random(X.shape) < 0.4] = 0.0
    X = X.astype(dtype)
    target = targets_for(output, n, sizes[-1], dtype, rng)
    weights = None
    if weighted:
        weights = rng.uniform(0.2, 2.0, n)
        weights[1] = 0.0
    params = random_net(sizes, dtype, seed + 1)
    P = params.size
    grads = rng.normal(size=P).astype(dtype)  # overwritten by the first batch
    state1 = (rng.normal(size=P) * 0.01).astype(dtype)
    state2 = (state1.astype(np.float64) ** 2 + np.abs(rng.normal(size=P)) * 1e-4).astype(dtype)
    return (scipy.sparse.csr_matrix(X) if sparse else X), target, weights, params, grads, \
        state1, state2


#: Adam's hyperparameters in the epoch tests: not the defaults, so that they must be passed on.
ADAM_HYPER = dict(beta1=0.8, beta2=0.99, eps=1e-7)


def run_and_compare_epochs(dtype, activation, output, solver_key, batch_size, l2, sizes, n,
                           epochs=2, seed=0, orders=None, weighted=False, sparse=False,
                           backends=BACKEND_NAMES, adam=ADAM_HYPER):
    """Run ``epochs`` epochs on each backend and on the reference, comparing after each."""
    solver, nesterov = SOLVERS[solver_key]
    X, target, weights, params, grads, s1, s2 = epoch_problem(dtype, output, sizes, n, seed,
                                                              weighted, sparse)
    lr = 0.01 if solver == "adam" else 0.05
    momentum = 0.9
    rtol = EPOCH_RTOL[dtype]
    step0 = 3 if solver == "adam" else 0
    rng = np.random.default_rng(seed + 100)
    orders = [rng.permutation(n) for _ in range(epochs)] if orders is None else orders
    expected = []
    rstate = [a.astype(np.float64) for a in (params, grads, s1, s2)]
    rstep = step0
    for order in orders:
        rdata, rpen, rstep, rdone, *rstate = ref.train_epoch(
            X, target, order, *rstate, rstep, sizes,
            activation, output, solver, lr, momentum, nesterov, l2=l2, batch_size=batch_size,
            sample_weight=weights, dtype=dtype, **adam)
        assert rdone == len(order)  # the reference epoch succeeded: a meaningful comparison
        expected.append((rdata, rpen, rstep, rdone, list(rstate)))
    for backend in backends:
        b = get_backend(backend)
        p, g, a, c = (arr.copy() for arr in (params, grads, s1, s2))
        work = np.full(b.work_size(sizes, batch_size), np.nan, dtype=dtype)
        step = step0
        for epoch, (order, (rdata, rpen, rstep, rdone, rarrays)) in enumerate(zip(orders,
                                                                                 expected)):
            data, pen, step, done = b.train_epoch(
                X, target, np.asarray(order), p, g, a, c, step, sizes, activation, output,
                solver, lr, momentum, nesterov, l2=l2, batch_size=batch_size, work=work,
                sample_weight=weights, **adam)
            what = f"{backend}, epoch {epoch}"
            assert (step, done) == (rstep, rdone), what
            assert isinstance(data, float) and isinstance(pen, float)
            assert data == pytest.approx(rdata, rel=rtol, abs=rtol), f"data loss, {what}"
            assert pen == pytest.approx(rpen, rel=rtol, abs=rtol * 1e-3), f"penalty, {what}"
            assert (pen > 0) == (rpen > 0), f"penalty, {what}"
            for got, exp, name in zip((p, g, a, c), rarrays,
                                      ("params", "grads", "state1", "state2")):
                assert got.dtype == dtype
                assert_close_normwise(got, exp, dtype, rtol, what=f"{name}, {what}")


LAYOUTS = {  # batch size, l2 for n = 7 rows
    "batch1": (1, 0.01),
    "batch3-rem1": (3, 0.01),
    "batch7-full": (7, 0.0),
}


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("layout", tuple(LAYOUTS))
@pytest.mark.parametrize("solver_key", tuple(SOLVERS))
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("activation", ref.ACTIVATIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_train_epoch_matches_reference(dtype, activation, output, solver_key, layout,
                                       weighted, sparse):
    """Both backends, two epochs each, against the reference; with weights, row 1 weighs
    0 (with batches of one row, a batch of weight 0, which is skipped)."""
    batch_size, l2 = LAYOUTS[layout]
    k = 3 if output == "softmax" else 2
    run_and_compare_epochs(dtype, activation, output, solver_key, batch_size, l2,
                           sizes=[3, 5, 4, k], n=7, weighted=weighted, sparse=sparse)


@pytest.mark.parametrize("sizes", [[4, 3], [2, 6, 2], [3, 4, 5, 3, 2]],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("solver_key", tuple(SOLVERS))
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_train_epoch_layer_counts(dtype, solver_key, sizes):
    """Other depths, and Adam with its default hyperparameters (not passed)."""
    for output in OUTPUTS:
        run_and_compare_epochs(dtype, "tanh", output, solver_key, 4, 0.001, sizes=sizes, n=9,
                               seed=len(sizes), adam={})


@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_train_epoch_order_subset_and_repeats(dtype):
    """``order`` need not be a permutation: a subset, with repeats, and a batch size larger
    than the epoch."""
    orders = [np.array([4, 4, 0, 2, 6]), np.array([1])]
    run_and_compare_epochs(dtype, "sigmoid", "softmax", "adam", 3, 0.01, sizes=[3, 4, 3],
                           n=8, orders=orders, weighted=True)
    run_and_compare_epochs(dtype, "relu", "poisson", "nesterov", 16, 0.0, sizes=[3, 4, 3],
                           n=8, epochs=1, sparse=True)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("solver_key", ["sgd", "adam"])
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_train_epoch_blas_sized_batches(dtype, solver_key, sparse):
    """Batch products above numba's SMALL_GEMM threshold (np.dot instead of the loops)."""
    assert 48 * 40 * 24 > config.SMALL_GEMM
    run_and_compare_epochs(dtype, "relu", "softmax", solver_key, 48, 0.01, sizes=[40, 24, 10],
                           n=60, epochs=1, sparse=sparse, weighted=True)


@pytest.mark.parametrize("net", ["blas", "loops"])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("solver_key", ["sgd", "nesterov"])
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_train_epoch_sgd_with_the_first_gradient_in_the_velocity(dtype, solver_key, sparse,
                                                                 net):
    """Whole batches under SGD without Nesterov's step: the compiled core has BLAS put
    the first layer's weight gradient straight into the velocity, for every batch but
    the epoch's last of nonzero weight, where the product is BLAS's (dense rows,
    "blas": 12 x 40 x 24) and not a loop ("loops": 5 x 4 x 3) nor CSR rows. Two
    epochs of five batches against the reference; each ends on a batch of one row of
    weight 0, so the gradient kept is the fifth batch's. Nesterov's step, which takes
    no such shortcut, on the same problems."""
    sizes, batch = {"blas": ([40, 24, 2, 2], 12), "loops": ([4, 3, 3], 5)}[net]
    n = 5 * batch + 1
    assert _path(sizes, batch, "softmax", solver_key, sparse) == "train_epoch"
    assert (batch * sizes[0] * sizes[1] > config.SMALL_GEMM) == (net == "blas")
    rng = np.random.default_rng(21)
    rest = np.delete(np.arange(n), 1)  # row 1 weighs 0 (``epoch_problem``)
    orders = [np.append(rng.permutation(rest), 1) for _ in range(2)]
    run_and_compare_epochs(dtype, "tanh", "softmax", solver_key, batch, 0.01, sizes=sizes,
                           n=n, orders=orders, weighted=True, sparse=sparse)


#: Batch layouts (batch size, rows) that take the compiled core's feature-major kernel
#: ``train_columns`` for the narrow networks below: one full batch, and batches of the
#: smallest size it takes with a remainder.
COLUMNS_LAYOUTS = {
    "full": (config.COLUMNS_MIN_BATCH + 8, config.COLUMNS_MIN_BATCH + 8),
    "min-rem5": (config.COLUMNS_MIN_BATCH, 2 * config.COLUMNS_MIN_BATCH + 5),
}


def _path(sizes, batch_size, output, solver_key, sparse=False):
    X = scipy.sparse.csr_matrix((1, sizes[0])) if sparse else np.zeros((1, sizes[0]))
    return api.epoch_path(api.as_input(X, np.float64), np.array(sizes), batch_size,
                          api.OUTPUTS[output], api.SOLVERS[SOLVERS[solver_key][0]])


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("layout", tuple(COLUMNS_LAYOUTS))
@pytest.mark.parametrize("solver_key", tuple(SOLVERS))
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("activation", ref.ACTIVATIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_train_columns_matches_reference(dtype, activation, output, solver_key, layout,
                                         weighted):
    """Narrow networks on large batches (``train_columns`` in the compiled core): both
    backends, two epochs each, against the reference; softmax over two classes (its
    own form) and three."""
    batch_size, n = COLUMNS_LAYOUTS[layout]
    for k in (2, 3) if output == "softmax" else (2,):
        sizes = [3, 5, 4, k]
        assert _path(sizes, batch_size, output, solver_key) == "train_columns"
        run_and_compare_epochs(dtype, activation, output, solver_key, batch_size, 0.01,
                               sizes=sizes, n=n, weighted=weighted)


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_train_columns_over_several_blocks(dtype, output):
    """A batch of more rows than one feature-major block (config.COLUMNS_BLOCK): the
    blocks' gradients add up to the batch's."""
    n = config.COLUMNS_BLOCK + 37
    for sizes in ([4, 3, 2], [4, 6, 3]) if output == "softmax" else ([4, 3, 2],):
        assert _path(sizes, n, output, "sgd") == "train_columns"
        run_and_compare_epochs(dtype, "tanh", output, "sgd", n, 0.01, sizes=sizes, n=n,
                               epochs=1, weighted=True)


@pytest.mark.parametrize("d", [8, 19])
@pytest.mark.parametrize("output", ["softmax", "squared"])
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_train_columns_of_inputs_in_tiles(dtype, output, d):
    """Inputs of eight features or more, which the feature-major blocks transpose in
    tiles of eight rows by eight features: whole tiles only (8 features, batches of 40
    rows), and tiles with features and rows left over (19 features, batches of 45 rows,
    the last batch of 11)."""
    batch_size = 40 if d == 8 else 45
    sizes = [d, 5, 3]
    assert _path(sizes, batch_size, output, "sgd") == "train_columns"
    run_and_compare_epochs(dtype, "tanh", output, "sgd", batch_size, 0.01, sizes=sizes,
                           n=2 * batch_size + (0 if d == 8 else 11), weighted=True)


@njit
def _transposed(X, rows, stride, work):
    """``train_columns._transpose_rows`` called from compiled code, as the kernels call it."""
    _TRANSPOSE_ROWS(X.reshape(X.size), rows, np.uint64(X.shape[1]), work, np.uint64(stride))


#: The feature-major transposition of a block of rows (its module: the package
#: exports a kernel of the same name as it).
_TRANSPOSE_ROWS = importlib.import_module(
    "fastmlp.kernels.numba_core.train_columns")._transpose_rows


@pytest.mark.parametrize("d", [1, 7, 8, 9, 16, 17, 34])
@pytest.mark.parametrize("nb", [0, 1, 7, 8, 9, 23, 64])
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_transpose_rows_matches_numpy(dtype, nb, d):
    """A block's rows (any, repeated, in any order) written feature-major, ``stride``
    entries from one feature to the next: X[rows].T, exactly, in each feature's first
    len(rows) entries, nothing written between them or past the last."""
    rng = np.random.default_rng(nb * 100 + d)
    X = rng.standard_normal((50, d)).astype(dtype)
    X[3, :] = [np.float32(1e-40), -0.0, 3.4e38][: d] + [1.0] * max(0, d - 3)
    rows = rng.integers(0, 50, nb).astype(np.int64)
    stride = nb + 5
    work = np.full(d * stride + 7, SENTINEL, dtype=dtype)
    _transposed(X, rows, stride, work)
    written = work[: d * stride].reshape(d, stride)
    np.testing.assert_array_equal(written[:, :nb], X[rows].T)
    np.testing.assert_array_equal(written[:, nb:], SENTINEL)
    np.testing.assert_array_equal(work[d * stride:], SENTINEL)


#: Batch layouts (batch size, rows) that take the compiled core's row-block kernel
#: ``train_blocks`` for the network below: batches of two blocks with a remainder batch
#: of one short and one full block, and one full batch of as many blocks as it takes.
BLOCK_LAYOUTS = {
    "two-blocks-rem": (2 * config.BLOCK_MIN_ROWS, 3 * config.BLOCK_MIN_ROWS + 7),
    "full-max-blocks": ((config.BLOCK_MAX + 1) * config.BLOCK_MIN_ROWS + 3,
                        (config.BLOCK_MAX + 1) * config.BLOCK_MIN_ROWS + 3),
}
#: A network that is neither narrow (``train_columns``) nor too large for row blocks.
BLOCK_SIZES = [3, config.COLUMNS_MAX_WIDTH + 2, 4]


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("layout", tuple(BLOCK_LAYOUTS))
@pytest.mark.parametrize("solver_key", tuple(SOLVERS))
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("activation", ref.ACTIVATIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_train_blocks_matches_reference(dtype, activation, output, solver_key, layout,
                                        weighted, sparse):
    """Batches in row blocks (``train_blocks`` in the compiled core): both backends, two
    epochs each, against the reference; sparse X and weighted rows too."""
    batch_size, n = BLOCK_LAYOUTS[layout]
    k = 3 if output == "softmax" else 2
    sizes = BLOCK_SIZES + [k]
    assert _path(sizes, batch_size, output, solver_key, sparse) == "train_blocks"
    run_and_compare_epochs(dtype, activation, output, solver_key, batch_size, 0.01,
                           sizes=sizes, n=n, weighted=weighted, sparse=sparse)


#: Layouts whose output layer has one unit (a binary classifier's, a one-target
#: regressor's): (sizes, batch size, rows, the epoch kernel the compiled core takes).
ONE_UNIT_LAYOUTS = {
    "epoch": ([3, 5, 4, 1], 3, 7, "train_epoch"),
    "blocks": (BLOCK_SIZES + [1],) + BLOCK_LAYOUTS["two-blocks-rem"] + ("train_blocks",),
}


@pytest.mark.parametrize("layout", tuple(ONE_UNIT_LAYOUTS))
@pytest.mark.parametrize("solver_key", ["sgd", "adam"])
@pytest.mark.parametrize("output", [o for o in OUTPUTS if o != "softmax"])
@pytest.mark.parametrize("activation", ref.ACTIVATIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_one_unit_output_matches_reference(dtype, activation, output, solver_key, layout):
    """An output layer of one unit, whose backward step (its weights' gradient and the
    delta below it) the compiled core takes in one fused pass: both backends against
    the reference, weighted rows."""
    sizes, batch_size, n, path = ONE_UNIT_LAYOUTS[layout]
    assert _path(sizes, batch_size, output, solver_key) == path
    run_and_compare_epochs(dtype, activation, output, solver_key, batch_size, 0.01,
                           sizes=sizes, n=n, weighted=True)


@pytest.mark.parametrize("sizes", [[4, 3], [2, 6, 2], [3, 4, 5, 3, 2], [3, 20, 2]],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("solver_key", ["sgd", "nesterov"])
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_train_rows_layer_counts(dtype, solver_key, sizes):
    """Batches of one row with SGD (``train_rows`` in the compiled core), other depths
    and a layer wider than the vector lanes."""
    assert _path(sizes, 1, "squared", solver_key) == "train_rows"
    for output in OUTPUTS:
        run_and_compare_epochs(dtype, "sigmoid", output, solver_key, 1, 0.001, sizes=sizes,
                               n=9, seed=len(sizes), weighted=output == "poisson")


def test_epoch_paths():
    """Which epoch kernel each layout takes: the grids above and the one of
    test_train_epoch_matches_reference reach all four."""
    assert _path([3, 5, 4, 3], 1, "softmax", "sgd") == "train_rows"
    assert _path([3, 5, 4, 3], 1, "softmax", "adam") == "train_epoch"
    assert _path([3, 5, 4, 3], 1, "softmax", "sgd", sparse=True) == "train_epoch"
    assert _path([3, 5, 4, 3], 7, "softmax", "sgd") == "train_epoch"
    assert _path([3, 5, 4, 1], config.COLUMNS_MIN_BATCH, "softmax", "sgd") == "train_epoch"
    assert _path([3, 5, 4, 1], config.COLUMNS_MIN_BATCH, "squared", "adam") == "train_columns"
    wide = [3, config.COLUMNS_MAX_WIDTH + 1, 2]
    assert _path(wide, config.COLUMNS_MIN_BATCH, "softmax", "sgd") == "train_epoch"
    # row blocks from two blocks' rows on, dense or sparse, unless the network is large
    two = 2 * config.BLOCK_MIN_ROWS
    assert _path(wide, two - 1, "softmax", "sgd") == "train_epoch"
    assert _path(wide, two, "softmax", "sgd") == "train_blocks"
    assert _path(wide, two, "poisson", "adam", sparse=True) == "train_blocks"
    assert _path([3, 5, 4, 3], two, "softmax", "sgd", sparse=True) == "train_blocks"
    # d -> 100 -> 2 has (d + 1) * 100 + 202 parameters: the largest d for row blocks
    d = (config.BLOCKS_MAX_PARAMS - 202) // 100 - 1
    assert api.n_params([d, 100, 2]) <= config.BLOCKS_MAX_PARAMS < api.n_params([d + 1, 100, 2])
    assert _path([d, 100, 2], two, "softmax", "sgd") == "train_blocks"
    assert _path([d + 1, 100, 2], two, "softmax", "sgd") == "train_epoch"
    assert api.loss_path(np.array(wide), two) == "loss_gradient_blocks"
    assert api.loss_path(np.array(wide), two - 1) == "loss_gradient"
    assert api.loss_path(np.array([d + 1, 100, 2]), 4096) == "loss_gradient"


@pytest.mark.parametrize("solver_key,batch,n", [("sgd", 1, 6), ("nesterov", 1, 6),
                                                ("sgd", config.COLUMNS_MIN_BATCH, 45),
                                                ("adam", config.COLUMNS_MIN_BATCH, 45)])
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_work_size_is_enough_for_the_row_and_column_kernels(dtype, solver_key, batch, n):
    """train_rows and train_columns on ``work`` of exactly work_size entries: nothing past
    it changes, the compiled core uses it, and the results are those of a run with
    scratch the API allocates."""
    sizes = [3, 7, 2, 4]
    assert _path(sizes, batch, "squared", solver_key) in ("train_rows", "train_columns")
    solver, nesterov = SOLVERS[solver_key]
    X, target, weights, params, _, s1, s2 = epoch_problem(dtype, "squared", sizes, n, 2,
                                                          weighted=True)
    order = np.random.default_rng(3).permutation(n)
    for backend in BACKEND_NAMES:
        b = get_backend(backend)
        need = b.work_size(sizes, batch)
        buf = np.full(need + 50, SENTINEL, dtype=dtype)
        results = []
        for work in (buf[:need], None):
            p, g, a, c = params.copy(), np.zeros_like(params), s1.copy(), s2.copy()
            out = b.train_epoch(X, target, order, p, g, a, c, 0, sizes, "tanh", "squared",
                                solver, 0.01, 0.9, nesterov, l2=0.01, batch_size=batch,
                                work=work, sample_weight=weights)
            results.append((out, p, g, a, c))
        np.testing.assert_array_equal(buf[need:], SENTINEL)
        if backend == "numba":
            assert np.any(buf[:need] != SENTINEL)
        (out1, *arrays1), (out2, *arrays2) = results
        assert out1 == out2
        for a1, a2 in zip(arrays1, arrays2):
            np.testing.assert_array_equal(a1, a2)


@pytest.mark.parametrize("case", ["blocks", "blocks-csr", "blocks-full", "columns-rounds"])
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_work_size_is_enough_for_the_row_block_kernels(dtype, case):
    """train_blocks (several blocks, a remainder batch; CSR; the most blocks a batch takes),
    loss_gradient_blocks and train_columns over more blocks than run at once, on ``work``
    of exactly work_size entries: nothing past it changes, the results are those of a run
    with scratch the API allocates."""
    sparse = case == "blocks-csr"
    if case == "columns-rounds":
        sizes, batch = [3, 7, 2, 4], (config.BLOCK_MAX + 1) * config.COLUMNS_BLOCK + 9
        n = batch
    else:
        sizes = BLOCK_SIZES + [4]
        batch = (2 * config.BLOCK_MIN_ROWS if case != "blocks-full"
                 else config.BLOCK_MAX * config.BLOCK_MIN_ROWS + 50)
        n = 2 * batch + 11
    assert _path(sizes, batch, "squared", "adam", sparse) == case.split("-")[0].replace(
        "blocks", "train_blocks").replace("columns", "train_columns")
    X, target, weights, params, _, s1, s2 = epoch_problem(dtype, "squared", sizes, n, 2,
                                                          weighted=True, sparse=sparse)
    order = np.random.default_rng(3).permutation(n)
    b = get_backend("numba")
    need = b.work_size(sizes, batch, sparse=sparse)
    buf = np.full(need + 50, SENTINEL, dtype=dtype)
    results = []
    for work in (buf[:need], None):
        p, g, a, c = params.copy(), np.zeros_like(params), s1.copy(), s2.copy()
        out = b.train_epoch(X, target, order, p, g, a, c, 0, sizes, "tanh", "squared", "adam",
                            0.01, l2=0.01, batch_size=batch, work=work, sample_weight=weights)
        gg = np.zeros_like(params)
        out += b.loss_gradient(X, target, p, gg, sizes, "tanh", "squared", l2=0.01,
                               chunk=batch, work=work, sample_weight=weights)
        results.append((out, p, g, a, c, gg))
    np.testing.assert_array_equal(buf[need:], SENTINEL)
    assert np.any(buf[:need] != SENTINEL)
    (out1, *arrays1), (out2, *arrays2) = results
    assert out1 == out2
    for a1, a2 in zip(arrays1, arrays2):
        np.testing.assert_array_equal(a1, a2)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_train_epoch_and_loss_gradient_take_any_sparse_format(backend):
    """CSC input trains exactly as its CSR form does; a CSR matrix with a repeated entry
    (scipy adds them up) as its summed form does, up to rounding."""
    b = get_backend(backend)
    sizes = [4, 6, 3]
    X, y, weights, params, grads, s1, s2 = epoch_problem(np.float64, "softmax", sizes, 8, 12,
                                                         weighted=True, sparse=True)
    results = {}
    for fmt, Xin in dict(sparse_formats(X.toarray()), dense=X.toarray()).items():
        p, g, a, c = (arr.copy() for arr in (params, grads, s1, s2))
        out = b.train_epoch(Xin, y, np.arange(8)[::-1], p, g, a, c, 0, sizes, "tanh",
                            "softmax", "adam", 0.01, l2=0.01, batch_size=3,
                            sample_weight=weights)
        gg = np.empty_like(params)
        out += b.loss_gradient(Xin, y, p, gg, sizes, "tanh", "softmax", l2=0.01, chunk=3,
                               sample_weight=weights)
        results[fmt] = (out, p, g, a, c, gg)
    for fmt in ("csc", "csr-repeated", "dense"):
        (out, *arrays), (out_csr, *arrays_csr) = results[fmt], results["csr"]
        assert out[2:4] == out_csr[2:4]
        if fmt == "csc":
            assert out == out_csr
            for got, exp in zip(arrays, arrays_csr):
                np.testing.assert_array_equal(got, exp)
        else:
            np.testing.assert_allclose(out, out_csr, rtol=1e-12)
            for got, exp in zip(arrays, arrays_csr):
                assert_close_normwise(got, exp, np.float64, 1e-12, what=fmt)


def test_train_epoch_sgd_may_share_one_state_array():
    """SGD uses only state1; the same array may be passed as state2."""
    for backend in BACKEND_NAMES:
        b = get_backend(backend)
        sizes = [3, 4, 2]
        X, y, _, params, grads, s1, _ = epoch_problem(np.float64, "softmax", sizes, 6, 3)
        _, _, _, _, rp, rg, r1, _ = ref.train_epoch(X, y, np.arange(6), params, grads, s1, s1,
                                                    0, sizes, "relu", "softmax", "sgd", 0.1,
                                                    l2=0.01, batch_size=4)
        p, g, s = params.copy(), grads.copy(), s1.copy()
        b.train_epoch(X, y, np.arange(6), p, g, s, s, 0, sizes, "relu", "softmax", "sgd", 0.1,
                      l2=0.01, batch_size=4)
        for got, exp, what in ((p, rp, "params"), (g, rg, "grads"), (s, r1, "velocity")):
            assert_close_normwise(got, exp, np.float64, 1e-12, what=f"{what} [{backend}]")


#: A row that makes each output's loss non-finite in float64.
BAD_ROWS = {"squared": [1e200, -1e200],  # finite logits, whose square overflows
            "poisson": [-1e3, 1e3],  # finite logits (984 and 2288 here), whose exp overflows
            "softmax": [np.nan, 0.0],  # log-sum-exp is finite for any finite logits
            "logistic": [np.inf, 1.0]}  # so is softplus


def _assert_failed_epoch(result, reference, before, arrays, what):
    (data, pen, step, done), (rdata, rpen, rstep, rdone) = result, reference[:4]
    assert math.isnan(data) and math.isnan(pen) and math.isnan(rdata) and math.isnan(rpen)
    assert (step, done) == (rstep, rdone), what
    for got, old, name in zip(arrays, before, ("params", "state1", "state2")):
        np.testing.assert_array_equal(got, old, err_msg=f"{name} not restored, {what}")
    for got, exp in zip(arrays, (reference[4], reference[6], reference[7])):
        np.testing.assert_array_equal(got, exp)  # the reference restores them too


@pytest.mark.parametrize("solver_key", tuple(SOLVERS))
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_train_epoch_fails_whole_on_a_non_finite_batch(backend, output, solver_key):
    """A batch whose loss is not finite stops the epoch: NaN losses, rows done = the
    start of that batch, the step given, and params, state1, state2 exactly as at the
    call, though the batch before it was applied."""
    b = get_backend(backend)
    solver, nesterov = SOLVERS[solver_key]
    sizes = [2, 3, 2]
    X, target, _, params, grads, s1, s2 = epoch_problem(np.float64, output, sizes, 6, 21)
    X[3] = BAD_ROWS[output]  # the second batch of 2 (rows 2, 3)
    order = np.arange(6)
    before = [a.copy() for a in (params, s1, s2)]
    reference = ref.train_epoch(X, target, order, params, grads, s1, s2, 5, sizes, "identity",
                                output, solver, 0.1, 0.9, nesterov, l2=0.01, batch_size=2)
    assert reference[2:4] == (5, 2)
    with np.errstate(over="ignore", invalid="ignore"):
        result = b.train_epoch(X, target, order, params, grads, s1, s2, 5, sizes, "identity",
                               output, solver, 0.1, 0.9, nesterov, l2=0.01, batch_size=2,
                               work=np.zeros(b.work_size(sizes, 2)))
    _assert_failed_epoch(result, reference, before, (params, s1, s2), f"{backend} {output}")


#: (sizes, rows, batch size, the overflowing row, seed) of the epochs whose second batch's
#: gradient overflows float32: a small network, and one whose first layer's gradient
#: the compiled core's BLAS puts straight into the velocity under SGD (12 x 40 x 2, no
#: hidden layer: the gradient overflows there and only there, the bias's stays finite,
#: before the step sees it).
OVERFLOWING_EPOCHS = {"small": ([2, 3, 2], 6, 2, 3, 23),
                      "into-velocity": ([40, 2], 36, 12, 15, 24)}


@pytest.mark.parametrize("case", tuple(OVERFLOWING_EPOCHS))
@pytest.mark.parametrize("solver_key", tuple(SOLVERS))
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_train_epoch_fails_whole_on_an_update_that_overflows_float32(backend, solver_key,
                                                                      case):
    """The second batch's loss is finite (it is summed in float64) but its gradient
    overflows float32, and so would the update: the epoch stops there and puts back
    params and state as they were at the call."""
    b = get_backend(backend)
    solver, nesterov = SOLVERS[solver_key]
    sizes, n, batch, row, seed = OVERFLOWING_EPOCHS[case]
    X, Y, _, params, grads, s1, s2 = epoch_problem(np.float32, "squared", sizes, n, seed)
    X[row] = np.where(np.arange(sizes[0]) % 2, -1e25, 1e25)
    order = np.arange(n)
    before = [a.copy() for a in (params, s1, s2)]
    reference = ref.train_epoch(X, Y, order, params, grads, s1, s2, 2, sizes, "identity",
                                "squared", solver, 0.01, 0.9, nesterov, batch_size=batch,
                                dtype=np.float32)
    assert reference[2:4] == (2, batch)
    assert _path(sizes, batch, "squared", solver_key) == "train_epoch"
    with np.errstate(over="ignore", invalid="ignore"):
        result = b.train_epoch(X, Y, order, params, grads, s1, s2, 2, sizes, "identity",
                               "squared", solver, 0.01, 0.9, nesterov, batch_size=batch)
    _assert_failed_epoch(result, reference, before, (params, s1, s2), backend)


@pytest.mark.parametrize("solver_key", tuple(SOLVERS))
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_train_epoch_fails_on_an_update_that_overflows_at_once(backend, dtype, solver_key):
    """A learning rate that overflows the dtype (float32: though float64 arithmetic would
    not) fails the first batch: NaN losses, no rows done, nothing changed."""
    b = get_backend(backend)
    solver, nesterov = SOLVERS[solver_key]
    sizes = [2, 3, 2]
    X, y, _, params, grads, s1, s2 = epoch_problem(dtype, "softmax", sizes, 6, 22)
    lr = float(np.finfo(np.float32).max) * 1e3 if dtype is np.float32 else math.inf
    order = np.arange(6)
    before = [a.copy() for a in (params, s1, s2)]
    reference = ref.train_epoch(X, y, order, params, grads, s1, s2, 0, sizes, "tanh",
                                "softmax", solver, lr, 0.9, nesterov, batch_size=3, dtype=dtype)
    assert reference[2:4] == (0, 0)
    with np.errstate(over="ignore", invalid="ignore"):
        result = b.train_epoch(X, y, order, params, grads, s1, s2, 0, sizes, "tanh", "softmax",
                               solver, lr, 0.9, nesterov, batch_size=3)
    _assert_failed_epoch(result, reference, before, (params, s1, s2), backend)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_train_epoch_empty_order_touches_nothing(backend):
    """The API lets an empty ``order`` through (its range check skips empty orders)."""
    b = get_backend(backend)
    args = _epoch_args()
    before = {k: args[k].copy() for k in ("params", "grads", "state1", "state2")}
    result = b.train_epoch(**dict(args, order=np.array([], dtype=np.int64), step=4))
    assert result == (0.0, 0.0, 4, 0)
    for k, v in before.items():
        np.testing.assert_array_equal(args[k], v)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_train_epoch_skips_batches_of_zero_weight(backend):
    """Rows of weight 0 teach nothing: batches made only of them are skipped (no update,
    no step), and an epoch of nothing else changes nothing."""
    b = get_backend(backend)
    args = _epoch_args(output="squared")
    before = {k: args[k].copy() for k in ("params", "grads", "state1", "state2")}
    result = b.train_epoch(**dict(args, sample_weight=np.zeros(6), step=3, l2=0.1))
    assert result == (0.0, 0.0, 3, 6)
    for k, v in before.items():
        np.testing.assert_array_equal(args[k], v)
    weights = np.array([0.0, 0.0, 0.0, 0.0, 2.0, 1.0])  # batches of 4: the first weighs 0
    result = b.train_epoch(**dict(args, sample_weight=weights, step=3))
    reference = ref.train_epoch(args["X"], args["target"], args["order"], before["params"],
                                before["grads"], before["state1"], before["state2"], 3,
                                args["sizes"], "relu", "squared", "sgd", 0.1, 0.9, False,
                                batch_size=4, sample_weight=weights)
    assert result[2:] == reference[2:4] == (4, 6)
    assert result[0] == pytest.approx(reference[0], rel=1e-12)
    assert_close_normwise(args["params"], reference[4], np.float64, 1e-12, what="params")


# ============================================================ loss_gradient
CHUNKS = {"chunk1": 1, "chunk3-rem1": 3, "chunk-all": 50}


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("activation", ref.ACTIVATIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_loss_gradient_in_row_blocks_matches_reference(dtype, activation, output, weighted,
                                                       sparse):
    """Chunks in row blocks (``loss_gradient_blocks`` in the compiled core): several chunks
    of two and three blocks and a remainder, against the reference."""
    k = 3 if output == "softmax" else 2
    sizes = BLOCK_SIZES + [k]
    chunk = 3 * config.BLOCK_MIN_ROWS
    assert api.loss_path(np.array(sizes), chunk) == "loss_gradient_blocks"
    n = 2 * chunk + config.BLOCK_MIN_ROWS + 5
    X, target, weights, params, _, _, _ = epoch_problem(dtype, output, sizes, n, 5, weighted,
                                                        sparse)
    rdata, rpen, rgrad = ref.loss_gradient(X, target, params, sizes, activation, output, 0.01,
                                           weights)
    rtol = {np.float32: 2e-5, np.float64: 1e-12}[dtype]
    for backend in BACKEND_NAMES:
        grads = np.full_like(params, np.nan)
        data, pen = get_backend(backend).loss_gradient(X, target, params, grads, sizes,
                                                       activation, output, l2=0.01,
                                                       chunk=chunk, sample_weight=weights)
        assert data == pytest.approx(rdata, rel=rtol), backend
        assert pen == pytest.approx(rpen, rel=rtol), backend
        assert_close_normwise(grads, rgrad, dtype, rtol, what=f"gradient [{backend}]")


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("chunk", tuple(CHUNKS))
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("activation", ref.ACTIVATIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_loss_gradient_matches_reference(dtype, activation, output, chunk, weighted, sparse):
    """Both backends: (data loss, penalty) and the whole gradient, chunk by chunk, against
    the reference; ``grads`` is overwritten (NaN before the call)."""
    k = 3 if output == "softmax" else 2
    sizes = [3, 5, 4, k]
    X, target, weights, params, _, _, _ = epoch_problem(dtype, output, sizes, 7, 5, weighted,
                                                        sparse)
    l2 = 0.01
    rdata, rpen, rgrad = ref.loss_gradient(X, target, params, sizes, activation, output, l2,
                                           weights)
    rtol = {np.float32: 2e-5, np.float64: 1e-12}[dtype]
    for backend in BACKEND_NAMES:
        b = get_backend(backend)
        grads = np.full_like(params, np.nan)
        before = params.copy()
        data, pen = b.loss_gradient(X, target, params, grads, sizes, activation, output, l2=l2,
                                    chunk=CHUNKS[chunk], sample_weight=weights)
        np.testing.assert_array_equal(params, before)
        assert isinstance(data, float) and isinstance(pen, float)
        assert data == pytest.approx(rdata, rel=rtol), backend
        assert pen == pytest.approx(rpen, rel=rtol), backend
        assert grads.dtype == dtype
        assert_close_normwise(grads, rgrad, dtype, rtol, what=f"gradient [{backend}]")


@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_loss_gradient_blas_sized_chunks(dtype):
    sizes = [40, 24, 10]
    X, y, weights, params, _, _, _ = epoch_problem(dtype, "softmax", sizes, 60, 9, True)
    rdata, rpen, rgrad = ref.loss_gradient(X, y, params, sizes, "relu", "softmax", 0.01,
                                           weights)
    rtol = {np.float32: 2e-5, np.float64: 1e-12}[dtype]
    for backend in BACKEND_NAMES:
        grads = np.empty_like(params)
        data, pen = get_backend(backend).loss_gradient(X, y, params, grads, sizes, "relu",
                                                       "softmax", l2=0.01, chunk=48,
                                                       sample_weight=weights)
        assert data == pytest.approx(rdata, rel=rtol) and pen == pytest.approx(rpen, rel=rtol)
        assert_close_normwise(grads, rgrad, dtype, rtol, what=f"gradient [{backend}]")


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_one_batch_epoch_leaves_the_full_data_gradient(backend):
    """An epoch of one batch over all rows in their order leaves in ``grads`` the gradient
    that loss_gradient computes, and returns its loss."""
    b = get_backend(backend)
    sizes = [3, 5, 2]
    X, target, weights, params, _, s1, s2 = epoch_problem(np.float64, "logistic", sizes, 7, 8,
                                                          weighted=True, sparse=True)
    g_full = np.empty_like(params)
    full = b.loss_gradient(X, target, params, g_full, sizes, "sigmoid", "logistic", l2=0.05,
                           sample_weight=weights)
    g_epoch = np.empty_like(params)
    epoch = b.train_epoch(X, target, np.arange(7), params.copy(), g_epoch, s1, s2, 0, sizes,
                          "sigmoid", "logistic", "adam", 0.01, l2=0.05, batch_size=7,
                          sample_weight=weights)
    assert epoch[0] == pytest.approx(full[0], rel=1e-13)
    assert epoch[1] == pytest.approx(full[1], rel=1e-13)
    np.testing.assert_allclose(g_epoch, g_full, rtol=1e-12, atol=1e-15)
