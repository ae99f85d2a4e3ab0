"""Set-up shared by every file of the numba core: whether numba caches the
kernels on disk, the options each kind of kernel is compiled with, and the
unsigned index type of the loops that must vectorise.
"""

import os
import warnings

import numba.experimental.function_type  # noqa: F401  (numba's types for ``ByAddress``)
import numpy as np
from numba import njit
from numba.core.types import FunctionType, WrapperAddressProtocol
from numba.extending import typeof_impl

from .. import config


def _disk_cache():
    """Whether numba can cache the kernels of this package on disk.

    numba picks the directory itself: ``NUMBA_CACHE_DIR``, else the
    ``__pycache__`` beside their files, else a per-user cache directory. When it
    can write none of them, the kernels are compiled anew in every process.
    """
    def probe():
        return 0

    try:
        dispatcher = njit(cache=True)(probe)
    except RuntimeError:  # numba found no writable directory
        warnings.warn("fastmlp: numba finds no writable cache directory; the kernels are "
                      "compiled anew in every process (set NUMBA_CACHE_DIR to a writable "
                      "directory)", RuntimeWarning, stacklevel=4)
        return False
    wanted = os.environ.get("NUMBA_CACHE_DIR")
    path = getattr(getattr(dispatcher, "_cache", None), "cache_path", None)
    if wanted and path and not os.path.abspath(path).startswith(os.path.abspath(wanted)):
        warnings.warn(f"fastmlp: NUMBA_CACHE_DIR={wanted!r} is not writable; numba caches "
                      f"fastmlp's kernels in {path} instead", RuntimeWarning, stacklevel=4)
    return True


_CACHE = _disk_cache()
JIT = dict(config.JIT, cache=_CACHE)
#: Type-dispatched helpers (``overload``): compiled into the kernels that call
#: them and cached only as part of those, so that ``ensure_fresh`` rebuilding the
#: kernels rebuilds them too.
OVERLOAD = dict(config.JIT, cache=False)
PARALLEL = dict(config.PARALLEL, cache=_CACHE)
REDUCE = dict(config.REDUCE, cache=_CACHE)
INLINE = dict(config.INLINE, cache=_CACHE)
INLINE_REDUCE = dict(config.INLINE_REDUCE, cache=_CACHE)


#: Unsigned index type of the loops that must vectorise (see the package's docstring).
U = np.uint64


class ByAddress(WrapperAddressProtocol):
    """A compiled function for one signature, as an argument of other compiled
    functions: they call it through its address (numba's first-class
    functions) instead of compiling its code into their own. It is compiled,
    or loaded from the cache, when first passed."""

    def __init__(self, dispatcher, signature):
        self._dispatcher = dispatcher
        self._signature = signature
        self._type = FunctionType(signature)
        self._address = None

    def signature(self):
        return self._signature

    def __wrapper_address__(self):
        if self._address is None:
            result = self._dispatcher.get_compile_result(self._signature)
            self._address = result.library.get_pointer_to_function(
                result.fndesc.llvm_cfunc_wrapper_name)
        return self._address


@typeof_impl.register(ByAddress)
def _typeof_by_address(value, context):
    """numba's type of a ``ByAddress``, made once (numba's own way makes it on
    every call, which costs several microseconds)."""
    return value._type
