"""fastmlp on a real dask cluster (``distributed.LocalCluster`` with worker
processes), checked against the same work done in this process.

- dask-ml's ``Incremental`` (dask arrays, dask DataFrames) and
  ``fastmlp.dask.partial_fit_blocks`` train the model that ``partial_fit``
  over the same blocks in the same order trains here;
- ``ParallelPostFit`` predicts what ``predict`` predicts here, lazily;
- ``GridSearchCV`` under joblib's dask backend finds what it finds here;
- models travel to workers and back (unfitted, fitted, mid-training) and go
  on training exactly as a copy kept here;
- a worker killed during a fit: dask retries and the model is exact, or
  (no retries allowed) the fit fails with ``KilledWorker`` and the model it
  was continuing is untouched;
- data generated lazily, over four times a worker's memory limit, trains with
  every worker's resident memory (sampled throughout) under the limit;
- ``limit_threads`` sizes the BLAS, OpenMP and numba pools that task threads
  see, and ``warmup`` compiles the kernels in every worker;
- ``examples/dask_cluster.py`` runs, on its own cluster and on an existing one.

Two clusters are started: one for most tests, and one with a memory limit and
no task retries. Both have 2 workers of 1 thread.
"""

import copy
import os
import signal
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest

for _module in ("dask", "distributed", "dask_ml", "sklearn", "pandas", "psutil"):
    pytest.importorskip(_module, reason=f"the dask tests need {_module} "
                                        "(pip install fastmlp[dask])")

import dask  # noqa: E402
import dask.array as da  # noqa: E402
import dask.dataframe as dd  # noqa: E402
import pandas as pd  # noqa: E402
import psutil  # noqa: E402
from dask_ml.model_selection import HyperbandSearchCV  # noqa: E402
from dask_ml.wrappers import Incremental, ParallelPostFit  # noqa: E402
from distributed import Client, KilledWorker, LocalCluster, get_task_stream  # noqa: E402
from joblib import parallel_config  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.utils import check_random_state  # noqa: E402

import fastmlp  # noqa: E402
import fastmlp.dask as fdask  # noqa: E402
from fastmlp.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RTOL = 1e-9  # float64: the worker's BLAS may use another thread count than this process's
#: bytes per worker. A worker holding scikit-learn, dask-ml and the loaded kernels sits at
#: about 440 MB: under a 600 MB limit that is already dask's 80 % pause line, and a peak
#: came within reach of its 95 % kill line.
MEMORY_LIMIT = 800e6


# ------------------------------------------------------------------ clusters
def _running_children():
    """The process ids of this process's running children."""
    pids = set()
    for p in psutil.Process().children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                pids.add(p.pid)
        except psutil.Error:  # it ended meanwhile
            pass
    return pids


def _close(client, cluster):
    """Close client then cluster and check that its worker processes ended."""
    pids = {nanny.pid for nanny in cluster.workers.values()} - {None}
    client.close()
    cluster.close()
    deadline = time.monotonic() + 10
    while pids & _running_children() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pids & _running_children(), "worker processes outlived their cluster"


@pytest.fixture(scope="module")
def client():
    """Two worker processes of one thread each, on this machine."""
    cluster = LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                           dashboard_address=":0")
    client = Client(cluster, set_as_default=False)
    client.wait_for_workers(2)
    yield client
    _close(client, cluster)


@pytest.fixture(scope="module")
def strict_client():
    """Two workers with an 800 MB memory limit, and no task retried after its
    worker died (``allowed-failures`` 0): the out-of-core test must run without
    a restart, and the killed-worker test needs the case without retries.
    Workers pause at 70 % of the limit (dask's default is 80 %): blocks
    generated while the training chain runs elsewhere overshoot the pause line
    by up to about 100 MB before the worker stops taking tasks, and the
    overshoot must stay clear of the 95 % line where the nanny kills it.

    The kernels are compiled here first, into numba's disk cache, so that the
    workers load them: a worker that compiles them grows by about 190 MB."""
    fastmlp.warmup()
    with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                          "distributed.worker.memory.pause": 0.7}):
        cluster = LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                               memory_limit=MEMORY_LIMIT, dashboard_address=":0")
    client = Client(cluster, set_as_default=False)
    client.wait_for_workers(2)
    yield client
    _close(client, cluster)


