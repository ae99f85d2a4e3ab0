"""The BLAS product the compiled kernels call (``numba_core.blas``).

- the source: numpy's bundled OpenBLAS wherever numpy bundles one, unless
  ``FASTMLP_KERNEL_BLAS`` says otherwise; a bad value is refused by name;
- both C entry points the symbols can be bound to (numpy's CBLAS gemm and the
  adapter over numba's route to SciPy's BLAS), called as C functions with
  CBLAS's signature, against numpy's ``@`` in float64: every transpose
  combination, thin and empty-edged shapes, leading dimensions wider than the
  operands, the plain product and alpha times it plus beta times C;
- ``blas.gemm`` in compiled code against numpy, plain and scaled, and its
  refusal of arrays it cannot pass to BLAS;
- a process whose kernels call SciPy's BLAS through the adapter, loading the
  machine code this process cached, trains the model this process trains.
"""

import ctypes
import itertools
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numba import njit
from numba.core.errors import TypingError
from numba import types

import fastmlp
from fastmlp.kernels import bundled_blas
from fastmlp.kernels.numba_core import blas

C_INT, C_LONG, C_VOIDP = ctypes.c_int32, ctypes.c_int64, ctypes.c_void_p
C_REAL = {np.float32: ctypes.c_float, np.float64: ctypes.c_double}
LETTER = {np.float32: "s", np.float64: "d"}


def _entry_points():
    """source -> {dtype: address} of every C function the symbols can be bound to."""
    points = {"scipy": {np.float32: blas._adapter(types.float32).address,
                        np.float64: blas._adapter(types.float64).address}}
    found = bundled_blas.numpy_gemm()
    if found is not None:
        points["numpy"] = {dtype: found[1][letter] for dtype, letter in LETTER.items()}
    return points


ENTRY_POINTS = _entry_points()


def test_source_is_numpys_openblas_where_numpy_bundles_it():
    chosen = os.environ.get(bundled_blas.VARIABLE, "").strip().lower()
    if chosen == "scipy" or "numpy" not in ENTRY_POINTS:
        assert blas.SOURCE == "scipy"
    else:
        assert blas.SOURCE == "numpy"
        assert os.path.isfile(blas.LIBRARY) and "openblas64" in os.path.basename(blas.LIBRARY)
    assert blas.describe()  # what show_config prints


def _call(address, dtype, transa, transb, A, B, C, alpha=1.0, beta=0.0):
    """C = alpha op(A) @ op(B) + beta C through the C function at ``address``: A,
    B and C may be views of the leading columns of wider arrays (row stride =
    leading dimension)."""
    real = C_REAL[dtype]
    fn = ctypes.CFUNCTYPE(None, C_INT, C_INT, C_INT, C_LONG, C_LONG, C_LONG, real, C_VOIDP,
                          C_LONG, C_VOIDP, C_LONG, real, C_VOIDP, C_LONG)(address)
    m, k = (A.shape[1], A.shape[0]) if transa else A.shape
    n = B.shape[0] if transb else B.shape[1]
    size = np.dtype(dtype).itemsize
    fn(blas.ROW_MAJOR, blas.TRANS if transa else blas.NO_TRANS,
       blas.TRANS if transb else blas.NO_TRANS, m, n, k, alpha, A.ctypes.data,
       A.strides[0] // size, B.ctypes.data, B.strides[0] // size, beta, C.ctypes.data,
       C.strides[0] // size)


SHAPES = [(34, 64, 100), (1, 1, 1), (1, 300, 20), (200, 3, 1), (64, 1, 64), (7, 5, 9),
          (129, 257, 65)]


@pytest.mark.parametrize("source", sorted(ENTRY_POINTS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("transa,transb", list(itertools.product([False, True], repeat=2)))
@pytest.mark.parametrize("wide", [False, True], ids=["packed", "wider-rows"])
@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (-0.375, 0.875)], ids=["plain", "scaled"])
def test_entry_point_against_numpy(source, dtype, transa, transb, wide, alpha, beta):
    rng = np.random.default_rng(7)
    pad = 3 if wide else 0
    for m, k, n in SHAPES:
        a_shape = (k, m) if transa else (m, k)
        b_shape = (n, k) if transb else (k, n)
        A = rng.standard_normal((a_shape[0], a_shape[1] + pad)).astype(dtype)[:, :a_shape[1]]
        B = rng.standard_normal((b_shape[0], b_shape[1] + pad)).astype(dtype)[:, :b_shape[1]]
        C_full = np.full((m, n + pad), 7.0, dtype)
        C = C_full[:, :n]
        if beta:
            C[:] = rng.standard_normal((m, n))
        C0 = C.astype(np.float64)  # beta 0: C's 7s must not reach the result
        _call(ENTRY_POINTS[source][dtype], dtype, transa, transb, A, B, C, alpha, beta)
        opA = (A.T if transa else A).astype(np.float64)
        opB = (B.T if transb else B).astype(np.float64)
        want = alpha * (opA @ opB) + beta * C0
        scale = abs(alpha) * (np.abs(opA) @ np.abs(opB)) + abs(beta) * np.abs(C0)
        eps = np.finfo(dtype).eps  # scale bounds the rounding of each sum
        assert np.all(np.abs(C - want) <= 4 * (k + 1) * eps * scale + np.finfo(dtype).tiny), \
            (source, m, k, n)
        assert np.all(C_full[:, n:] == 7.0)  # nothing written beyond the operand


@njit
def _three_products(A, B, AB, AtAB, ABBt):
    """A @ B, A.T @ (A @ B) and (A @ B) @ B.T by ``blas.gemm``."""
    m, k = A.shape
    n = B.shape[1]
    blas.gemm(False, False, m, n, k, 1.0, A, B, 0.0, AB)
    blas.gemm(True, False, k, n, m, 1.0, A, AB, 0.0, AtAB)
    blas.gemm(False, True, m, k, n, 1.0, AB, B, 0.0, ABBt)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_gemm_against_numpy(dtype):
    rng = np.random.default_rng(3)
    rtol = 1e-4 if dtype == np.float32 else 1e-12
    for m, k, n in SHAPES:
        A = rng.standard_normal((m, k)).astype(dtype)
        B = rng.standard_normal((k, n)).astype(dtype)
        AB, AtAB, ABBt = (np.empty(s, dtype) for s in ((m, n), (k, n), (m, k)))
        _three_products(A, B, AB, AtAB, ABBt)
        A64, B64 = A.astype(np.float64), B.astype(np.float64)
        for got, want in ((AB, A64 @ B64), (AtAB, A64.T @ (A64 @ B64)),
                          (ABBt, (A64 @ B64) @ B64.T)):
            np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())


