"""The row-block kernels on numba's threads: one result for any thread count, and
safe wherever models run.

- the weights, losses and stopping decisions after training are bit-identical for
  ``n_threads`` 1, 2, ... (in this process, and up to 4 threads in a process whose
  numba pool is sized to 4, more threads than this machine may have cores), for
  every kernel that splits rows: ``train_blocks`` (dense and CSR X, sample
  weights), ``train_columns`` and ``loss_gradient_blocks`` (L-BFGS);
- the parallel kernels give what their serial twins give;
- a child forked after the parent trained in parallel (multiprocessing's fork,
  where GNU OpenMP stops a child that enters a parallel region) trains the
  identical model; so does a process on numba's ``workqueue`` layer, even when
  two threads train at once;
- two Python threads training two models at once (one in row blocks, one on
  BLAS's threads) give the models trained one after the other, and leave BLAS's
  thread count as they found it;
- ``n_threads`` and the thread variables set how many threads run; joblib's
  workers (``n_jobs``) train what one process trains.
"""

import json
import multiprocessing
import warnings
import os
import subprocess
import sys
import textwrap
import threading

import numba
import numpy as np
import pytest
import scipy.sparse

import fastmlp
from fastmlp import MLP, threads
from fastmlp.kernels import api, config

CORES = threads.default_threads()
#: Thread counts tried in this process: 1, 2 and every core numba's pool allows.
COUNTS = sorted({1, 2, min(threads.pool_size(), max(CORES, 2))} & set(
    range(1, threads.pool_size() + 1)))

ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu")


def _data(n=600, d=12, k=3, seed=0, regression=False):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    W = rng.standard_normal((d, k))
    Z = np.tanh(X @ W) + 0.3 * rng.standard_normal((n, k))
    if regression:
        return X, Z
    return X, np.argmax(Z, axis=1)


def _state(model):
    """Everything training leaves that the thread count must not change."""
    net = model._net
    state = [a.tobytes() for a in (net.state1, net.state2) if a is not None]
    return (net.params.tobytes(), state, net.step, float(model.loss_).hex(),
            model.n_iter_, [float(v).hex() for v in getattr(model, "loss_curve_", None) or ()],
            [float(v).hex() for v in getattr(model, "validation_scores_", None) or ()])


def _fit(n_threads, X, y, sample_weight=None, **params):
    params = {"hidden": (40,), "epochs": 6, "random_state": 0, "tol": 0.0, **params}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastmlp.ConvergenceWarning)
        return MLP(n_threads=n_threads, **params).fit(X, y, sample_weight=sample_weight)


def _kernel_of(X, y, **params):
    """The kernel that trains a fit of ``MLP(**params)`` on X, y."""
    hidden = params.get("hidden", (40,))
    k = y.shape[1] if y.ndim == 2 else max(2, len(np.unique(y)))
    sizes = np.array([X.shape[1], *hidden, k])
    if params.get("solver") == "lbfgs":
        return api.loss_path(sizes, min(X.shape[0], 4096))
    kernel_X = api.as_input(X[:1], np.float64, convert=True)
    output = api.OUTPUTS["squared" if y.ndim == 2 else "softmax"]
    return api.epoch_path(kernel_X, sizes, min(params.get("batch_size", 200), X.shape[0]),
                          output, api.SOLVERS[params.get("solver", "adam")])


def _assert_same_for_every_count(X, y, path, **params):
    assert _kernel_of(X, y, **params) == path
    states = {count: _state(_fit(count, X, y, **params)) for count in COUNTS}
    for count, state in states.items():
        assert state == states[COUNTS[0]], f"{path}: {count} threads trained another model"