# ---------------------------------------------------------------------- data
def _classification(n_blocks=6, rows=300, features=8, classes=3, seed=0):
    """A NumPy data set of n_blocks * rows rows and the same as dask arrays
    with ``rows``-row blocks."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_blocks * rows, features))
    W = rng.standard_normal((features, classes))
    y = np.argmax(np.tanh(X @ W) + 0.3 * rng.standard_normal((X.shape[0], classes)), axis=1)
    return X, y, da.from_array(X, chunks=(rows, features)), da.from_array(y, chunks=rows)


def _blocks(a, chunks):
    """``a`` cut at the block boundaries ``chunks`` (a dask array's row chunks)."""
    edges = np.cumsum((0,) + tuple(chunks))
    return [a[lo:hi] for lo, hi in zip(edges[:-1], edges[1:])]


def _sequential(model, X_blocks, y_blocks, order=None, w_blocks=None, **fit_params):
    """``partial_fit`` over the blocks in ``order``, here."""
    order = range(len(X_blocks)) if order is None else order
    for i in order:
        w = {} if w_blocks is None else {"sample_weight": w_blocks[i]}
        model.partial_fit(X_blocks[i], y_blocks[i], **w, **fit_params)
    return model


def _assert_same_model(got, want, rtol=RTOL):
    """Same training records, and weights equal within ``rtol``."""
    assert type(got) is type(want)
    assert got.t_ == want.t_ and got.n_iter_ == want.n_iter_
    np.testing.assert_allclose(got.loss_curve_, want.loss_curve_, rtol=rtol)
    assert len(got.coefs_) == len(want.coefs_)
    for a, b in zip(got.coefs_ + got.intercepts_, want.coefs_ + want.intercepts_):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())


def _classifier(**params):
    params = {"hidden_layer_sizes": (16,), "random_state": 0, "dtype": "float64",
              "batch_size": 64, **params}
    return MLPClassifier(**params)


# ------------------------------------------------------------------- imports
def test_import_fastmlp_imports_no_dask():
    code = ("import sys, fastmlp, fastmlp.sklearn; "
            "print(sorted({m.split('.')[0] for m in sys.modules} "
            "& {'dask', 'distributed', 'dask_ml'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------- Incremental
@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_incremental_classifier_equals_sequential_partial_fit(client, solver):
    X, y, dX, dy = _classification()
    est = _classifier(solver=solver)
    with client.as_current():
        inc = Incremental(est, shuffle_blocks=False).fit(dX, dy, classes=[0, 1, 2])
        assert not hasattr(est, "coefs_")  # Incremental trains a clone
        want = _sequential(clone(est), _blocks(X, dX.chunks[0]), _blocks(y, dy.chunks[0]),
                           classes=[0, 1, 2])
        _assert_same_model(inc.estimator_, want)
        # a second pass continues from the first, as partial_fit does
        inc.partial_fit(dX, dy)
        _sequential(want, _blocks(X, dX.chunks[0]), _blocks(y, dy.chunks[0]))
        _assert_same_model(inc.estimator_, want)


def test_incremental_shuffled_blocks_follow_dask_ml_order(client):
    X, y, dX, dy = _classification(n_blocks=7, rows=150)
    est = _classifier()
    with client.as_current():
        inc = Incremental(est, shuffle_blocks=True, random_state=11).fit(dX, dy,
                                                                          classes=[0, 1, 2])
    order = list(range(7))
    check_random_state(11).shuffle(order)
    assert order != sorted(order)
    want = _sequential(clone(est), _blocks(X, dX.chunks[0]), _blocks(y, dy.chunks[0]), order,
                       classes=[0, 1, 2])
    _assert_same_model(inc.estimator_, want)


def test_incremental_regressor_on_dask_dataframe(client):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.standard_normal((1500, 6)), columns=[f"x{i}" for i in range(6)])
    frame["target"] = np.sin(frame["x0"]) + frame["x1"] * frame["x2"]
    ddf = dd.from_pandas(frame, npartitions=5)
    features = [f"x{i}" for i in range(6)]
    est = MLPRegressor(hidden_layer_sizes=(12,), solver="sgd", learning_rate_init=0.01,
                       random_state=3, dtype="float64", batch_size=50)
    with client.as_current():
        inc = Incremental(est, shuffle_blocks=False).fit(ddf[features], ddf["target"])
    lengths = [int(n) for n in ddf.map_partitions(len).compute(scheduler="sync")]
    assert len(lengths) == 5
    parts = _blocks(frame, lengths)
    want = _sequential(clone(est), [p[features] for p in parts], [p["target"] for p in parts])
    _assert_same_model(inc.estimator_, want)
    assert list(inc.estimator_.feature_names_in_) == features


