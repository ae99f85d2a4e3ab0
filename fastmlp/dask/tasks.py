"""The tasks ``DataParallel`` runs on the workers: each touches one row
block, and receives and returns only a model's numbers.

- ``survey_block``: a block's rows and, for classification, its labels;
- ``prepare_block``: a block validated and encoded for the kernels, with its
  share of the validation rows held out (a ``Block``);
- ``block_rows``: a prepared block's training rows;
- ``block_loss_gradient``: a block's weighted data loss and its gradient
  (sums, not means, so that the client adds them up);
- ``train_block``: some minibatches of a block's epoch trained from a given
  state, the next link of its shard's chain (``chain``: several links in one
  task, for blocks already in the worker's memory);
- ``score_block``: what the validation score needs from a block's held-out rows;
- ``BlockHolder``: an actor holding a worker's persisted blocks, which runs one
  of these on each of them when the client calls it (no scheduler between).
"""

import asyncio
import time
from dataclasses import dataclass

import numpy as np

from .. import kernels, threads
from ..engine import LBFGS_CHUNK, Data, Settings
from ..errors import DivergenceError
from ..kernels import ACTIVATIONS, OUTPUTS, SOLVERS
from ..kernels.api import epoch_path, loss_path, work_size

#: Rows of y a survey brings back, to set up a regression model (its targets'
#: shape and dtype) and ``MLP``'s automatic choice of task.
HEAD_ROWS = 1000


@dataclass(frozen=True)
class Spec:
    """What a task needs to know of the network and the optimiser."""

    sizes: np.ndarray
    activation: str
    output: str
    solver: str
    backend: str
    settings: Settings
    shuffle: bool
    classify: bool


@dataclass
class Block:
    """A block's training rows and its held-out validation rows (or None)."""

    train: Data
    val: Data = None


# ------------------------------------------------------------------ blocks
def survey_block(y, classify, index):
    """(rows, labels or None, their counts, the first rows of y) of a block's y.
    ``classify``: True, False, or None to decide from y's dtype (``MLP``'s
    task='auto')."""
    from .. import checks

    y = np.asarray(y)
    if classify is None:
        classify = checks.is_classification(y)
    labels = counts = None
    if classify:
        if y.ndim == 2 and y.shape[1] > 1:  # label indicator matrix: its distinct rows
            labels, counts = np.unique(y, axis=0, return_counts=True)
        else:
            labels, counts = np.unique(y.ravel(), return_counts=True)
    return y.shape[0], labels, counts, y[:HEAD_ROWS]


def prepare_block(family, model, X, y, sample_weight, fraction, seed, classify, index):
    """Block ``index`` checked and encoded by ``family`` for ``model`` (a copy
    of the model being trained, already set up); with ``fraction`` > 0 that
    share of its rows (of each class, for a single-output classifier) is held
    out for validation, drawn with ``seed``. Returns a ``Block``."""
    from ..model import _hold_out

    try:
        data = family.prepare(model, X, y, sample_weight)
        if not fraction:
            return Block(data)
        if data.y.shape[0]:
            groups, stratify = data.y, classify
        elif classify and data.Y.shape[1] == 1:
            groups, stratify = data.Y[:, 0], True
        else:
            groups, stratify = np.zeros(data.n), False
        train, (val, _, _) = _hold_out(data, groups, stratify, fraction,
                                       np.random.default_rng(seed))
        return Block(train, val)
    except ValueError as exc:
        raise ValueError(f"row block {index}: {exc}") from None


def block_rows(block):
    """A prepared block's training rows."""
    return block.train.n


# ------------------------------------------------------------------- rounds
def block_loss_gradient(block, params, spec):
    """(total sample weight, weighted sum of the rows' losses, its gradient)
    of one block at ``params``: the compiled full-batch loss and gradient
    without the L2 term, which the client adds once."""
    data = block.train
    net_dtype = params.dtype
    params = np.array(params)  # writable: the kernels are compiled for writable arrays
    grads = np.empty_like(params)
    chunk = max(1, min(LBFGS_CHUNK, data.n))
    work = np.empty(work_size(spec.sizes, chunk, sparse=data.sparse), dtype=net_dtype)
    with threads.limits(spec.settings.n_threads, spec.backend, loss_path(spec.sizes, chunk)):
        data_loss, _ = kernels.get(spec.backend)._loss_gradient(
            data.X, _writable(data.y), _writable(data.Y), _writable(data.w), params, grads,
            spec.sizes, ACTIVATIONS[spec.activation], OUTPUTS[spec.output], 0.0, chunk, work)
    weight = float(data.w.sum()) if data.w.shape[0] else float(data.n)
    return weight, data_loss * weight, grads.astype(np.float64) * weight


