#!/usr/bin/env python
"""Summarise fastmlp's asv results as Markdown ratio tables and a bar chart.

Reads the asv results of this machine (``asv_bench/results/<machine>/*.json``;
for every benchmark and parameter combination the newest result wins) for the
training, floor, predict and startup suites and prints:

- the machine description;
- per workload and dtype: fastmlp-numba's epoch time and its speed-up over
  scikit-learn, PyTorch and fastmlp's NumPy backend (other / fastmlp-numba, >1
  means fastmlp-numba is faster), its epoch time over the GEMM-only floor, and
  ``partial_fit`` over the same epoch through the public kernel (the cost of
  input checks);
- fastmlp-numba's epoch at 1 thread and at every core, the drop-in's
  end-to-end fit against scikit-learn's, predict latency and start-up times.

A missing result (peer not installed, benchmark skipped, failed or not run) is
a dash. It also writes a bar chart (PNG, matplotlib's Agg backend) of the
speed-ups to the path given on the command line (default docs/benchmarks.png).

    python scripts/bench_report.py [PNG] [--results DIR] [--machine NAME] [--env TEXT] [--no-plot]
"""

import argparse
import glob
import json
import math
import os
import platform
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_RESULTS = os.path.join(ROOT, "asv_bench", "results")
DEFAULT_PNG = os.path.join("docs", "benchmarks.png")

WORKLOAD_ORDER = ["seed-ionosphere", "seed-pulsar", "digits", "mid", "mnist-shape", "wide"]
DTYPES = ["float32", "float64"]
PEERS = [("sklearn", "vs sklearn"), ("torch", "vs torch"), ("jax", "vs jax"),
         ("fastmlp-numpy", "vs fastmlp-numpy")]
SUITES = ("training.", "floor.", "predict.", "startup.", "memory.")


# ------------------------------------------------------------------ loading
def pick_machine(results_dir, requested=None):
    if requested:
        return requested
    machines = [d for d in sorted(os.listdir(results_dir))
                if os.path.isfile(os.path.join(results_dir, d, "machine.json"))]
    if not machines:
        raise SystemExit(f"no asv results under {results_dir}: run asv first")
    node = platform.node()
    if node in machines:
        return node
    try:
        with open(os.path.expanduser("~/.asv-machine.json")) as f:
            known = [k for k in json.load(f) if k != "version"]
        here = [m for m in known if m in machines]
        if len(here) == 1:
            return here[0]
    except (OSError, ValueError):
        pass
    return max(machines, key=lambda d: os.path.getmtime(os.path.join(results_dir, d)))


def _missing(v):
    return v is None or (isinstance(v, float) and not math.isfinite(v))


def _param(value):
    """asv stores parameter values as their repr: "'digits'" -> 'digits', '1' -> 1."""
    try:
        import ast

        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def load_results(results_dir, machine, env_filter=None):
    """{benchmark name: {param tuple: value}} (the newest non-missing value of
    every benchmark and parameter combination wins), and the metadata of every
    results file that supplied a value."""
    files = [p for p in glob.glob(os.path.join(results_dir, machine, "*.json"))
             if os.path.basename(p) != "machine.json"]
    table, stamps, source = {}, {}, {}
    metas = {}
    for path in files:
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError):
            continue
        if env_filter and env_filter not in str(data.get("env_name", "")):
            continue
        metas[path] = data
        columns = data.get("result_columns", [])
        if "result" not in columns:
            continue
        for name, row in data.get("results", {}).items():
            if not name.startswith(SUITES):
                continue
            rec = dict(zip(columns, row))
            values = rec.get("result")
            if values is None:
                continue
            params = rec.get("params") or []
            combos = _product([[_param(v) for v in p] for p in params]) if params else [()]
            stamp = rec.get("started_at") or data.get("date") or os.path.getmtime(path)
            if not isinstance(values, list):
                values = [values]
            for combo, value in zip(combos, values):
                if _missing(value):
                    continue
                key = (name, combo)
                if key not in stamps or stamp >= stamps[key]:
                    stamps[key] = stamp
                    table.setdefault(name, {})[combo] = float(value)
                    source[key] = path
    used = [metas[p] for p in sorted(set(source.values()), key=os.path.getmtime, reverse=True)]
    return table, used


