#!/usr/bin/env python
"""What a dask cluster costs and gains fastmlp, measured on this machine.

Prints Markdown tables:

1. training throughput (rows/s) of dask-ml's ``Incremental`` on a
   ``LocalCluster`` against ``partial_fit`` over the same blocks in this
   process, with the data in memory (persisted on the workers) and, for the
   cluster, also generated lazily while it trains;
2. prediction of ``--predict-rows`` rows (default 10 million) with
   ``ParallelPostFit`` on 1 and on 2 workers, the data persisted on the
   workers, the labels brought back; and in this process;
3. kernel preparation in fresh worker processes: the first training task
   on each worker without and with ``fastmlp.dask.warmup`` before it, with
   an empty numba cache (``NUMBA_CACHE_DIR`` a new directory: numba
   compiles) and with the cache that run filled (numba loads). The first task
   compiles what a float32 fit and predict need; ``warmup`` compiles all that
   a fit and predict of either dtype and any solver need.

4. ``DataParallel`` with Adam (``--tables parallel``): 1.2M x 50 float32 rows
   persisted in 12 blocks, (64,) relu, batch 200: seconds per epoch (as the
   engine times each epoch, averaging rounds included) on 2 and on 1
   one-thread workers, against ``Incremental`` on the same 2 workers and the
   in-memory fit in this process (1 thread); test accuracy after each number
   of epochs, and the time of the shortest fit that reaches ``TARGET``;
   PyTorch DistributedDataParallel (gloo, 2 processes x 1 thread, batch 200
   per process) on the same data when torch is installed
   (requirements-bench.txt);
5. ``DataParallel`` with L-BFGS (``--tables lbfgs``): 200,000 x 20 float64,
   20 -> 64 logistic -> 1 logistic, 30 iterations: time per iteration on 2
   workers against the in-memory fit (1 thread, all cores) and Spark MLlib's
   ``MultilayerPerceptronClassifier`` on ``local[2]`` (20 -> 64 -> 2 softmax)
   when pyspark is installed; the time to reach the in-memory fit's final
   training loss;
6. the cost of one synchronisation round (``--tables rounds``): rounds of
   tasks that do nothing on persisted blocks, 1, 2 and 12 blocks a round, as
   L-BFGS submits them without persisted blocks (a task per block) and as
   SGD/Adam do (a task per shard, one shard per worker), and rounds of calls
   of the blocks' holder actors, as L-BFGS makes them on persisted blocks;
   the bytes a round moves for
   the two networks above; and, run with the two tables before it, what they
   predict for 8, 32 and 128 workers.

Every cluster has worker processes of one thread, with thread pools sized by
``fastmlp.dask.limit_threads``. Usage::

    python scripts/dask_bench.py [--rows N] [--predict-rows N]
        [--tables train predict compile parallel lbfgs rounds]
"""

import argparse
import contextlib
import os
import platform
import subprocess
import sys
import tempfile
import time

# the L-BFGS workload's data, shared with the asv suite (numpy only)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "asv_bench"))
from benchmarks.training import LBFGS_FEATURES, LBFGS_ROWS, lbfgs_data  # noqa: E402

# Nothing heavy at the top: the workers import this module when they start
# (``spawn``), before their environment (NUMBA_CACHE_DIR) is set.

FEATURES = 50
HIDDEN = (64,)
CLASSES = 3


def _data(rows, chunk, seed):
    """Lazy float32 rows and labels of a fixed random teacher."""
    import dask.array as da
    import numpy as np

    W = np.random.default_rng(1234).standard_normal((FEATURES, CLASSES)).astype("float32")
    X = da.random.default_rng(seed).standard_normal((rows, FEATURES), chunks=(chunk, FEATURES),
                                                    dtype="float32")
    y = X.map_blocks(lambda b: np.argmax(b @ W, axis=1), drop_axis=1, dtype=np.int64)
    return X, y


def _model(n_threads=None, seed=0):
    """The benchmark's network. Repeated runs take another ``seed``: dask
    would hand back the result of an identical graph still in memory."""
    from fastmlp.sklearn import MLPClassifier

    return MLPClassifier(hidden_layer_sizes=HIDDEN, random_state=seed, dtype="float32",
                         batch_size=200, n_threads=n_threads)


