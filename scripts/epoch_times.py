#!/usr/bin/env python
"""Epoch time of fastmlp's two backends, measured in one run.

For each workload of the asv training suite (synthetic data of the workload's
shape, float32 by default), both backends train the same network with momentum
SGD from the same ``random_state``; after one warm-up epoch (compilation, first
touch of memory) every further ``partial_fit`` epoch is timed and the median is
printed with the ratio numpy / numba.

    python scripts/epoch_times.py [WORKLOAD ...] [--epochs N] [--dtype float64]

Default workloads: seed-ionosphere, seed-pulsar, mnist-shape.
"""

import argparse
import os
import statistics
import sys
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "asv_bench"))

from benchmarks import L2, LR, MOMENTUM, WORKLOADS, batch_size, make_data  # noqa: E402

import fastmlp  # noqa: E402


def epoch_times(workload, backend, dtype, epochs):
    w = WORKLOADS[workload]
    X, y = make_data(workload, dtype)
    model = fastmlp.MLP(w["hidden"], w["activation"], solver="sgd", lr=LR, momentum=MOMENTUM,
                        batch_size=batch_size(workload), l2=L2, dtype=dtype, backend=backend,
                        random_state=0)
    times = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(epochs + 1):
            t0 = time.perf_counter()
            model.partial_fit(X, y)
            times.append(time.perf_counter() - t0)
    return statistics.median(times[1:]), model.loss_curve_[-1]


def fmt(seconds):
    return f"{seconds:.3g} s" if seconds >= 1 else f"{seconds * 1e3:.3g} ms"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workloads", nargs="*",
                    default=["seed-ionosphere", "seed-pulsar", "mnist-shape"])
    ap.add_argument("--epochs", type=int, default=5, help="timed epochs after the warm-up")
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args(argv)
    print(f"fastmlp {fastmlp.__version__}, {args.dtype}, median of {args.epochs} epochs")
    print("| workload | numba | numpy | numpy / numba |\n|---|---|---|---|")
    for workload in args.workloads:
        t = {b: epoch_times(workload, b, args.dtype, args.epochs)[0] for b in ("numba", "numpy")}
        print(f"| {workload} | {fmt(t['numba'])} | {fmt(t['numpy'])} | "
              f"{t['numpy'] / t['numba']:.3g}x |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
