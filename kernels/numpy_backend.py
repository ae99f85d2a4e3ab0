"""The numpy backend: the public kernels of ``api`` over ``numpy_core``."""

from . import numpy_core as _core
from .api import NAMES, make

globals().update(make(_core))
__all__ = list(NAMES)
