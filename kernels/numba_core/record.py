"""The record of what the cached kernels were compiled from: ``_frozen``.

numba freezes ``freshness._FROZEN`` into the machine code of ``_frozen`` when
it compiles it, and caches that code like any kernel's; in a later process,
``_frozen()`` returns the tuple as it was when the cache was written, and
``freshness.ensure_fresh`` compares it with the tuple of the present files
and values.

Why the record survives the edits it must reveal: numba drops a function's
cached code only when the function's own file changes, and this file names
nothing the tuple holds (``freshness`` lists the values and computes the
keys). An edit of any other file (a kernel's, ``codes``, ``config``,
``blocks``, or ``freshness``, whose own key is in the tuple, so that a change
of the list itself shows) leaves this file and its cached record as they
were, and the record differs from the present tuple. Only an edit of this
file drops the record, which is then compiled from the present tuple and
matches it: harmless when this file is edited alone, since no kernel calls
``_frozen``. That is why this file holds the record and nothing else (its key
is in the tuple too, like every file's, for the listing to be complete).
"""

from numba import njit

from . import freshness
from ._setup import ENTRY


@njit(**ENTRY)
def _frozen():
    """``freshness._FROZEN`` as it was when the cache was compiled."""
    return freshness._FROZEN
