"""The public kernels of both backends against the loop references in ``reference.py``.

Every kernel of ``fastmlp.kernels.api.NAMES`` is checked on both backends ('numba' and
'numpy') and both dtypes, on the nasty inputs of ``conftest.NASTY``; then the ``out=``
contract, the argument checks, a few mathematical properties, the identity of the two
backends' public interface, and whole training epochs.
"""

import inspect
import math

import numpy as np
import pytest

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
    labels_for,
    linear_operands,
    linear_scale,
    pattern,
    random_net,
)
from fastmlp import kernels
from fastmlp.kernels import api


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
    """A product above numba's SMALL_GEMM threshold goes through np.dot, not the loops."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(64, 32)).astype(dtype)
    W = rng.normal(scale=0.3, size=(32, 16)).astype(dtype)
    b = rng.normal(size=16).astype(dtype)
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
    p0 = params.copy()
    got = get_backend(backend).sgd_update(params, grads, velocity, lr, momentum, nesterov)
    assert got is params
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
@pytest.mark.parametrize("output", ["softmax", "squared"])
@pytest.mark.parametrize("activation", ref.ACTIVATIONS)
@pytest.mark.parametrize("backend,dtype,case", grid(ORDINARY))
def test_forward_matches_reference(backend, dtype, case, activation, output):
    X = case.array(dtype)
    sizes = [X.shape[1], 4, 3, 2]
    params = random_net(sizes, dtype, seed=len(case.name))
    got = get_backend(backend).forward(X, params, sizes, activation, output)
    assert got.dtype == dtype and got.shape == (X.shape[0], 2)
    expected = ref.forward(X, params, sizes, activation, output)
    assert_close(got, expected, dtype,
                 scale=forward_error_scale(X, params, sizes, activation, output),
                 what="forward")


@pytest.mark.parametrize("output", ["softmax", "squared"])
@pytest.mark.parametrize("sizes", [[3, 1], [3, 4], [2, 5, 1], [3, 6, 2, 5, 4]],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("backend", BACKEND_NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_layer_counts(backend, dtype, sizes, output):
    rng = np.random.default_rng(11)
    X = rng.normal(size=(5, sizes[0])).astype(dtype)
    params = random_net(sizes, dtype, seed=sum(sizes))
    got = get_backend(backend).forward(X, params, sizes, "tanh", output)
    assert_close(got, ref.forward(X, params, sizes, "tanh", output), dtype,
                 scale=forward_error_scale(X, params, sizes, "tanh", output), what="forward")


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
              ("forward", (X, params, sizes, "relu", "softmax"), (4, 2))]
    return calls


OUT_KERNELS = [c[0] for c in _array_calls(np.float64)]


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
    if not fortran.flags.c_contiguous:
        with pytest.raises(ValueError, match="C-contiguous"):
            fn(*args, out=fortran)
    frozen = np.empty(shape, dtype=dtype)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        fn(*args, out=frozen)
    with pytest.raises(TypeError, match="out must be a numpy array"):
        fn(*args, out=np.empty(shape, dtype=dtype).tolist())


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


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_squared_error_checks(backend):
    b = get_backend(backend)
    X = _ok()["X"]
    for fn in (b.squared_error, b.squared_error_backward):
        with pytest.raises(ValueError, match="must have the same shape"):
            fn(X, X[:, :2])
        with pytest.raises(TypeError, match="Y has dtype float32 but the other arrays are float64"):
            fn(X, X.astype(np.float32))
        with pytest.raises(TypeError, match="Y must be float32 or float64"):
            fn(X, X.astype(np.int64))
        with pytest.raises(ValueError, match="Y must be 2-D"):
            fn(X, X.ravel())


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
    with pytest.raises(ValueError, match="state must be an array of params' shape"):
        b.sgd_update(p.copy(), p.copy(), np.zeros(6), 0.1)
    with pytest.raises(ValueError, match="state must be an array of params' shape"):
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
def test_forward_checks(backend):
    b = get_backend(backend)
    sizes = [3, 4, 2]
    X = _ok()["X"]
    params = random_net(sizes, np.float64, 0)
    with pytest.raises(ValueError, match="unknown activation 'softplus'; valid: identity, "
                                         "sigmoid, tanh, relu"):
        b.forward(X, params, sizes, "softplus")
    with pytest.raises(ValueError, match="unknown output 'hinge'"):
        b.forward(X, params, sizes, "relu", "hinge")
    with pytest.raises(ValueError, match="sizes must list at least 2 positive layer widths"):
        b.forward(X, params, [3])
    with pytest.raises(ValueError, match="sizes must list at least 2 positive"):
        b.forward(X, params, [3, 0, 2])
    with pytest.raises(ValueError, match="do not fit sizes"):
        b.forward(X[:, :2], params, sizes)
    with pytest.raises(ValueError, match="do not fit sizes"):
        b.forward(X, params[:-1], sizes)
    with pytest.raises(TypeError, match="params has dtype float32 but the other arrays are"):
        b.forward(X, params.astype(np.float32), sizes)
    with pytest.raises(TypeError, match="X must be float32 or float64"):
        b.forward(X.astype(np.int64), params, sizes)


def _epoch_args(dtype=np.float64, output="softmax", sizes=(3, 4, 2), n=6, batch_size=4):
    rng = np.random.default_rng(2)
    sizes = list(sizes)
    X = rng.normal(size=(n, sizes[0])).astype(dtype)
    target = (rng.integers(0, sizes[-1], n) if output == "softmax"
              else rng.normal(size=(n, sizes[-1])).astype(dtype))
    params = random_net(sizes, dtype, 4)
    zeros = [np.zeros(params.size, dtype=dtype) for _ in range(3)]
    work = np.zeros(kernels.get("numpy").work_size(sizes, batch_size), dtype=dtype)
    return dict(X=X, target=target, order=np.arange(n), params=params, grads=zeros[0],
                state1=zeros[1], state2=zeros[2], step=0, sizes=sizes, activation="relu",
                output=output, solver="sgd", lr=0.1, momentum=0.9, nesterov=False, l2=0.0,
                batch_size=batch_size, work=work)


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
    with pytest.raises(ValueError, match="order must index rows of X"):
        call(order=np.array([0, 1, 6]))
    with pytest.raises(ValueError, match="order must index rows of X"):
        call(order=np.array([-1, 0]))
    work_error = r"work must be a writeable, C-contiguous 1-D array of at least \d+ entries"
    with pytest.raises(ValueError, match=work_error):
        call(work=np.zeros(5))
    with pytest.raises(ValueError, match=work_error):
        call(work=np.zeros((200, 2)))
    with pytest.raises(TypeError, match="X, params and work must share one dtype"):
        call(work=np.zeros(200, dtype=np.float32))
    with pytest.raises(ValueError, match="labels must lie in"):
        call(target=np.array([0, 1, 2, 0, 1, 0]))
    with pytest.raises(ValueError, match=r"y must have shape \(6,\)"):
        call(target=np.array([0, 1, 0]))
    with pytest.raises(TypeError, match="y must hold integer labels"):
        call(target=np.zeros(6))
    with pytest.raises(TypeError, match="target has dtype float32"):
        call(output="squared", target=np.zeros((6, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="target must be 2-D"):
        call(output="squared", target=np.zeros(6))
    with pytest.raises(TypeError, match="X must be float32 or float64"):
        call(X=np.zeros((6, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="grads must be an array of params' shape"):
        call(grads=np.zeros(3))
    with pytest.raises(ValueError, match="sizes must list"):
        call(sizes=[3])


class _TripwireCore:
    """A core whose every function fails the test: only the API's checks may run."""

    __name__ = "tripwire_core"

    def __getattr__(self, name):
        def reached(*args, **kwargs):
            raise AssertionError(f"core.{name} was called: the API did not reject the arguments")

        return reached


