"""``DataParallel``: one fastmlp model trained by all the workers of a dask
cluster at once, each on the row blocks it holds.

The row blocks are checked, encoded and persisted on the workers once per
``fit`` (``persist=False``: recomputed from their source in every round, for
data larger than the cluster's memory); only the model's numbers travel.

- **L-BFGS** is exact: every evaluation of the loss and gradient that scipy's
  L-BFGS-B asks for computes each block's compiled full-batch loss and
  gradient (without the L2 term) where the block is: with persisted blocks
  one call per worker of an actor holding that worker's blocks
  (``tasks.BlockHolder``: no scheduler in the round), else (and from the
  evaluation on which a worker was lost) one task per block. The client adds
  the blocks' weighted sums in block order, divides by the total sample
  weight (the rows, without weights) and adds the L2 term once. The driver is the
  one an in-memory fit uses (``Engine._lbfgs``), so the model equals the
  in-memory fit on the concatenated blocks up to rounding.
- **SGD and Adam** average models. The blocks are grouped, in block order,
  into ``n_shards`` shards (default: one per worker), each kept on one
  worker. Every round, each shard trains from the same weights and optimiser
  state for one epoch of its rows (or for ``sync_every`` minibatches of
  it): its blocks in order, each block's rows in an order drawn for the
  epoch from the model's ``random_state``, in minibatches of the model's
  batch size (a block's last one may be smaller): one task per shard when
  the blocks are persisted, else one task per block in a chain, so that a
  task holds one block, never a whole shard. The client
  then averages weights and optimiser state (Adam's two moments, SGD's
  velocity), each shard weighted by the rows it trained on in the round
  (their sample-weight sum, with weights). What the averaged model's records
  mean:

  - Adam's step count (which sets its bias correction) advances by the
    weighted mean, rounded, of the minibatches the shards took in the round;
  - ``n_iter_``: epochs, i.e. passes of every shard over its rows, as in
    memory; ``t_``: rows trained on, all shards together (the whole data's
    training rows per epoch, as in memory);
  - ``loss_curve_``: per epoch, the training loss the shards saw while
    training, the row-weighted mean of their epoch losses (each computed as
    in memory, minibatch by minibatch);
  - the stopping rule (``tol``, ``n_iter_no_change``/``patience``), the
    learning-rate schedules, ``early_stopping``/``validation`` (its share of
    each block's rows held out, per class for a classifier; the score is of
    the averaged model on all of them) and ``verbose`` apply once per
    epoch, to these records.

  A shard whose worker is lost is trained again elsewhere from the same start
  and seed, so the model does not depend on which worker trained what.
"""

import copy
import time
from numbers import Integral

import dask
import numpy as np
from sklearn.base import BaseEstimator, clone

from ..engine import LearningRate
from . import _row_blocks, models, tasks

__all__ = ["DataParallel"]

