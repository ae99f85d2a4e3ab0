"""fastmlp on a dask cluster: the few things dask and dask-ml leave to fastmlp.

dask-ml already drives the scikit-learn models of ``fastmlp.sklearn`` on dask
collections, and nothing here repeats it:

- ``dask_ml.wrappers.Incremental(MLPClassifier(...), shuffle_blocks=False)``
  ``.fit(X, y, classes=[...])`` trains with one ``partial_fit`` task per row
  block, in a chain: the same model as ``partial_fit`` over the blocks in
  order, in one process (``shuffle_blocks=True``, its default, visits the
  blocks in the order ``check_random_state(random_state).shuffle`` gives);
- ``dask_ml.wrappers.ParallelPostFit(model).predict(X)`` (and
  ``predict_proba``, ``score``) returns a lazy dask array, one task per block;
- scikit-learn's ``GridSearchCV`` and ``RandomizedSearchCV`` run their fits on
  the cluster inside ``joblib.parallel_config(backend="dask")``.

This module adds what fastmlp needs beyond that:

- ``warmup(client)`` compiles fastmlp's numba kernels in every worker process
  (or loads them from numba's disk cache), so that no training task stalls
  on compilation;
- ``limit_threads(client)`` (the nanny plugin ``ThreadLimits``) starts the
  workers again with BLAS, OpenMP and numba thread pools sized so that the
  threads of all tasks running at once on a host do not exceed its cores;
- ``partial_fit_blocks(model, X, y, sample_weight=w)`` is Incremental's chain
  with a weight per row: ``Incremental.fit`` passes every fit argument whole
  to every block, so it cannot take ``sample_weight``.
- ``DataParallel(model)`` (defined in ``fastmlp/dask/parallel.py``) trains one
  model with every worker at once: L-BFGS exactly (the blocks' losses and
  gradients added up for each step), SGD and Adam by averaging the models
  that the workers train on their shards.

Importing this module imports dask and distributed (``pip install
fastmlp[dask]``); ``import fastmlp`` does not.
"""

import asyncio
import copy
import importlib
import os
import time
import warnings
from collections import defaultdict
from collections.abc import Mapping
from numbers import Integral

import dask
import numpy as np
from dask.base import tokenize
from distributed.diagnostics.plugin import NannyPlugin

from .. import threads

__all__ = ["warmup", "limit_threads", "ThreadLimits", "THREAD_VARIABLES", "partial_fit_blocks",
           "DataParallel"]


# ------------------------------------------------------------------ warm-up
def warmup(client, backend=None):
    """Compile (or load from numba's disk cache) fastmlp's kernels in every
    worker process of ``client``'s cluster, and import ``fastmlp.sklearn``
    and dask-ml's wrappers (about a second more in a fresh worker).

    Runs ``fastmlp.warmup(backend)`` through ``client.run``, in a thread beside
    each worker's event loop (the worker keeps answering the scheduler while
    numba compiles): first on one worker per host, then on the others, which
    then load from the disk cache what the first compiled instead of all
    compiling at once (when they share the cache directory, as they do by
    default). Compiling from scratch takes tens of seconds per process;
    loading from the cache, about a second. Workers started later, or started
    again (by ``limit_threads``, or after running out of memory), prepare the
    kernels in their first task instead (loading them from their host's cache
    when it has them): call it again after such changes. ``backend``: 'numba',
    'numpy' (which compiles nothing) or None, each worker's default. Returns
    ``{worker address: seconds}``.
    """
    from ..kernels import BACKENDS

    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"backend must be None or one of {BACKENDS}, got {backend!r}")
    workers = client.scheduler_info(n_workers=-1)["workers"]
    first = {}
    for address, w in workers.items():
        first.setdefault(w["host"], address)
    seconds = client.run(_warm_worker, backend, workers=list(first.values()))
    others = [address for address in workers if address not in seconds]
    if others:
        seconds.update(client.run(_warm_worker, backend, workers=others))
    return seconds


