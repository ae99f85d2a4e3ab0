"""``fastmlp.dask.DataParallel`` on a real dask cluster (``distributed.LocalCluster``
of worker processes, the fixtures of test_dask.py), checked against fits in
this process:

- L-BFGS equals the in-memory fit on the concatenated blocks (classifier,
  regressor and ``MLP``, float64, relative 1e-6), with sample weights equal to
  repeating rows;
- blocks recomputed every round (``persist=False``) give the same model;
- model averaging is exact where it must be: one shard trained in rounds of
  ``sync_every`` minibatches is the in-memory fit; two shards averaged after
  every minibatch of plain SGD are the in-memory fit with twice the batch;
- averaged Adam reaches the in-memory fit's test accuracy within 2 points;
- lazy predictions equal in-memory ones; the fitted model pickles and predicts;
- an L-BFGS evaluation on persisted blocks is one call of each worker's
  holder actor, no task;
- bad input is refused and leaves no model; a worker killed mid-fit gives the
  same model (retries) or a failed fit that leaves the previous model; for
  L-BFGS the same model either way (the lost blocks are computed again);
- with ``persist=False``, data generated lazily, more than the memory limits
  of all workers together, trains with every worker's resident memory under
  its limit.
"""

import os
import pickle
import time

import numpy as np
import pytest

for _module in ("dask", "distributed", "dask_ml", "sklearn", "pandas", "psutil"):
    pytest.importorskip(_module, reason=f"the dask tests need {_module} "
                                        "(pip install fastmlp[dask])")

import dask.array as da  # noqa: E402
import dask.dataframe as dd  # noqa: E402
import pandas as pd  # noqa: E402
from distributed import KilledWorker  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402

import fastmlp  # noqa: E402
import fastmlp.dask as fdask  # noqa: E402
from fastmlp.dask import DataParallel  # noqa: E402
from fastmlp.sklearn import MLPClassifier, MLPRegressor  # noqa: E402
from test_dask import (MEMORY_LIMIT, _kill_during_chain, _PeakRSS, client,  # noqa: E402,F401
                       strict_client)

RTOL = 1e-6  # L-BFGS: the blocks' sums round differently from one sum over all rows
#: averaged Adam's test accuracy may trail the in-memory fit's by this much (points)
ADAM_MARGIN = 2.0

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning",
                                        "ignore::fastmlp.ConvergenceWarning")


