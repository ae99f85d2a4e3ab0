"""Reproducible training, thread-safe prediction, fork safety and no memory growth.

Bit-identical results are promised for the same data, random_state, backend and
thread settings: BLAS libraries (OpenBLAS among them) may round differently
with a different number of threads, so every comparison here keeps those fixed.
"""

import concurrent.futures
import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
import threading
import tracemalloc
import warnings

import numpy as np
import pytest

from fastmlp import MLP, ConvergenceWarning

BACKENDS = ["numba", "numpy"]

_rng = np.random.default_rng(11)
# large enough that the products go to BLAS and predict works in several row chunks
X = _rng.standard_normal((3000, 40))
Y = (X[:, :3].sum(axis=1) > 0).astype(int) + (X[:, 3] > 1)
Y_REG = np.c_[X[:, 0] - 0.5 * X[:, 1], np.tanh(X[:, 2])]
X_PREDICT = _rng.standard_normal((9000, 40))


def quiet_fit(model, X_, y_):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X_, y_)


def train(backend, dtype="float32", solver="adam", task="classification", **kw):
    kw = {"hidden": (32, 16), "batch_size": 128, "epochs": 3, "random_state": 0, **kw}
    y = Y if task == "classification" else Y_REG
    return quiet_fit(MLP(backend=backend, dtype=dtype, solver=solver, **kw), X, y)


def digest(model):
    h = hashlib.sha256(model._net.params.tobytes())
    h.update(np.asarray(model.loss_curve_, dtype=np.float64).tobytes())
    return h.hexdigest()


# ------------------------------------------------------------ run to run
@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_same_inputs_give_bit_identical_models(backend, dtype, solver, task):
    a = train(backend, dtype, solver, task)
    b = train(backend, dtype, solver, task)
    for wa, wb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_, strict=True):
        assert wa.tobytes() == wb.tobytes()
    assert a.loss_curve_ == b.loss_curve_
    assert a.predict(X_PREDICT).tobytes() == b.predict(X_PREDICT).tobytes()
    c = train(backend, dtype, solver, task, random_state=1)
    assert c._net.params.tobytes() != a._net.params.tobytes()  # the seed matters


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_model_with_a_fixed_thread_count(backend):
    a, b = (train(backend, n_threads=1) for _ in range(2))
    assert a._net.params.tobytes() == b._net.params.tobytes()


def test_a_fresh_process_trains_the_same_models():
    """Nothing in the process (compiled-kernel caches, warm BLAS, earlier fits)
    changes the result: a new interpreter gets the same bits."""
    script = f"""
import sys, json, warnings
sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
warnings.simplefilter("ignore")
import test_determinism as t
print(json.dumps({{b + "-" + d: t.digest(t.train(b, d)) for b in t.BACKENDS
                   for d in ("float32", "float64")}}))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    here = {f"{b}-{d}": digest(train(b, d)) for b in BACKENDS for d in ("float32", "float64")}
    assert child == here


# ------------------------------------------------------------ threads
@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_predict_from_8_threads_at_once_matches_serial_calls(backend, task):
    model = train(backend, task=task)
    # slices of different sizes: some below, some above one prediction chunk
    slices = [slice(0, 9000), slice(17, 4113), slice(5000, 5001), slice(2, 8500, 3),
              slice(100, 3100), slice(0, 9000, 2), slice(8999, 9000), slice(42, 6042)]
    serial = {i: (model.predict(X_PREDICT[s]),
                  model.predict_proba(X_PREDICT[s]) if task == "classification" else None)
              for i, s in enumerate(slices)}
    start = threading.Barrier(8)

    def work(i):
        start.wait()  # all eight threads call predict at the same moment
        out = []
        for k in range(6):
            j = (i + k) % len(slices)
            pred = model.predict(X_PREDICT[slices[j]])
            proba = (model.predict_proba(X_PREDICT[slices[j]]) if task == "classification"
                     else None)
            out.append((j, pred, proba))
        return out

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(8), timeout=300))
    assert len(results) == 8
    for out in results:
        for j, pred, proba in out:
            assert pred.dtype == serial[j][0].dtype
            assert pred.tobytes() == serial[j][0].tobytes()
            if proba is not None:
                assert proba.tobytes() == serial[j][1].tobytes()


# ------------------------------------------------------------ fork
_FORKED = {}


def _child(part):
    """Runs in a forked child: predict with the parent's model, then train on."""
    model = _FORKED["model"]
    rows = np.array_split(np.arange(len(X_PREDICT)), 2)[part]
    proba = model.predict_proba(X_PREDICT[rows])
    model.partial_fit(X, Y)
    return part, proba, model._net.params.copy(), os.getpid()


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(),
                    reason="the fork start method exists only on POSIX")