def test_incremental_trains_on_first_column_block_only_unless_rechunked(client):
    """Incremental silently uses the first column block of X: rechunk first."""
    X, y, _, _ = _classification(n_blocks=3, rows=200, features=8)
    dX = da.from_array(X, chunks=(200, 4))
    dy = da.from_array(y, chunks=200)
    with client.as_current():
        first_only = Incremental(_classifier(), shuffle_blocks=False).fit(dX, dy,
                                                                          classes=[0, 1, 2])
        inc = Incremental(_classifier(), shuffle_blocks=False).fit(dX.rechunk({1: -1}), dy,
                                                                   classes=[0, 1, 2])
    assert first_only.estimator_.n_features_in_ == 4
    assert inc.estimator_.n_features_in_ == 8
    want = _sequential(_classifier(), _blocks(X, (200,) * 3), _blocks(y, (200,) * 3),
                       classes=[0, 1, 2])
    _assert_same_model(inc.estimator_, want)


# ------------------------------------------------------- partial_fit_blocks
def test_partial_fit_blocks_takes_a_weight_per_row(client):
    X, y, dX, dy = _classification(n_blocks=5, rows=240)
    w = np.random.default_rng(5).uniform(0.1, 3.0, X.shape[0])
    dw = da.from_array(w, chunks=100)  # split otherwise than X: realigned
    est = _classifier()
    # dask-ml passes the whole weight vector to every block's partial_fit
    with client.as_current(), pytest.raises(ValueError, match="sample_weight"):
        Incremental(est, shuffle_blocks=False).fit(dX, dy, sample_weight=dw, classes=[0, 1, 2])
    with client.as_current():
        got = fdask.partial_fit_blocks(est, dX, dy, dw, classes=[0, 1, 2])
    assert not hasattr(est, "coefs_")
    chunks = dX.chunks[0]
    want = _sequential(clone(est), _blocks(X, chunks), _blocks(y, chunks),
                       w_blocks=_blocks(w, chunks), classes=[0, 1, 2])
    _assert_same_model(got, want)
    unweighted = _sequential(clone(est), _blocks(X, chunks), _blocks(y, chunks),
                             classes=[0, 1, 2])
    assert not np.allclose(got.coefs_[0], unweighted.coefs_[0])  # the weights mattered


def test_partial_fit_blocks_shuffles_like_incremental(client):
    X, y, _, _ = _classification(n_blocks=6, rows=200)
    dX = da.from_array(X, chunks=(200, 3))  # column blocks are merged
    dy = da.from_array(y, chunks=400)  # other row blocks than X: realigned
    with client.as_current():
        got = fdask.partial_fit_blocks(_classifier(), dX, dy, shuffle_blocks=True,
                                       random_state=4, classes=[0, 1, 2])
        inc = Incremental(_classifier(), shuffle_blocks=True, random_state=4).fit(
            dX.rechunk({1: -1}), dy.rechunk(200), classes=[0, 1, 2])
    _assert_same_model(got, inc.estimator_)


