"""fastmlp: fast CPU training of multilayer perceptrons.

    >>> from fastmlp import MLP
    >>> model = MLP(hidden=(64,), epochs=50).fit(X, y)

``import fastmlp`` compiles nothing: numba compiles the kernels on first use
(or in ``warmup()``) and caches them on disk.
"""

from . import kernels
from .errors import ConvergenceWarning, DivergenceError, NotFittedError
from .model import MLP
from .io import ModelFileError, load, save

__version__ = "0.1.0"
__all__ = ["MLP", "backend", "warmup", "show_config", "load", "save", "ConvergenceWarning",
           "DivergenceError", "ModelFileError", "NotFittedError", "__version__"]


def backend():
    """Name of the process-wide backend: 'numba' or 'numpy' (from ``FASTMLP_BACKEND``)."""
    return kernels.BACKEND


def warmup(backend=None, verbose=False):
    """Compile (or load from the cache) every kernel a fit and a predict need,
    for float32 and float64, all activations, outputs and solvers."""
    import time

    import numpy as np

    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8, 3))
    targets = {"classification": np.arange(8) % 2, "regression": rng.standard_normal(8)}
    for dtype in ("float32", "float64"):
        for task, y in targets.items():
            model = MLP((2,), batch_size=4, epochs=1, dtype=dtype, backend=backend,
                        random_state=0, task=task)
            model.partial_fit(X, y)
            model.predict(X)
    if verbose:
        print(f"fastmlp: kernels ready in {time.perf_counter() - t0:.1f} s")


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

        print(f"numba {numba.__version__}: threads {numba.get_num_threads()}, "
              f"threading layer {numba.config.THREADING_LAYER!r}", file=out)
        print(f"numba cache: {kernels.config.CACHE_DIR or os.environ.get('NUMBA_CACHE_DIR') or 'next to the kernels (__pycache__)'}",
              file=out)
    except ImportError:
        print("numba: not installed", file=out)
    try:
        import scipy.linalg.cython_blas  # noqa: F401
        from threadpoolctl import threadpool_info

        for lib in threadpool_info():
            print(f"{lib.get('user_api')}: {lib.get('internal_api')} {lib.get('version')} "
                  f"threads={lib.get('num_threads')} ({os.path.basename(lib.get('filepath', ''))})",
                  file=out)
    except ImportError:
        pass