# ------------------------------------------------------------ same bits
@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_row_blocks_give_the_same_bits_for_every_thread_count(dtype, activation, solver):
    """train_blocks: every activation, both solvers, both dtypes; with an L2 term and a
    validation split, so that n_iter_ and the validation scores are compared too."""
    X, y = _data()
    _assert_same_for_every_count(X, y, "train_blocks", activation=activation, solver=solver,
                                 dtype=dtype, batch_size=150, l2=1e-3, validation=0.2,
                                 patience=2, tol=1e-3)


@pytest.mark.parametrize("task", ["binary", "regression", "multi-output"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_row_blocks_give_the_same_bits_for_every_output(dtype, task):
    """The other outputs: two classes (softmax over two units), squared error with one
    and with three outputs."""
    if task == "binary":
        X, y = _data(k=2)
    else:
        X, Y = _data(k=3 if task == "multi-output" else 1, regression=True)
        y = Y if task == "multi-output" else Y[:, :1]
    _assert_same_for_every_count(X, y, "train_blocks", dtype=dtype, batch_size=128,
                                 solver="sgd", momentum=0.9, nesterov=True)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_row_blocks_give_the_same_bits_with_sparse_input_and_weights(dtype):
    X, y = _data()
    X[np.abs(X) < 0.8] = 0.0
    w = np.random.default_rng(1).uniform(0.0, 2.0, X.shape[0])
    states = {}
    for count in COUNTS:
        states[count] = _state(_fit(count, scipy.sparse.csr_matrix(X), y, sample_weight=w,
                                    epochs=4, dtype=dtype, batch_size=100))
    assert all(state == states[1] for state in states.values())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_narrow_networks_on_large_batches_give_the_same_bits(dtype):
    """train_columns over more feature-major blocks than run at once."""
    X, y = _data(n=(config.BLOCK_MAX + 2) * config.COLUMNS_BLOCK + 17, d=6, k=2)
    _assert_same_for_every_count(X, y, "train_columns", hidden=(4,), activation="tanh",
                                 dtype=dtype, batch_size=X.shape[0], epochs=3)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_lbfgs_in_row_blocks_gives_the_same_bits(task):
    X, y = _data(n=3 * 4096 + 77, regression=task == "regression")
    _assert_same_for_every_count(X, y, "loss_gradient_blocks", solver="lbfgs", epochs=15,
                                 dtype="float64")


def test_blas_sized_networks_train_as_before():
    """A network above the cost model's size trains on BLAS's threads (no same-bits
    promise): it still trains, for every thread count, to the same model up to
    rounding."""
    X, y = _data(n=300, d=config.BLOCKS_MAX_PARAMS // 100)
    sizes = np.array([X.shape[1], 100, 3])
    assert api.epoch_path(X, sizes, 200, 0, 1) == "train_epoch"
    models = [_fit(count, X, y, hidden=(100,), epochs=3) for count in COUNTS]
    for model in models[1:]:
        np.testing.assert_allclose(model._net.params, models[0]._net.params, rtol=1e-4,
                                   atol=1e-6)


def test_serial_twins_compute_what_the_parallel_kernels_compute():
    """Every row-block kernel against its serial twin, one epoch (one loss) each."""
    from fastmlp.kernels import numba_core as core

    X, y = _data(n=700)
    Xr = api.read_only(X)
    for name, sizes, batch in (("train_blocks", [12, 40, 3], 200),
                               ("train_columns", [12, 5, 3], 700),
                               ("loss_gradient_blocks", [12, 40, 3], 512)):
        sizes = np.array(sizes)
        params0 = np.random.default_rng(2).standard_normal(api.n_params(sizes)) * 0.2
        results = []
        for fn in (getattr(core, name), getattr(core, name + "_serial")):
            p, g, s1, s2 = params0.copy(), np.zeros_like(params0), np.zeros_like(params0), \
                np.zeros_like(params0)
            work = np.empty(api.work_size(sizes, batch))
            if name.startswith("loss"):
                out = fn(Xr, y, np.empty((0, 0)), np.empty(0), p, g, sizes, 3, 0, 1e-3,
                         batch, work)
            else:
                out = fn(Xr, y, np.empty((0, 0)), np.empty(0),
                         np.random.default_rng(3).permutation(len(y)), p, g, s1, s2, 0,
                         sizes, 3, 0, 1, 1e-3, 0.9, False, 0.9, 0.999, 1e-8, 1e-3, batch,
                         work)
            results.append((out, p.tobytes(), g.tobytes(), s1.tobytes(), s2.tobytes()))
        assert results[0] == results[1], name


# ------------------------------------------------- more threads than cores
_MANY = textwrap.dedent("""
    import json, sys
    import numpy as np
    from fastmlp import MLP, threads
    X = np.load(sys.argv[1]); y = np.load(sys.argv[2])
    out = {"pool": threads.pool_size(), "default": threads.default_threads()}
    for count in (1, 2, 3, 4):
        model = MLP(hidden=(40,), epochs=6, random_state=0, tol=0.0, batch_size=150,
                    n_threads=count).fit(X, y)
        out[count] = model._net.params.tobytes().hex()
    print(json.dumps(out))
""")


#: Thread variables a subprocess does not inherit from this process (dask's local
#: nannies set them here for the workers they spawn).
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                     "MKL_NUM_THREADS")


def _environment(**variables):
    env = {k: v for k, v in os.environ.items() if k not in _THREAD_VARIABLES}
    return {**env, **variables}


def _run(code, *args, env=None):
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                            text=True, env=_environment(**(env or {})), timeout=600)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_up_to_four_threads_give_the_bits_of_one(tmp_path):
    """In a process whose numba pool has 4 threads (more than this machine may have
    cores): 1, 2, 3 and 4 threads train the model this process trains."""
    X, y = _data()
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    out = json.loads(_run(_MANY, str(tmp_path / "X.npy"), str(tmp_path / "y.npy"),
                          env={"NUMBA_NUM_THREADS": "4"}))
    assert out.pop("pool") == 4
    assert out.pop("default") == min(4, threads.cores())
    here = _fit(1, X, y, batch_size=150)._net.params.tobytes().hex()
    assert set(out.values()) == {here}


_DEFAULTS = textwrap.dedent("""
    import json
    import numba
    from fastmlp import threads
    seen = {}
    with threads.limits(None, "numba", "train_blocks"):
        seen["inside"] = numba.get_num_threads()
        seen["blas"] = sorted({lib.get_num_threads() for lib in threads.blas_libraries("numba")})
    with threads.limits(1, "numba", "train_blocks"):
        seen["capped"] = numba.get_num_threads()
    seen["default"] = threads.default_threads()
    print(json.dumps(seen))
""")


@pytest.mark.parametrize("variables,expected", [
    ({}, lambda cores: cores),
    ({"OMP_NUM_THREADS": "1"}, lambda cores: 1),
    ({"NUMBA_NUM_THREADS": "1"}, lambda cores: 1),
    ({"OMP_NUM_THREADS": "1,1"}, lambda cores: 1),
])
def test_thread_variables_decide_the_default(variables, expected):
    """n_threads=None: the cores this process may use, capped by OMP_NUM_THREADS and
    NUMBA_NUM_THREADS; BLAS runs at one thread while the blocks run."""
    result = subprocess.run([sys.executable, "-c", _DEFAULTS], capture_output=True, text=True,
                            env=_environment(**variables), timeout=300)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    want = expected(threads.cores())
    assert seen["default"] == seen["inside"] == want
    assert seen["blas"] == [1]
    assert seen["capped"] == 1


def test_n_threads_is_checked():
    k = fastmlp.kernels.get("numba")
    X, y = _data(n=100)
    with pytest.raises(ValueError, match="n_threads must be an integer >= 1"):
        k.train_epoch(X, y, np.arange(100), np.zeros(api.n_params([12, 3])), np.zeros(39),
                      np.zeros(39), np.zeros(39), 0, [12, 3], "relu", "softmax", "sgd", 0.1,
                      n_threads=0)


# ------------------------------------------------------------ fork, threads
def _child_fit(conn, X, y):
    try:
        model = _fit(2, X, y)
        conn.send((model._net.params.tobytes(), model.predict(X).tobytes()))
    except BaseException as exc:  # the parent reports it
        conn.send(repr(exc))
    finally:
        conn.close()


def test_forked_child_after_a_parallel_fit_trains_the_same_model():
    """The parent trains in row blocks on numba's threads, then forks: the child's
    fit (on the serial twins where GNU OpenMP cannot run there) is the parent's."""
    X, y = _data()
    parent = _fit(2, X, y)
    assert fastmlp.kernels.get("numba")._core.parallel_ok()
    ctx = multiprocessing.get_context("fork")
    here, there = ctx.Pipe()
    child = ctx.Process(target=_child_fit, args=(there, X, y))
    child.start()
    got = here.recv() if here.poll(600) else "no answer"
    child.join(60)
    assert child.exitcode == 0, got
    assert not isinstance(got, str), got
    params, labels = got
    assert params == parent._net.params.tobytes()
    assert labels == parent.predict(X).tobytes()


_WORKQUEUE = textwrap.dedent("""
    import json, threading
    import numpy as np
    from fastmlp import MLP, kernels
    rng = np.random.default_rng(0)
    X = rng.standard_normal((600, 12)); y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
    fits = {}
    def fit(key):
        fits[key] = MLP(hidden=(40,), epochs=4, random_state=0, tol=0.0,
                        n_threads=2).fit(X, y)._net.params.tobytes().hex()
    workers = [threading.Thread(target=fit, args=(i,)) for i in range(2)]
    for t in workers: t.start()
    for t in workers: t.join()
    core = kernels.get("numba")._core
    print(json.dumps({"layer": core.threading_layer(), "parallel": core.parallel_ok(),
                      "fits": fits}))
""")


def test_workqueue_layer_runs_the_serial_twins_with_the_same_results():
    """numba's workqueue layer stops a process that enters two parallel regions at
    once: there the row-block kernels run serially, with the same results."""
    out = json.loads(_run(_WORKQUEUE, env={"NUMBA_THREADING_LAYER": "workqueue"}))
    assert out["layer"] == "workqueue" and out["parallel"] is False
    rng = np.random.default_rng(0)
    X = rng.standard_normal((600, 12))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
    here = _fit(2, X, y, epochs=4)
    assert set(out["fits"].values()) == {here._net.params.tobytes().hex()}


def test_two_threads_training_at_once_give_the_models_trained_in_turn():
    """One model in row blocks, one on BLAS's threads, each trained twice at once in
    four Python threads: the models of the lone fits, and BLAS's thread count put
    back as it was."""
    X, y = _data()
    Xw, yw = _data(n=400, d=config.BLOCKS_MAX_PARAMS // 100, seed=1)
    jobs = {"blocks": lambda: _fit(None, X, y),
            "blas": lambda: _fit(None, Xw, yw, hidden=(100,), epochs=2)}
    alone = {name: job()._net.params.copy() for name, job in jobs.items()}
    before = [lib.get_num_threads() for lib in threads.blas_libraries("numba")]
    results, errors = {}, []

    def run(key, job):
        try:
            results[key] = job()._net.params.copy()
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=run, args=((name, i), job))
               for i in range(2) for name, job in jobs.items()]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert not errors, errors
    for (name, _), params in results.items():
        if name == "blocks":
            np.testing.assert_array_equal(params, alone[name])
        else:  # BLAS may run on fewer threads meanwhile: the same model to rounding
            np.testing.assert_allclose(params, alone[name], rtol=1e-4, atol=1e-6)
    assert [lib.get_num_threads() for lib in threads.blas_libraries("numba")] == before
    assert numba.get_num_threads() == threads.pool_size()


