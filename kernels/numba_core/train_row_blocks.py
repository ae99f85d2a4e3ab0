"""Training: row blocks. ``train_blocks``, ``train_columns`` and
``loss_gradient_blocks``, each with its serial twin (``NAME_serial``).

The kernels and the parallel passes they call live in this one module:
``_twins`` compiles a kernel's serial twin against a copy of this module's
globals in which every pass of ``_PASSES`` is replaced by its serial twin.
The public kernels (and their twins) are Python functions over the compiled
``_train_blocks_by``, ``_train_columns_by`` and ``_loss_gradient_blocks_by``:
they add a block's forward, loss and backward passes (``_forward_rows``,
the loss pass, ``_block_backward``) or a feature-major block's
(``_columns_block_softmax`` or ``_targets``), and/or the update of a span
of parameters, ``_update_span``, as arguments that the compiled code calls
by address (``block_gradient._with_by_address``).
"""

import types as pytypes

import numpy as np
from numba import njit, prange

from .. import blocks
from ..config import BLOCK_MAX, UPDATE_CHUNK
from ._setup import ENTRY, JIT, PARALLEL, REDUCE, U
from .block_gradient import _block_gradient, _span_update, _with_by_address
from .layout import _input_rows, _layers, _n_rows, _offsets
from .optimisers import adam_rate
from .train_batches import _batch_penalty, _batch_weight, _last_live, _penalty_squares
from .train_columns import _column_offsets


def _renamed(fn, name, namespace=None):
    """A copy of function ``fn`` named ``name`` (numba names its cache files by
    it) that reads its globals from ``namespace`` (default: its module's)."""
    g = pytypes.FunctionType(fn.__code__, fn.__globals__ if namespace is None else namespace,
                             name, fn.__defaults__, fn.__closure__)
    g.__qualname__ = name
    g.__module__, g.__doc__ = fn.__module__, fn.__doc__
    return g


try:
    #: numba's thread count for the calling thread, in compiled code: numba's
    #: intrinsic, which calls its threading layer's function by name (what numba
    #: compiles into every ``prange`` loop), where ``numba.get_num_threads``
    #: holds a pointer that keeps a kernel out of the cache.
    from numba.np.ufunc.parallel import _iget_num_threads as _threads_now
except ImportError:  # a numba without it: a task per block, each with its own scratch
    @njit(**JIT)
    def _threads_now():
        return BLOCK_MAX


@njit(**JIT)
def _one_thread():
    """``_threads_now`` of the serial twins."""
    return 1


def _pass_twins(fn):
    """A parallel pass ``fn`` (named ``_NAME``) compiled twice: as ``_NAME``
    with its ``prange`` loop run by numba's threads, and as ``_NAME_serial``
    with it run in order on the calling thread (its ``_threads_now`` is 1)."""
    serial = dict(fn.__globals__, _threads_now=_one_thread)
    return (njit(**PARALLEL)(_renamed(fn, fn.__name__)),
            njit(**JIT)(_renamed(fn, fn.__name__ + "_serial", serial)))


_rows_plan = njit(**JIT)(blocks.rows_plan)
_columns_plan = njit(**JIT)(blocks.columns_plan)
_columns_stride = njit(**JIT)(blocks.columns_stride)


@njit(**REDUCE)
def _sum_blocks(slots, nb, n, out, c0, c1, add):
    """out[c0:c1] (+)= the sum over the first nb blocks of their gradients
    (``slots`` holds them one after another, n entries each), in block order."""
    if not add:
        for i in range(U(c0), U(c1)):
            out[i] = 0.0
    for b in range(U(nb)):  # block by block: each entry's sum in block order, vectorised
        base = b * U(n)
        for i in range(U(c0), U(c1)):
            out[i] += slots[base + i]