def _product(lists):
    out = [()]
    for values in lists:
        out = [c + (v,) for c in out for v in values]
    return out


def lookup(table, names, combo):
    for name in names:
        value = table.get(name, {}).get(combo)
        if value is not None:
            return value
    return None


# --------------------------------------------------------------- formatting
def fmt_time(t):
    if t is None:
        return "-"
    if t >= 1:
        return f"{t:.2f} s"
    if t >= 1e-3:
        return f"{t * 1e3:.3g} ms"
    return f"{t * 1e6:.3g} µs"


def fmt_ratio(r):
    return "-" if r is None else (f"{r:.3g}×" if r < 100 else f"{r:.0f}×")


def ratio(a, b):
    return None if a is None or b is None or b <= 0 else a / b


def machine_lines(results_dir, machine, metas):
    lines = []
    try:
        with open(os.path.join(results_dir, machine, "machine.json")) as f:
            m = json.load(f)
        ram = m.get("ram", "")
        try:
            ram = f"{int(ram) / 2**30:.1f} GiB"
        except ValueError:
            pass
        lines.append(f"**Machine** `{machine}`: {m.get('cpu', '?')}, {m.get('num_cpu', '?')} CPUs, "
                     f"{ram} RAM, {m.get('os', '?')} {m.get('arch', '')}".rstrip())
    except (OSError, ValueError):
        lines.append(f"**Machine** `{machine}`")
    for meta in metas:
        # an existing environment (--python=same) records the conf's matrix, not its versions
        existing = str(meta.get("env_name", "")).startswith("existing")
        reqs = {} if existing else (meta.get("requirements") or {})
        req = ", ".join(f"{k} {v}" if v else k for k, v in sorted(reqs.items()))
        lines.append(f"**Results from** environment `{meta.get('env_name', '?')}` "
                     f"(Python {meta.get('python', '?')}{'; ' + req if req else ''}), "
                     f"fastmlp commit `{str(meta.get('commit_hash', '?'))[:10]}`")
    return lines


# ------------------------------------------------------------------- tables
def training_rows(table):
    epoch = ["training.Epoch.time_epoch", "training.EpochLarge.time_epoch"]
    kernel = ["training.KernelEpoch.time_epoch", "training.KernelEpochLarge.time_epoch"]
    floor = ["floor.Floor.time_gemm_floor", "floor.FloorLarge.time_gemm_floor"]
    rows = []
    for workload in WORKLOAD_ORDER:
        for dtype in DTYPES:
            t = {s: lookup(table, epoch, (workload, dtype, s))
                 for s in ("fastmlp-numba", "fastmlp-numpy", "sklearn", "torch", "jax")}
            fl = lookup(table, floor, (workload, dtype))
            kern = lookup(table, kernel, (workload, dtype, "numba"))
            if all(v is None for v in t.values()) and fl is None:
                continue
            numba = t["fastmlp-numba"]
            rows.append(dict(
                workload=workload, dtype=dtype, times=t, floor=fl, numba=numba,
                speedups={label: ratio(t[s], numba) for s, label in PEERS},
                over_floor=ratio(numba, fl), over_kernel=ratio(numba, kern)))
    return rows