def _counts(libs):
    return {os.path.realpath(lib.filepath): lib.get_num_threads() for lib in libs}


def test_lbfgs_holds_the_solvers_blas_at_one_thread(monkeypatch):
    """scipy's L-BFGS-B runs its own steps on SciPy's BLAS; while it runs, every BLAS
    library the kernels do not call is held at one thread (its spinning threads took a
    core from the kernels'), and the row-block kernel's BLAS too; after it, each
    library's count is what it was."""
    import scipy.optimize

    X, y = _data()
    assert _kernel_of(X, y, solver="lbfgs") == "loss_gradient_blocks"
    threads.driver_libraries("numba")  # SciPy's BLAS loaded, to be seen below
    libs = threads._loaded_blas()
    for lib in libs:  # two threads each, where the machine allows, so a cap shows
        lib.set_num_threads(min(2, max(threads.cores(), 1)))
    before = _counts(libs)
    own = {os.path.realpath(lib.filepath) for lib in threads.blas_libraries("numba")}
    others = set(before) - own
    assert others, "the kernels call every BLAS library loaded"
    seen = []
    minimize = scipy.optimize.minimize

    def watched(fun, x0, **kwargs):
        def counted(x):
            seen.append(_counts(libs))
            return fun(x)
        return minimize(counted, x0, **kwargs)

    monkeypatch.setattr(scipy.optimize, "minimize", watched)
    _fit(None, X, y, solver="lbfgs", epochs=5)
    assert seen and all(set(counts.values()) == {1} for counts in seen), seen
    assert _counts(libs) == before