def _cluster(n_workers, env=None):
    """A LocalCluster of ``n_workers`` one-thread workers, thread pools limited."""
    from distributed import Client, LocalCluster

    import fastmlp.dask

    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                           dashboard_address=":0", env=env or {})
    client = Client(cluster, set_as_default=False)
    limits = fastmlp.dask.limit_threads(client)
    return cluster, client, sorted(set(limits.values()))


def train_table(rows, chunk, repeats):
    import dask
    from dask_ml.wrappers import Incremental
    from distributed import wait

    import fastmlp
    import fastmlp.dask

    fastmlp.warmup()
    X, y = _data(rows, chunk, 0)
    Xn, yn = dask.compute(X, y, scheduler="threads")
    edges = list(range(0, rows, chunk)) + [rows]
    blocks = [(Xn[a:b], yn[a:b]) for a, b in zip(edges[:-1], edges[1:])]
    out = []
    for threads in (None, 1):
        times = []
        for _ in range(repeats):
            model = _model(threads)
            t0 = time.perf_counter()
            for Xb, yb in blocks:
                model.partial_fit(Xb, yb, classes=list(range(CLASSES)))
            times.append(time.perf_counter() - t0)
        label = "all cores" if threads is None else "1 thread"
        out.append((f"in this process, partial_fit per block ({label})", rows / min(times)))
    cluster, client, limits = _cluster(2)
    try:
        fastmlp.dask.warmup(client)
        with client.as_current():
            for persisted in (True, False):
                Xc, yc = (client.persist([X, y]) if persisted else (X, y))
                if persisted:
                    wait([Xc, yc])
                times = []
                for seed in range(repeats):
                    t0 = time.perf_counter()
                    inc = Incremental(_model(seed=seed), shuffle_blocks=False).fit(
                        Xc, yc, classes=list(range(CLASSES)))
                    times.append(time.perf_counter() - t0)
                    assert inc.estimator_.t_ == rows
                where = "persisted on the workers" if persisted else "generated while training"
                out.append((f"Incremental, 2 workers x 1 thread, data {where}",
                            rows / min(times)))
                del Xc, yc
    finally:
        client.close()
        cluster.close()
    base = out[1][1]
    print(f"\n### Training: {rows:,} rows x {FEATURES} features (float32), blocks of "
          f"{chunk:,} rows, MLPClassifier{HIDDEN}, batch 200, adam; best of {repeats}\n")
    print("| setting | rows/s | vs in-process 1 thread |")
    print("|---|---:|---:|")
    for name, rate in out:
        print(f"| {name} | {rate:,.0f} | {rate / base:.2f} |")


def predict_table(rows, chunk, repeats):
    import dask
    import numpy as np
    from dask_ml.wrappers import ParallelPostFit
    from distributed import wait

    import fastmlp.dask

    Xs, ys = _data(100_000, 100_000, 1)
    model = _model()
    Xs, ys = dask.compute(Xs, ys, scheduler="sync")
    for _ in range(3):
        model.partial_fit(Xs, ys, classes=list(range(CLASSES)))
    X, _ = _data(rows, chunk, 2)
    results = []
    reference = None
    for n_workers in (1, 2):
        cluster, client, limits = _cluster(n_workers)
        try:
            fastmlp.dask.warmup(client)
            Xc = client.persist(X)
            with client.as_current():
                wait(Xc)
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                labels = _result(client, ParallelPostFit(model).predict(Xc))
                times.append(time.perf_counter() - t0)
            if reference is None:
                reference = labels
            assert np.array_equal(labels, reference)
            results.append((f"ParallelPostFit, {n_workers} worker(s) x 1 thread, "
                            f"{limits[0]} BLAS thread(s) per task", rows / min(times)))
            if n_workers == 2:
                Xn = client.compute(Xc).result()
        finally:
            client.close()
            cluster.close()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        labels = model.predict(Xn)
        times.append(time.perf_counter() - t0)
    assert np.array_equal(labels, reference)
    results.append(("model.predict in this process (all cores), data in memory",
                    rows / min(times)))
    print(f"\n### Prediction: {rows:,} rows x {FEATURES} features (float32, "
          f"{rows * FEATURES * 4 / 1e9:.1f} GB), blocks of {chunk:,} rows, labels brought "
          f"back; best of {repeats}\n")
    print("| setting | rows/s | seconds |")
    print("|---|---:|---:|")
    for name, rate in results:
        print(f"| {name} | {rate:,.0f} | {rows / rate:.2f} |")