def _task(n=2400, features=6, seed=0, classes=3):
    """A learnable classification task: labels from a fixed nonlinear teacher."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, features))
    score = np.stack([X[:, 0] + X[:, 1] ** 2, X[:, 2] * X[:, 3], -X[:, 0] + X[:, 4]], axis=1)
    y = np.argmax(score[:, :classes], axis=1)
    return X, y


def _dask(*arrays, chunk=600):
    return [da.from_array(a, chunks=(chunk,) + a.shape[1:]) for a in arrays]


def _assert_same(got, want, rtol):
    np.testing.assert_allclose(got._net.params, want._net.params, rtol=rtol,
                               atol=rtol * np.abs(want._net.params).max())


# --------------------------------------------------------------------- L-BFGS
@pytest.mark.parametrize("kind", ["classifier", "regressor", "mlp"])
def test_lbfgs_equals_in_memory_fit(client, kind):
    X, y = _task()
    if kind == "classifier":
        est = MLPClassifier((8,), solver="lbfgs", max_iter=25, random_state=0, alpha=1e-3)
    elif kind == "regressor":
        y = X[:, :2] @ [1.0, -2.0] + np.sin(X[:, 2])
        est = MLPRegressor(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=25, random_state=0, alpha=1e-3)
    else:
        est = fastmlp.MLP((8,), solver="lbfgs", epochs=25, random_state=0, dtype="float64")
    dX, dy = _dask(X, y)
    dp = DataParallel(est, client=client).fit(dX, dy)
    want = clone(est).fit(X, y)
    _assert_same(dp.estimator_, want, RTOL)
    assert dp.estimator_.n_iter_ == want.n_iter_
    assert dp.estimator_.loss_ == pytest.approx(want.loss_, rel=RTOL)
    assert dp.n_shards_ == 2
    assert "_net" not in est.__dict__  # the wrapped model is left alone


def test_lbfgs_sample_weights_equal_repeated_rows(client):
    X, y = _task(n=1200)
    w = np.random.default_rng(1).integers(0, 4, size=len(y)).astype(float)
    est = MLPClassifier((8,), solver="lbfgs", max_iter=20, random_state=0)
    dX, dy, dw = _dask(X, y, w, chunk=300)
    dp = DataParallel(est, client=client).fit(dX, dy, sample_weight=dw)
    repeat = np.repeat(np.arange(len(y)), w.astype(int))
    want = clone(est).fit(X[repeat], y[repeat])
    _assert_same(dp.estimator_, want, RTOL)


def test_lbfgs_evaluations_call_the_workers_holders_not_tasks(client, monkeypatch):
    """With persisted blocks, an evaluation is one call of each worker's holder
    actor: no task is submitted for it. With persist=False each is a round of
    tasks. The same model either way."""
    from fastmlp.dask import parallel

    submitted = []
    rounds = parallel._Rounds.__call__

    def spy(self, function, *args):
        submitted.append(function.__name__)
        return rounds(self, function, *args)

    monkeypatch.setattr(parallel._Rounds, "__call__", spy)
    X, y = _task(n=1200)
    est = MLPClassifier((8,), solver="lbfgs", max_iter=10, random_state=0)
    dX, dy = _dask(X, y, chunk=300)
    held = DataParallel(est, client=client).fit(dX, dy).estimator_
    assert "block_loss_gradient" not in submitted
    recomputed = DataParallel(est, persist=False, client=client).fit(dX, dy).estimator_
    assert submitted.count("block_loss_gradient") >= recomputed.n_iter_ >= 5
    _assert_same(held, recomputed, 0)


def test_holder_runs_a_call_on_the_event_loop_after_a_short_one(client):
    """A holder's call runs in a thread of its own, or on the worker's event
    loop where its previous call took at most ``INLINE_SECONDS``; either way
    on each of its blocks, in order."""
    import threading

    from fastmlp.dask.tasks import BlockHolder

    async def loop_thread():
        return threading.get_ident()

    def where(block, pause):  # pickled by value: the workers cannot import this module
        time.sleep(pause)
        return block, threading.get_ident()

    worker = sorted(client.scheduler_info()["workers"])[0]
    loop = client.run(loop_thread, workers=[worker])[worker]
    with client.as_current():
        holder = client.submit(BlockHolder, "a", "b", actor=True, workers=[worker],
                               pure=False).result()
        calls = [holder.each(where, 0.0).result()]  # the first call: in a thread
        for _ in range(20):  # short calls (one is enough unless the machine stalls)
            if holder.inline:
                break
            calls.append(holder.each(where, 0.0).result())
        assert holder.inline
        calls.append(holder.each(where, 2 * BlockHolder.INLINE_SECONDS).result())
        assert not holder.inline
        calls.append(holder.each(where, 0.0).result())
    for call in calls:
        assert [block for block, _ in call] == ["a", "b"]
    threads = [call[0][1] for call in calls]
    assert threads[0] != loop
    assert threads[-2] == loop  # after a short call: on the event loop, though long itself
    assert threads[-1] != loop  # after a long call: in a thread again


@pytest.mark.parametrize("solver", ["lbfgs", "adam"])
def test_recomputing_blocks_each_round_gives_the_same_model(client, solver):
    """persist=False: a task per block (a chain of them per shard for Adam)
    instead of a task per shard; the same arithmetic."""
    X, y = _task(n=1200)
    est = MLPClassifier((8,), solver=solver, max_iter=3, batch_size=64, random_state=0)
    dX, dy = _dask(X, y, chunk=300)
    kept = DataParallel(est, sync_every=7, client=client).fit(dX, dy).estimator_
    recomputed = DataParallel(est, sync_every=7, persist=False, client=client).fit(
        dX, dy).estimator_
    _assert_same(recomputed, kept, 0)


# -------------------------------------------------------------- averaging
def test_one_shard_in_rounds_of_sync_every_is_the_in_memory_fit(client):
    """Averaging one shard changes nothing: rounds of 3 minibatches pass the
    weights, Adam's moments and step on exactly."""
    X, y = _task(n=1024)
    est = MLPClassifier((8,), max_iter=4, batch_size=64, shuffle=False, random_state=0)
    dX, dy = _dask(X, y, chunk=256)  # whole minibatches per block: rounds span blocks
    dp = DataParallel(est, sync_every=3, n_shards=1, client=client).fit(dX, dy)
    want = clone(est).fit(X, y)
    _assert_same(dp.estimator_, want, 0)
    np.testing.assert_array_equal(dp.estimator_._net.state2, want._net.state2)
    assert dp.estimator_._net.step == want._net.step
    np.testing.assert_allclose(dp.estimator_.loss_curve_, want.loss_curve_, rtol=1e-12)
    assert (dp.estimator_.n_iter_, dp.estimator_.t_) == (want.n_iter_, want.t_)