TRIPWIRE = api.make(_TripwireCore())

_UNCHECKED = [
    pytest.param(dict(X=np.zeros((6, 2))), "X|sizes", id="X-columns-vs-sizes"),
    pytest.param(dict(params=np.zeros(5), grads=np.zeros(5), state1=np.zeros(5),
                      state2=np.zeros(5)), "params|sizes", id="params-length-vs-sizes"),
    pytest.param(dict(output="squared", target=np.zeros((6, 1))), "target|Y|shape",
                 id="target-shape"),
    pytest.param(dict(output="squared", target=np.zeros((2, 2))), "target|Y|shape",
                 id="target-rows"),
    pytest.param(dict(batch_size=0), "batch_size", id="batch_size-0"),
    pytest.param(dict(batch_size=-2), "batch_size", id="batch_size-negative"),
    pytest.param(dict(work=np.zeros(400)[::2]), "work", id="work-non-contiguous"),
]


@pytest.mark.parametrize("changes,match", _UNCHECKED)
def test_train_epoch_rejects_inconsistent_arguments(changes, match):
    """Checked through a tripwire core, never through a real one (which would read or write
    past the arrays)."""
    args = _epoch_args()
    args.update(changes)
    with pytest.raises((TypeError, ValueError), match=match):
        TRIPWIRE["train_epoch"](**args)


