"""Thread settings of the kernels: numba's threads for the row-block kernels,
BLAS's threads for the matrix products of the others.

Each kernel call uses one pool of threads, never both at once
(``kernels.api.epoch_path`` picks the kernel from the layout alone):

- the row-block kernels (``ROW_BLOCK_KERNELS``) run their blocks on numba's
  threads: ``n_threads`` of them (None: ``default_threads()``), set for the
  calling thread only (numba keeps the count per thread), with BLAS held at
  one thread meanwhile, since each block's products run inside a block's
  thread (``train_columns`` makes no BLAS call and leaves BLAS alone);
- ``train_rows`` (SGD on batches of one row) makes no BLAS call and sets
  nothing;
- the rest run on the calling thread and cap BLAS at ``n_threads`` (None: no
  cap);
- around a full-batch solve (scipy's L-BFGS-B), every other BLAS library,
  SciPy's among them, is held at one thread (``driver``).

A BLAS library keeps one thread count per process, so the caps are shared:
every call in flight registers what it asks of each library, the library
runs at the smallest request, and the last call to finish puts back the
count it found. Two threads training
two models (one in row blocks, one on BLAS) therefore never leave BLAS at a
count nobody asked for; the BLAS one may run on fewer threads meanwhile. The
BLAS libraries are found once per backend with threadpoolctl (a scan of the
loaded libraries costs about 0.3 ms); after that a call costs a few direct
get/set calls, microseconds, and none when the count is already right.
"""

import contextlib
import os
import threading

from .kernels.api import ROW_BLOCK_KERNELS

#: Kernels that make no BLAS call and start no thread.
SERIAL_KERNELS = ("train_rows",)
#: Row-block kernels that make no BLAS call (feature-major loops): they set
#: numba's threads and leave BLAS alone.
NO_BLAS_KERNELS = ("train_columns",)

_lock = threading.Lock()
_blas = {}


def cores():
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _variable(name):
    """A positive thread count from environment variable ``name`` (the first
    of a comma-separated OpenMP list), or None."""
    value = os.environ.get(name, "").split(",")[0].strip()
    try:
        count = int(value)
    except ValueError:
        return None
    return count if count >= 1 else None


def pool_size():
    """Threads in numba's pool (``NUMBA_NUM_THREADS`` when numba started)."""
    import numba

    return numba.config.NUMBA_NUM_THREADS


_default = {}


def default_threads():
    """Threads a row-block kernel uses when ``n_threads`` is None: the cores
    this process may use (its CPU affinity), capped by ``NUMBA_NUM_THREADS``
    and ``OMP_NUM_THREADS`` where set (joblib's and dask's workers set the
    latter), never above numba's pool. Found once per process."""
    pid = os.getpid()
    if pid not in _default:
        _default.clear()
        _default[pid] = _count_default()
    return _default[pid]


def _count_default():
    count = min(cores(), pool_size())  # numba's pool is NUMBA_NUM_THREADS where set
    limit = _variable("OMP_NUM_THREADS")
    if limit is not None:
        count = min(count, limit)
    return max(1, count)


def blas_libraries(backend):
    """threadpoolctl's controllers of the BLAS libraries ``backend``'s products
    call: for the numba backend the one its compiled products call
    (``numba_core.blas``), for the numpy backend numpy's own (``@``); every
    loaded BLAS library where that one is not known."""
    try:
        return _blas[backend]
    except KeyError:
        pass
    with _lock:
        if backend not in _blas:
            from .kernels import bundled_blas

            if backend == "numba":  # decided without loading numba
                source, path, _ = bundled_blas.kernels_blas()
                called = (path,) if source == "numpy" else ()
                if not called:
                    import scipy.linalg.cython_blas  # noqa: F401  (loaded, to be found)
            else:
                called = bundled_blas.numpy_openblas()
            libs = _loaded_blas()
            _blas[backend] = [lib for lib in libs if _path(lib) in called] or libs
    return _blas[backend]


def _loaded_blas():
    """threadpoolctl's controllers of every BLAS library loaded now."""
    from threadpoolctl import ThreadpoolController

    return list(ThreadpoolController().select(user_api="blas").lib_controllers)


def _path(lib):
    return os.path.realpath(lib.filepath)


def driver_libraries(backend):
    """The BLAS libraries other than ``backend``'s own (``blas_libraries``),
    SciPy's among them once loaded: the ones scipy's solvers call."""
    key = ("driver", backend)
    try:
        return _blas[key]
    except KeyError:
        pass
    own = {_path(lib) for lib in blas_libraries(backend)}
    import scipy.linalg.cython_blas  # noqa: F401  (SciPy's BLAS, loaded to be found)

    with _lock:
        if key not in _blas:
            _blas[key] = [lib for lib in _loaded_blas() if _path(lib) not in own]
    return _blas[key]