@njit
def _scaled_products(A, B, D, AB, AtD, DBt, alpha, beta):
    """alpha A @ B, alpha A.T @ D and alpha D @ B.T by ``blas.gemm``, each plus
    beta times the array it lands in (``alpha`` and ``beta`` float64 whatever
    the arrays' dtype)."""
    m, k = A.shape
    n = B.shape[1]
    blas.gemm(False, False, m, n, k, alpha, A, B, beta, AB)
    blas.gemm(True, False, k, n, m, alpha, A, D, beta, AtD)
    blas.gemm(False, True, m, k, n, alpha, D, B, beta, DBt)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_gemm_scales_the_product_and_adds_the_old_values(dtype):
    rng = np.random.default_rng(4)
    rtol = 1e-4 if dtype == np.float32 else 1e-12
    alpha, beta = -0.01, 0.9
    for m, k, n in SHAPES:
        A, B, D = (rng.standard_normal(s).astype(dtype) for s in ((m, k), (k, n), (m, n)))
        AB, AtD, DBt = (rng.standard_normal(s).astype(dtype) for s in ((m, n), (k, n), (m, k)))
        A64, B64, D64 = (a.astype(np.float64) for a in (A, B, D))
        wants = [alpha * p + beta * old.astype(np.float64)
                 for p, old in ((A64 @ B64, AB), (A64.T @ D64, AtD), (D64 @ B64.T, DBt))]
        _scaled_products(A, B, D, AB, AtD, DBt, alpha, beta)
        for got, want in zip((AB, AtD, DBt), wants):
            np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())


@njit
def _product(A, B, C):
    blas.gemm(False, False, A.shape[0], B.shape[1], A.shape[1], 1.0, A, B, 0.0, C)


@pytest.mark.parametrize("case", ["fortran-order", "mixed-dtypes", "integers", "one-d"])
def test_gemm_refuses_what_blas_cannot_take(case):
    A = np.ones((3, 4))
    B = np.ones((4, 5))
    C = np.empty((3, 5))
    if case == "fortran-order":
        A = np.asfortranarray(A)
    elif case == "mixed-dtypes":
        B = B.astype(np.float32)
    elif case == "integers":
        A, B, C = A.astype(np.int64), B.astype(np.int64), C.astype(np.int64)
    else:
        C = np.empty(15)
    with pytest.raises(TypingError, match="gemm takes"):
        _product(A, B, C)


