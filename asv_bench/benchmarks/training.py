"""One training epoch: fastmlp (numba, numpy backends) against scikit-learn, PyTorch and JAX.

Every system trains the same network on the same synthetic data with plain
momentum SGD (lr 0.01, momentum 0.9, no Nesterov, L2 1e-4 scaled like
scikit-learn's alpha) and the same minibatch size, rows shuffled every epoch:

- ``fastmlp-numba`` / ``fastmlp-numpy``: ``MLP(..., solver='sgd').partial_fit(X, y)``
- ``sklearn``: ``MLPClassifier(solver='sgd', nesterovs_momentum=False).partial_fit(X, y)``
- ``torch``: eager ``nn.Sequential`` + ``torch.optim.SGD``, a manual minibatch loop
  over ``torch.randperm``, default ``torch.set_num_threads``
- ``jax``: the whole epoch one ``jax.jit``-compiled ``lax.scan`` over the minibatches
  (XLA on the CPU), as JAX users write it

``setup`` builds the model and runs one warm-up ``partial_fit`` (on a few
batches) so numba compilation, first-touch page faults and lazy initialisation
are never timed. ``Epoch*`` times the public ``partial_fit`` (which validates
X and encodes y on every call); ``KernelEpoch*`` times the same epoch through
the public kernel ``fastmlp.kernels.get(backend).train_epoch`` on arrays that
are already validated, so the difference is ``partial_fit``'s per-call
overhead. ``Threads*`` times fastmlp-numba's epoch at one thread and at every
core. ``Lbfgs`` times ten L-BFGS iterations of the drop-in and of scikit-learn
on 200,000 rows, at one thread and at every core.

The mnist-shape and wide workloads take seconds to minutes per epoch, so they
live in ``*Large`` classes with one call per sample and at most three samples.
Select a subset with asv's regex over parameters, e.g.::

    asv run --python=same -b "training.EpochLarge.time_epoch\\('mnist-shape', 'float32'"
"""

import numpy as np

from . import (DTYPES, BACKENDS, LARGE_WORKLOADS, SMALL_WORKLOADS, SYSTEMS, FastmlpEpoch,
               FastmlpKernelEpoch, LargeSettings, cached, make_data, make_epoch)


class Epoch:
    """One epoch of the small workloads (milliseconds to a few hundred ms)."""

    params = [SMALL_WORKLOADS, DTYPES, SYSTEMS]
    param_names = ["workload", "dtype", "system"]
    timeout = 600
    repeat = (3, 20, 15.0)

    def setup(self, workload, dtype, system):
        self.run = cached(("epoch", workload, dtype, system),
                          lambda: make_epoch(system, workload, dtype, *make_data(workload, dtype)))

    def time_epoch(self, workload, dtype, system):
        self.run.epoch()


class EpochLarge(LargeSettings, Epoch):
    """One epoch of mnist-shape (60000x784 -> 256 -> 128 -> 10, batch 128) and
    wide (16384x2048 -> 2048 -> 2048 -> 10, batch 1024)."""

    params = [LARGE_WORKLOADS, DTYPES, SYSTEMS]
    timeout = 2400


class KernelEpoch:
    """One epoch through ``fastmlp.kernels.get(backend).train_epoch`` with
    pre-validated arrays (no ``partial_fit`` input checks)."""

    params = [SMALL_WORKLOADS, DTYPES, BACKENDS]
    param_names = ["workload", "dtype", "backend"]
    timeout = 600
    repeat = (3, 20, 15.0)

    def setup(self, workload, dtype, backend):
        self.run = cached(("kernel", workload, dtype, backend),
                          lambda: FastmlpKernelEpoch(workload, dtype, backend,
                                                     *make_data(workload, dtype)))

    def time_epoch(self, workload, dtype, backend):
        self.run.epoch()


class KernelEpochLarge(LargeSettings, KernelEpoch):
    params = [LARGE_WORKLOADS, DTYPES, BACKENDS]
    timeout = 2400


# --------------------------------------------------------------- threads
#: Thread counts of the scaling benchmarks: one, and every core (``n_threads=None``).
THREADS = ["1", "all"]


class Threads:
    """One epoch of fastmlp-numba (``partial_fit``) with ``MLP(n_threads=1)`` and with
    every core: the thread scaling of each workload. seed-pulsar, digits and mid
    train in row blocks on numba's threads (the same weights at every count);
    seed-ionosphere (batches of one row) runs serially either way; mnist-shape and
    wide gain what BLAS's threads give their matrix products."""

    params = [SMALL_WORKLOADS, DTYPES, THREADS]
    param_names = ["workload", "dtype", "threads"]
    timeout = 600
    repeat = (3, 20, 15.0)

    def setup(self, workload, dtype, threads):
        n_threads = 1 if threads == "1" else None
        self.run = cached(("threads", workload, dtype, threads),
                          lambda: FastmlpEpoch(workload, dtype, "numba",
                                               *make_data(workload, dtype),
                                               n_threads=n_threads))

    def time_epoch(self, workload, dtype, threads):
        self.run.epoch()


class ThreadsLarge(LargeSettings, Threads):
    params = [LARGE_WORKLOADS, DTYPES, THREADS]
    timeout = 2400