def _result(client, collection):
    """The value of ``collection``, computed on the cluster; returns once the
    scheduler has forgotten it, so that the same graph is computed again
    next time instead of being found in memory."""
    future = client.compute(collection)
    value = future.result()
    key = future.key
    del future
    while client.run_on_scheduler(_knows, key):
        time.sleep(0.01)
    return value


def _knows(key, dask_scheduler=None):
    return key in dask_scheduler.tasks


def _first_fit():
    """A small training task and predict, as a worker's first task would be."""
    import numpy as np

    t0 = time.perf_counter()
    X = np.random.default_rng(0).standard_normal((2000, FEATURES)).astype("float32")
    y = np.argmax(X[:, :CLASSES], axis=1)
    _model().partial_fit(X, y, classes=list(range(CLASSES))).predict(X)
    return time.perf_counter() - t0


def _first_fits(client):
    workers = list(client.scheduler_info(n_workers=-1)["workers"])
    futures = [client.submit(_first_fit, workers=[w], allow_other_workers=False, pure=False)
               for w in workers]
    return [f.result() for f in futures]


def compile_table():
    import fastmlp.dask

    rows = []
    with tempfile.TemporaryDirectory(prefix="fastmlp-numba-") as cache:
        for state in ("empty", "filled"):
            for warm in (False, True):
                if state == "empty":  # a new empty directory for each cold run
                    run_cache = os.path.join(cache, f"cold-{int(warm)}")
                    os.mkdir(run_cache)
                else:
                    run_cache = os.path.join(cache, "cold-1")
                cluster, client, _ = _cluster(2, env={"NUMBA_CACHE_DIR": run_cache})
                try:
                    t0 = time.perf_counter()
                    warm_s = list(fastmlp.dask.warmup(client).values()) if warm else None
                    warm_wall = time.perf_counter() - t0
                    t0 = time.perf_counter()
                    first = _first_fits(client)
                    wall = time.perf_counter() - t0 + (warm_wall if warm else 0.0)
                finally:
                    client.close()
                    cluster.close()
                rows.append((state, warm, warm_s, first, wall))
    print("\n### Kernel preparation in new worker processes (2 workers x 1 thread, "
          "both at once)\n")
    print("| numba cache | warmup | warmup per worker (s) | first training task "
          "per worker (s) | until both workers trained (s) |")
    print("|---|---|---:|---:|---:|")
    for state, warm, warm_s, first, wall in rows:
        w = "-" if warm_s is None else " / ".join(f"{t:.1f}" for t in warm_s)
        print(f"| {state} | {'yes' if warm else 'no'} | {w} | "
              f"{' / '.join(f'{t:.2f}' for t in first)} | {wall:.1f} |")


# ------------------------------------------------------------ data parallel
#: Test accuracy whose time to reach is reported for DataParallel and DDP.
TARGET = 0.995
PARALLEL_ROWS, PARALLEL_CHUNK, PARALLEL_EPOCHS = 1_200_000, 100_000, 4
LBFGS_BLOCKS, LBFGS_ITERATIONS = 2, 30


def _adam(seed=0, epochs=PARALLEL_EPOCHS):
    from fastmlp.sklearn import MLPClassifier

    return MLPClassifier(hidden_layer_sizes=HIDDEN, random_state=seed, dtype="float32",
                         batch_size=200, n_threads=1, max_iter=epochs, n_iter_no_change=10**6)


