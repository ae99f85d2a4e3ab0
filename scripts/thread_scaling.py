#!/usr/bin/env python
"""fastmlp-numba's epoch time at several thread counts, measured in one run.

For each workload of the asv training suite (synthetic data of its shape),
one model per thread count trains with momentum SGD from the same
``random_state``; the thread counts take turns epoch by epoch (so that a
change in the machine's load reaches all of them alike), and the best of the
timed ``partial_fit`` epochs is printed with the speed-up over one thread. The
weights after the last epoch are compared: the row-block kernels give the same
bits for every thread count.

    python scripts/thread_scaling.py [WORKLOAD ...] [--threads 1,2,4] [--epochs N]
        [--dtype float32] [--rows N]

``--rows`` trains on the first N rows (the mnist-shape and wide workloads take
seconds per epoch); default thread counts: 1 and every core.
"""

import argparse
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "asv_bench"))

from benchmarks import L2, LR, MOMENTUM, WORKLOADS, batch_size, make_data  # noqa: E402

import numpy as np  # noqa: E402

import fastmlp  # noqa: E402
from fastmlp import threads  # noqa: E402
from fastmlp.kernels.api import epoch_path  # noqa: E402


def models(workload, dtype, counts, rows):
    w = WORKLOADS[workload]
    X, y = make_data(workload, dtype, n=rows)
    batch = min(batch_size(workload), len(y))
    built = {}
    for count in counts:
        model = fastmlp.MLP(w["hidden"], w["activation"], solver="sgd", lr=LR,
                            momentum=MOMENTUM, batch_size=batch, l2=L2, dtype=dtype,
                            random_state=0, n_threads=count)
        model.partial_fit(X, y, classes=np.arange(w["k"]))  # compiles, first touch
        built[count] = model
    return X, y, built


def fmt(seconds):
    return f"{seconds:.3g} s" if seconds >= 1 else f"{seconds * 1e3:.3g} ms"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workloads", nargs="*",
                    default=["seed-ionosphere", "seed-pulsar", "digits", "mid"])
    ap.add_argument("--threads", default=f"1,{threads.default_threads()}")
    ap.add_argument("--epochs", type=int, default=20, help="timed epochs per thread count")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--rows", type=int, default=None)
    args = ap.parse_args(argv)
    counts = [int(c) for c in args.threads.split(",")]
    print(f"fastmlp {fastmlp.__version__}, {args.dtype}, best of {args.epochs} epochs; "
          f"numba threading layer: {fastmlp.kernels.get('numba')._core.threading_layer()}")
    head = " | ".join(f"{c} thread{'s' * (c > 1)}" for c in counts)
    print(f"| workload | kernel | {head} | speed-up at {counts[-1]} | same weights |")
    print("|---|---|" + "---|" * (len(counts) + 2))
    for workload in args.workloads:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            X, y, built = models(workload, args.dtype, counts, args.rows)
            best = {c: float("inf") for c in counts}
            for _ in range(args.epochs):
                for c, model in built.items():
                    t0 = time.perf_counter()
                    model.partial_fit(X, y)
                    best[c] = min(best[c], time.perf_counter() - t0)
        net = built[counts[0]]._net
        path = epoch_path(X, net.sizes, min(batch_size(workload), len(y)), 0, 0)
        same = all(np.array_equal(m._net.params, net.params) for m in built.values())
        cells = " | ".join(fmt(best[c]) for c in counts)
        print(f"| {workload} | {path} | {cells} | {best[counts[0]] / best[counts[-1]]:.2f}x | "
              f"{'yes' if same else 'no'} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