def _rows_pass(forward, loss, backward, X, y, Y, w, order, start, m, rows, params, sizes, offs,
               act, output, scale, work, wo, slots, losses):
    """The m rows from ``start`` in blocks of ``rows`` rows, each by
    ``_block_gradient`` (its passes called by address), its gradient into
    the b-th parameter vector of ``slots`` for block b. The blocks are shared
    out in turn among as many tasks as there are threads (at most one per
    block), and each task's blocks reuse one scratch, the task's ``wo[L +
    3]`` entries of ``work``, which then stays in the core's cache (a
    scratch per block put every block's activations in memory on one
    thread). Every scratch is written before it is read, so a block's
    arithmetic does not depend on which task ran it. Returns the rows' loss,
    the blocks' losses summed in block order."""
    P = params.shape[0]
    wb = wo[sizes.shape[0] + 2]
    nb = (m + rows - 1) // rows
    tasks = max(1, min(nb, _threads_now()))
    for t in prange(tasks):
        scratch = work[np.int64(t) * wb : (np.int64(t) + 1) * wb]
        for b in range(np.int64(t), nb, tasks):  # signed: offsets into the batch stay integers
            r0 = b * rows
            losses[b] = _block_gradient(forward, loss, backward, X, y, Y, w, order, start + r0,
                                        min(rows, m - r0), params, sizes, offs, act, output,
                                        scale, scratch, wo, slots[b * P : (b + 1) * P], True)
    total = 0.0
    for b in range(nb):
        total += losses[b]
    return total


_rows_pass, _rows_pass_serial = _pass_twins(_rows_pass)


