"""Every option of the compiled kernels, in one place.

The kernels never spell out a numba option themselves: they use ``JIT``
(serial), ``PJIT`` (``prange`` loops), ``INLINE`` (scalar helpers) or
``REDUCE`` (vectorised sums). Importing this module sets up the cache
directory and the OpenMP wait policy *before* numba is loaded, and imports
nothing heavy.
"""

import os
import sys
import tempfile
import warnings

#: fastmath flags that keep NaN and inf checks working: ``nnan``/``ninf`` are
#: left out on purpose (with them ``np.isfinite`` is compiled away), and so is
#: ``reassoc`` (it would let LLVM undo the rounding tricks of ``_exp`` and would
#: make sums depend on vector width).
FASTMATH = frozenset({"nsz", "arcp", "contract", "afn"})

#: Serial kernels: no Python error model (its division check blocks SIMD).
JIT = dict(nogil=True, cache=True, error_model="numpy", fastmath=set(FASTMATH))

#: Sums that may be vectorised: ``reassoc`` lets LLVM split them into lanes.
#: The order is then fixed by the compiled code (the same on every run), not
#: by the data. Nothing that calls ``_exp`` may use it.
REDUCE = dict(JIT, fastmath=set(FASTMATH | {"reassoc"}))

#: Kernels with ``prange`` loops.
PJIT = dict(JIT, parallel=True)

#: Scalar helpers (exp, sigmoid, tanh): inlined into the loops that call them,
#: at numba's level, so that those loops vectorise.
INLINE = dict(JIT, inline="always")

#: Row chunk (in elements) below which a ``prange`` loop does not pay.
PARALLEL_MIN_ELEMENTS = 1 << 17

#: Below this many multiply-adds a matrix product is a plain loop, not a BLAS call.
SMALL_GEMM = 1 << 14

#: Rows narrower than this are handled in two passes (bias, then f over the
#: whole block) so that the activation's loop is long enough to vectorise.
NARROW = 16

#: Rows of one forward pass in ``predict``: bounds the scratch memory.
PREDICT_CHUNK = 4096


def _writable(path):
    try:
        os.makedirs(path, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".fastmlp-probe-")
        probe.close()
        return True
    except OSError:
        return False


def _pick_cache_dir():
    """Where numba should write its cache: None for numba's own choice (the
    package's ``__pycache__``, or ``NUMBA_CACHE_DIR`` when set), a fallback
    directory when that is not writable, or "" when nothing is."""
    user = os.environ.get("NUMBA_CACHE_DIR")
    if user:
        if _writable(user):
            return None
        warnings.warn(f"fastmlp: NUMBA_CACHE_DIR={user!r} is not writable; "
                      "numba's cache goes to a fallback directory", RuntimeWarning, stacklevel=3)
    elif _writable(os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__")):
        return None
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    for path in (os.path.join(xdg, "fastmlp", "numba"),
                 os.path.join(tempfile.gettempdir(), f"fastmlp-numba-{uid}")):
        if _writable(path):
            return path
    return ""


CACHE_DIR = _pick_cache_dir()
if CACHE_DIR == "":
    warnings.warn(
        "fastmlp: no writable directory for numba's cache; "
        "kernels are compiled anew in every process",
        RuntimeWarning,
        stacklevel=2,
    )
    for _opts in (JIT, PJIT, INLINE, REDUCE):
        _opts["cache"] = False
elif CACHE_DIR is not None:
    os.environ["NUMBA_CACHE_DIR"] = CACHE_DIR
    if "numba" in sys.modules:  # numba read its config already: tell it directly
        sys.modules["numba"].config.CACHE_DIR = CACHE_DIR

# OpenMP workers that spin after a prange loop steal the cores BLAS is using;
# a passive wait policy puts them to sleep at once. It must be set before the
# OpenMP runtime loads, which is at numba's first parallel call.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")