class DataParallel(BaseEstimator):
    """Train a fastmlp model on a dask cluster with every worker at once.

    Parameters
    ----------
    estimator : fastmlp.sklearn.MLPClassifier, MLPRegressor or fastmlp.MLP
        The model to train (not changed; ``fit`` trains a clone). Its own
        parameters keep their meaning: solver, epochs, stopping rule, early
        stopping, ``warm_start`` (continue from ``estimator_``), verbose.
    sync_every : None or int
        SGD and Adam: minibatches each shard trains between two averagings;
        None: once per epoch. (L-BFGS synchronises at every evaluation.)
    n_shards : None or int
        SGD and Adam: shards the row blocks are grouped into, in block order;
        None: one per worker (at most one per block). (L-BFGS: one group of
        blocks per worker.)
    persist : bool
        Keep the checked and encoded blocks in the workers' memory during
        ``fit``; False recomputes them from their source every round.
    client : distributed.Client or None
        None: the current client (``distributed.default_client()``).

    Attributes (after ``fit``)
    --------------------------
    estimator_ : the fitted model, an ordinary one of the wrapped class
    n_shards_ : shards trained in parallel (L-BFGS: groups of blocks, one per worker)
    """

    def __init__(self, estimator, *, sync_every=None, n_shards=None, persist=True,
                 client=None):
        self.estimator = estimator
        self.sync_every = sync_every
        self.n_shards = n_shards
        self.persist = persist
        self.client = client

    def __sklearn_clone__(self):
        """A clone with a clone of the wrapped model and the same client (a
        connection, which is shared rather than copied)."""
        params = self.get_params(deep=False)
        return type(self)(clone(params.pop("estimator")), **params)

    # --------------------------------------------------------------- fit
    def fit(self, X, y, sample_weight=None):
        """Train on X, y: a dask array split by rows and a dask array (or dask
        DataFrame and Series split alike), with ``sample_weight`` None or
        split like y. Returns self; ``estimator_`` changes only when the whole
        fit succeeds."""
        fam = models.family(self.estimator)
        for name in ("sync_every", "n_shards"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, Integral)
                                      or value < 1):
                raise ValueError(f"{name} must be None or an integer >= 1, got {value!r}")
        parts = _blocks(X, y, sample_weight)
        client = self.client if self.client is not None else _default_client()
        workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
        if not workers:
            raise ValueError("the cluster has no workers")
        token = dask.base.tokenize(time.time_ns(), id(self))[:12]
        est, s, blocks, n_rows, classify = self._start(fam, client, parts, token)
        lbfgs = est._net.solver == "lbfgs"
        n_shards = min(len(workers) if lbfgs or not self.n_shards else self.n_shards,
                       len(blocks))
        shards = [g.tolist() for g in np.array_split(np.arange(len(blocks)), n_shards)]
        if self.persist:
            blocks = _persist(client, blocks, shards, workers)
        spec = tasks.Spec(est._net.sizes, est._net.activation, est._net.output,
                          est._net.solver, est.backend_, s, bool(est.shuffle), classify)
        run = _Rounds(client, blocks, spec, token)
        if lbfgs:
            _fit_lbfgs(est, fam, run, s)
        else:
            _fit_averaged(est, fam, run, s, shards, self.sync_every, n_rows,
                          validating=bool(fam.validation_fraction(est)))
        self.estimator_ = est
        self.n_shards_ = n_shards
        return self

    def _start(self, fam, client, parts, token):
        """(the model to train, set up for the whole data; its Settings; the
        delayed prepared blocks; the rows; whether y holds labels) from
        ``_blocks``'s ``parts``. Learns the rows and, for a classifier, the
        classes and their counts from one small task per block of y."""
        X_blocks, y_blocks, w_blocks, stand_in = parts
        est = self._model_to_train(fam)
        surveys = client.compute(
            [dask.delayed(tasks.survey_block, pure=True)(yb, fam.classify(est), i,
                                                          dask_key_name=(f"dp-survey-{token}", i))
             for i, yb in enumerate(y_blocks)], sync=True)
        n_rows = sum(r for r, _, _, _ in surveys)
        labels, counts = _labels(surveys)
        # y's stand-in: the labels, or the first block's first rows (their values
        # also decide MLP's task='auto' and its warnings)
        y_stand_in = labels if labels is not None else surveys[0][3]
        s = fam.start(est, stand_in(len(y_stand_in)), y_stand_in, n_rows)
        worker_model = dask.delayed(fam.for_workers(est, labels, counts), pure=True)
        classify = fam.classify(est)
        classify = est._net.output == "softmax" if classify is None else classify
        fraction = fam.validation_fraction(est)
        seeds = _seeds(fam.random_state(est), len(X_blocks)) if fraction else [0] * len(X_blocks)
        blocks = [dask.delayed(tasks.prepare_block, pure=True)(
                      fam, worker_model, Xb, yb, wb, fraction, int(seed), classify, i,
                      dask_key_name=(f"dp-block-{token}", i))
                  for i, (Xb, yb, wb, seed) in enumerate(zip(X_blocks, y_blocks, w_blocks, seeds))]
        return est, s, blocks, n_rows, classify

    def _model_to_train(self, fam):
        """A clone of the wrapped model, or with ``warm_start`` a copy of the
        fitted one (``estimator_``, else the wrapped model if it is fitted)
        with the wrapped model's current parameters."""
        if fam.warm(self.estimator):
            fitted = self.__dict__.get("estimator_")
            if fitted is None and "_net" in self.estimator.__dict__:
                fitted = self.estimator
            if fitted is not None:
                est = copy.deepcopy(fitted)
                est.set_params(**self.estimator.get_params(deep=False))
                return est
        return clone(self.estimator)

    # ----------------------------------------------------------- predict
    def _post_fit(self):
        from dask_ml.wrappers import ParallelPostFit
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "estimator_")
        scoring = None
        if not hasattr(self.estimator_, "_is_classifier"):  # fastmlp.MLP
            scoring = "accuracy" if "classes_" in self.estimator_.__dict__ else "r2"
        return ParallelPostFit(self.estimator_, scoring=scoring)

    def predict(self, X):
        """Predictions for X: a lazy dask array (or dask Series/DataFrame), one
        task per block, for dask input; computed here for in-memory input."""
        return self._post_fit().predict(X)

    def predict_proba(self, X):
        """Class probabilities, lazily as ``predict``."""
        return self._post_fit().predict_proba(X)

    def score(self, X, y, compute=True):
        """Accuracy (classifier) or R^2 (regressor) of ``estimator_`` on X, y,
        one task per block; ``compute=False``: a lazy dask value."""
        return self._post_fit().score(X, y, compute=compute)

    @property
    def classes_(self):
        return self.estimator_.classes_


