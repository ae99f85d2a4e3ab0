"""fastmlp's kernels: the functions of the active backend.

The backend is chosen once, at import, from ``FASTMLP_BACKEND`` (``numba``,
the default, or ``numpy``). Both backend modules, ``numba_backend`` and
``numpy_backend``, export the same names (``api.NAMES``) with the same
signatures, and both can be imported side by side; ``get(name)`` returns
either. Without numba the NumPy backend is used, with one warning.
"""

import importlib
import os
import warnings

from . import config  # noqa: F401  (sets numba's cache directory before numba loads)
from .api import ACTIVATIONS, NAMES, OUTPUTS, SOLVERS, n_params

BACKENDS = ("numba", "numpy")


_loaded = {}


def get(name):
    """The backend module called ``name`` ('numba' or 'numpy')."""
    try:
        return _loaded[name]
    except (KeyError, TypeError):
        pass
    if name not in BACKENDS:
        raise ValueError(f"unknown fastmlp backend {name!r}; valid backends: {', '.join(BACKENDS)}")
    _loaded[name] = importlib.import_module(f"{__name__}.{name}_backend")
    return _loaded[name]


def _choose():
    name = os.environ.get("FASTMLP_BACKEND", "numba").strip().lower() or "numba"
    if name not in BACKENDS:
        raise ValueError(
            f"FASTMLP_BACKEND={name!r} is not a fastmlp backend; valid values: {', '.join(BACKENDS)}"
        )
    if name == "numba":
        try:
            import numba  # noqa: F401
        except ImportError as exc:
            warnings.warn(f"numba cannot be imported ({exc}); fastmlp uses its NumPy backend",
                          RuntimeWarning, stacklevel=3)
            name = "numpy"
    return name


BACKEND = _choose()
_active = get(BACKEND)
globals().update({name: getattr(_active, name) for name in NAMES})

__all__ = list(NAMES) + ["BACKEND", "BACKENDS", "get", "n_params", "ACTIVATIONS", "OUTPUTS",
                         "SOLVERS"]
