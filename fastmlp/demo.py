"""Train on the bundled real data with both backends: ``python -m fastmlp.demo``.

Prints, per data set and backend, the test accuracy, the final training loss,
the epochs run and the mean time of one epoch. numba's kernels are compiled
(or loaded from the cache) first, and that time is printed on its own.
"""

import argparse
import time
import warnings

from . import MLP, warmup
from .datasets import load_breast_cancer, load_digits, split, standardize
from .errors import ConvergenceWarning

SETS = {
    "digits": (load_digits, dict(hidden=(100,), activation="relu", batch_size=200, epochs=200)),
    "breast-cancer": (load_breast_cancer,
                      dict(hidden=(20, 20), activation="tanh", batch_size=32, epochs=200)),
}


def run(name, backend, seed=0):
    """(test accuracy, final loss, epochs, mean epoch seconds) on one data set."""
    load, params = SETS[name]
    X, y = load()
    X_train, X_test, y_train, y_test = split(X, y, 0.25, random_state=seed)
    X_train, X_test = standardize(X_train, X_test)
    model = MLP(**params, lr=1e-3, random_state=seed, backend=backend)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_train, y_train)
    seconds = (time.perf_counter() - t0) / model.n_iter_
    return model.score(X_test, y_test), model.loss_curve_[-1], model.n_iter_, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("numba", "numpy", "both"), default="both")
    args = parser.parse_args(argv)
    backends = ("numba", "numpy") if args.backend == "both" else (args.backend,)
    if "numba" in backends:
        t0 = time.perf_counter()
        warmup("numba")
        print(f"numba kernels compiled or loaded from cache in {time.perf_counter() - t0:.1f} s")
    print(f"{'data set':<15}{'backend':<9}{'test acc':>9}{'loss':>10}{'epochs':>8}{'ms/epoch':>10}")
    for name in SETS:
        for backend in backends:
            acc, loss, epochs, seconds = run(name, backend)
            print(f"{name:<15}{backend:<9}{acc:>9.4f}{loss:>10.4f}{epochs:>8d}{seconds * 1e3:>10.2f}")


if __name__ == "__main__":
    main()