def test_caps_on_one_library_from_two_backends_are_put_back_in_any_order():
    """Calls in flight that cap one BLAS library for different backends (numpy's own
    library serves both backends' products): the library runs at the smallest
    request until the last call ends, and then at the count found before the first."""
    shared = set(_counts(threads.blas_libraries("numpy"))) & set(
        _counts(threads.blas_libraries("numba")))
    assert shared  # numpy's own library: the numba kernels' too, or among all they cap
    lib = next(lib for lib in threads.blas_libraries("numba")
               if os.path.realpath(lib.filepath) in shared)
    lib.set_num_threads(min(2, max(threads.cores(), 1)))
    before = lib.get_num_threads()
    blocks = threads.limits(2, "numba", "train_blocks")  # this library at one thread
    products = threads.limits(1, "numpy")
    blocks.__enter__()
    products.__enter__()
    blocks.__exit__(None, None, None)
    assert lib.get_num_threads() == 1  # the numpy backend's call still runs
    products.__exit__(None, None, None)
    assert lib.get_num_threads() == before


def test_joblib_workers_train_what_one_process_trains():
    """GridSearchCV with n_jobs=2 (loky's worker processes, whose thread variables
    share the cores out) finds the scores of n_jobs=1."""
    from sklearn.model_selection import GridSearchCV

    from fastmlp.sklearn import MLPClassifier

    X, y = _data(n=400)
    grid = {"alpha": [1e-4, 1e-2], "hidden_layer_sizes": [(40,), (24,)]}
    searches = [GridSearchCV(MLPClassifier(max_iter=5, random_state=0, batch_size=100), grid,
                             cv=2, n_jobs=n_jobs).fit(X, y) for n_jobs in (1, 2)]
    np.testing.assert_array_equal(searches[0].cv_results_["mean_test_score"],
                                  searches[1].cv_results_["mean_test_score"])
    assert searches[0].best_params_ == searches[1].best_params_
    # loky shares the cores out among its workers through OMP_NUM_THREADS: each worker's
    # row blocks use its share, not every core
    from joblib import Parallel, delayed

    seen = Parallel(n_jobs=2)(delayed(threads.default_threads)() for _ in range(2))
    assert seen == [max(1, threads.cores() // 2)] * 2
