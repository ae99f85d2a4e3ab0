"""Set-up shared by every file of the numba core: whether numba caches the
kernels on disk, the options each kind of kernel is compiled with, the
unsigned index type of the loops that must vectorise, and ``ByAddress``, a
compiled function passed to others by its address.
"""

import os
import warnings

import numpy as np
from llvmlite import ir
from numba import njit
from numba.core import cgutils
from numba.core.registry import CPUDispatcher
from numba.core.types import FunctionType
from numba.experimental.function_type import FunctionModel
from numba.extending import NativeValue, register_model, unbox

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
#: The kernels that Python calls (the API's and the training kernels' own).
ENTRY = dict(JIT, **config.PYTHON_ENTRY)
INLINE_ENTRY = dict(INLINE, **config.PYTHON_ENTRY)
#: The functions that compiled code calls by address (``ByAddress``).
BY_ADDRESS = dict(JIT, **config.C_ENTRY)


class CompiledOnly(CPUDispatcher):
    """A compiled function without the wrapper Python calls (``config.JIT``):
    compiled code calls it directly; from Python it raises a TypeError
    instead of jumping to a wrapper that was never generated."""

    def __call__(self, *args, **kwargs):
        raise TypeError(f"{self.py_func.__module__}.{self.py_func.__qualname__} is compiled "
                        f"without an entry point for Python: only compiled code calls it")


def close_python_entries(dispatchers):
    """Make each of ``dispatchers`` compiled without a Python entry point a
    ``CompiledOnly``."""
    for dispatcher in dispatchers:
        if dispatcher.targetoptions.get("no_cpython_wrapper"):
            dispatcher.__class__ = CompiledOnly


#: Unsigned index type of the loops that must vectorise (see the package's docstring).
U = np.uint64


class AddressType(FunctionType):
    """numba's type of a ``ByAddress``: a first-class function type whose
    value numba reads from the object's ``address`` (numba's own first-class
    function arguments are unboxed by unpickling their signature and asking
    the object for its address, about 5 us per argument and call)."""


register_model(AddressType)(FunctionModel)


@unbox(AddressType)
def _unbox_address(typ, obj, c):
    """The function's value: the machine code's address in the first field
    (the C entry numba's first-class functions call), the object in the
    second, nothing in any further one (numba then calls the first)."""
    builder = c.builder
    address = c.pyapi.object_getattr_string(obj, "address")
    found = cgutils.is_not_null(builder, address)
    slot = cgutils.alloca_once_value(builder, ir.Constant(c.pyapi.voidptr, None))
    with builder.if_then(found, likely=True):
        builder.store(c.pyapi.long_as_voidptr(address), slot)  # None (unbound): TypeError
        c.pyapi.decref(address)
    pointer = builder.load(slot)
    failed = builder.or_(builder.not_(found),
                         cgutils.is_not_null(builder, c.pyapi.err_occurred()))
    value = ir.Constant(c.context.get_value_type(typ), None)
    value = builder.insert_value(value, pointer, 0)
    value = builder.insert_value(value, builder.bitcast(obj, pointer.type), 1)
    return NativeValue(value, is_error=failed)


class ByAddress:
    """A compiled function for arguments of the types ``args`` returning
    ``returns``, as an argument of other compiled functions: they call it
    through its address (numba's first-class functions) instead of compiling
    its code into their own. Its type is known when made; ``bind`` compiles it
    (or loads it from the cache) and takes its address, which it needs before
    it is passed."""

    def __init__(self, dispatcher, args, returns):
        self.dispatcher = dispatcher
        self.args = tuple(args)
        #: numba's type of the object (read by numba's own type lookup, which
        #: finds this attribute without calling back into Python)
        self._numba_type_ = AddressType(returns(*self.args))
        #: The address of the function's C entry point (None until bound)
        self.address = None

    def bind(self):
        """Compile the function (or load it from the cache) and take its address."""
        if self.address is not None:
            return
        self.dispatcher.compile(self.args)
        result = self.dispatcher.overloads[self.args]
        if result.signature.return_type != self._numba_type_.signature.return_type:
            raise TypeError(f"{self.dispatcher.py_func.__name__} returns "
                            f"{result.signature.return_type}, not the "
                            f"{self._numba_type_.signature.return_type} its callers are compiled for")
        self._compiled = result  # holds the machine code (numba frees it with its library)
        self.address = result.library.get_pointer_to_function(
            result.fndesc.llvm_cfunc_wrapper_name)