# ------------------------------------------------------------------ rounds
class _Rounds:
    """Runs rounds of tasks on the prepared blocks (futures when persisted,
    else delayed objects that each round computes again) and returns their
    results in block order."""

    def __init__(self, client, units, spec, token):
        from distributed import futures_of

        self.client = client
        self.units = units
        self.futures = [futures_of(u)[0] if futures_of(u) else None for u in units]
        self.spec = spec
        self.token = token
        self.count = 0
        self.holders = None

    def hold(self):
        """Start a ``tasks.BlockHolder`` actor on each worker that holds
        persisted units, for ``each_unit``. Nothing where the units are not
        persisted (they are computed anew in every round) or an actor cannot
        start (``each_unit`` then submits tasks)."""
        if self.holders is not None or any(f is None for f in self.futures):
            return
        try:
            who = self.client.who_has(self.futures)
            groups = {}
            for i, future in enumerate(self.futures):
                groups.setdefault(sorted(who[future.key])[0], []).append(i)
            started = [(units, self.client.submit(
                           tasks.BlockHolder, *[self.futures[i] for i in units], actor=True,
                           workers=[worker], allow_other_workers=False, pure=False,
                           key=(f"dp-holder-{self.token}", j)))
                       for j, (worker, units) in enumerate(groups.items())]
            with self.client.as_current():  # an actor finds its client as the current one
                self.holders = [(units, future, future.result()) for units, future in started]
        except Exception:  # a worker lost meanwhile, or no actors here: tasks instead
            self.holders = None

    def release(self):
        """Stop the holders (their workers keep the units)."""
        self.holders = None

    def each_unit(self, function, *args):
        """``function(unit, *args)`` for every unit, in unit order: by the
        holders while they last (``hold``), else one task per unit. A holder
        lost with its worker, or a call that fails, ends the holders: that
        round and the rest run as tasks, which compute again what the worker
        held, so the results do not depend on which way they came."""
        if self.holders:
            try:
                calls = [(units, actor.each(function, *args)) for units, _, actor in self.holders]
                results = [None] * len(self.units)
                for units, call in calls:
                    for i, result in zip(units, call.result()):
                        results[i] = result
                return results
            except Exception:
                self.holders = None
        return self(function, *args)

    def __call__(self, function, *args):
        """``function(unit, *args)`` for every unit, one task each. Persisted
        units' tasks are submitted directly (a few milliseconds less per
        round than building a graph)."""
        self.count += 1
        name = f"dp-{function.__name__.replace('_', '-')}-{self.token}"
        if all(f is not None for f in self.futures):
            futures = [self.client.submit(function, f, *args, key=(name, self.count, i),
                                          pure=False)
                       for i, f in enumerate(self.futures)]
            return self.client.gather(futures)
        task = dask.delayed(function, pure=False)
        graph = [task(unit, *args, dask_key_name=(name, self.count, i))
                 for i, unit in enumerate(self.units)]
        return self.client.compute(graph, sync=True)

    def chains(self, function, start, links):
        """For each chain of ``links`` (lists of (unit, *args)), the result of
        ``function(unit, state, *args)`` applied link after link from
        ``start``; the chains' results in order. With persisted units a chain
        is one task (its blocks are in its worker's memory already); else a
        task per link, so that a task holds one block."""
        self.count += 1
        name = f"dp-{function.__name__.replace('_', '-')}-{self.token}"
        if all(self.futures[unit] is not None for chain in links for unit, *_ in chain):
            futures = [self.client.submit(tasks.chain, function,
                                          [self.futures[unit] for unit, *_ in chain], start,
                                          [args for _, *args in chain],
                                          key=(name, self.count, j), pure=False)
                       for j, chain in enumerate(links)]
            return self.client.gather(futures)
        task = dask.delayed(function, pure=False)
        ends = []
        for chain in links:
            state = start
            for unit, *args in chain:
                state = task(self.units[unit], state, *args,
                             dask_key_name=(name, self.count, unit))
            ends.append(state)
        return self.client.compute(ends, sync=True)


