"""fastmlp's kernels, computed by one of two backends.

``get("numba")`` and ``get("numpy")`` return the public kernels
(``api.Kernels``) over the compiled or the NumPy core; both can be used side by
side. The process-wide choice, ``BACKEND``, is read once from
``FASTMLP_BACKEND`` (``numba``, the default, or ``numpy``); without numba it is
``numpy``, with one warning. Nothing is imported or compiled until a backend is
first used; the kernels of the process-wide backend are also reachable as
attributes of this package (``fastmlp.kernels.softmax(Z)``).
"""

import importlib
import importlib.util
import os
import threading
import warnings

from .api import NAMES, Kernels, n_params, work_size
from .codes import ACTIVATIONS, OUTPUTS, SOLVERS

BACKENDS = ("numba", "numpy")

_loaded = {}
_lock = threading.Lock()


def _choose():
    name = os.environ.get("FASTMLP_BACKEND", "numba").strip().lower() or "numba"
    if name not in BACKENDS:
        raise ValueError(
            f"FASTMLP_BACKEND={name!r} is not a fastmlp backend; valid values: {', '.join(BACKENDS)}"
        )
    if name == "numba" and importlib.util.find_spec("numba") is None:
        warnings.warn("numba cannot be imported; fastmlp uses its NumPy backend",
                      RuntimeWarning, stacklevel=3)
        name = "numpy"
    return name


#: The process-wide backend: 'numba' or 'numpy'.
BACKEND = _choose()


def get(name=None):
    """The public kernels of backend ``name`` ('numba' or 'numpy'; None: ``BACKEND``)."""
    if name is None:
        name = BACKEND
    try:
        return _loaded[name]
    except (KeyError, TypeError):
        pass
    if name not in BACKENDS:
        raise ValueError(f"unknown fastmlp backend {name!r}; valid backends: {', '.join(BACKENDS)}")
    with _lock:
        if name not in _loaded:
            core = importlib.import_module(f"{__name__}.{name}_core")  # numba: checks its cache
            _loaded[name] = Kernels(name, core)
    return _loaded[name]


def __getattr__(name):
    if name in NAMES:
        return getattr(get(BACKEND), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(NAMES) + ["BACKEND", "BACKENDS", "get", "n_params", "work_size", "ACTIVATIONS",
                         "OUTPUTS", "SOLVERS", "Kernels"]