def test_partial_fit_blocks_on_dataframe_with_weight_column(client):
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(rng.standard_normal((900, 4)), columns=list("abcd"))
    frame["y"] = frame["a"] - 2 * frame["b"] ** 2
    frame["w"] = rng.uniform(0.5, 2.0, 900)
    ddf = dd.from_pandas(frame, npartitions=3)
    est = MLPRegressor(hidden_layer_sizes=(8,), random_state=0, dtype="float64",
                       batch_size=100)
    with client.as_current():
        got = fdask.partial_fit_blocks(est, ddf[list("abcd")], ddf["y"], ddf["w"])
    lengths = [int(n) for n in ddf.map_partitions(len).compute(scheduler="sync")]
    parts = _blocks(frame, lengths)
    want = _sequential(clone(est), [p[list("abcd")] for p in parts], [p["y"] for p in parts],
                       w_blocks=[p["w"] for p in parts])
    _assert_same_model(got, want)


def test_partial_fit_blocks_leaves_its_input_model_alone():
    """Each task trains a copy: even the threaded scheduler, which passes
    objects without pickling, never changes the caller's model."""
    X, y, dX, dy = _classification(n_blocks=3, rows=200)
    start = _classifier().partial_fit(X[:100], y[:100], classes=[0, 1, 2])
    before = copy.deepcopy(start)
    got = fdask.partial_fit_blocks(start, dX, dy, compute=False).compute(scheduler="threads")
    _assert_same_model(start, before, rtol=0)
    want = _sequential(copy.deepcopy(before), _blocks(X, dX.chunks[0]), _blocks(y, dX.chunks[0]))
    _assert_same_model(got, want, rtol=0)


def test_partial_fit_blocks_refuses_bad_input():
    X, y, dX, dy = _classification(n_blocks=2, rows=100)
    ddf = dd.from_pandas(pd.DataFrame(X), npartitions=2)
    with pytest.raises(TypeError, match="partial_fit"):
        fdask.partial_fit_blocks(MLPClassifier(solver="lbfgs"), dX, dy)
    with pytest.raises(TypeError, match="dask array or dask DataFrame"):
        fdask.partial_fit_blocks(_classifier(), X, dy)
    with pytest.raises(ValueError, match="2-D"):
        fdask.partial_fit_blocks(_classifier(), dX[:, 0], dy)
    with pytest.raises(ValueError, match="y has 150 rows, X has 200"):
        fdask.partial_fit_blocks(_classifier(), dX, dy[:150])
    with pytest.raises(ValueError, match="sample_weight must have 1 dimensions"):
        fdask.partial_fit_blocks(_classifier(), dX, dy, np.ones((200, 2)))
    with pytest.raises(ValueError, match="sample_weight has 10 rows"):
        fdask.partial_fit_blocks(_classifier(), dX, dy, np.ones(10))
    with pytest.raises(ValueError, match="unknown sizes"):
        fdask.partial_fit_blocks(_classifier(), dX[dX[:, 0] > 0], dy)
    with pytest.raises(TypeError, match="dask Series"):
        fdask.partial_fit_blocks(_classifier(), ddf, dd.from_pandas(pd.Series(y),
                                                                    npartitions=2),
                                 np.ones(200))
    with pytest.raises(ValueError, match="y has 3 partitions, X has 2"):
        fdask.partial_fit_blocks(_classifier(), ddf, dd.from_pandas(pd.Series(y),
                                                                    npartitions=3))


# ---------------------------------------------------------------- prediction
def test_parallel_post_fit_predicts_as_in_memory(client):
    X, y, dX, dy = _classification(n_blocks=8, rows=500)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = _classifier(max_iter=30).fit(X, y)
    wrapped = ParallelPostFit(model)
    with client.as_current(), get_task_stream(client) as tasks:
        labels = wrapped.predict(dX)
        proba = wrapped.predict_proba(dX)
        assert isinstance(labels, da.Array) and isinstance(proba, da.Array)  # lazy
        labels, proba = dask.compute(labels, proba)
        score = wrapped.score(dX, dy)
    assert len(tasks.data) >= 16  # a task per block and method, run by the workers
    np.testing.assert_array_equal(labels, model.predict(X))
    np.testing.assert_allclose(proba, model.predict_proba(X), rtol=1e-12, atol=1e-15)
    assert score == pytest.approx(model.score(X, y), abs=1e-12)