def _fit_lbfgs(est, fam, run, s):
    """scipy's L-BFGS-B on the sum of the blocks' losses and gradients."""
    net = est._net
    weights_only = np.zeros(net.params.shape[0], dtype=bool)
    for W in net.views(np.arange(net.params.shape[0]))[0]:
        weights_only[W.ravel()] = True

    def loss_and_grad(params):
        results = run.each_unit(tasks.block_loss_gradient, params.copy(), run.spec)
        total = data = 0.0
        grad = np.zeros(params.shape[0], dtype=np.float64)
        for weight, block_loss, block_grad in results:  # block order: a fixed rounding
            total += weight
            data += block_loss
            grad += block_grad
        if not total > 0:
            raise ValueError("the sample weights sum to 0: there is nothing to fit")
        W = np.where(weights_only, params.astype(np.float64), 0.0)
        penalty = 0.5 * s.alpha * float(W @ W) / total
        grad = grad / total + s.alpha * W / total
        return data / total * s.loss_scale + penalty, grad

    run.hold()
    try:
        result = est._lbfgs(loss_and_grad, s, iprint=fam.lbfgs_iprint(est))
    finally:
        run.release()
    fam.lbfgs_done(est, result, s)


def _fit_averaged(est, fam, run, s, shards, sync_every, n_rows, validating):
    """Epochs of synchronous model averaging over the shards, under the
    model's stopping rule. A shard's epoch visits its blocks in order, each
    block's rows in an order drawn for the epoch, in minibatches of the
    model's batch size (a block's last one may be smaller); a round trains
    ``sync_every`` of them (None: all), chaining the blocks it spans."""
    net = est._net
    rows = run(tasks.block_rows)
    batches = [-(-n // max(1, min(s.batch_size, n))) if n else 0 for n in rows]
    est._lr = LearningRate(s.lr_schedule, s.lr, s.power_t)
    score = (lambda: _validation_score(run, net.params, run.spec)) if validating else None
    stopped = False
    est._report("start", max_iter=s.max_iter, rows=n_rows, incremental=False)
    try:
        for _ in range(s.max_iter):
            t0 = time.perf_counter()
            seeds = _seeds(fam.random_state(est), len(rows))
            plans = [_rounds_of(shard, batches, sync_every) for shard in shards]
            epoch = {"data_loss": 0.0, "penalty": 0.0, "rows": 0}
            for r in range(max(len(p) for p in plans)):
                start = {"params": net.params, "state1": net.state1, "state2": net.state2,
                         "step": net.step, "data_loss": 0.0, "penalty": 0.0, "rows": 0,
                         "weight": 0.0}
                links = [[(b, run.spec, est._lr.value, int(seeds[b]), first, last)
                          for b, first, last in p[r]] for p in plans if r < len(p)]
                results = run.chains(tasks.train_block, start, links)
                _average(net, results)
                for key in epoch:
                    epoch[key] += sum(res[key] for res in results)
            loss = np.float64((epoch["data_loss"] * s.loss_scale + epoch["penalty"])
                              / epoch["rows"])
            if est._epoch_end(loss, epoch["rows"], s, t0, score):
                stopped = True
                break
        else:
            est._not_converged(s)
    finally:
        est._report("end", stopped=stopped)
    if validating and est._best_params is not None:
        np.copyto(net.params, est._best_params)


def _rounds_of(shard, batches, sync_every):
    """A shard's epoch cut into rounds: per round, the (block, first
    minibatch, end minibatch) pieces it trains, in order."""
    sequence = [(b, i) for b in shard for i in range(batches[b])]
    size = len(sequence) if sync_every is None else sync_every
    rounds = []
    for lo in range(0, len(sequence), max(size, 1)):
        pieces = []
        for b, i in sequence[lo:lo + size]:
            if pieces and pieces[-1][0] == b:
                pieces[-1][2] = i + 1
            else:
                pieces.append([b, i, i + 1])
        rounds.append([tuple(p) for p in pieces])
    return rounds


def _average(net, results):
    """Write the weighted mean of the shards' states into the network."""
    c = np.array([r["weight"] for r in results], dtype=np.float64)
    if not c.sum() > 0:
        c = np.array([r["rows"] for r in results], dtype=np.float64)
    c /= c.sum()
    names = ("params", "state1", "state2") if net.solver == "adam" else ("params", "state1")
    for name in names:
        mean = sum(ci * r[name].astype(np.float64) for ci, r in zip(c, results))
        np.copyto(getattr(net, name), mean, casting="same_kind")
    steps = np.array([r["step"] - net.step for r in results], dtype=np.float64)
    net.step += int(np.rint(c @ steps))


def _validation_score(run, params, spec):
    """The averaged model's score on the validation rows of all shards."""
    stats = run(tasks.score_block, params.copy(), spec)
    if spec.classify:
        correct = sum(c for c, _ in stats)
        weight = sum(w for _, w in stats)
        return float(correct / weight)
    w = sum(r[0] for r in stats)
    sy = sum(r[1] for r in stats)
    syy = sum(r[2] for r in stats)
    ss_res = sum(r[3] for r in stats)
    ss_tot = syy - sy**2 / w
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ss_tot > 0, 1 - ss_res / ss_tot, np.where(ss_res == 0, 1.0, 0.0))
    return float(np.mean(r2))


# ------------------------------------------------------------------ input
def _blocks(X, y, sample_weight):
    """(X's, y's and the weights' delayed row blocks, a function giving n rows
    of zeros like X). Refuses X split along columns."""
    import dask.array as da
    import dask.dataframe as dd

    if isinstance(X, da.Array) and X.ndim == 2 and X.numblocks[1] > 1:
        raise ValueError(f"X is split along its columns ({X.numblocks[1]} column blocks); "
                         "DataParallel trains on row blocks: X.rechunk({1: -1}) first")
    X_blocks, y_blocks, w_blocks = _row_blocks(X, y, sample_weight)
    if isinstance(X, dd.DataFrame):
        meta = X._meta

        def stand_in(n):
            return meta.reindex(range(n)).fillna(0).astype(meta.dtypes)
    else:
        def stand_in(n):
            return np.zeros((n, X.shape[1]), dtype=X.dtype)
    return X_blocks, y_blocks, w_blocks, stand_in


def _labels(surveys):
    """(labels, counts) in all blocks together (the distinct rows of an
    indicator matrix), or (None, None) for regression."""
    if surveys[0][1] is None:
        return None, None
    labels = np.concatenate([s[1] for s in surveys])
    counts = np.concatenate([s[2] for s in surveys])
    unique, inverse = np.unique(labels, axis=0 if labels.ndim == 2 else None,
                                return_inverse=True)
    return unique, np.bincount(inverse.ravel(), weights=counts,
                               minlength=len(unique)).astype(np.int64)


def _seeds(random_state, n):
    """n seeds drawn from a model's RandomState or Generator."""
    if isinstance(random_state, np.random.Generator):
        return random_state.integers(0, 2**31 - 1, size=n)
    return random_state.randint(0, 2**31 - 1, size=n)


def _persist(client, blocks, shards, workers):
    """Persist the blocks, those of a shard on the same worker; a lost block
    may be recomputed on any worker. Raises the first error met in preparing
    them."""
    from distributed import futures_of, wait

    persisted = list(blocks)
    for j, shard in enumerate(shards):
        done = client.persist([blocks[b] for b in shard], workers=[workers[j % len(workers)]],
                              allow_other_workers=True)
        for b, block in zip(shard, done):
            persisted[b] = block
    futures = futures_of(persisted)
    with client.as_current():
        wait(futures)
    for future in futures:
        if future.status == "error":
            future.result()  # raises the task's error
    return persisted


def _default_client():
    from distributed import default_client

    return default_client()