async def _warm_worker(backend):
    return await asyncio.get_running_loop().run_in_executor(None, _warm, backend)


def _warm(backend):
    import fastmlp

    t0 = time.perf_counter()
    for module in ("fastmlp.sklearn", "dask_ml.wrappers"):  # what training tasks unpickle
        try:
            importlib.import_module(module)
        except ImportError:  # scikit-learn or dask-ml is not installed on this worker
            pass
    fastmlp.warmup(backend)
    return time.perf_counter() - t0


# ------------------------------------------------------------------ threads
#: The variables that size the thread pools of BLAS libraries, OpenMP and numba.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMBA_NUM_THREADS")


class ThreadLimits(NannyPlugin):
    """Nanny plugin: restart each worker with ``n_threads`` threads in every
    BLAS, OpenMP and numba thread pool.

    These libraries keep their thread count per process (OpenBLAS) or per
    thread (numba, OpenMP): a limit set inside a running worker, e.g. in a
    ``WorkerPlugin`` or with ``client.run``, does not reach the threads that
    run tasks. Environment variables read when each library starts do, in
    every thread, so the plugin sets them in the nanny and restarts its worker
    (``restart = True``; the worker's data is lost, as in any restart).

    ``n_threads``: threads per task, an int, or a mapping from nanny address
    to int (nannies it does not name get 1). ``limit_threads`` computes it
    from the cluster's cores and registers the plugin.

    The variables are set before the worker process is spawned (a new
    process imports NumPy, and the main module of the program that started
    the cluster, before the nanny's ``env`` applies), the way distributed
    applies its ``distributed.nanny.pre-spawn-environ`` settings: they are
    also set in the nanny's own process, which with a ``LocalCluster`` is the
    client's (processes it starts later inherit them). ``NUMBA_NUM_THREADS``
    is the exception: it is set in the worker process alone, where numba
    reads it on first use, since numba stops compiling in a process whose
    variable changes after its threads have started.
    """

    name = "fastmlp-thread-limits"
    restart = True
    idempotent = False

    def __init__(self, n_threads=1):
        if isinstance(n_threads, Mapping):
            for address, n in n_threads.items():
                _check_count(n, f"n_threads[{address!r}]")
            self.n_threads = dict(n_threads)
        else:
            self.n_threads = _check_count(n_threads, "n_threads")

    def threads_for(self, nanny_address):
        """Threads per task for the worker of the nanny at ``nanny_address``."""
        if isinstance(self.n_threads, dict):
            return self.n_threads.get(nanny_address, 1)
        return self.n_threads

    def setup(self, nanny):
        n = str(self.threads_for(nanny.address))
        variables = {name: n for name in THREAD_VARIABLES}
        nanny.pre_spawn_env.update({k: v for k, v in variables.items() if k not in _AFTER_SPAWN})
        nanny.env.update(variables)


#: Variables set in the worker process only (nanny ``env``, applied before the
#: worker imports anything of fastmlp's): numba reads ``NUMBA_NUM_THREADS`` when
#: it is imported, which fastmlp does lazily, and refuses to compile in a process
#: whose variable changed after its threads started, as the nanny's own process
#: (a ``LocalCluster``'s client) may have done.
_AFTER_SPAWN = ("NUMBA_NUM_THREADS",)