def test_two_shards_averaged_every_minibatch_are_sgd_on_twice_the_batch(client):
    """Plain SGD without L2: the mean of two shards' steps from the same
    weights is one step on the union of their minibatches."""
    X, y = _task(n=1200)
    b, half = 50, 600
    est = MLPClassifier((8,), solver="sgd", momentum=0.0, alpha=0.0, batch_size=b,
                        learning_rate_init=0.05, max_iter=3, shuffle=False, random_state=0)
    dX, dy = _dask(X, y, chunk=300)
    dp = DataParallel(est, sync_every=1, client=client).fit(dX, dy)
    assert dp.n_shards_ == 2
    # in memory: batch k of 2b rows = shard 0's batch k, then shard 1's
    order = np.concatenate([np.r_[k * b:(k + 1) * b, half + k * b:half + (k + 1) * b]
                            for k in range(half // b)])
    want = clone(est).set_params(batch_size=2 * b).fit(X[order], y[order])
    _assert_same(dp.estimator_, want, 1e-9)
    np.testing.assert_allclose(dp.estimator_.loss_curve_, want.loss_curve_, rtol=1e-9)


def test_averaged_adam_reaches_the_in_memory_accuracy(client):
    X, y = _task(n=6000, seed=3)
    X_test, y_test = _task(n=2000, seed=4)
    est = MLPClassifier((32,), max_iter=30, random_state=0, learning_rate_init=0.01)
    dX, dy = _dask(X, y, chunk=1000)
    dp = DataParallel(est, client=client).fit(dX, dy)
    want = clone(est).fit(X, y)
    got, expected = dp.estimator_.score(X_test, y_test), want.score(X_test, y_test)
    assert expected > 0.9  # the task is learnable
    assert 100 * (expected - got) <= ADAM_MARGIN, (got, expected)
    assert dp.estimator_.n_iter_ == len(dp.estimator_.loss_curve_) == 30
    assert dp.estimator_.t_ == 30 * len(y)


@pytest.mark.parametrize("kind", ["classifier", "regressor", "mlp"])
def test_early_stopping_scores_the_averaged_model_and_keeps_the_best(client, kind):
    X, y = _task(n=2400, seed=5)
    if kind == "classifier":
        est = MLPClassifier((16,), max_iter=40, early_stopping=True, n_iter_no_change=3,
                            random_state=0, learning_rate_init=0.02)
    elif kind == "regressor":
        y = X[:, :2] @ [1.0, -2.0] + np.sin(X[:, 2])
        est = MLPRegressor(hidden_layer_sizes=(16,), max_iter=40, early_stopping=True,
                           n_iter_no_change=3, random_state=0, learning_rate_init=0.02)
    else:
        est = fastmlp.MLP((16,), epochs=40, validation=0.1, patience=3, random_state=0,
                          lr=0.02)
    dX, dy = _dask(X, y)
    fitted = DataParallel(est, client=client).fit(dX, dy).estimator_
    scores = fitted.validation_scores_
    assert len(scores) == fitted.n_iter_ < 40  # the stopping rule fired
    assert fitted.best_validation_score_ == max(scores)
    assert fitted.score(X, y) > (0.9 if kind != "regressor" else 0.8)  # it learned the task
    per_epoch = fitted.t_ / fitted.n_iter_  # rows trained on: about 10 % are held out
    assert per_epoch == int(per_epoch) and 0.89 * len(y) <= per_epoch <= 0.91 * len(y)


def test_warm_start_continues_from_the_fitted_model(client):
    X, y = _task(n=1200)
    est = MLPClassifier((8,), max_iter=3, warm_start=True, random_state=0)
    dX, dy = _dask(X, y)
    dp = DataParallel(est, client=client).fit(dX, dy)
    first = dp.estimator_
    dp.fit(dX, dy)
    assert dp.estimator_ is not first and dp.estimator_.n_iter_ == 3
    assert dp.estimator_.t_ == 6 * len(y)  # t_ counts on, as in memory
    assert not np.array_equal(dp.estimator_._net.params, first._net.params)


# ------------------------------------------------------- prediction, pickling
def test_lazy_predictions_equal_in_memory_ones(client):
    X, y = _task()
    dX, dy = _dask(X, y)
    dp = DataParallel(MLPClassifier((8,), max_iter=5, random_state=0), client=client)
    dp.fit(dX, dy)
    labels, proba = dp.predict(dX), dp.predict_proba(dX)
    assert isinstance(labels, da.Array) and labels.numblocks == (4,)
    np.testing.assert_array_equal(labels.compute(), dp.estimator_.predict(X))
    # a block's matrix products may round differently from the whole array's
    np.testing.assert_allclose(proba.compute(), dp.estimator_.predict_proba(X), rtol=1e-12)
    assert dp.score(dX, dy) == pytest.approx(dp.estimator_.score(X, y))


def test_dataframe_input_and_fitted_model_pickles_and_predicts(client, tmp_path):
    X, y = _task(n=1200)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    dX = dd.from_pandas(frame, npartitions=3)
    dy = dd.from_pandas(pd.Series(y), npartitions=3)
    est = fastmlp.MLP((8,), epochs=3, random_state=0)
    dp = DataParallel(est, client=client).fit(dX, dy)
    back = pickle.loads(pickle.dumps(dp.estimator_))
    np.testing.assert_array_equal(back.predict(X), dp.estimator_.predict(X))
    saved = fastmlp.MLP.load(dp.estimator_.save(str(tmp_path / "m.npz")))
    np.testing.assert_array_equal(saved.predict(X), dp.estimator_.predict(X))
    np.testing.assert_array_equal(dp.predict(dX).compute(), dp.estimator_.predict(X))


def test_wrapper_clones_with_its_parameters(client):
    dp = DataParallel(MLPClassifier((8,), max_iter=7), sync_every=2, n_shards=3,
                      client=client)
    copy_ = clone(dp)
    assert copy_.get_params()["estimator__max_iter"] == 7
    assert copy_.estimator is not dp.estimator
    assert (copy_.sync_every, copy_.n_shards, copy_.persist) == (2, 3, True)
    assert copy_.client is client  # a connection is shared, not copied


# ---------------------------------------------------------------- bad input
def test_bad_input_is_refused_and_leaves_no_model(client):
    X, y = _task(n=1200)
    est = MLPClassifier((8,), max_iter=2, random_state=0)
    dp = DataParallel(est, client=client)
    bad = X.copy()
    bad[950, 2] = np.nan
    dX, dy, dbad = _dask(X, y, bad, chunk=300)
    with pytest.raises(ValueError, match="row block 3.*NaN"):
        dp.fit(dbad, dy)
    with pytest.raises(ValueError, match="row block 3.*NaN"):
        DataParallel(est, persist=False, client=client).fit(dbad, dy)
    with pytest.raises(ValueError, match="y has 1199 rows, X has 1200"):
        dp.fit(dX, dy[:-1])
    with pytest.raises(ValueError, match="split along its columns"):
        dp.fit(dX.rechunk((300, 3)), dy)
    with pytest.raises(TypeError, match="fastmlp's models"):
        DataParallel(object(), client=client).fit(dX, dy)
    with pytest.raises(ValueError, match="sync_every"):
        DataParallel(est, sync_every=0, client=client).fit(dX, dy)
    assert "estimator_" not in dp.__dict__
    dp.fit(dX, dy)  # a good fit after them, then a bad one: the good model stays
    good = dp.estimator_
    with pytest.raises(ValueError, match="NaN"):
        dp.fit(dbad, dy)
    assert dp.estimator_ is good


# ------------------------------------------------------------ killed worker
@pytest.mark.parametrize("retries", [True, False], ids=["retried", "no-retries"])
def test_worker_killed_mid_fit(client, strict_client, retries):
    """A killed worker's shard is trained again from the same start: the model
    is the undisturbed one; without retries the fit fails and the previous
    model stays."""
    use = client if retries else strict_client
    X, y = _task(n=24000, features=20, seed=6)
    est = MLPClassifier((256,), max_iter=4, random_state=0)
    dX, dy = _dask(X, y, chunk=3000)
    dp = DataParallel(est, client=use)
    before = dp.fit(dX, dy).estimator_
    killer = _kill_during_chain(use, "dp-train-block-", from_step=3)
    try:
        if retries:
            dp.fit(dX, dy)
        else:
            with pytest.raises(KilledWorker):
                dp.fit(dX, dy)
    finally:
        killer.done.set()
        killer.join()
    assert killer.killed is not None, "the fit ended before a worker could be killed"
    use.wait_for_workers(2, timeout=60)
    if retries:
        _assert_same(dp.estimator_, before, 0)
    else:
        assert dp.estimator_ is before


@pytest.mark.parametrize("retries", [True, False], ids=["retried", "no-retries"])
def test_lbfgs_worker_killed_mid_fit_gives_the_same_model(client, strict_client, retries,
                                                          monkeypatch):
    """A worker killed between two evaluations of an L-BFGS fit takes its holder
    and its blocks with it: that evaluation and the rest run as tasks, which
    compute the lost blocks again on the other worker (no task was running on
    the killed one, so even a cluster without retries goes on): the model of
    the undisturbed fit. (A task sent to the worker in the moments before the
    scheduler sees it die counts as one of its failures, as in any dask
    computation; the evaluation here starts after that.)"""
    import signal

    from fastmlp.dask import parallel

    use = client if retries else strict_client
    X, y = _task(n=2400)
    est = MLPClassifier((8,), solver="lbfgs", max_iter=15, random_state=0, alpha=1e-3)
    dX, dy = _dask(X, y)
    want = DataParallel(est, client=use).fit(dX, dy).estimator_
    pids = use.run(os.getpid)
    each_unit = parallel._Rounds.each_unit
    seen = {"calls": 0, "killed": None, "held": []}

    def kill_before_the_third(self, function, *args):
        seen["calls"] += 1
        seen["held"].append(self.holders is not None)
        if seen["calls"] == 3:
            holder = self.holders[0][1]
            address = sorted(use.who_has([holder])[holder.key])[0]
            os.kill(pids[address], signal.SIGKILL)
            seen["killed"] = address
            # wait until the scheduler has seen it go: a task sent to it before would
            # count as its failure on the cluster without retries
            deadline = time.monotonic() + 60
            while address in use.scheduler_info(n_workers=-1)["workers"]:
                assert time.monotonic() < deadline, "the scheduler never saw the worker die"
                time.sleep(0.01)
        return each_unit(self, function, *args)

    monkeypatch.setattr(parallel._Rounds, "each_unit", kill_before_the_third)
    try:
        got = DataParallel(est, client=use).fit(dX, dy).estimator_
    finally:
        use.wait_for_workers(2, timeout=60)  # the nanny restarts the killed worker
    assert seen["killed"] is not None and seen["held"][:3] == [True] * 3
    assert not any(seen["held"][3:])  # tasks after the loss
    _assert_same(got, want, 0)
    assert got.n_iter_ == want.n_iter_


# ---------------------------------------------------------------- out of core
def test_out_of_core_fit_stays_under_the_memory_limit(strict_client):
    """As test_dask.py's Incremental test: 1.64 GB of float64 rows generated
    lazily for two workers limited to 800 MB each; the blocks are generated
    once for the survey of the labels and once for the epoch."""
    features, block = 50, 100_000
    rows = 41 * block
    X = da.random.default_rng(0).standard_normal((rows, features), chunks=(block, features))
    w = np.linspace(-1, 1, features)
    y = (X @ w > 0).astype("int64")
    assert X.nbytes > 2 * MEMORY_LIMIT
    pids = strict_client.run(os.getpid)
    sampler = _PeakRSS(pids.values())
    sampler.start()
    try:
        est = MLPClassifier((16,), max_iter=1, random_state=0)
        dp = DataParallel(est, persist=False, client=strict_client).fit(X, y)
    finally:
        sampler.halt.set()
        sampler.join()
    assert sampler.samples > 100
    assert max(sampler.peak.values()) < MEMORY_LIMIT, sampler.peak
    assert strict_client.run(os.getpid) == pids  # no worker was restarted
    assert dp.estimator_.t_ == rows  # every row, once
    X_test = np.random.default_rng(1).standard_normal((20_000, features))
    assert dp.estimator_.score(X_test, X_test @ w > 0) > 0.97


def test_thread_limits_and_warmup_work_with_it(client):
    assert set(fdask.limit_threads(client).values()) == {1}  # restarts the workers
    fdask.warmup(client)
    X, y = _task(n=1200)
    est = MLPClassifier((8,), solver="lbfgs", max_iter=5, random_state=0)
    dX, dy = _dask(X, y)
    _assert_same(DataParallel(est, client=client).fit(dX, dy).estimator_,
                 clone(est).fit(X, y), RTOL)


# ------------------------------------------------------------------ threads
@pytest.mark.skipif(fastmlp.threads.pool_size() < 2, reason="needs numba's pool of 2 threads")
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_worker_tasks_run_row_blocks_on_the_models_thread_count(monkeypatch, solver):
    """A worker's training task gives a row-block kernel the model's ``n_threads``
    as numba's count (not only a BLAS cap): the count is read inside the kernel
    calls of a fit on an in-process cluster, whose worker threads start at numba's
    whole pool."""
    from distributed import Client, LocalCluster
    import numba

    from fastmlp.kernels import api

    seen = []
    epoch, loss_gradient = api.Kernels._epoch, api.Kernels._loss_gradient

    def spy(kernel):
        def call(self, *args):
            seen.append(numba.get_num_threads())
            return kernel(self, *args)
        return call

    monkeypatch.setattr(api.Kernels, "_epoch", spy(epoch))
    monkeypatch.setattr(api.Kernels, "_loss_gradient", spy(loss_gradient))
    X, y = _task(n=1200)
    # 6 -> 32 -> 3 in batches of 200 (and L-BFGS's 4096-row chunks): row blocks
    assert api.epoch_path(X, np.array([6, 32, 3]), 200, api.OUTPUTS["softmax"],
                          api.SOLVERS["adam"]) == "train_blocks"
    assert api.loss_path(np.array([6, 32, 3]), 4096) == "loss_gradient_blocks"
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=":0") as cluster, Client(cluster) as c:
        DataParallel(MLPClassifier((32,), solver=solver, max_iter=2, n_threads=1,
                                   random_state=0), client=c).fit(*_dask(X, y))
    assert seen and set(seen) == {1}
