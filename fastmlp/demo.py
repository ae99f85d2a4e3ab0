"""Train on the bundled real data with both backends: ``python -m fastmlp.demo``
(or ``fastmlp demo``).

Prints, per data set and backend, the test accuracy, the final training loss,
the epochs run and the mean time of one epoch. The numba kernels the models
use are prepared first (compiled on the first run, loaded from numba's disk
cache after): the demo says so before it starts and prints each model's
preparation time on its own.

``--plot PATH`` instead draws the learning curves of a digits model trained
with a validation set (the picture in the README); ``--export DIR`` writes the
bundled data sets as CSV files with a header (``breast_cancer.csv``,
``digits.csv``) for the command line to train on. ``bench`` (``fastmlp
bench``) times one training epoch beside scikit-learn and PyTorch.
"""

import argparse
import os
import time
import warnings

from . import MLP
from .datasets import export_csv, load_breast_cancer, load_digits, split, standardize
from .errors import ConvergenceWarning

SETS = {
    "digits": (load_digits, dict(hidden=(100,), activation="relu", batch_size=200, epochs=200)),
    "breast-cancer": (load_breast_cancer,
                      dict(hidden=(20, 20), activation="tanh", batch_size=32, epochs=200)),
}
#: The model whose learning curves ``--plot`` draws.
PLOT_MODEL = dict(hidden=(100,), activation="relu", lr=1e-3, batch_size=64, epochs=200,
                  validation=0.15, patience=15, random_state=0)


def _data(name, seed):
    load, _ = SETS[name]
    X, y = load()
    X_train, X_test, y_train, y_test = split(X, y, 0.25, random_state=seed)
    X_train, X_test = standardize(X_train, X_test)
    return X_train, X_test, y_train, y_test


def run(name, backend, seed=0, epochs=None):
    """(test accuracy, final loss, epochs, mean epoch seconds) on one data set."""
    X_train, X_test, y_train, y_test = _data(name, seed)
    params = dict(SETS[name][1], **({} if epochs is None else {"epochs": epochs}))
    model = MLP(**params, lr=1e-3, random_state=seed, backend=backend)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_train, y_train)
    seconds = (time.perf_counter() - t0) / model.n_iter_
    return model.score(X_test, y_test), model.loss_curve_[-1], model.n_iter_, seconds


def prepare():
    """Compile (or load from the cache) the numba kernels the demo's models use:
    one epoch of each, saying what it does first and how long each took."""
    print("fastmlp: preparing the numba kernels of the demo's models (compiled on the first "
          "run, loaded from numba's cache after)", flush=True)
    t0 = time.perf_counter()
    for name in SETS:
        t1 = time.perf_counter()
        run(name, "numba", epochs=1)
        print(f"  {name}: {time.perf_counter() - t1:.1f} s", flush=True)
    print(f"fastmlp: kernels ready in {time.perf_counter() - t0:.1f} s", flush=True)


def table(backends):
    """Print the accuracy and speed table for ``backends``."""
    if "numba" in backends:
        prepare()
    print(f"{'data set':<15}{'backend':<9}{'test acc':>9}{'loss':>10}{'epochs':>8}{'ms/epoch':>10}")
    for name in SETS:
        for backend in backends:
            acc, loss, epochs, seconds = run(name, backend)
            print(f"{name:<15}{backend:<9}{acc:>9.4f}{loss:>10.4f}{epochs:>8d}{seconds * 1e3:>10.2f}")


def plot(path, backend=None):
    """Train ``PLOT_MODEL`` on three quarters of the digits (standardized), with
    a validation set for early stopping, and save its learning curves to
    ``path``. Returns the model."""
    from .plot import require_matplotlib, save_learning_curves

    require_matplotlib()
    X, y = load_digits()
    X_train, _, y_train, _ = split(X, y, 0.25, random_state=0)
    model = MLP(**PLOT_MODEL, backend=backend).fit(standardize(X_train), y_train)
    trained = model.t_ // model.n_iter_  # rows of one epoch: those not held out
    save_learning_curves(model, path, title=f"digits: MLP(hidden=(100,)), {trained} training "
                                           f"rows, {len(y_train) - trained} validation rows")
    return model


def export(directory):
    """Write breast_cancer.csv and digits.csv into ``directory`` (created if
    needed); returns their paths."""
    os.makedirs(directory, exist_ok=True)
    return [export_csv(name, os.path.join(directory, f"{name}.csv"))
            for name in ("breast_cancer", "digits")]