@contextlib.contextmanager
def _epoch_clock():
    """The seconds of every epoch that fastmlp's engine ends in this process
    inside the block (DataParallel's epochs end on the client: training,
    averaging and its rounds included)."""
    from fastmlp.engine import Engine

    original = Engine._epoch_end
    seen = []

    def timed(self, loss, rows, s, t0, score=None):
        seen.append(time.perf_counter() - t0)
        return original(self, loss, rows, s, t0, score)

    Engine._epoch_end = timed
    try:
        yield seen
    finally:
        Engine._epoch_end = original


def parallel_table(repeats):
    import warnings

    import dask
    import numpy as np
    from dask_ml.wrappers import Incremental
    from distributed import wait

    import fastmlp
    import fastmlp.dask
    from fastmlp.dask import DataParallel

    warnings.simplefilter("ignore")  # ConvergenceWarning of every short fit
    fastmlp.warmup()
    rows, chunk = PARALLEL_ROWS, PARALLEL_CHUNK
    X, y = _data(rows, chunk, 0)
    X_test, y_test = dask.compute(*_data(100_000, 100_000, 99), scheduler="sync")
    Xn, yn = dask.compute(X, y, scheduler="threads")
    out, accuracy = [], {}
    with _epoch_clock() as epochs_seen:
        local = _adam().fit(Xn, yn)
    accuracy["in memory"] = local.score(X_test, y_test)
    out.append(("in this process, fit, 1 thread", float(np.median(epochs_seen))))
    fits = {}
    for n_workers in (2, 1):
        cluster, client, _ = _cluster(n_workers)
        try:
            fastmlp.dask.warmup(client)
            Xc, yc = client.persist([X, y])
            with client.as_current():
                wait([Xc, yc])
            epoch = setup = None
            for epochs in (range(1, PARALLEL_EPOCHS + 1) if n_workers == 2
                           else (PARALLEL_EPOCHS,)):
                best = None
                for _ in range(repeats if epochs == PARALLEL_EPOCHS else 1):
                    dp = DataParallel(_adam(epochs=epochs), client=client)
                    with _epoch_clock() as epochs_seen:
                        t0 = time.perf_counter()
                        dp.fit(Xc, yc)
                        wall = time.perf_counter() - t0
                    best = wall if best is None else min(best, wall)
                    if epochs == PARALLEL_EPOCHS:
                        median = float(np.median(epochs_seen))
                        epoch = median if epoch is None else min(epoch, median)
                        rest = wall - sum(epochs_seen)
                        setup = rest if setup is None else min(setup, rest)
                if n_workers == 2:
                    fits[epochs] = (best, dp.estimator_.score(X_test, y_test))
            out.append((f"DataParallel, {n_workers} worker(s) x 1 thread, "
                        f"setup {setup:.2f} s per fit", epoch))
            if n_workers == 2:
                accuracy["DataParallel, 2 workers"] = fits[PARALLEL_EPOCHS][1]
                times = []
                for seed in range(repeats):
                    t0 = time.perf_counter()
                    with client.as_current():
                        Incremental(_model(n_threads=1, seed=seed), shuffle_blocks=False).fit(
                            Xc, yc, classes=list(range(CLASSES)))
                    times.append(time.perf_counter() - t0)
                out.append(("Incremental (dask-ml), 2 workers x 1 thread", min(times)))
            del Xc, yc
        finally:
            client.close()
            cluster.close()
    ddp = _ddp(Xn, yn, X_test, y_test)
    print(f"\n### DataParallel, Adam: {rows:,} rows x {FEATURES} features (float32), "
          f"{rows // chunk} blocks persisted, MLPClassifier{HIDDEN}, batch 200; seconds per "
          f"epoch: the median epoch of a fit of {PARALLEL_EPOCHS} as the engine times it "
          f"(averaging rounds included; Incremental: one pass), best of {repeats}\n")
    print("| setting | s per epoch | rows/s |")
    print("|---|---:|---:|")
    for name, epoch in out:
        print(f"| {name} | {epoch:.2f} | {rows / epoch:,.0f} |")
    if ddp is not None:
        print(f"| PyTorch DDP (gloo), 2 processes x 1 thread | {ddp['epoch']:.2f} | "
              f"{rows / ddp['epoch']:,.0f} |")
    print(f"\nTest accuracy (100,000 rows) after {PARALLEL_EPOCHS} epochs: "
          + "; ".join(f"{k} {v:.4f}" for k, v in accuracy.items())
          + ("" if ddp is None else f"; DDP {ddp['accuracy'][-1]:.4f}"))
    print("\n| epochs | DataParallel fit (s) | test accuracy |"
          + ("" if ddp is None else " DDP training (s) | DDP test accuracy |"))
    print("|---:|---:|---:|" + ("" if ddp is None else "---:|---:|"))
    for epochs, (wall, acc) in sorted(fits.items()):
        line = f"| {epochs} | {wall:.2f} | {acc:.4f} |"
        if ddp is not None:
            line += f" {ddp['epoch'] * epochs:.2f} | {ddp['accuracy'][epochs - 1]:.4f} |"
        print(line)
    reach = [wall for wall, acc in fits.values() if acc >= TARGET]
    rate = rows / out[0][1]
    print(f"\nTime to test accuracy {TARGET}: DataParallel "
          f"{'%.2f s' % min(reach) if reach else 'not reached'}"
          + ("" if ddp is None else "; DDP " + (
              "%.2f s" % (ddp["epoch"] * (1 + next(i for i, a in enumerate(ddp["accuracy"])
                                                    if a >= TARGET)))
              if max(ddp["accuracy"]) >= TARGET else "not reached")))
    return rate