def train_block(block, state, spec, lr, seed, first, last):
    """Minibatches ``first`` to ``last - 1`` of the block's epoch, whose row
    order ``seed`` draws, trained from a copy of ``state`` (params, state1,
    state2, step, and the round's sums so far: data loss and penalty, each
    batch's mean times its rows; rows; sample weight). Returns the new state."""
    data = block.train
    s = spec.settings
    params = np.array(state["params"])
    state1 = np.array(state["state1"])
    state2 = np.array(state["state2"]) if spec.solver == "adam" else state1
    n = data.n
    batch = max(1, min(s.batch_size, n))
    order = np.random.default_rng(seed).permutation(n) if spec.shuffle else np.arange(n)
    lo, hi = first * batch, min(n, last * batch)
    order = np.ascontiguousarray(order[lo:hi], dtype=np.int64)
    work = np.empty(work_size(spec.sizes, batch, sparse=data.sparse), dtype=params.dtype)
    path = epoch_path(data.X, spec.sizes, batch, OUTPUTS[spec.output], SOLVERS[spec.solver])
    with threads.limits(s.n_threads, spec.backend, path):
        data_loss, penalty, step, done = kernels.get(spec.backend)._epoch(
            data.X, _writable(data.y), _writable(data.Y), _writable(data.w), order, params,
            np.empty_like(params), state1, state2, int(state["step"]), spec.sizes,
            ACTIVATIONS[spec.activation], OUTPUTS[spec.output], SOLVERS[spec.solver], lr,
            s.momentum, s.nesterov, s.beta1, s.beta2, s.epsilon, s.alpha, batch, work)
    if done < order.shape[0]:
        raise DivergenceError(
            f"training diverged: the loss or a weight stopped being finite at row "
            f"{lo + done} of a block's epoch order. Try a smaller learning rate (now {lr}), "
            "scaled inputs or float64.")
    weight = float(data.w[order].sum()) if data.w.shape[0] else float(order.shape[0])
    return {"params": params, "state1": state1, "state2": state2, "step": int(step),
            "data_loss": state["data_loss"] + float(data_loss),
            "penalty": state["penalty"] + float(penalty),
            "rows": state["rows"] + int(order.shape[0]), "weight": state["weight"] + weight}


def chain(function, blocks, state, links):
    """``function(block, state, *args)`` over the blocks, each link's state the
    next one's start, in one task: the arithmetic of a chain of tasks."""
    for block, args in zip(blocks, links):
        state = function(block, state, *args)
    return state


class BlockHolder:
    """A dask actor on the worker that holds ``blocks`` (persisted there):
    ``each(function, *args)`` is ``function(block, *args)`` for each of them,
    in order. The client calls it directly, with no scheduler between: a
    round of two such calls took 2-2.5 ms on a 2-core machine, against
    13-15 ms for a round of two tasks.

    A call runs in a thread of its own, or, where the holder's previous call
    took at most ``INLINE_SECONDS``, on the worker's event loop (which the
    call then holds that long): a thread's hand-offs, and the event loop
    running beside the computation, cost an L-BFGS round on two one-core
    workers 2-5 ms of its 29-32 (100,000 rows a block; 27 ms on the loop)."""

    #: The longest call after which the next runs on the event loop.
    INLINE_SECONDS = 0.1
    #: Whether the next call runs on the event loop (the last one was short).
    inline = False

    def __init__(self, *blocks):
        self.blocks = blocks

    async def each(self, function, *args):
        start = time.perf_counter()
        if self.inline:
            result = self._each(function, args)
        else:
            result = await asyncio.get_running_loop().run_in_executor(
                None, self._each, function, args)
        self.inline = time.perf_counter() - start <= self.INLINE_SECONDS
        return result

    def _each(self, function, args):
        return [function(block, *args) for block in self.blocks]


def score_block(block, params, spec):
    """Sums over a block's validation rows, weighted: for a classifier
    (correct predictions, weight); for a regressor (weight, sum of y, of y**2,
    of squared errors; per output)."""
    val = block.val
    out, labels, _ = kernels.get(spec.backend)._predict(
        val.X, np.array(params), spec.sizes, ACTIVATIONS[spec.activation],
        OUTPUTS[spec.output])
    w = val.w if val.w.shape[0] else np.ones(val.n)
    if spec.classify:
        if val.y.shape[0]:
            correct = labels == val.y
        else:
            correct = np.all((out > 0.5) == (val.Y > 0.5), axis=1)
        return float(w @ correct), float(w.sum())
    Y = val.Y.astype(np.float64)
    P = out.astype(np.float64)
    return float(w.sum()), w @ Y, w @ Y**2, w @ (Y - P) ** 2


def _writable(a):
    """``a``, or a copy where it arrived read-only from another worker."""
    return a if a.flags.writeable else a.copy()