@pytest.mark.parametrize("backend", BACKENDS)
def test_forked_children_predict_and_train_like_the_parent(backend):
    model = train(backend)
    model.predict_proba(X_PREDICT)  # the kernels, BLAS and thread pools are all in use
    _FORKED["model"] = model
    ctx = multiprocessing.get_context("fork")
    try:
        with warnings.catch_warnings():
            # Python 3.12+ warns that forking a multi-threaded process may deadlock:
            # this test is how we find out that it does not
            warnings.simplefilter("ignore", DeprecationWarning)
            with ctx.Pool(2) as pool:
                results = pool.map_async(_child, [0, 1]).get(timeout=120)
    finally:
        _FORKED.clear()
    # the same call in the parent (the same rows: a float32 row's last bits may depend
    # on how many rows one call computes, through BLAS's choice of kernel)
    parts = np.array_split(np.arange(len(X_PREDICT)), 2)
    expected = [model.predict_proba(X_PREDICT[rows]) for rows in parts]
    model.partial_fit(X, Y)
    assert sorted(r[0] for r in results) == [0, 1]
    assert all(r[3] != os.getpid() for r in results)
    for part, proba, params, _ in results:
        assert proba.tobytes() == expected[part].tobytes()
        assert params.tobytes() == model._net.params.tobytes()  # training after fork is the same


# ------------------------------------------------------------ memory
def _rss_kib():
    """The process's resident memory (Linux: /proc/self/status), in KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("/proc/self/status has no VmRSS line")


def _nrt_stats():
    """(allocations - frees) of numba's runtime, the arrays compiled code allocates."""
    from numba.core.runtime import _nrt_python, rtsys

    if not _nrt_python.memsys_stats_enabled():
        _nrt_python.memsys_enable_stats()
    stats = rtsys.get_allocation_stats()
    return stats.alloc - stats.free


def test_fifty_epochs_on_200k_rows_do_not_grow_memory():
    rng = np.random.default_rng(0)
    Xl = rng.standard_normal((200_000, 20), dtype=np.float32)
    yl = (Xl[:, 0] + 0.5 * Xl[:, 1] > 0).astype(np.int64)
    model = MLP((16,), batch_size=256, backend="numba", random_state=0)
    _nrt_stats()  # switch numba's allocation counters on
    tracemalloc.start()
    try:
        seen = {}
        for epoch in range(1, 51):
            model.partial_fit(Xl, yl)
            if epoch in (5, 50):
                seen[epoch] = (tracemalloc.get_traced_memory()[0], _rss_kib(), _nrt_stats())
    finally:
        tracemalloc.stop()
    assert model.n_iter_ == 50 and np.isfinite(model.loss_curve_).all()
    assert model.loss_curve_[-1] < model.loss_curve_[0]
    (py5, rss5, nrt5), (py50, rss50, nrt50) = seen[5], seen[50]
    # Python-visible allocations (NumPy arrays included): only loss_curve_ grows, by
    # a few bytes an epoch; leaking the epoch's shuffled order (1.6 MB) would be 70 MB
    assert py50 - py5 < 512 * 1024, (py5, py50)
    # the process as a whole, compiled kernels' memory included
    assert rss50 - rss5 < 24 * 1024, (rss5, rss50)
    # arrays the compiled kernels allocate are all freed again
    assert nrt50 == nrt5, (nrt5, nrt50)