def _sum_pass(slots, nb, out, add):
    """out (+)= the sum of the first nb gradients in ``slots``, in block order,
    in spans of ``UPDATE_CHUNK`` entries, one per task."""
    P = out.shape[0]
    for c in prange((P + UPDATE_CHUNK - 1) // UPDATE_CHUNK):
        c0 = c * UPDATE_CHUNK
        _sum_blocks(slots, nb, P, out, c0, min(P, c0 + UPDATE_CHUNK), add)


_sum_pass, _sum_pass_serial = _pass_twins(_sum_pass)


def _update_pass(update, params, grads, state1, state2, offs, slots, nb, solver, lr, momentum,
                 nesterov, beta1, beta2, eps, rate, decay, keep, oks, sqs):
    """The batch's gradient (the sum of the nb blocks' gradients in ``slots``)
    into ``grads`` and the optimiser's step by ``update`` (``_update_span``,
    called by address), in spans of ``UPDATE_CHUNK`` parameters, one per
    task. Returns (all new values finite, sum of the new weights**2), the
    spans' sums added in span order."""
    P = params.shape[0]
    spans = oks.shape[0]
    for c in prange(spans):
        c0 = np.int64(c * UPDATE_CHUNK)
        c1 = np.int64(min(P, c0 + UPDATE_CHUNK))
        _sum_blocks(slots, nb, P, grads, c0, c1, np.bool_(False))
        oks[c], sqs[c] = _span_update(update, params, grads, state1, state2, offs, c0, c1,
                                      solver, lr, momentum, nesterov, beta1, beta2, eps, rate,
                                      decay, keep)
    ok = True
    sq = 0.0
    for c in range(spans):
        ok = ok and oks[c]
        sq += sqs[c]
    return ok, sq


_update_pass, _update_pass_serial = _pass_twins(_update_pass)


def _columns_pass(columns, X, y, Y, w, order, start, m, first, nb, block, stride, params, sizes,
                  offs, at, act, output, scale, work, wb, slots, losses):
    """Feature-major blocks ``first`` to ``first + nb - 1`` of the batch of m
    rows from ``start`` (``block`` rows each; ``stride`` entries from one of
    a block's feature-major rows to the next), one per task, each with its
    scratch (``wb`` entries of ``work``) and its gradient in ``slots``, by
    ``columns``
    (``_columns_block_softmax`` or ``_targets``, called by address: the
    scalars cast to its exact types). Returns their loss, summed in block
    order."""
    P = params.shape[0]
    for b in prange(nb):
        b0 = start + (first + b) * block
        rows = order[b0 : min(b0 + block, start + m)]
        bw = work[U(b) * wb : U(b + 1) * wb]
        G = slots[b * P : (b + 1) * P]
        G[:] = 0.0
        losses[b] = columns(X, y, Y, w, order, np.int64(b0), rows, params, sizes, offs, at,
                            np.int64(stride), np.int64(act), np.int64(output),
                            np.float64(scale), bw, G)
    total = 0.0
    for b in range(nb):
        total += losses[b]
    return total


_columns_pass, _columns_pass_serial = _pass_twins(_columns_pass)

#: The parallel passes the row-block kernels call; their serial twins call
#: the ``_serial`` ones.
_PASSES = ("_rows_pass", "_sum_pass", "_update_pass", "_columns_pass")


def _twins(fn):
    """The row-block kernel ``fn`` (named ``_NAME``) compiled twice, as
    ``NAME``, which runs the parallel passes, and as ``NAME_serial``, which
    runs their serial twins: the same blocks and the same sums in the same
    order, so the same results. The kernels themselves are serial code; only
    the short passes are compiled for numba's threads, which keeps their
    compilation short. The serial twin is compiled only when first used
    (``parallel_ok``)."""
    name = fn.__name__.lstrip("_")
    serial = dict(fn.__globals__, **{p: fn.__globals__[p + "_serial"] for p in _PASSES})
    return (njit(**ENTRY)(_renamed(fn, name)),
            njit(**ENTRY)(_renamed(fn, name + "_serial", serial)))


def _train_blocks(X, y, Y, w, order, params, grads, state1, state2, step, sizes, act, output,
                  solver, lr, momentum, nesterov, beta1, beta2, eps, l2, batch_size, work,
                  forward, loss, backward, update):
    """``train_epoch`` with each batch in row blocks (``blocks.rows_plan``):
    the blocks' forward and backward passes run in parallel, each with its
    own scratch and gradient and single-threaded products; their losses and
    gradients are summed in block order, then the update runs in parallel
    over spans of ``UPDATE_CHUNK`` parameters. The result does not depend on
    the number of threads. ``work``: the blocks' scratch, one after another,
    then a gradient per block."""
    n = order.shape[0]
    L = sizes.shape[0] - 1
    P = params.shape[0]
    offs = _layers(sizes)
    nb_max, rows = _rows_plan(batch_size)
    wo = _offsets(sizes, rows, _input_rows(X, rows))
    wb = wo[L + 3]
    slots = work[nb_max * wb : nb_max * (wb + P)]
    losses = np.empty(nb_max)
    spans = (P + UPDATE_CHUNK - 1) // UPDATE_CHUNK
    oks = np.empty(spans, dtype=np.bool_)
    sqs = np.empty(spans)
    last = _last_live(w, order, batch_size)
    # int64 and bool values, not literals: the helpers are compiled once for both uses
    zero, no = np.int64(0), np.bool_(False)
    data_total = 0.0
    penalty_total = 0.0
    sq = -1.0
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        weight = _batch_weight(w, order, start, m)
        if weight == 0.0:
            continue
        scale = 1.0 / weight
        data = _rows_pass(forward, loss, backward, X, y, Y, w, order, start, m, rows, params,
                          sizes, offs, act, output, scale, work, wo, slots, losses)
        penalty, sq = _batch_penalty(params, sizes, offs, l2, sq)
        if not np.isfinite(data + penalty):
            return np.nan, np.nan, step, start
        data_total += data * m * scale
        penalty_total += penalty * m * scale
        nb = (m + rows - 1) // rows
        rate = adam_rate(lr, beta1, beta2, step + 1)
        if spans == 1:  # one span: on this thread, without waking the others
            _sum_blocks(slots, nb, P, grads, zero, P, no)
            ok, sq = _span_update(update, params, grads, state1, state2, offs, zero, P, solver,
                                  lr, momentum, nesterov, beta1, beta2, eps, rate, l2 * scale,
                                  start == last)
        else:
            ok, sq = _update_pass(update, params, grads, state1, state2, offs, slots, nb, solver,
                                  lr, momentum, nesterov, beta1, beta2, eps, rate, l2 * scale,
                                  start == last, oks, sqs)
        if not ok:
            return np.nan, np.nan, step, start
        step += 1
    return data_total, penalty_total, step, n


_train_blocks_by, _train_blocks_serial_by = _twins(_train_blocks)
train_blocks = _with_by_address(_train_blocks_by)
train_blocks_serial = _with_by_address(_train_blocks_serial_by)


def _train_columns(X, y, Y, w, order, params, grads, state1, state2, step, sizes, act, output,
                   solver, lr, momentum, nesterov, beta1, beta2, eps, l2, batch_size, work,
                   columns, update):
    """``train_epoch`` for narrow networks on large batches (dense X; softmax
    needs k >= 2): each batch in blocks of up to ``COLUMNS_BLOCK`` rows,
    transposed (``columns``: ``_columns_block_softmax`` or ``_targets``,
    called by address), up to ``BLOCK_MAX`` blocks at a time in parallel,
    each into its own gradient; the gradients are summed in block order,
    then the update runs in one pass over the parameters (``update``:
    ``_update_span``, called by address). The same results as
    ``train_epoch`` up to rounding (sums taken in another order), and the
    same for any number of threads."""
    n = order.shape[0]
    L = sizes.shape[0] - 1
    P = params.shape[0]
    offs = _layers(sizes)
    nb_max, block = _columns_plan(batch_size)
    stride = _columns_stride(block)
    at = _column_offsets(sizes, stride)
    widest = 0
    for l in range(1, L + 1):
        widest = max(widest, sizes[l])
    wb = at[L + 2] + U(widest * stride)
    slots = work[U(nb_max) * wb : U(nb_max) * (wb + U(P))]
    losses = np.empty(nb_max)
    last = _last_live(w, order, batch_size)
    zero = np.int64(0)  # not a literal: ``_sum_blocks`` is compiled once for every use
    data_total = 0.0
    penalty_total = 0.0
    sq = -1.0
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        weight = _batch_weight(w, order, start, m)
        if weight == 0.0:
            continue
        scale = 1.0 / weight
        data = 0.0
        total = (m + block - 1) // block
        for first in range(0, total, nb_max):
            nb = min(nb_max, total - first)
            data += _columns_pass(columns, X, y, Y, w, order, start, m, first, nb, block,
                                  stride, params, sizes, offs, at, act, output, scale, work, wb,
                                  slots, losses)
            _sum_blocks(slots, nb, P, grads, zero, P, first > 0)
        penalty, sq = _batch_penalty(params, sizes, offs, l2, sq)
        if not np.isfinite(data + penalty):
            return np.nan, np.nan, step, start
        data_total += data * m * scale
        penalty_total += penalty * m * scale
        rate = adam_rate(lr, beta1, beta2, step + 1)
        ok, sq = _span_update(update, params, grads, state1, state2, offs, zero, P, solver, lr,
                              momentum, nesterov, beta1, beta2, eps, rate, l2 * scale,
                              start == last)
        if not ok:
            return np.nan, np.nan, step, start
        step += 1
    return data_total, penalty_total, step, n


_train_columns_by, _train_columns_serial_by = _twins(_train_columns)
train_columns = _with_by_address(_train_columns_by)
train_columns_serial = _with_by_address(_train_columns_serial_by)


def _loss_gradient_blocks(X, y, Y, w, params, grads, sizes, act, output, l2, chunk, work,
                          forward, loss, backward):
    """``loss_gradient`` in row blocks: ``chunk`` rows at a time, split as a
    batch of that many rows (``blocks.rows_plan``), the blocks in parallel,
    their losses and gradients summed in block order into the totals. The
    result does not depend on the number of threads."""
    n = _n_rows(X)
    L = sizes.shape[0] - 1
    P = params.shape[0]
    offs = _layers(sizes)
    nb_max, rows = _rows_plan(chunk)
    wo = _offsets(sizes, rows, _input_rows(X, rows))
    wb = wo[L + 3]
    slots = work[nb_max * wb : nb_max * (wb + P)]
    losses = np.empty(nb_max)
    order = np.empty(0, dtype=np.int64)  # rows in their own order
    weight = _batch_weight(w, order, 0, n)
    scale = 1.0 / weight if weight > 0 else 0.0
    data = 0.0
    if n == 0:
        grads[:] = 0.0
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        data += _rows_pass(forward, loss, backward, X, y, Y, w, order, start, m, rows, params,
                           sizes, offs, act, output, scale, work, wo, slots, losses)
        _sum_pass(slots, (m + rows - 1) // rows, grads, start > 0)
    for l in range(L):
        g, p = grads[offs[2 * l] : offs[2 * l + 1]], params[offs[2 * l] : offs[2 * l + 1]]
        for j in range(p.shape[0]):
            g[j] += l2 * scale * p[j]
    return data * scale, 0.5 * l2 * _penalty_squares(params, sizes, offs) * scale


_loss_gradient_blocks_by, _loss_gradient_blocks_serial_by = _twins(_loss_gradient_blocks)
loss_gradient_blocks = _with_by_address(_loss_gradient_blocks_by)
loss_gradient_blocks_serial = _with_by_address(_loss_gradient_blocks_serial_by)