CHILD = textwrap.dedent('''
    import contextlib, io, json, sys, warnings
    import numpy as np
    import fastmlp
    import fastmlp.datasets
    from fastmlp.kernels.numba_core import blas
    from fastmlp import threads
    X, y = fastmlp.datasets.load_digits()
    weights = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for batch_size in (200, 8):  # row blocks; whole batches of a few rows
            model = fastmlp.MLP((40,), epochs=2, batch_size=batch_size, dtype="float64",
                                random_state=0).fit(X, y)
            weights.append([float(v) for p in model.coefs_ + model.intercepts_
                            for v in p.ravel()])
    text = io.StringIO()
    fastmlp.show_config(file=text)
    print(json.dumps({"source": blas.SOURCE, "weights": weights, "config": text.getvalue(),
                      "capped": [lib.filepath for lib in threads.blas_libraries("numba")]}))
''')


def _child(**env):
    result = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                            env=dict(os.environ, **env), timeout=600)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_scipy_source_trains_the_same_model():
    here = _child()  # compiles (or loads) into this checkout's cache
    there = _child(FASTMLP_KERNEL_BLAS="scipy")  # loads that machine code, adapter bound
    assert there["source"] == "scipy"
    assert "SciPy's BLAS" in there["config"] and "FASTMLP_KERNEL_BLAS='scipy'" in there["config"]
    assert any("openblas" in os.path.basename(p) for p in there["capped"])
    for a, b in zip(here["weights"], there["weights"]):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)
    if here["source"] == "numpy":
        assert [os.path.realpath(p) for p in here["capped"]] == [blas.LIBRARY]


def test_thread_settings_find_the_kernels_blas_without_loading_numba():
    """A dask client running L-BFGS's driver caps the BLAS libraries apart from the
    kernels' without compiling or loading anything of numba's."""
    code = textwrap.dedent('''
        import json, sys
        from fastmlp import threads
        own = [lib.filepath for lib in threads.blas_libraries("numba")]
        others = [lib.filepath for lib in threads.driver_libraries("numba")]
        print(json.dumps({"own": own, "others": others, "numba": "numba" in sys.modules}))
    ''')
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["numba"] is False
    if blas.SOURCE == "numpy":
        assert [os.path.realpath(p) for p in found["own"]] == [blas.LIBRARY]
        assert found["others"] and blas.LIBRARY not in map(os.path.realpath, found["others"])


NO_BUNDLED_OPENBLAS = textwrap.dedent('''
    import glob, json, sys, warnings
    find = glob.glob
    glob.glob = lambda pattern, **kw: [] if "openblas64" in pattern else find(pattern, **kw)
    import numpy as np
    import fastmlp
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from fastmlp.kernels.numba_core import blas
    glob.glob = find
    rng = np.random.default_rng(0)
    X, W = rng.standard_normal((300, 70)), rng.standard_normal((70, 40))
    out = fastmlp.kernels.get("numba").linear(X, W, np.zeros(40))
    print(json.dumps({"source": blas.SOURCE, "warnings": [str(w.message) for w in caught],
                      "error": float(np.abs(out - X @ W).max())}))
''')


@pytest.mark.parametrize("asked", ["", "numpy"])
def test_a_numpy_without_its_own_openblas_falls_back_to_scipy(asked):
    """conda's or an MKL numpy: no bundled OpenBLAS to find; the kernels call
    SciPy's BLAS, with a warning where numpy's was asked for."""
    result = subprocess.run([sys.executable, "-c", NO_BUNDLED_OPENBLAS], capture_output=True,
                            text=True, env=dict(os.environ, FASTMLP_KERNEL_BLAS=asked),
                            timeout=600)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["source"] == "scipy"
    assert found["error"] < 1e-10
    asked_numpy = [w for w in found["warnings"] if "FASTMLP_KERNEL_BLAS=numpy" in w]
    assert len(asked_numpy) == (1 if asked else 0), found["warnings"]


def test_bad_source_is_refused_by_name():
    result = subprocess.run(
        [sys.executable, "-c", "import fastmlp; fastmlp.kernels.get('numba')"],
        capture_output=True, text=True, env=dict(os.environ, FASTMLP_KERNEL_BLAS="mkl"),
        timeout=300)
    assert result.returncode != 0
    assert "ValueError: FASTMLP_KERNEL_BLAS='mkl' is not a BLAS source" in result.stderr


def test_show_config_names_the_kernels_blas(capsys):
    fastmlp.show_config()
    out = capsys.readouterr().out
    assert f"numba kernels' products: {blas.describe()}" in out
    # the BLAS libraries the kernels do not call (SciPy's, which L-BFGS-B calls), by file
    others = [os.path.basename(lib.filepath)
              for lib in fastmlp.threads.driver_libraries(fastmlp.kernels.BACKEND)]
    lines = [line for line in out.splitlines() if line.startswith("other BLAS")]
    assert len(lines) == len(others) and all(name in line for name, line in zip(others, lines))
    if blas.SOURCE == "numpy":  # SciPy's own library is then another one
        assert any("scipy" in os.path.dirname(lib.filepath)
                   for lib in fastmlp.threads.driver_libraries("numba"))