def test_tripwire_core_sees_only_valid_calls():
    """The tripwire itself: a valid call reaches the core, an invalid one does not."""
    with pytest.raises(AssertionError, match="core.train_epoch was called"):
        TRIPWIRE["train_epoch"](**_epoch_args())
    with pytest.raises(ValueError, match="order must index rows"):
        TRIPWIRE["train_epoch"](**dict(_epoch_args(), order=np.array([7])))


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


@pytest.mark.parametrize("backend,dtype,magnitude", [
    pytest.param(b, d, mag, id=f"{b}-{dname(d)}-{mag:g}")
    for b in BACKEND_NAMES for d in DTYPES for mag in (0.0, 3.0, 1e4, 1e30)])
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


@pytest.mark.parametrize("n", [1, 4])
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_cross_entropy_backward_is_gradient(backend, n):
    b = get_backend(backend)
    Z = 2.0 * pattern((n, 3), 10)
    y = labels_for(n, 3)
    fd = _loss_gradient_by_differences(lambda V: b.cross_entropy(V, y), Z)
    np.testing.assert_allclose(b.cross_entropy_backward(Z, y), fd, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("n", [1, 4])
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_squared_error_backward_is_gradient(backend, n):
    b = get_backend(backend)
    Z, Y = 2.0 * pattern((n, 3), 11), pattern((n, 3), 12)
    fd = _loss_gradient_by_differences(lambda V: b.squared_error(V, Y), Z)
    np.testing.assert_allclose(b.squared_error_backward(Z, Y), fd, rtol=1e-6, atol=1e-9)


# ============================================================ parallel paths
@pytest.mark.parametrize("backend", BACKEND_NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_large_arrays(backend, dtype):
    """Arrays above numba's PARALLEL_MIN_ELEMENTS (rows split across threads): every row
    equals the reference (checked on a sample of rows) and both backends agree."""
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


# ========================================================= backend identity
def test_backends_export_identical_names_signatures_and_docs(backends):
    nb, npb = backends["numba"], backends["numpy"]
    assert list(nb.__all__) == list(npb.__all__) == list(api.NAMES)
    public = {n for n in dir(nb) if not n.startswith("_") and callable(getattr(nb, n))}
    assert public - {"make"} == set(api.NAMES)
    assert {n for n in dir(npb) if not n.startswith("_") and callable(getattr(npb, n))} \
        - {"make"} == set(api.NAMES)
    for name in api.NAMES:
        f, g = getattr(nb, name), getattr(npb, name)
        assert f is not g
        assert inspect.signature(f) == inspect.signature(g), name
        assert f.__doc__ == g.__doc__ == api.DOCS[name], name
        assert f.__doc__.strip(), name
        assert f.__name__ == g.__name__ == name
        assert f.__module__ == nb.__name__ and g.__module__ == npb.__name__
        # the active backend exports the same functions
        assert getattr(kernels, name) is getattr(kernels.get(kernels.BACKEND), name)


def test_get_rejects_unknown_backend():
    with pytest.raises(ValueError, match="unknown fastmlp backend 'cuda'; valid backends: "
                                         "numba, numpy"):
        kernels.get("cuda")


@pytest.mark.parametrize("sizes", [[3, 2], [5, 4, 3], [2, 7, 1, 9]])
def test_n_params_and_work_size(sizes, backends):
    assert kernels.n_params(sizes) == ref.n_params(sizes)
    for batch in (1, 5):
        expected = batch * (sum(sizes) + 2 * max(sizes[1:]))
        assert backends["numba"].work_size(sizes, batch) == expected
        assert backends["numpy"].work_size(sizes, batch) == expected


# ============================================================== train_epoch
def epoch_problem(dtype, output, sizes, n, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, sizes[0])).astype(dtype)
    if output == "softmax":
        target = rng.integers(0, sizes[-1], n)
    else:
        target = rng.normal(size=(n, sizes[-1])).astype(dtype)
    params = random_net(sizes, dtype, seed + 1)
    P = params.size
    grads = rng.normal(size=P).astype(dtype)  # overwritten by the first batch
    state1 = (rng.normal(size=P) * 0.01).astype(dtype)
    state2 = (state1.astype(np.float64) ** 2 + np.abs(rng.normal(size=P)) * 1e-4).astype(dtype)
    return X, target, params, grads, state1, state2


def run_and_compare_epochs(backend, dtype, activation, output, solver_key, batch_size, l2,
                           sizes, n, epochs=2, seed=0, orders=None):
    """Run ``epochs`` epochs on the backend and on the reference, comparing after each."""
    b = get_backend(backend)
    solver, nesterov = SOLVERS[solver_key]
    X, target, params, grads, s1, s2 = epoch_problem(dtype, output, sizes, n, seed)
    lr = 0.01 if solver == "adam" else 0.1
    momentum = 0.9
    rp, rg, r1, r2 = (a.astype(np.float64) for a in (params, grads, s1, s2))
    step = rstep = 3 if solver == "adam" else 0
    work = np.full(b.work_size(sizes, batch_size), np.nan, dtype=dtype)
    rng = np.random.default_rng(seed + 100)
    rtol = EPOCH_RTOL[dtype]
    for epoch in range(epochs):
        order = rng.permutation(n) if orders is None else np.asarray(orders[epoch])
        loss, step, done = b.train_epoch(X, target, order, params, grads, s1, s2, step, sizes,
                                         activation, output, solver, lr, momentum, nesterov,
                                         l2, batch_size, work)
        rloss, rstep, rdone, rp, rg, r1, r2 = ref.train_epoch(
            X, target, order, rp, rg, r1, r2, rstep, sizes, activation, output, solver, lr,
            momentum, nesterov, l2, batch_size, dtype=dtype)
        assert (step, done) == (rstep, rdone) == (rstep, len(order))
        assert isinstance(loss, float)
        assert loss == pytest.approx(rloss, rel=rtol, abs=rtol), f"loss, epoch {epoch}"
        for got, exp, what in ((params, rp, "params"), (grads, rg, "grads"),
                               (s1, r1, "state1"), (s2, r2, "state2")):
            assert got.dtype == dtype
            assert_close_normwise(got, exp, dtype, rtol, what=f"{what}, epoch {epoch}")


@pytest.mark.parametrize("l2", [0.0, 0.01], ids=["l2=0", "l2=0.01"])
@pytest.mark.parametrize("batch_size", [1, 3, 7], ids=["batch1", "batch3-rem1", "batch7-full"])
@pytest.mark.parametrize("solver_key", tuple(SOLVERS))
@pytest.mark.parametrize("output", ["softmax", "squared"])
@pytest.mark.parametrize("activation", ref.ACTIVATIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_train_epoch_matches_reference(backend, dtype, activation, output, solver_key,
                                       batch_size, l2):
    k = 3 if output == "softmax" else 2
    run_and_compare_epochs(backend, dtype, activation, output, solver_key, batch_size, l2,
                           sizes=[3, 5, 4, k], n=7)


@pytest.mark.parametrize("sizes", [[4, 3], [2, 6, 2], [3, 4, 5, 3, 2]],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("solver_key", tuple(SOLVERS))
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_train_epoch_layer_counts(backend, dtype, solver_key, sizes):
    for output in ("softmax", "squared"):
        run_and_compare_epochs(backend, dtype, "tanh", output, solver_key, 4, 0.001,
                               sizes=sizes, n=9, seed=len(sizes))


@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_train_epoch_order_subset_and_repeats(backend, dtype):
    """``order`` need not be a permutation: a subset, with repeats, and a batch size larger
    than the epoch."""
    orders = [np.array([4, 4, 0, 2, 6]), np.array([1])]
    run_and_compare_epochs(backend, dtype, "sigmoid", "softmax", "adam", 3, 0.01,
                           sizes=[3, 4, 3], n=8, orders=orders)
    run_and_compare_epochs(backend, dtype, "relu", "squared", "nesterov", 16, 0.0,
                           sizes=[3, 4, 3], n=8, epochs=1)


@pytest.mark.parametrize("solver_key", ["sgd", "adam"])
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_train_epoch_blas_sized_batches(backend, dtype, solver_key):
    """Batch products above numba's SMALL_GEMM threshold (np.dot instead of the loops)."""
    run_and_compare_epochs(backend, dtype, "relu", "softmax", solver_key, 48, 0.01,
                           sizes=[40, 24, 10], n=60, epochs=1)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_train_epoch_stops_before_a_non_finite_batch(backend):
    """A batch whose loss overflows stops the epoch before its update: NaN loss, the rows
    done so far, and parameters/state as after the last good batch."""
    b = get_backend(backend)
    sizes = [2, 3, 2]
    X, Y, params, grads, s1, s2 = epoch_problem(np.float64, "squared", sizes, 6, 21)
    X[3] = [1e200, -1e200]  # second batch of 2 (rows 2, 3) overflows
    order = np.arange(6)
    work = np.zeros(b.work_size(sizes, 2))
    rp, rg, r1, r2 = (a.copy() for a in (params, grads, s1, s2))
    loss, step, done = b.train_epoch(X, Y, order, params, grads, s1, s2, 5, sizes, "identity",
                                     "squared", "sgd", 0.1, 0.9, False, 0.0, 2, work)
    rloss, rstep, rdone, rp, rg, r1, r2 = ref.train_epoch(
        X, Y, order, rp, rg, r1, r2, 5, sizes, "identity", "squared", "sgd", 0.1, 0.9, False,
        0.0, 2)
    assert math.isnan(loss) and math.isnan(rloss)
    assert (step, done) == (rstep, rdone) == (6, 2)
    for got, exp, what in ((params, rp, "params"), (grads, rg, "grads"), (s1, r1, "velocity")):
        assert_close_normwise(got, exp, np.float64, 1e-10, what=what)


@pytest.mark.parametrize("solver_key", tuple(SOLVERS))
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_train_epoch_stops_before_an_overflowing_update(backend, dtype, solver_key):
    """An update that would store a non-finite parameter or optimiser value in the dtype
    (here: a learning rate that overflows it, though float64 arithmetic would not for
    float32) is not made: NaN loss, no rows done, parameters and state untouched, the
    batch's gradients kept."""
    b = get_backend(backend)
    solver, nesterov = SOLVERS[solver_key]
    sizes = [2, 3, 2]
    X, y, params, grads, s1, s2 = epoch_problem(dtype, "softmax", sizes, 6, 22)
    lr = float(np.finfo(np.float32).max) * 1e3 if dtype is np.float32 else math.inf
    order = np.arange(6)
    work = np.zeros(b.work_size(sizes, 3), dtype=dtype)
    rp, rg, r1, r2 = (a.astype(np.float64) for a in (params, grads, s1, s2))
    before = [a.copy() for a in (params, s1, s2)]
    with np.errstate(over="ignore", invalid="ignore"):
        loss, step, done = b.train_epoch(X, y, order, params, grads, s1, s2, 0, sizes,
                                         "tanh", "softmax", solver, lr, 0.9, nesterov, 0.0, 3,
                                         work)
    rloss, rstep, rdone, rp, rg, r1, r2 = ref.train_epoch(
        X, y, order, rp, rg, r1, r2, 0, sizes, "tanh", "softmax", solver, lr, 0.9, nesterov,
        0.0, 3, dtype=dtype)
    assert math.isnan(loss) and math.isnan(rloss)
    assert (step, done) == (rstep, rdone) == (0, 0)
    for got, exp, what in ((params, rp, "params"), (grads, rg, "grads"),
                           (s1, r1, "state1"), (s2, r2, "state2")):
        assert np.all(np.isfinite(got)), what
        assert_close_normwise(got, exp, dtype, EPOCH_RTOL[dtype], what=what)
    for got, old in zip((params, s1, s2), before):
        np.testing.assert_array_equal(got, old)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_train_epoch_empty_order_touches_nothing(backend):
    """The API lets an empty ``order`` through (its range check skips empty orders)."""
    b = get_backend(backend)
    args = _epoch_args()
    before = {k: args[k].copy() for k in ("params", "grads", "state1", "state2")}
    loss, step, done = b.train_epoch(**dict(args, order=np.array([], dtype=np.int64), step=4))
    assert (step, done) == (4, 0)
    assert isinstance(loss, float)
    for k, v in before.items():
        np.testing.assert_array_equal(args[k], v)
