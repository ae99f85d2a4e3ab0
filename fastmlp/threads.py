"""Thread settings: how many threads the kernels and BLAS may use.

Training runs one compiled call per epoch whose loops are serial; its matrix
products go to BLAS, which uses every core by default. That is the fast path on
its own: a ``prange`` loop beside a multi-threaded BLAS makes the two thread
pools fight for the cores. ``n_threads`` caps both pools for one call.
"""

import contextlib
import os


def cores():
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def limits(n_threads, backend):
    """Cap BLAS and numba threads at ``n_threads`` inside the block (None: no cap)."""
    if n_threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    before = None
    if backend == "numba":
        import numba
        import scipy.linalg.cython_blas  # noqa: F401  (load numba's BLAS so it can be capped)

        before = numba.get_num_threads()
        numba.set_num_threads(min(n_threads, numba.config.NUMBA_NUM_THREADS))
    try:
        with threadpool_limits(limits=n_threads):
            yield
    finally:
        if before is not None:
            numba.set_num_threads(before)