# ------------------------------------------------------------------- fit
#: Data sets of the end-to-end ``fit`` benchmarks: the two bundled real sets
#: (standardized, the 75 % training part of a stratified split) and synthetic
#: data of the mnist shape (60000 x 784, 10 classes) with ``max_iter=5``.
FIT_SETS = {"digits": None, "breast-cancer": None, "mnist-shape": 5}
FIT_SYSTEMS = ["fastmlp-sklearn", "sklearn"]


def fit_data(name, dtype):
    """(X, y) of a fit benchmark, X in ``dtype`` (what the user passes)."""
    import fastmlp.datasets as ds

    if name == "mnist-shape":
        X, y = make_data("mnist-shape", "float64")
    else:
        X, y = (ds.load_digits if name == "digits" else ds.load_breast_cancer)()
        X, _, y, _ = ds.split(X, y, 0.25, random_state=0)
        X = ds.standardize(X)
    return X.astype(dtype), y


def fit_estimator(system, name, seed=0):
    """scikit-learn's MLPClassifier or fastmlp's drop-in, at default parameters."""
    from . import require

    require("sklearn")
    if system == "sklearn":
        from sklearn.neural_network import MLPClassifier
    else:
        from fastmlp.sklearn import MLPClassifier
    max_iter = FIT_SETS[name]
    return MLPClassifier(random_state=seed, **({} if max_iter is None else {"max_iter": max_iter}))


class Fit:
    """``MLPClassifier(random_state=0).fit(X, y)`` end to end at default parameters
    (Adam, batch 200, up to 200 epochs with scikit-learn's stopping rule): the
    drop-in ``fastmlp.sklearn.MLPClassifier`` against scikit-learn's, with X
    given as float64 (both train in float64) and as float32 (both train in
    float32). Same random_state: both run the same number of epochs."""

    params = [["digits", "breast-cancer"], DTYPES, FIT_SYSTEMS]
    param_names = ["data", "X dtype", "system"]
    timeout = 600
    repeat = (3, 10, 30.0)
    number = 1

    def setup(self, name, dtype, system):
        import warnings

        self.X, self.y = cached(("fit-data", name, dtype), lambda: fit_data(name, dtype))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # warm-up: compiles (or loads) fastmlp's kernels for this dtype
            fit_estimator(system, name).set_params(max_iter=2).fit(self.X, self.y)

    def time_fit(self, name, dtype, system):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit_estimator(system, name).fit(self.X, self.y)


class FitLarge(LargeSettings, Fit):
    """The same on the mnist-shape data, ``max_iter=5``."""

    params = [["mnist-shape"], DTYPES, FIT_SYSTEMS]
    timeout = 2400


# ---------------------------------------------------------------- L-BFGS
#: The L-BFGS workload: 200,000 x 20 float64 rows, two classes from a fixed
#: nonlinear rule, ``MLPClassifier((64,), activation="logistic",
#: solver="lbfgs", tol=0)`` (one logistic output): the shape of the L-BFGS
#: table of scripts/dask_bench.py, whose Spark MLlib anchor it measures in
#: one process. Each timed fit runs ``LBFGS_ITERATIONS`` iterations.
LBFGS_ROWS, LBFGS_FEATURES, LBFGS_ITERATIONS = 200_000, 20, 10
LBFGS_SYSTEMS = ["fastmlp-sklearn", "sklearn"]


def lbfgs_data(seed=11):
    """(X, y) of the L-BFGS workload (scripts/dask_bench.py draws its own with seed 5)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((LBFGS_ROWS, LBFGS_FEATURES))
    teacher = rng.standard_normal(LBFGS_FEATURES)
    y = (np.tanh(X @ teacher / 2) + 0.3 * X[:, 0] * X[:, 1] > 0).astype(np.int64)
    return X, y


class Lbfgs:
    """``LBFGS_ITERATIONS`` iterations of L-BFGS (scipy's L-BFGS-B in both
    systems; an iteration evaluates the loss and gradient about 1.3 times) at
    one thread (``n_threads=1``; scikit-learn's BLAS capped at one by
    threadpoolctl) and at every core. fastmlp's full-batch loss and gradient
    runs in row blocks on numba's threads here, with the same result at either
    count."""

    params = [LBFGS_SYSTEMS, THREADS]
    param_names = ["system", "threads"]
    timeout = 600
    repeat = (3, 10, 30.0)
    number = 1

    def setup(self, system, threads):
        from . import require

        require("sklearn")
        self.X, self.y = cached("lbfgs-data", lbfgs_data)
        self._fit(system, threads, 1)  # warm-up: compiles (or loads) the kernels

    def _fit(self, system, threads, iterations):
        import contextlib
        import warnings

        from threadpoolctl import threadpool_limits

        if system == "sklearn":
            from sklearn.neural_network import MLPClassifier
            extra = {}
        else:
            from fastmlp.sklearn import MLPClassifier
            extra = {"n_threads": 1 if threads == "1" else None}
        model = MLPClassifier((64,), activation="logistic", solver="lbfgs", tol=0.0,
                              max_iter=iterations, random_state=0, **extra)
        with warnings.catch_warnings(), contextlib.ExitStack() as stack:
            warnings.simplefilter("ignore")
            if threads == "1" and system == "sklearn":
                stack.enter_context(threadpool_limits(1, user_api="blas"))
            model.fit(self.X, self.y)

    def time_fit(self, system, threads):
        self._fit(system, threads, LBFGS_ITERATIONS)