def _ddp(X, y, X_test, y_test):
    """PyTorch DistributedDataParallel on 2 processes of 1 thread: seconds per
    epoch and the test accuracy after each epoch, or None without torch."""
    try:
        import torch.multiprocessing as mp
    except ImportError:
        print("\n(torch is not installed: no DDP row; pip install -r requirements-bench.txt)")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data.npz")
        import numpy as np

        np.savez(path, X=X, y=y, X_test=X_test, y_test=y_test)
        result = mp.get_context("spawn").Manager().dict()
        mp.spawn(_ddp_worker, args=(2, path, PARALLEL_EPOCHS, result), nprocs=2, join=True)
        return dict(result)


def _ddp_worker(rank, world, path, epochs, result):
    import numpy as np
    import torch
    import torch.distributed as dist
    from torch import nn

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29533")
    dist.init_process_group("gloo", rank=rank, world_size=world)
    data = np.load(path)
    n = data["X"].shape[0]
    part = slice(rank * n // world, (rank + 1) * n // world)
    X, y = torch.from_numpy(data["X"][part]), torch.from_numpy(data["y"][part])
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(FEATURES, HIDDEN[0]), nn.ReLU(), nn.Linear(HIDDEN[0], CLASSES))
    model = nn.parallel.DistributedDataParallel(net)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(rank)
    spent, accuracy = 0.0, []
    for _ in range(epochs):
        dist.barrier()
        t0 = time.perf_counter()
        order = torch.randperm(X.shape[0], generator=g)
        for start in range(0, X.shape[0], 200):
            rows = order[start:start + 200]
            opt.zero_grad()
            loss_fn(model(X[rows]), y[rows]).backward()
            opt.step()
        dist.barrier()
        spent += time.perf_counter() - t0
        with torch.no_grad():
            pred = net(torch.from_numpy(data["X_test"])).argmax(1).numpy()
        accuracy.append(float(np.mean(pred == data["y_test"])))
    if rank == 0:
        result["epoch"] = spent / epochs
        result["accuracy"] = accuracy
    dist.destroy_process_group()


def _lbfgs_model(iterations=LBFGS_ITERATIONS):
    from fastmlp.sklearn import MLPClassifier

    return MLPClassifier(hidden_layer_sizes=HIDDEN, activation="logistic", solver="lbfgs",
                         max_iter=iterations, tol=0.0, random_state=0)


def _timed(fit, repeats):
    """(best wall time of ``fit()`` over ``repeats`` calls, its last result)."""
    best = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fit()
        wall = time.perf_counter() - t0
        best = wall if best is None else min(best, wall)
    return best, result


