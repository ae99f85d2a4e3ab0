"""The numba backend: the public kernels of ``api`` over ``numba_core``."""

from . import numba_core as _core
from .api import NAMES, make

globals().update(make(_core))
__all__ = list(NAMES)
