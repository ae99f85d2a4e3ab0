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

Every cluster has worker processes of one thread, with thread pools sized by
``fastmlp.dask.limit_threads``. Usage::

    python scripts/dask_bench.py [--rows N] [--predict-rows N] [--tables train predict compile]
"""

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time

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
    p.add_argument("--tables", nargs="+", choices=["train", "predict", "compile"],
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


if __name__ == "__main__":
    main()
