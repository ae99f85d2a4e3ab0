"""Freshness of the cached kernels: ``ensure_fresh``.

numba keys the disk cache of a compiled function on its own source file only,
and freezes into its machine code the functions it calls and the module-level
values it reads. The kernels of this package call one another across its
files, read values from ``codes`` and ``config``, and compile the functions of
``blocks``: an edit of a callee's file, or of ``codes``, ``config`` or
``blocks``, alone would leave stale machine code in the cache of every caller
in another file. ``_FROZEN`` lists what the cached code depends on beyond its
own file: the values taken from ``codes`` and ``config``, and a key of the
source of ``blocks`` and of every file of this package (found by listing the
package, so that a new file is covered without an edit here).
``record._frozen`` returns ``_FROZEN`` as it was when the cache was written
(``record`` says why that holds); ``ensure_fresh`` compares the two and
rebuilds every kernel of the package when they differ.
"""

import hashlib
import importlib
import inspect
import pkgutil
import sys

from numba.core.registry import CPUDispatcher

from .. import blocks
from ..codes import ADAM, IDENTITY, LOGISTIC, POISSON, RELU, SIGMOID, SOFTMAX, SQUARED, TANH
from ..config import (BLOCK_MAX, BLOCK_MIN_ROWS, COLUMNS_BLOCK, COLUMNS_PAD, NARROW,
                      PREDICT_CHUNK, SMALL_GEMM, UPDATE_CHUNK)
from . import record


def _source_key(module):
    """A number that changes with ``module``'s source (the first 60 bits of its
    SHA-1): the compiled code calls functions of it."""
    return int(hashlib.sha1(inspect.getsource(module).encode()).hexdigest()[:15], 16)


#: Every module of this package: the package itself, then its files by name.
_MODULES = (sys.modules[__package__],
            *(importlib.import_module(f"{__package__}.{info.name}")
              for info in sorted(pkgutil.iter_modules(sys.modules[__package__].__path__),
                                 key=lambda info: info.name)))

#: Every value from another module that the compiled code freezes in, the
#: source of ``blocks``, whose functions it compiles, and the source of every
#: module of this package, whose compiled functions call one another.
_FROZEN = (IDENTITY, SIGMOID, TANH, RELU, SOFTMAX, SQUARED, LOGISTIC, POISSON, ADAM,
           NARROW, PREDICT_CHUNK, SMALL_GEMM, COLUMNS_BLOCK, COLUMNS_PAD, BLOCK_MIN_ROWS,
           BLOCK_MAX, UPDATE_CHUNK, _source_key(blocks), *(_source_key(m) for m in _MODULES))


def _dispatchers():
    """Every compiled function of this package, once each (the serial twins
    and the compiled functions of ``blocks`` included), ``record._frozen``
    last."""
    found = {}
    for module in _MODULES:
        for value in vars(module).values():
            if isinstance(value, CPUDispatcher) and value is not record._frozen:
                found.setdefault(id(value), value)
    return [*found.values(), record._frozen]


def ensure_fresh():
    """Rebuild every cached kernel of this package if a value in ``_FROZEN``
    changed since the cache was written; returns whether it did.

    The record (``record._frozen``) is rebuilt last, from the present values:
    a rebuild cut short leaves the old record, and the next process rebuilds
    again.
    """
    if record._frozen() == _FROZEN:
        return False
    for dispatcher in _dispatchers():
        dispatcher.recompile()  # drops its on-disk index; compiles again on next use
    return True


#: Whether this process found the cache stale and rebuilt it. The check runs
#: when the core is first imported, before any kernel can be loaded from the
#: cache or compiled into it: the record is then written before the first
#: kernel of every process that caches one, so that no kernel sits in the cache
#: without the record of what it was compiled from.
REBUILT = ensure_fresh()
