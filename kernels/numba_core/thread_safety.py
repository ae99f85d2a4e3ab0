"""Thread safety: whether the row-block kernels may run their parallel twins
here (``parallel_ok``), and numba's threading layer.
"""

import os


_forked_from_omp = False


def _after_fork():
    """In a child process: numba's GNU OpenMP layer, once started in the
    parent, stops any child that enters a parallel region; remember it."""
    global _forked_from_omp
    from numba.np.ufunc import parallel

    if parallel._is_initialized and parallel._threading_layer == "omp":
        _forked_from_omp = True


os.register_at_fork(after_in_child=_after_fork)


def parallel_ok():
    """Whether the row-block kernels may run their parallel twins here: not
    in a child forked after the parent started GNU OpenMP's threads, and not
    on numba's ``workqueue`` layer (which stops a process that enters two
    parallel regions at once, from two threads); elsewhere the serial twins
    run, with the same results."""
    if _forked_from_omp:
        return False
    return threading_layer() != "workqueue"


_layer = None


def threading_layer():
    """The threading layer numba runs the parallel loops on (starting it)."""
    global _layer
    if _layer is None:
        from numba.np.ufunc import parallel

        parallel._launch_threads()
        _layer = parallel._threading_layer
    return _layer