def print_training(rows):
    print("### One training epoch: fastmlp-numba and its speed-ups\n")
    print("Speed-up = other system's epoch time / fastmlp-numba's (>1: fastmlp-numba is "
          "faster). Floor = the epoch's matrix products alone (same BLAS). "
          "partial_fit/kernel = `MLP.partial_fit` over the public `train_epoch` kernel "
          "on pre-validated arrays.\n")
    head = ["workload", "dtype", "fastmlp-numba", "vs sklearn", "vs torch", "vs jax",
            "vs fastmlp-numpy",
            "GEMM floor", "epoch / floor", "partial_fit / kernel"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        cells = [r["workload"], r["dtype"], fmt_time(r["numba"])]
        cells += [fmt_ratio(r["speedups"][label]) for _, label in PEERS]
        cells += [fmt_time(r["floor"]), fmt_ratio(r["over_floor"]), fmt_ratio(r["over_kernel"])]
        print("| " + " | ".join(cells) + " |")
    print()
    print("Epoch times of every system:\n")
    systems = ["fastmlp-numba", "fastmlp-numpy", "sklearn", "torch", "jax"]
    print("| workload | dtype | " + " | ".join(systems) + " | GEMM floor |")
    print("|" + "---|" * (len(systems) + 3))
    for r in rows:
        print(f"| {r['workload']} | {r['dtype']} | "
              + " | ".join(fmt_time(r["times"][s]) for s in systems)
              + f" | {fmt_time(r['floor'])} |")
    print()


def print_pair(table, names, title, header, firsts, slow, fast):
    """A table of two timings per (first parameter, dtype): ``slow`` and
    ``fast`` name the last parameter of each; the speed-up is slow / fast."""
    if not any(table.get(n) for n in names):
        return
    print(f"### {title}\n")
    print(f"| {header} | speed-up |")
    print("|---|---|---|---|---|")
    for first in firsts:
        for dtype in DTYPES:
            a = lookup(table, names, (first, dtype, slow))
            b = lookup(table, names, (first, dtype, fast))
            if a is None and b is None:
                continue
            print(f"| {first} | {dtype} | {fmt_time(a)} | {fmt_time(b)} | "
                  f"{fmt_ratio(ratio(a, b))} |")
    print()


def print_threads(table):
    print_pair(table, ["training.Threads.time_epoch", "training.ThreadsLarge.time_epoch"],
               "Thread scaling: fastmlp-numba's epoch at 1 thread and at every core",
               "workload | dtype | 1 thread | all cores", WORKLOAD_ORDER, "1", "all")


def print_fit(table):
    print_pair(table, ["training.Fit.time_fit", "training.FitLarge.time_fit"],
               "End-to-end fit of the scikit-learn drop-in (default parameters)",
               "data | X dtype | scikit-learn | fastmlp.sklearn",
               ("digits", "breast-cancer", "mnist-shape"), "sklearn", "fastmlp-sklearn")


def print_predict(table):
    data = table.get("predict.Predict.time_predict", {})
    if not data:
        return
    systems = ["fastmlp-numba", "fastmlp-numpy", "sklearn", "torch"]
    print("### Predict latency (float32, labels)\n")
    print("| workload | rows | " + " | ".join(systems) + " | sklearn / numba | torch / numba |")
    print("|" + "---|" * (len(systems) + 4))
    workloads = sorted({c[0] for c in data}, key=lambda w: WORKLOAD_ORDER.index(w)
                       if w in WORKLOAD_ORDER else 99)
    for workload in workloads:
        for rows in sorted({c[1] for c in data if c[0] == workload}):
            t = {s: data.get((workload, rows, s)) for s in systems}
            print(f"| {workload} | {rows} | " + " | ".join(fmt_time(t[s]) for s in systems)
                  + f" | {fmt_ratio(ratio(t['sklearn'], t['fastmlp-numba']))}"
                  + f" | {fmt_ratio(ratio(t['torch'], t['fastmlp-numba']))} |")
    print()


def print_startup(table):
    names = [("startup.Startup.track_import", "import fastmlp"),
             ("startup.Startup.track_first_fit_warm_cache", "import + first fit, warm cache"),
             ("startup.Startup.track_first_fit_cold_cache", "import + first fit, cold cache")]
    if not any(table.get(n) for n, _ in names):
        return
    print("### Start-up in a fresh process (seed-ionosphere, 1 epoch)\n")
    print("| backend | " + " | ".join(label for _, label in names) + " |")
    print("|" + "---|" * (len(names) + 1))
    for backend in ("numba", "numpy"):
        print(f"| {backend} | "
              + " | ".join(fmt_time(table.get(n, {}).get((backend,))) for n, _ in names) + " |")
    print()


def print_memory(table):
    over = table.get("memory.FitBudget.track_peak_over_budget", {})
    mib = table.get("memory.FitBudget.track_peak_mib", {})
    if not over:
        return
    print("### Peak memory of fit (mnist-shape, 60000 rows, one epoch, fresh process)\n")
    print("Peak RSS above the warm process, against data + parameters + gradients + "
          "optimiser state + one batch's activations and deltas + 64 MiB.\n")
    print("| backend | dtype | peak above baseline | peak / budget |")
    print("|---|---|---|---|")
    for backend in ("numba", "numpy"):
        for dtype in DTYPES:
            r = over.get((backend, dtype))
            m = mib.get((backend, dtype))
            print(f"| {backend} | {dtype} | {'-' if m is None else f'{m:.0f} MiB'} | "
                  f"{'-' if r is None else f'{r:.2f}'} |")
    print()


# -------------------------------------------------------------------- chart
def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = [label for _, label in PEERS] + ["GEMM floor / epoch"]
    groups = [r for r in rows if r["numba"] is not None]
    if not groups:
        print(f"(no fastmlp-numba epoch results: {path} not written)", file=sys.stderr)
        return False
    fig, ax = plt.subplots(figsize=(max(7, 1.1 * len(groups) + 2), 4.8))
    width = 0.8 / len(series)
    colors = ["#4C72B0", "#DD8452", "#55A868", "#8C8C8C"]
    top, bottom = 1.0, 1.0
    for j, label in enumerate(series):
        xs, ys = [], []
        for i, r in enumerate(groups):
            v = r["speedups"].get(label) if label in r["speedups"] else (
                ratio(r["floor"], r["numba"]))
            if v is not None:
                xs.append(i + (j - (len(series) - 1) / 2) * width)
                ys.append(v)
        bars = ax.bar(xs, ys, width, label=label, color=colors[j % len(colors)])
        top = max([top] + ys)
        bottom = min([bottom] + ys)
        for b, v in zip(bars, ys):
            ax.annotate(f"{v:.3g}" if v < 100 else f"{v:.0f}", (b.get_x() + b.get_width() / 2, v), ha="center",
                        va="bottom", fontsize=6, rotation=90, xytext=(0, 2),
                        textcoords="offset points")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_ylim(bottom / 1.5, top * 3)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([f"{r['workload']}\n{r['dtype']}" for r in groups], fontsize=8)
    ax.set_ylabel("other / fastmlp-numba epoch time (log)")
    ax.set_title("One training epoch: fastmlp-numba's speed-up (>1: fastmlp-numba faster)",
                 fontsize=10)
    ax.legend(fontsize=8, ncol=len(series), loc="upper center", bbox_to_anchor=(0.5, -0.14))
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("png", nargs="?", default=DEFAULT_PNG,
                    help=f"where to write the bar chart (default {DEFAULT_PNG})")
    ap.add_argument("--results", default=DEFAULT_RESULTS, help="asv results directory")
    ap.add_argument("--machine", default=None, help="asv machine name (default: this machine)")
    ap.add_argument("--env", default=None,
                    help="only results files whose asv environment name contains this")
    ap.add_argument("--no-plot", action="store_true", help="print the tables only")
    args = ap.parse_args(argv)

    if not os.path.isdir(args.results):
        raise SystemExit(f"no asv results directory {args.results}: run asv first")
    machine = pick_machine(args.results, args.machine)
    table, metas = load_results(args.results, machine, args.env)
    print("## fastmlp benchmarks\n")
    for line in machine_lines(args.results, machine, metas):
        print(line + "  ")
    print()
    rows = training_rows(table)
    if rows:
        print_training(rows)
    else:
        print("(no training or floor results yet)\n")
    print_threads(table)
    print_fit(table)
    print_predict(table)
    print_startup(table)
    print_memory(table)
    if not args.no_plot and rows and plot(rows, args.png):
        print(f"Chart: `{args.png}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
