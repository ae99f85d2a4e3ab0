"""Thread settings: how many threads BLAS may use.

A model's ``n_threads`` caps, for the duration of each of its calls, the BLAS
library its backend's matrix products go to (SciPy's OpenBLAS for the numba
backend, NumPy's for the NumPy backend). The compiled kernels themselves run
on the calling thread: on the machines measured, a parallel loop did not pay
for waking a second thread beside BLAS's own (README, "Threads"), so
calls that make no BLAS call (the one-row and narrow-network epochs, a
one-row predict) set nothing. The BLAS libraries are found once per backend
with threadpoolctl (a scan of the loaded libraries costs about 0.3 ms);
after that a call costs a few direct get/set calls, microseconds, and none
when the count is already right.
"""

import contextlib
import os
import threading

_lock = threading.Lock()
_blas = {}


def cores():
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def blas_libraries(backend):
    """threadpoolctl's controllers of the BLAS libraries ``backend`` calls."""
    try:
        return _blas[backend]
    except KeyError:
        pass
    with _lock:
        if backend not in _blas:
            if backend == "numba":
                import scipy.linalg.cython_blas  # noqa: F401  (numba's BLAS, loaded to be found)
            from threadpoolctl import ThreadpoolController

            blas = ThreadpoolController().select(user_api="blas")
            _blas[backend] = list(blas.lib_controllers)
    return _blas[backend]


_NO_CAP = contextlib.nullcontext()


def limits(n_threads, backend):
    """Cap BLAS threads at ``n_threads`` inside a ``with`` block (None: no cap,
    and nothing to do: a shared empty context)."""
    if n_threads is None:
        return _NO_CAP
    return _capped(n_threads, backend)


@contextlib.contextmanager
def _capped(n_threads, backend):
    restore = []
    for lib in blas_libraries(backend):
        before = lib.get_num_threads()
        if before != n_threads:
            lib.set_num_threads(n_threads)
            restore.append((lib.set_num_threads, before))
    try:
        yield
    finally:
        for set_threads, before in reversed(restore):
            set_threads(before)