def add_arguments(parser):
    """The demo's command-line options (shared with ``fastmlp demo``)."""
    parser.add_argument("--backend", choices=("numba", "numpy", "both"), default="both",
                        help="backends to run (default: both)")
    parser.add_argument("--plot", metavar="PATH",
                        help="only draw the learning curves of a digits model into PATH "
                             "(.png, .svg or .pdf; needs matplotlib)")
    parser.add_argument("--export", metavar="DIR",
                        help="only write the bundled data sets as CSV files into DIR")


def main_args(args):
    """Run the demo for parsed ``args``."""
    if args.export is not None:
        for path in export(args.export):
            print(f"wrote {path}")
    if args.plot is not None:
        model = plot(args.plot, None if args.backend == "both" else args.backend)
        print(f"wrote {args.plot}: {model.n_iter_} epochs, best validation accuracy "
              f"{model.best_validation_score_:.4f}")
    if args.export is None and args.plot is None:
        table(("numba", "numpy") if args.backend == "both" else (args.backend,))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastmlp.demo",
                                     description=__doc__.splitlines()[0])
    add_arguments(parser)
    main_args(parser.parse_args(argv))


# -------------------------------------------------------------------- bench
#: The workload of ``bench``: rows, features, hidden layers, classes, batch.
BENCH = dict(rows=4096, features=64, hidden=(128,), classes=10, batch=128)


def bench(repeats=3, stream=None):
    """Time one training epoch (momentum SGD, lr 0.01, no L2, float32, rows
    shuffled) of the same network on the same synthetic data with fastmlp's two
    backends, scikit-learn's MLPClassifier and eager PyTorch, each after a
    warm-up epoch; prints the median of ``repeats`` epochs per system and says
    which peers are not installed. Returns {system: seconds or None}."""
    import sys

    import numpy as np

    out = stream or sys.stdout
    w = BENCH
    rng = np.random.default_rng(0)
    X = rng.standard_normal((w["rows"], w["features"]), dtype=np.float32)
    y = np.argmax(X @ rng.standard_normal((w["features"], w["classes"])).astype(np.float32),
                  axis=1).astype(np.int64)
    systems = {"fastmlp (numba)": lambda: _fastmlp_epoch(X, y, "numba"),
               "fastmlp (numpy)": lambda: _fastmlp_epoch(X, y, "numpy"),
               "scikit-learn": lambda: _sklearn_epoch(X, y),
               "PyTorch": lambda: _torch_epoch(X, y)}
    print(f"one epoch: {w['rows']} rows x {w['features']} features -> hidden {w['hidden']} "
          f"relu -> {w['classes']} classes, batch {w['batch']}, momentum SGD, float32; "
          f"median of {repeats}", file=out)
    print(f"{'system':<18}{'ms/epoch':>10}   relative", file=out)
    results, reference = {}, None
    for name, make in systems.items():
        try:
            epoch = make()
        except ImportError as exc:
            results[name] = None
            print(f"{name:<18}{'-':>10}   not installed ({exc})", file=out, flush=True)
            continue
        epoch()  # warm-up: compilation, first-touch memory
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            epoch()
            times.append(time.perf_counter() - t0)
        seconds = float(np.median(times))
        results[name] = seconds
        reference = reference or seconds
        print(f"{name:<18}{seconds * 1e3:>10.2f}   {seconds / reference:.1f}x", file=out,
              flush=True)
    return results


def _fastmlp_epoch(X, y, backend):
    model = MLP(BENCH["hidden"], "relu", solver="sgd", lr=0.01, momentum=0.9, l2=0.0,
                batch_size=BENCH["batch"], random_state=0, backend=backend)
    classes = list(range(BENCH["classes"]))
    return lambda: model.partial_fit(X, y, classes=classes)


def _sklearn_epoch(X, y):
    try:
        from sklearn.neural_network import MLPClassifier
    except ImportError:
        raise ImportError("pip install scikit-learn") from None
    model = MLPClassifier(BENCH["hidden"], solver="sgd", learning_rate_init=0.01,
                          momentum=0.9, nesterovs_momentum=False, alpha=0.0,
                          batch_size=BENCH["batch"], random_state=0)
    classes = list(range(BENCH["classes"]))
    return lambda: model.partial_fit(X, y, classes=classes)


def _torch_epoch(X, y):
    try:
        import torch
    except ImportError:
        raise ImportError("pip install torch") from None
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(X.shape[1], BENCH["hidden"][0]), torch.nn.ReLU(),
                              torch.nn.Linear(BENCH["hidden"][0], BENCH["classes"]))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    batch = BENCH["batch"]

    def epoch():
        order = torch.randperm(Xt.shape[0])
        for start in range(0, Xt.shape[0], batch):
            rows = order[start:start + batch]
            optimizer.zero_grad()
            loss_fn(net(Xt[rows]), yt[rows]).backward()
            optimizer.step()

    return epoch


if __name__ == "__main__":
    main()