def test_parallel_post_fit_on_dataframe(client):
    rng = np.random.default_rng(4)
    frame = pd.DataFrame(rng.standard_normal((2000, 5)), columns=list("abcde"))
    target = frame["a"] * frame["b"] + np.cos(frame["c"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = MLPRegressor(hidden_layer_sizes=(10,), max_iter=20, random_state=0).fit(
            frame, target)
    with client.as_current():
        got = ParallelPostFit(model).predict(dd.from_pandas(frame, npartitions=4)).compute()
    np.testing.assert_allclose(np.asarray(got), model.predict(frame), rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------- grid search
def test_grid_search_on_dask_backend_matches_default_backend(client):
    X, y, _, _ = _classification(n_blocks=1, rows=600)
    search = GridSearchCV(_classifier(max_iter=25),
                          {"alpha": [1e-4, 1e-1], "hidden_layer_sizes": [(4,), (32,)]}, cv=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # also from the refit, here
        here = clone(search).fit(X, y)
        with client.as_current(), parallel_config(backend="dask"), \
                get_task_stream(client) as tasks:
            there = clone(search).fit(X, y)
    # the fits ran on the workers (joblib sends them in batches)
    workers = set(client.scheduler_info(n_workers=-1)["workers"])
    assert tasks.data and {t["worker"] for t in tasks.data} <= workers
    assert there.best_params_ == here.best_params_
    assert there.best_score_ == pytest.approx(here.best_score_, abs=1e-12)
    for key in ("mean_test_score", "split0_test_score", "split1_test_score",
                "split2_test_score"):
        np.testing.assert_allclose(there.cv_results_[key], here.cv_results_[key], atol=1e-12)
    _assert_same_model_weights(there.best_estimator_, here.best_estimator_)


def _assert_same_model_weights(got, want):
    for a, b in zip(got.coefs_ + got.intercepts_, want.coefs_ + want.intercepts_):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=RTOL * np.abs(b).max())


def test_hyperband_search_runs_with_the_scheduler_set_to_the_client(client):
    """HyperbandSearchCV fails with dask >= 2025.3 unless dask's scheduler is
    set to the client (not documented by dask-ml)."""
    X, y, dX, dy = _classification(n_blocks=8, rows=250)
    search = HyperbandSearchCV(_classifier(), {"alpha": [1e-5, 1e-3, 1e-1],
                                               "learning_rate_init": [1e-3, 1e-2]},
                               max_iter=6, random_state=0)
    with client.as_current():
        with pytest.raises(RuntimeError, match="asynchronous Client"):
            clone(search).fit(dX, dy, classes=[0, 1, 2])
        with dask.config.set(scheduler=client.get):
            first = clone(search).fit(dX, dy, classes=[0, 1, 2])
            second = clone(search).fit(dX, dy, classes=[0, 1, 2])
    assert first.best_params_ == second.best_params_
    np.testing.assert_array_equal(first.cv_results_["test_score"],
                                  second.cv_results_["test_score"])
    best = first.best_estimator_
    assert isinstance(best, MLPClassifier)
    assert {k: best.get_params()[k] for k in first.best_params_} == first.best_params_
    # the best score is the best model's score on Hyperband's own held-out split
    _, X_test, _, y_test = first._get_train_test_split(dX, dy)
    assert first.best_score_ == pytest.approx(best.score(X_test.compute(), y_test.compute()),
                                              abs=1e-12)


# ------------------------------------------------------------------- pickling
def _fit_there(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


def _partial_fit_there(model, X_blocks, y_blocks):
    return _sequential(model, X_blocks, y_blocks)


def _predict_there(model, X):
    return model.predict(X), model.predict_proba(X)


def test_unfitted_model_trains_on_a_worker_as_here(client):
    X, y, _, _ = _classification(n_blocks=1, rows=400)
    est = _classifier(max_iter=15)
    got = client.submit(_fit_there, est, X, y, pure=False).result()
    assert not hasattr(est, "coefs_")
    _assert_same_model(got, _fit_there(clone(est), X, y))


def test_fitted_model_predicts_on_a_worker_and_comes_back_unchanged(client):
    X, y, _, _ = _classification(n_blocks=1, rows=400)
    model = _fit_there(_classifier(max_iter=15), X, y)
    future = client.scatter(model)
    labels, proba = client.submit(_predict_there, future, X).result()
    np.testing.assert_array_equal(labels, model.predict(X))
    np.testing.assert_allclose(proba, model.predict_proba(X), rtol=1e-12, atol=1e-15)
    _assert_same_model(future.result(), model, rtol=0)


@pytest.mark.parametrize("solver, dtype, rtol", [("adam", "float64", RTOL),
                                                 ("sgd", "float32", 1e-4)])
def test_model_mid_training_continues_on_a_worker_and_back(client, solver, dtype, rtol):
    """Optimiser state (Adam moments, momentum, step count, learning rate)
    travels with the model: training here, there and here again equals
    training here throughout."""
    X, y, dX, _ = _classification(n_blocks=6, rows=200)
    Xb, yb = _blocks(X, dX.chunks[0]), _blocks(y, dX.chunks[0])
    model = _classifier(solver=solver, dtype=dtype, learning_rate="invscaling"
                        if solver == "sgd" else "constant", learning_rate_init=0.05)
    model.partial_fit(Xb[0], yb[0], classes=[0, 1, 2])
    here = copy.deepcopy(model)
    model = client.submit(_partial_fit_there, model, Xb[1:4], yb[1:4], pure=False).result()
    _sequential(here, Xb[1:4], yb[1:4])
    _assert_same_model(model, here, rtol)
    _sequential(model, Xb[4:], yb[4:])
    _sequential(here, Xb[4:], yb[4:])
    _assert_same_model(model, here, rtol)


# -------------------------------------------------------------- killed worker
def _kill_during_chain(client, prefix, from_step=2):
    """Start a thread that SIGKILLs the worker process running step
    ``from_step`` (or later) of the task chain whose keys start with
    ``prefix``; returns it (``.killed`` holds the killed worker's address)."""
    pids = client.run(os.getpid)

    def watch():
        while not done.is_set():
            for address, keys in client.processing().items():
                if any(isinstance(k, tuple) and str(k[0]).startswith(prefix)
                       and k[1] >= from_step for k in keys):
                    os.kill(pids[address], signal.SIGKILL)
                    thread.killed = address
                    return
            time.sleep(0.005)

    done = threading.Event()
    thread = threading.Thread(target=watch, daemon=True)
    thread.killed, thread.done = None, done
    thread.start()
    return thread


def _slow_chain_data():
    """10 blocks of about a tenth of a second of training each (here)."""
    X, y, dX, dy = _classification(n_blocks=10, rows=4000, features=20, seed=7)
    return X, y, dX, dy, _classifier(hidden_layer_sizes=(384,), batch_size=200)


@pytest.mark.parametrize("retries", [True, False], ids=["retried", "no-retries"])
def test_worker_killed_mid_fit(client, strict_client, retries):
    """The model Incremental continues lives on the client: a chain that
    fails leaves it as it was; a retried chain gives the exact model."""
    use = client if retries else strict_client
    X, y, dX, dy, est = _slow_chain_data()
    Xb, yb = _blocks(X, dX.chunks[0]), _blocks(y, dX.chunks[0])
    with use.as_current():
        inc = Incremental(est, shuffle_blocks=False).fit(dX, dy, classes=[0, 1, 2])
        before = copy.deepcopy(inc.estimator_)
        killer = _kill_during_chain(use, "fit-")
        try:
            if retries:
                inc.partial_fit(dX, dy)
            else:
                with pytest.raises(KilledWorker, match="died"):
                    inc.partial_fit(dX, dy)
        finally:
            killer.done.set()
            killer.join()
        assert killer.killed is not None, "the chain ended before a worker could be killed"
        use.wait_for_workers(2, timeout=60)  # the nanny restarts the killed worker
        want = _sequential(_sequential(clone(est), Xb, yb, classes=[0, 1, 2]), Xb, yb)
        if retries:
            _assert_same_model(inc.estimator_, want)
        else:
            _assert_same_model(inc.estimator_, before, rtol=0)
            inc.partial_fit(dX, dy)  # and it goes on as if nothing had happened
            _assert_same_model(inc.estimator_, want)


# ---------------------------------------------------------------- out of core
class _PeakRSS(threading.Thread):
    """Samples the resident memory of some processes every few milliseconds."""

    def __init__(self, pids, every=0.01):
        super().__init__(daemon=True)
        self.processes = [psutil.Process(pid) for pid in pids]
        self.every = every
        self.peak = {pid: 0 for pid in pids}
        self.samples = 0
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            for p in self.processes:
                self.peak[p.pid] = max(self.peak[p.pid], p.memory_info().rss)
            self.samples += 1
            time.sleep(self.every)


def test_out_of_core_training_stays_under_the_memory_limit(strict_client):
    features, block = 50, 100_000
    rows = 81 * block  # 3.24 GB of float64, just over 4 x 800 MB
    X = da.random.default_rng(0).standard_normal((rows, features), chunks=(block, features))
    w = np.linspace(-1, 1, features)
    y = (X @ w > 0).astype("int64")
    assert X.nbytes > 4 * MEMORY_LIMIT
    pids = strict_client.run(os.getpid)
    sampler = _PeakRSS(pids.values())
    sampler.start()
    try:
        with strict_client.as_current():
            inc = Incremental(MLPClassifier((16,), random_state=0), shuffle_blocks=False).fit(
                X, y, classes=[0, 1])
    finally:
        sampler.halt.set()
        sampler.join()
    assert sampler.samples > 100
    assert max(sampler.peak.values()) < MEMORY_LIMIT, sampler.peak
    assert strict_client.run(os.getpid) == pids  # no worker was restarted
    assert inc.estimator_.t_ == rows  # every row, once
    X_test = np.random.default_rng(1).standard_normal((20_000, features))
    assert inc.estimator_.score(X_test, X_test @ w > 0) > 0.97


# -------------------------------------------------------- threads and warm-up
def _pools():
    """What a task thread sees: numba's thread count and every thread pool
    threadpoolctl finds (NumPy's and SciPy's BLAS, OpenMP)."""
    import threading as _threading

    import numba
    import scipy.linalg.cython_blas  # noqa: F401  (SciPy's BLAS, loaded to be listed)
    import sklearn.utils._openmp_helpers  # noqa: F401  (scikit-learn's OpenMP)
    import threadpoolctl

    return {"main thread": _threading.current_thread() is _threading.main_thread(),
            "numba": numba.get_num_threads(),
            **{f"{p['user_api']} {p['filepath']}": p["num_threads"]
               for p in threadpoolctl.threadpool_info()}}


def _compiled_signatures():
    """How many signatures each of the numba core's kernels is compiled for."""
    from numba.core.registry import CPUDispatcher

    import fastmlp

    core = fastmlp.kernels.get("numba")._core
    return {name: len(f.signatures) for name, f in vars(core).items()
            if isinstance(f, CPUDispatcher)}


def _train_a_little(dtype):
    """Train and predict with a narrow and a wide network; the kernels'
    signatures afterwards."""
    X = np.random.default_rng(0).standard_normal((300, 5))
    y = (X[:, 0] > 0).astype(int)
    for hidden in ((4,), (40,)):
        model = MLPClassifier(hidden, random_state=0, dtype=dtype)
        model.partial_fit(X, y, classes=[0, 1]).predict(X)
    return _compiled_signatures()


def _on_each_worker(client, fn, *args):
    return {w: client.submit(fn, *args, workers=[w], allow_other_workers=False,
                             pure=False).result()
            for w in client.scheduler_info(n_workers=-1)["workers"]}


def test_thread_limits_reach_task_threads_and_warmup_compiles():
    """On a cluster of its own: ``limit_threads`` restarts the workers."""
    cores = len(os.sched_getaffinity(0))
    want = max(1, cores // 2)  # two workers of one thread share this machine's cores
    cluster = LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                           dashboard_address=":0")
    client = Client(cluster, set_as_default=False)
    try:
        limits = fdask.limit_threads(client)
        assert sorted(limits.values()) == [want, want]
        for seen in _on_each_worker(client, _pools).values():
            assert seen.pop("main thread") is False
            assert len(seen) >= 3  # numba, and at least two BLAS libraries
            assert set(seen.values()) == {want}, seen
        # restarted workers have compiled nothing; warmup compiles what a fit uses
        assert all(s["_train_epoch_by"] == s["predict_rows"] == 0
                   for s in _on_each_worker(client, _compiled_signatures).values())
        timings = fdask.warmup(client)
        assert sorted(timings) == sorted(client.scheduler_info(n_workers=-1)["workers"])
        assert all(t > 0 for t in timings.values())
        warmed = _on_each_worker(client, _compiled_signatures)
        assert all(s["_train_epoch_by"] >= 2 and s["predict_rows"] >= 2 for s in warmed.values())
        for dtype in ("float32", "float64"):  # training and predicting compile nothing more
            for address, after in _on_each_worker(client, _train_a_little, dtype).items():
                more = {k: n for k, n in after.items() if n != warmed[address].get(k)}
                assert not more, f"{dtype} training compiled kernels warmup did not: {more}"
        # an explicit count is applied too, with a warning when it oversubscribes
        with pytest.warns(RuntimeWarning, match="oversubscribes"):
            limits = fdask.limit_threads(client, want + 1)
        assert sorted(limits.values()) == [want + 1, want + 1]
        for seen in _on_each_worker(client, _pools).values():
            seen.pop("main thread")
            assert set(seen.values()) == {want + 1}, seen
    finally:
        _close(client, cluster)


def test_thread_limits_refuse_bad_counts_and_workers_without_nanny(client):
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="n_threads must be an integer >= 1"):
            fdask.ThreadLimits(bad)
        with pytest.raises(ValueError, match="n_threads must be an integer >= 1"):
            fdask.limit_threads(client, bad)
    with pytest.raises(ValueError, match=r"n_threads\['tcp://a:1'\]"):
        fdask.ThreadLimits({"tcp://a:1": 0})
    assert fdask.ThreadLimits({"tcp://a:1": 3}).threads_for("tcp://b:1") == 1
    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster, set_as_default=False) as threaded:
        with pytest.raises(ValueError, match="without a nanny"):
            fdask.limit_threads(threaded)


# -------------------------------------------------------------------- example
def _run_example(*args):
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "dask_cluster.py"), "--rows", "40000",
         "--chunk-rows", "10000", "--test-rows", "10000", "--passes", "2", *args],
        capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _check_example_output(out):
    assert "kernels ready on 2 workers" in out
    passes = [line for line in out.splitlines() if line.startswith("pass ")]
    assert len(passes) == 2 and all("rows/s" in line for line in passes), out
    accuracy = float(out.split("test accuracy")[-1].split()[0])
    assert 0.6 < accuracy <= 1.0, out  # the largest class holds about 0.35


def test_example_runs_on_its_own_local_cluster():
    _check_example_output(_run_example("--workers", "2"))


def test_example_runs_against_an_existing_scheduler(client):
    _check_example_output(_run_example("--scheduler", client.cluster.scheduler_address))