def lbfgs_table(repeats):
    import warnings

    import dask.array as da
    import numpy as np
    from distributed import wait

    import fastmlp.dask
    from fastmlp.dask import DataParallel

    warnings.simplefilter("ignore")
    X, y = lbfgs_data(seed=5)  # the asv suite's recipe, its own draw
    out = []  # (setting, whole fit s, s per iteration, iterations, final loss)
    for n_threads in (1, None):
        fits = [_timed(lambda: _lbfgs_model(iters).set_params(n_threads=n_threads).fit(X, y),
                       repeats) for iters in (1, LBFGS_ITERATIONS)]
        reference = fits[1][1]
        label = "all cores" if n_threads is None else "1 thread"
        out.append((f"in this process, fit ({label})", fits[1][0],
                    (fits[1][0] - fits[0][0]) / (LBFGS_ITERATIONS - 1), reference.n_iter_,
                    reference.loss_))
    cluster, client, _ = _cluster(2)
    try:
        fastmlp.dask.warmup(client)
        chunk = -(-LBFGS_ROWS // LBFGS_BLOCKS)
        dX, dy = client.persist([da.from_array(X, chunks=(chunk, -1)),
                                 da.from_array(y, chunks=chunk)])
        with client.as_current():
            wait([dX, dy])
        fits = [_timed(lambda: DataParallel(_lbfgs_model(iters), client=client).fit(dX, dy),
                       repeats) for iters in (1, LBFGS_ITERATIONS)]
        fitted = fits[1][1].estimator_
        change = np.max(np.abs(fitted._net.params - reference._net.params)) / np.max(
            np.abs(reference._net.params))
        out.append((f"DataParallel, 2 workers x 1 thread, {LBFGS_BLOCKS} blocks", fits[1][0],
                    (fits[1][0] - fits[0][0]) / (LBFGS_ITERATIONS - 1), fitted.n_iter_,
                    fitted.loss_))
        del dX, dy
    finally:
        client.close()
        cluster.close()
    spark = _spark(X, y)
    if spark is not None:
        out.append(("Spark MLlib MultilayerPerceptronClassifier, local[2] (20-64-2 softmax)",
                    spark[1], (spark[1] - spark[0]) / (LBFGS_ITERATIONS - 1), LBFGS_ITERATIONS,
                    float("nan")))
    print(f"\n### DataParallel, L-BFGS: {LBFGS_ROWS:,} rows x {LBFGS_FEATURES} features "
          f"(float64), {LBFGS_FEATURES} -> 64 logistic -> 1 logistic, {LBFGS_ITERATIONS} "
          f"iterations; per iteration: (fit of {LBFGS_ITERATIONS} - fit of 1) / "
          f"{LBFGS_ITERATIONS - 1}; best of {repeats}\n")
    print("| setting | whole fit (s) | ms per iteration | whole fit / iterations (ms) | "
          "iterations | final training loss |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, wall, per, iters, loss in out:
        print(f"| {name} | {wall:.2f} | {1000 * per:.0f} | {1000 * wall / iters:.0f} | "
              f"{iters} | {loss:.6f} |")
    print(f"\nDataParallel's weights differ from the in-memory fit's by {change:.1e} "
          "(relative, largest); it reaches the in-memory fit's final training loss at the "
          "end of its whole fit.")
    return out[0][2]


def _spark(X, y):
    """Seconds of Spark MLlib's fits of 1 and of LBFGS_ITERATIONS iterations on
    local[2], or None without pyspark."""
    try:
        from pyspark.ml.classification import MultilayerPerceptronClassifier
        from pyspark.ml.linalg import Vectors
        from pyspark.sql import SparkSession
    except ImportError:
        print("\n(pyspark is not installed: no Spark row; pip install -r requirements-bench.txt)")
        return None
    spark = (SparkSession.builder.master("local[2]").config("spark.driver.memory", "2g")
             .config("spark.ui.enabled", "false").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    try:
        rows = [(float(label), Vectors.dense(x)) for x, label in zip(X.tolist(), y.tolist())]
        frame = spark.createDataFrame(rows, ["label", "features"]).repartition(2).cache()
        frame.count()
        return [_timed(lambda: MultilayerPerceptronClassifier(
                    layers=[LBFGS_FEATURES, HIDDEN[0], 2], maxIter=iters, tol=0.0, seed=0,
                    solver="l-bfgs").fit(frame), 2)[0]
                for iters in (1, LBFGS_ITERATIONS)]
    finally:
        spark.stop()


def _nothing(unit):
    return None


def _pass(unit, state):
    return state


def _holder_rounds(client, workers, n_rounds, results):
    """Rounds of calls of ``tasks.BlockHolder`` actors, one on each worker (as
    L-BFGS makes them, each worker holding its blocks), and on 2 workers rounds
    calling one of them: appended to ``results`` as rounds of n blocks."""
    from fastmlp.dask import tasks

    holders = [client.submit(tasks.BlockHolder, actor=True, workers=[w],
                             allow_other_workers=False, pure=False) for w in workers]
    with client.as_current():  # an actor finds its client as the current one
        actors = [h.result() for h in holders]
    kinds = [("holders", actors)] + ([("one holder", actors[:1])] if len(actors) > 1 else [])
    for kind, called in kinds:
        for _ in range(5):
            [call.result() for call in [a.each(_nothing) for a in called]]
        t0 = time.perf_counter()
        for _ in range(n_rounds):
            [call.result() for call in [a.each(_nothing) for a in called]]
        results.append((len(workers), len(called), kind, (time.perf_counter() - t0) / n_rounds))
    del actors, holders


def rounds_table(repeats, adam_rate=None, lbfgs_iteration=None):
    """Round costs; with the in-process rates of the other two tables (rows/s
    of an Adam epoch, seconds per L-BFGS iteration, 1 thread), what they
    predict for more workers."""
    import dask
    import numpy as np

    import fastmlp.dask
    from fastmlp.dask import parallel
    from fastmlp.kernels import n_params

    results = []
    for n_workers in (1, 2):
        cluster, client, _ = _cluster(n_workers)
        try:
            fastmlp.dask.warmup(client)
            workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
            for n_tasks, chains in ((1, False), (2, False), (12, False), (12, True)):  # blocks
                units = [dask.delayed(np.zeros)(10) for _ in range(n_tasks)]
                shards = [g.tolist() for g in np.array_split(np.arange(n_tasks),
                                                             min(n_workers, n_tasks))]
                units = parallel._persist(client, units, shards, workers)
                run = parallel._Rounds(client, units, None, f"bench-{n_tasks}-{chains}")
                links = [[(b,) for b in shard] for shard in shards]

                def one_round():
                    if chains:
                        return run.chains(_pass, {}, links)
                    return run(_nothing)

                for _ in range(5):
                    one_round()
                t0 = time.perf_counter()
                n_rounds = 50 * repeats
                for _ in range(n_rounds):
                    one_round()
                results.append((n_workers, n_tasks, chains,
                                (time.perf_counter() - t0) / n_rounds))
                if n_tasks == 2 and not chains:  # rounds of calls of holder actors (L-BFGS)
                    _holder_rounds(client, workers, n_rounds, results)
                del units, run
        finally:
            client.close()
            cluster.close()
    print("\n### One synchronisation round: tasks that do nothing on persisted blocks\n")
    print("| workers | blocks | how | ms per round |")
    print("|---:|---:|---|---:|")
    for n_workers, n_tasks, chains, seconds in results:
        how = {"holders": "one call per worker of its holder actor (L-BFGS, persisted)",
               "one holder": "one call of one of the two holders (L-BFGS, persisted)",
               True: "a shard's blocks in one task (SGD/Adam)",
               False: "one task per block (L-BFGS without persisted blocks)"}[chains]
        print(f"| {n_workers} | {n_tasks} | {how} | {1000 * seconds:.2f} |")
    adam = n_params(np.array((FEATURES,) + HIDDEN + (CLASSES,)))
    lbfgs = n_params(np.array((LBFGS_FEATURES,) + HIDDEN + (1,)))
    print(f"\nBytes per task and round: Adam {FEATURES}-{HIDDEN[0]}-{CLASSES} float32, "
          f"{adam} parameters: weights + 2 moments = {3 * adam * 4:,} B to the worker and "
          f"{3 * adam * 4:,} B back; L-BFGS {LBFGS_FEATURES}-{HIDDEN[0]}-1 float64, {lbfgs} "
          f"parameters: {lbfgs * 8:,} B of weights out, {lbfgs * 8:,} B of gradient back.")
    two = {(n, c): t for w, n, c, t in results if w == 2}
    per_task = (two[(12, False)] - two[(2, False)]) / 10
    fixed = two[(2, False)] - 2 * per_task
    held = {c: t for w, n, c, t in results if w == 2 and c in ("holders", "one holder")}
    per_holder = max(held["holders"] - held["one holder"], 0.0)
    held_fixed = held["one holder"] - per_holder
    print(f"\nA round on 2 workers costs about {1000 * fixed:.1f} ms plus "
          f"{1000 * per_task:.2f} ms per task (from the 2- and 12-task rounds); a round of "
          f"holder calls {1000 * held_fixed:.1f} ms plus {1000 * per_holder:.2f} ms per "
          "worker called (from rounds calling one and both holders of 2 workers).")
    if adam_rate is None or lbfgs_iteration is None:
        return
    print("\nPredicted, one block per worker, those round costs (tasks for Adam, whose "
          "per task costs are the scheduler's, which handles tasks one at a time; holder "
          "calls for L-BFGS, the client's) and the 1-thread rates measured above; bytes the "
          "client sends and receives per round:\n")
    print("| workers | Adam epoch, 1.2M rows (s) | speed-up | Adam epoch, 600k rows per "
          "worker (s) | efficiency | L-BFGS iteration, 200k rows (ms) | bytes per round, "
          "Adam |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    one = PARALLEL_ROWS / adam_rate
    for w in (2, 8, 32, 128):
        overhead = fixed + per_task * w
        strong = one / w + overhead
        weak = 600_000 / adam_rate + overhead
        lb = lbfgs_iteration / w + held_fixed + per_holder * w
        print(f"| {w} | {strong:.3f} | {one / strong:.1f} | {weak:.3f} | "
              f"{(600_000 / adam_rate) / weak:.0%} | {1000 * lb:.0f} | "
              f"2 x {w * 3 * adam * 4 / 1e6:.2f} MB |")


def _cpu():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="training rows")
    p.add_argument("--chunk", type=int, default=100_000, help="rows per block")
    p.add_argument("--predict-rows", type=int, default=10_000_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--tables", nargs="+",
                   choices=["train", "predict", "compile", "parallel", "lbfgs", "rounds"],
                   default=["train", "predict", "compile"],
                   help="the tables to measure ('compile' compiles twice from scratch)")
    args = p.parse_args(argv)
    import dask
    import dask_ml
    import distributed
    import numba
    import sklearn

    import fastmlp

    print(f"CPU: {_cpu()}, {len(os.sched_getaffinity(0))} cores; Python "
          f"{sys.version.split()[0]}, fastmlp {fastmlp.__version__}, numba {numba.__version__},"
          f" scikit-learn {sklearn.__version__}, dask {dask.__version__}, distributed "
          f"{distributed.__version__}, dask-ml {dask_ml.__version__}")
    if "train" in args.tables:
        train_table(args.rows, args.chunk, args.repeats)
    if "predict" in args.tables:
        predict_table(args.predict_rows, args.chunk * 10, args.repeats)
    if "compile" in args.tables:
        compile_table()
    adam_rate = lbfgs_iteration = None
    if "parallel" in args.tables:
        adam_rate = parallel_table(args.repeats)
    if "lbfgs" in args.tables:
        lbfgs_iteration = lbfgs_table(args.repeats)
    if "rounds" in args.tables:
        rounds_table(args.repeats, adam_rate, lbfgs_iteration)


if __name__ == "__main__":
    main()