def limit_threads(client, n_threads=None):
    """Size the thread pools of every worker: ``n_threads`` threads per task,
    or (None) as many as leave no core oversubscribed.

    With None each worker gets ``cores // task threads on its host``, at least
    1: the cores its process may run on, divided among the task threads
    (``nthreads``) of all workers on the same host. Registers ``ThreadLimits``
    (which restarts the workers) and waits for the workers to be back. Workers
    that join later get 1 thread per task; call again after scaling. fastmlp's
    models then need no ``n_threads`` (None uses what the libraries are given).

    Raises ValueError when the cluster has no workers or some run without a
    nanny (``dask worker --no-nanny``, ``LocalCluster(processes=False)``): such
    workers can only be limited by setting the variables in
    ``THREAD_VARIABLES`` before they start. Warns when task threads alone
    already exceed a host's cores, or when an explicit ``n_threads`` does.
    Returns ``{worker address: threads per task}``, as the restarted workers
    report it.
    """
    if n_threads is not None:
        _check_count(n_threads, "n_threads")
    workers = client.scheduler_info(n_workers=-1)["workers"]
    if not workers:
        raise ValueError("the cluster has no workers to limit")
    without = sorted(a for a, w in workers.items() if not w.get("nanny"))
    if without:
        raise ValueError(
            f"workers {without} run without a nanny, which alone can restart them with "
            f"thread limits; start them with {', '.join(THREAD_VARIABLES)} set to the "
            "threads per task instead")
    cores = client.run(threads.cores)
    host_threads = defaultdict(int)
    for w in workers.values():
        host_threads[w["host"]] += w["nthreads"]
    per_nanny, crowded = {}, {}
    for address, w in workers.items():
        host = w["host"]
        n = max(1, cores[address] // host_threads[host]) if n_threads is None else n_threads
        per_nanny[w["nanny"]] = n
        if host_threads[host] * n > cores[address]:
            crowded[host] = (n, cores[address])
    for host, (n, host_cores) in crowded.items():
        warnings.warn(
            f"the workers on host {host} run {host_threads[host]} task threads with {n} "
            f"threads each on {host_cores} cores: that oversubscribes it; fewer workers, "
            "threads per worker or threads per task would not", RuntimeWarning, stacklevel=2)
    client.register_plugin(ThreadLimits(per_nanny))
    client.wait_for_workers(len(workers))
    return client.run(_threads_per_task)


def _threads_per_task():
    return int(os.environ["NUMBA_NUM_THREADS"])


def _check_count(n, name):
    if isinstance(n, bool) or not isinstance(n, Integral) or n < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {n!r}")
    return int(n)


# --------------------------------------------------------- blockwise training
def partial_fit_blocks(estimator, X, y, sample_weight=None, *, shuffle_blocks=False,
                       random_state=None, compute=True, **fit_params):
    """Train a copy of ``estimator`` with one ``partial_fit`` call per row block
    of X, like ``dask_ml.wrappers.Incremental``, with each block's slice of
    ``sample_weight``.

    X: a 2-D dask array (blocks along columns are merged first) or a dask
    DataFrame; y: a dask array, dask Series or DataFrame, or NumPy array, with
    X's rows; sample_weight: None, or a 1-D dask or NumPy array with X's rows
    (a dask Series split like X when X is a DataFrame). y and sample_weight
    are cut at X's block boundaries (when their own block sizes are unknown,
    e.g. a dask Series beside a dask array X, they are computed once to learn
    them). ``fit_params`` (e.g. ``classes``) go to every call. Blocks are visited in order, or with
    ``shuffle_blocks`` in the order Incremental uses for the same
    ``random_state``. Each task trains a copy of the model it receives, so
    neither ``estimator`` nor any task's input is changed, and a task that
    dask runs again (a worker was lost) starts from the same model.

    Returns the trained model, or with ``compute=False`` a ``dask.delayed``
    object that computes it.
    """
    if not callable(getattr(estimator, "partial_fit", None)):
        raise TypeError(f"{type(estimator).__name__} has no partial_fit method; "
                        "blockwise training needs one")
    X_blocks, y_blocks, w_blocks = _row_blocks(X, y, sample_weight)
    order = list(range(len(X_blocks)))
    if shuffle_blocks:
        from sklearn.utils import check_random_state

        check_random_state(random_state).shuffle(order)
    name = "partial-fit-blocks-" + tokenize(estimator, X, y, sample_weight, fit_params, order)
    step = dask.delayed(_partial_fit_copy)
    model = estimator
    for i, block in enumerate(order):
        model = step(model, X_blocks[block], y_blocks[block], w_blocks[block], fit_params,
                     dask_key_name=(name, i))
    return model.compute() if compute else model


def _partial_fit_copy(model, X, y, sample_weight, fit_params):
    model = copy.deepcopy(model)
    if sample_weight is not None:
        fit_params = dict(fit_params, sample_weight=sample_weight)
    model.partial_fit(X, y, **fit_params)
    return model


def _row_blocks(X, y, sample_weight):
    """The delayed row blocks of X, y and sample_weight (None per block when
    there are no weights), checked to line up."""
    import dask.array as da
    import dask.dataframe as dd

    if isinstance(X, dd.DataFrame):
        X_blocks = X.to_delayed()
        n_blocks = len(X_blocks)
        y_blocks = _frame_blocks(y, X, "y")
        if sample_weight is None:
            w_blocks = [None] * n_blocks
        elif isinstance(sample_weight, dd.Series):
            w_blocks = _frame_blocks(sample_weight, X, "sample_weight")
        else:
            raise TypeError("with a dask DataFrame X, sample_weight must be a dask Series "
                            "split like X (e.g. one of its columns); or convert X with "
                            "X.to_dask_array(lengths=True)")
        return X_blocks, y_blocks, w_blocks
    if not isinstance(X, da.Array):
        raise TypeError(f"X must be a dask array or dask DataFrame, got {type(X).__name__}")
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D, got {X.ndim} dimensions")
    if any(np.isnan(c) for c in X.chunks[0]):
        raise ValueError("X's row blocks have unknown sizes; call X.compute_chunk_sizes() "
                         "(or DataFrame.to_dask_array(lengths=True)) first")
    if X.numblocks[1] > 1:
        X = X.rechunk({1: -1})
    rows = X.chunks[0]
    y = _as_rows(y, X.shape[0], rows, "y", (1, 2))
    X_blocks = X.to_delayed().ravel()
    y_blocks = y.to_delayed().ravel() if y.ndim == 1 else y.to_delayed()[:, 0]
    if sample_weight is None:
        return X_blocks, y_blocks, [None] * len(X_blocks)
    w = _as_rows(sample_weight, X.shape[0], rows, "sample_weight", (1,))
    return X_blocks, y_blocks, w.to_delayed().ravel()


def _as_rows(a, n, rows, name, ndims):
    """``a`` as a dask array split into X's row blocks ``rows``."""
    import dask.array as da
    import dask.dataframe as dd

    if isinstance(a, (dd.Series, dd.DataFrame)):
        a = a.to_dask_array(lengths=True)
    elif not isinstance(a, da.Array):
        a = np.asarray(a)
    if a.ndim not in ndims:
        raise ValueError(f"{name} must have {' or '.join(map(str, ndims))} dimensions, "
                         f"got {a.ndim}")
    if isinstance(a, da.Array) and any(np.isnan(c) for c in a.chunks[0]):
        a = a.compute_chunk_sizes()
    if a.shape[0] != n:
        raise ValueError(f"{name} has {a.shape[0]} rows, X has {n}")
    if not isinstance(a, da.Array):
        return da.from_array(a, chunks=(rows,) + a.shape[1:])
    return a.rechunk({0: rows, **{d: -1 for d in range(1, a.ndim)}})


def _frame_blocks(a, X, name):
    """The partitions of ``a`` (a dask Series or DataFrame), which must split
    rows as the dask DataFrame X does."""
    import dask.dataframe as dd

    if not isinstance(a, (dd.Series, dd.DataFrame)):
        raise TypeError(f"with a dask DataFrame X, {name} must be a dask Series or "
                        f"DataFrame split like X, got {type(a).__name__}")
    if a.npartitions != X.npartitions:
        raise ValueError(f"{name} has {a.npartitions} partitions, X has {X.npartitions}")
    if X.known_divisions and a.known_divisions and a.divisions != X.divisions:
        raise ValueError(f"{name} is split at other index values than X "
                         f"({a.divisions} != {X.divisions})")
    return a.to_delayed()


# ----------------------------------------------------------- data parallel
# defined in fastmlp/dask/parallel.py, which uses the block helpers above
from .parallel import DataParallel  # noqa: E402