class _LibraryCaps:
    """The thread caps on one BLAS library that the calls in flight asked
    for: it runs at the smallest, and the last call to finish puts back the
    count found before the first began. One per library, whichever backend or
    solver asks (``_caps_lock`` held by the callers)."""

    def __init__(self, lib):
        self.lib = lib
        self.wanted = []
        self.found = None

    def enter(self, n_threads):
        if not self.wanted:
            self.found = self.lib.get_num_threads()
        self.wanted.append(n_threads)
        self._apply()

    def leave(self, n_threads):
        self.wanted.remove(n_threads)
        self._apply()

    def _apply(self):
        if self.wanted:
            count = min(self.wanted)
        else:
            count, self.found = self.found, None
        if self.lib.get_num_threads() != count:
            self.lib.set_num_threads(count)


class _BlasCaps:
    """Caps on a set of BLAS libraries, each library's kept by its own
    ``_LibraryCaps``."""

    def __init__(self, libs):
        with _caps_lock:
            self.caps = [_library_caps.setdefault(_path(lib), _LibraryCaps(lib)) for lib in libs]

    def cap(self, n_threads):
        """A context in which these libraries run at most ``n_threads`` threads."""
        return _Cap(self, n_threads)

    def enter(self, n_threads):
        with _caps_lock:
            for caps in self.caps:
                caps.enter(n_threads)

    def leave(self, n_threads):
        with _caps_lock:
            for caps in self.caps:
                caps.leave(n_threads)


class _Cap:
    """``_BlasCaps.cap``'s context (a class: a generator-based one costs
    microseconds more per call)."""

    __slots__ = ("caps", "n_threads")

    def __init__(self, caps, n_threads):
        self.caps, self.n_threads = caps, n_threads

    def __enter__(self):
        self.caps.enter(self.n_threads)

    def __exit__(self, *exc):
        self.caps.leave(self.n_threads)


_caps_lock = threading.Lock()
_library_caps = {}
_caps = {}


def _blas_caps(key):
    """The caps on ``key``'s libraries: a backend's (``blas_libraries``) or
    ("driver", backend)'s (``driver_libraries``)."""
    try:
        return _caps[key]
    except KeyError:
        pass
    libs = driver_libraries(key[1]) if isinstance(key, tuple) else blas_libraries(key)
    caps = _BlasCaps(libs)
    with _caps_lock:
        return _caps.setdefault(key, caps)


def _reset_after_fork():
    """A child process has only the thread that forked: no other thread's call
    is in flight there, and a lock held elsewhere at the fork is not."""
    global _caps_lock, _lock
    _caps_lock, _lock = threading.Lock(), threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)

_NO_CAP = contextlib.nullcontext()


def limits(n_threads, backend, path=None):
    """The thread settings of a call of kernel ``path`` (None: a kernel that
    calls BLAS) of ``backend``, inside a ``with`` block: numba's threads and
    BLAS at one for a row-block kernel of the numba backend; BLAS capped at
    ``n_threads`` for the others (None: nothing to do, a shared empty
    context)."""
    if path in SERIAL_KERNELS:
        return _NO_CAP
    if backend == "numba" and path in ROW_BLOCK_KERNELS:
        return _row_blocks(n_threads, path not in NO_BLAS_KERNELS)
    if n_threads is None:
        return _NO_CAP
    return _blas_caps(backend).cap(n_threads)


def driver(backend):
    """The thread settings of a solver's own steps between calls of
    ``backend``'s kernels (scipy's L-BFGS-B, whose vector arithmetic runs on
    SciPy's BLAS), inside a ``with`` block around the whole solve: every BLAS
    library the kernels do not call held at one thread. Such a library's
    threads wait for work by spinning after each of the driver's small calls,
    and took a core from the kernels' threads (numba's or BLAS's): a row-block
    L-BFGS fit on two cores ran at half speed with SciPy's BLAS at two
    threads. Where the kernels call SciPy's BLAS themselves, nothing is capped
    here."""
    return _blas_caps(("driver", backend)).cap(1)


class _row_blocks:
    """The context of a row-block kernel's call: numba's threads for the
    calling thread (numba keeps the count per thread) and, for ``blas``
    kernels, BLAS at one thread meanwhile."""

    __slots__ = ("count", "blas", "before")

    def __init__(self, n_threads, blas):
        self.count = default_threads() if n_threads is None else min(n_threads, pool_size())
        self.blas = blas

    def __enter__(self):
        import numba

        if self.blas:
            _blas_caps("numba").enter(1)
        try:
            self.before = numba.get_num_threads()
            if self.before != self.count:
                numba.set_num_threads(self.count)
        except BaseException:
            if self.blas:
                _blas_caps("numba").leave(1)
            raise

    def __exit__(self, *exc):
        import numba

        try:
            if self.before != self.count:
                numba.set_num_threads(self.before)
        finally:
            if self.blas:
                _blas_caps("numba").leave(1)
