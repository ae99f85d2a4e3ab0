#!/usr/bin/env python
"""Train and score a fastmlp classifier on a dask cluster, on data that dask
generates lazily, block by block, on the workers.

    python examples/dask_cluster.py                              # a LocalCluster here
    python examples/dask_cluster.py --scheduler tcp://HOST:8786  # an existing cluster

An existing cluster is one started from the command line, e.g.::

    dask scheduler --port 8786 &
    dask worker tcp://127.0.0.1:8786 --nworkers 2 --nthreads 1 --memory-limit 2GB &

The workers need fastmlp installed (``pip install fastmlp[dask]``). Steps:
size every worker's thread pools (``fastmlp.dask.limit_threads``, which
restarts the workers: on by default for the local cluster only), compile the
kernels on every worker (``fastmlp.dask.warmup``), train with dask-ml's
``Incremental`` for a few passes over the data, printing throughput, loss and
test accuracy after each, then predict the test set on the cluster.

The labels come from a fixed random "teacher" network, so there is something
for the model to learn; the classes are about equally frequent (with the
default 3 classes the largest holds about 35% of the rows).
"""

import argparse
import time

import numpy as np


def teacher_labels(X, W1, W2):
    """The class the teacher network gives each row of X."""
    return np.argmax(np.tanh(X @ W1) @ W2, axis=1)


def make_data(rows, features, classes, chunk_rows, seed, teacher_seed=1234):
    """A lazy dask array of ``rows`` standard normal rows and their teacher labels."""
    import dask.array as da

    teacher = np.random.default_rng(teacher_seed)
    W1 = teacher.standard_normal((features, 32)) / np.sqrt(features)
    W2 = teacher.standard_normal((32, classes)) * 3.0
    X = da.random.default_rng(seed).standard_normal((rows, features),
                                                     chunks=(chunk_rows, features))
    y = X.map_blocks(teacher_labels, W1, W2, drop_axis=1, dtype=np.int64)
    return X, y


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="address of a running scheduler; without it a LocalCluster starts")
    p.add_argument("--workers", type=int, default=2, help="LocalCluster: worker processes")
    p.add_argument("--threads-per-worker", type=int, default=1, help="LocalCluster: threads")
    p.add_argument("--memory-limit", default="auto", help="LocalCluster: memory per worker")
    p.add_argument("--limit-threads", action=argparse.BooleanOptionalAction, default=None,
                   help="restart the workers with thread pools sized to the cores "
                        "(default: yes for a LocalCluster, no for --scheduler)")
    p.add_argument("--rows", type=int, default=2_000_000, help="training rows")
    p.add_argument("--test-rows", type=int, default=200_000, help="test rows")
    p.add_argument("--features", type=int, default=20)
    p.add_argument("--classes", type=int, default=3)
    p.add_argument("--chunk-rows", type=int, default=100_000, help="rows per block")
    p.add_argument("--passes", type=int, default=3, help="passes over the training data")
    p.add_argument("--hidden", type=int, nargs="+", default=[64], help="hidden layer widths")
    p.add_argument("--batch-size", type=int, default=200)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--persist", action="store_true",
                   help="generate the data once and keep it in the workers' memory "
                        "(default: generate each block again on every pass)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for name in ("workers", "threads_per_worker", "rows", "test_rows", "features",
                 "chunk_rows", "passes", "batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.classes < 2:
        p.error("--classes must be at least 2")
    if min(args.hidden) < 1:
        p.error("--hidden widths must be at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    from dask_ml.wrappers import Incremental
    from distributed import Client, LocalCluster

    import fastmlp.dask
    from fastmlp.sklearn import MLPClassifier

    cluster = None
    if args.scheduler:
        client = Client(args.scheduler)
    else:
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=args.threads_per_worker,
                               memory_limit=args.memory_limit, processes=True,
                               dashboard_address=":0")
        client = Client(cluster)
    try:
        workers = client.scheduler_info(n_workers=-1)["workers"]
        print(f"cluster: {len(workers)} workers, "
              f"{sum(w['nthreads'] for w in workers.values())} threads, "
              f"dashboard {client.dashboard_link}")
        if args.limit_threads if args.limit_threads is not None else cluster is not None:
            limits = fastmlp.dask.limit_threads(client)
            print(f"threads per task (BLAS, OpenMP, numba): {sorted(set(limits.values()))}")
        seconds = fastmlp.dask.warmup(client)
        print(f"kernels ready on {len(seconds)} workers in {min(seconds.values()):.1f}-"
              f"{max(seconds.values()):.1f} s")

        X, y = make_data(args.rows, args.features, args.classes, args.chunk_rows, args.seed)
        X_test, y_test = make_data(args.test_rows, args.features, args.classes,
                                   args.chunk_rows, args.seed + 1)
        if args.persist:
            X, y, X_test, y_test = client.persist([X, y, X_test, y_test])
        kept = "kept in memory" if args.persist else "generated lazily"
        print(f"data: {args.rows:,} x {args.features} training rows in {X.numblocks[0]} "
              f"blocks ({X.nbytes / 1e9:.2f} GB as float64), {args.test_rows:,} test rows, "
              f"{args.classes} classes, {kept}")

        model = MLPClassifier(hidden_layer_sizes=tuple(args.hidden), batch_size=args.batch_size,
                              learning_rate_init=args.learning_rate, dtype=args.dtype,
                              random_state=args.seed)
        inc = Incremental(model, shuffle_blocks=True, random_state=args.seed)
        classes = np.arange(args.classes)
        trained = 0.0
        for n in range(1, args.passes + 1):
            t0 = time.perf_counter()
            inc.partial_fit(X, y, classes=classes)
            dt = time.perf_counter() - t0
            trained += dt
            accuracy = inc.score(X_test, y_test)
            print(f"pass {n}/{args.passes}: {args.rows:,} rows in {dt:.1f} s "
                  f"({args.rows / dt:,.0f} rows/s), last block's loss "
                  f"{inc.estimator_.loss_:.4f}, test accuracy {accuracy:.4f}", flush=True)

        t0 = time.perf_counter()
        labels = inc.predict(X_test).compute()
        predicting = time.perf_counter() - t0
        accuracy = float(np.mean(labels == y_test.compute()))
        print(f"training: {args.rows * args.passes / trained:,.0f} rows/s; prediction: "
              f"{args.test_rows / predicting:,.0f} rows/s; final test accuracy {accuracy:.4f}")
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


if __name__ == "__main__":
    main()
