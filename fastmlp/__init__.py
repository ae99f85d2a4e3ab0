"""fastmlp: fast CPU training of multilayer perceptrons.

    >>> from fastmlp import MLP
    >>> model = MLP(hidden=(64,), epochs=50).fit(X, y)

``import fastmlp`` loads and compiles nothing: the backend is imported on
first use, and numba compiles the kernels on first use (or in ``warmup()``)
and caches them on disk. The scikit-learn drop-in classes live in
``fastmlp.sklearn``.
"""

from . import kernels
from .errors import ConvergenceWarning, DivergenceError, NotFittedError
from .io import ModelFileError, save
from .model import MLP

#: Read a model file: ``MLP.load`` (``fastmlp.load(path, extra=False)``).
load = MLP.load

__version__ = "0.2.0"
__all__ = ["MLP", "backend", "warmup", "show_config", "load", "save", "ConvergenceWarning",
           "DivergenceError", "ModelFileError", "NotFittedError", "diagnose", "Diagnosis",
           "Finding", "check_gradients", "__version__"]

#: Names exported from submodules that are imported on first use (they need
#: nothing beyond NumPy, but ``import fastmlp`` stays lean).
_LAZY = {"diagnose": "doctor", "Diagnosis": "doctor", "Finding": "doctor",
         "check_gradients": "gradcheck"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


def backend():
    """Name of the process-wide backend: 'numba' or 'numpy' (from ``FASTMLP_BACKEND``)."""
    return kernels.BACKEND


def warmup(backend=None, verbose=False, dtypes=("float32", "float64")):
    """Compile (or load from the cache) every kernel a fit and a predict of
    dense data need, for ``dtypes``, every activation, output and solver.
    ``verbose``: say so first, then print each kernel as it becomes ready,
    with its time (a first run compiles them; later runs load them from
    numba's disk cache)."""
    import time

    import numpy as np

    from .kernels.api import epoch_path, loss_path, n_params, work_size
    from .kernels.codes import ACTIVATIONS, OUTPUTS, SOLVERS
    from .kernels.config import BLOCK_MIN_ROWS, COLUMNS_MAX_WIDTH, COLUMNS_MIN_BATCH
    from .network import Network

    t0 = time.perf_counter()
    kern = kernels.get(backend)
    if verbose:
        print(f"fastmlp: preparing the {kern.name} kernels ({', '.join(dtypes)}): compiled on "
              "the first run, loaded from numba's cache after", flush=True)
    rng = np.random.default_rng(0)
    act, output = ACTIVATIONS["relu"], OUTPUTS["softmax"]
    n = max(COLUMNS_MIN_BATCH, 2 * BLOCK_MIN_ROWS)
    w = np.empty(0)
    narrow = np.array([3, 2, 2])
    wide = np.array([3, COLUMNS_MAX_WIDTH + 1, 2])
    for dtype in dtypes:
        X = rng.standard_normal((n, 3)).astype(dtype)
        # the softmax output (labels), then the outputs with targets, whose passes
        # are compiled apart from the softmax output's (one for all three)
        outputs = ((output, np.arange(n) % 2, np.zeros((0, 0), dtype=dtype)),
                   (OUTPUTS["squared"], np.empty(0, dtype=np.int64),
                    np.zeros((n, 2), dtype=dtype)))
        # one epoch of each kernel an epoch can take (api.epoch_path): batches of
        # one row, small batches, large batches of a narrow network and of a wider
        # one; the loss and gradient of small chunks and of chunks in row blocks
        for sizes, batch, solver in ((narrow, 1, "sgd"), (narrow, 4, "adam"),
                                     (narrow, n, "sgd"), (wide, n, "adam")):
            t1 = time.perf_counter()
            net = Network(sizes, "relu", "softmax", np.zeros(n_params(sizes), dtype=dtype),
                          solver)
            work = np.empty(work_size(sizes, batch), dtype=dtype)
            for code, y, Y in outputs:
                kern._epoch(X, y, Y, w, np.arange(n), net.params, net.grads, net.state1,
                            net.state2, 0, sizes, act, code, SOLVERS[solver], 1e-3, 0.9, False,
                            0.9, 0.999, 1e-8, 1e-4, batch, work)
                kern._loss_gradient(X, y, Y, w, net.params, net.grads, sizes, act, code, 1e-4,
                                    batch, work)
            if verbose:
                names = (f"{epoch_path(X, sizes, batch, output, SOLVERS[solver])}, "
                         f"{loss_path(sizes, batch)}")
                print(f"  {names} ({dtype}): {time.perf_counter() - t1:.1f} s", flush=True)
        t1 = time.perf_counter()
        kern._predict(X, net.params, sizes, act, output)
        if verbose:
            print(f"  predict_rows ({dtype}): {time.perf_counter() - t1:.1f} s", flush=True)
    if verbose:
        print(f"fastmlp: kernels ready in {time.perf_counter() - t0:.1f} s", flush=True)


def show_config(file=None):
    """Print the backend, threading, BLAS and cache settings in use."""
    import os
    import sys

    from . import threads

    out = file or sys.stdout
    print(f"fastmlp {__version__}", file=out)
    print(f"backend: {kernels.BACKEND} (FASTMLP_BACKEND={os.environ.get('FASTMLP_BACKEND', '')!r})",
          file=out)
    print(f"cores: {threads.cores()}", file=out)
    try:
        import numba
    except ImportError:
        print("numba: not installed", file=out)
    else:
        core = kernels.get("numba")._core
        cache = (getattr(getattr(core._train_epoch_by, "_cache", None), "cache_path", None)
                 if core._CACHE else "off (no writable directory)")
        serial = "" if core.parallel_ok() else " (row-block kernels run serially here)"
        print(f"numba {numba.__version__}: threading layer {core.threading_layer()!r}"
              f"{serial}, {threads.default_threads()} of {threads.pool_size()} threads by "
              f"default, cache {cache}", file=out)
        from .kernels import bundled_blas
        from .kernels.numba_core import blas, parallel_compile

        print(f"numba kernels' products: {blas.describe()} ({bundled_blas.VARIABLE}="
              f"{os.environ.get(bundled_blas.VARIABLE, '')!r})", file=out)

        try:
            compiling = f"up to {parallel_compile.processes()} processes at once"
        except ValueError as error:
            compiling = str(error)
        print(f"first compile: {compiling} ({parallel_compile.VARIABLE}="
              f"{os.environ.get(parallel_compile.VARIABLE, '')!r})", file=out)
    def blas_line(label, lib):
        info = lib.info()
        print(f"{label}: {info.get('internal_api')} {info.get('version')} "
              f"threads={info.get('num_threads')} "
              f"({os.path.basename(info.get('filepath', ''))})", file=out)

    for backend_name in ("numba", "numpy"):
        try:
            libs = threads.blas_libraries(backend_name)
        except ImportError:
            continue
        for lib in libs:
            blas_line(f"{backend_name} BLAS", lib)
    for lib in threads.driver_libraries(kernels.BACKEND):
        blas_line("other BLAS (L-BFGS's own steps; one thread during a solve)", lib)
