"""Training: columns. The forward, output and backward passes of one
feature-major block of rows (``_columns_block_softmax``, and
``_columns_block_targets`` for the other outputs); ``train_columns``
(``train_row_blocks``) runs the blocks in parallel and calls the block's
passes by address.
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

from ..codes import RELU, SIGMOID, TANH
from ._setup import BY_ADDRESS, INLINE, INLINE_REDUCE, JIT, REDUCE, U
from .activations import _act_span
from .exp_log import _exp_t, _log_t, _sigmoid_softplus
from .layout import _eight_rows
from .outputs import target_rows
from .products import _flat, _four_dots


@njit(**JIT)
def _column_offsets(sizes, stride):
    """Unsigned start of each feature-major block in the work array, whose
    feature-major rows lie ``stride`` entries apart: the input (d rows), each
    hidden layer's activations, the logits (k rows, later the output delta),
    then two buffers of ``widest`` rows for the deltas of the hidden
    layers."""
    L = sizes.shape[0] - 1
    at = np.empty(L + 3, dtype=np.uint64)
    off = 0
    widest = 0
    for l in range(L + 1):
        at[l] = off
        off += sizes[l] * stride
        if l > 0:
            widest = max(widest, sizes[l])
    at[L + 1] = off
    at[L + 2] = off + widest * stride
    return at


#: The lanes ``shufflevector`` takes from two 8-lane vectors a and b (b's
#: lanes numbered 8 to 15) to interleave their first halves, and their second.
_FIRST_HALVES = (0, 8, 1, 9, 2, 10, 3, 11)
_SECOND_HALVES = (4, 12, 5, 13, 6, 14, 7, 15)


@intrinsic
def _tile8(typingctx, x, starts, first, work, at, stride):
    """work[at + f stride + t] = x[starts[t] + first + f] for t, f < 8: eight rows of
    eight entries transposed in registers. Eight vector loads, three rounds
    of interleaving the first halves and the second halves of rows t and
    t + 4 (after three rounds, vector f holds entry f of every row), eight
    vector stores. A loop over the rows, each entry copied on its own, is a
    gather, which LLVM leaves scalar here: about two cycles an entry. ``x`` and
    ``work``: 1-D arrays of one float dtype; ``starts``: eight unsigned
    offsets (``layout._eight_rows``); ``first``, ``at``, ``stride``:
    unsigned."""
    if not (isinstance(x, types.Array) and isinstance(work, types.Array) and x.ndim == 1
            and work.ndim == 1 and x.dtype == work.dtype
            and x.dtype in (types.float32, types.float64)):
        raise TypingError("_tile8 takes two 1-D float arrays of one dtype")
    if not (isinstance(starts, types.UniTuple) and starts.count == 8):
        raise TypingError("_tile8 takes a tuple of eight offsets")
    sig = types.none(x, starts, first, work, at, stride)

    def codegen(context, builder, signature, args):
        x_v, starts_v, first_v, work_v, at_v, stride_v = args
        vector = ir.VectorType(context.get_value_type(x.dtype), 8)
        source = context.make_array(x)(context, builder, x_v).data
        target = context.make_array(work)(context, builder, work_v).data
        rows = [builder.load(builder.bitcast(builder.gep(source, [builder.add(start, first_v)]),
                                             vector.as_pointer()), align=1)
                for start in cgutils.unpack_tuple(builder, starts_v, 8)]
        lanes = ir.VectorType(ir.IntType(32), 8)
        first, second = ir.Constant(lanes, _FIRST_HALVES), ir.Constant(lanes, _SECOND_HALVES)
        for _ in range(3):
            rows = [builder.shuffle_vector(rows[t], rows[t + 4], half)
                    for t in range(4) for half in (first, second)]
        for f, row in enumerate(rows):
            offset = builder.add(at_v, builder.mul(stride_v, ir.Constant(stride_v.type, f)))
            builder.store(row, builder.bitcast(builder.gep(target, [offset]),
                                               vector.as_pointer()), align=1)
        return context.get_dummy_value()

    return sig, codegen


@njit(**JIT)
def _transpose_rows(x, rows, d, work, stride):
    """work[f stride + i] = x[rows[i] d + f]: the rows ``rows`` of a row-major
    matrix of d columns (flat ``x``) as a feature-major block, in tiles of
    eight rows by eight features (``_tile8``), the rest one entry at a
    time. d and stride: unsigned."""
    nb = U(rows.shape[0])
    nb8, d8 = nb - nb % U(8), d - d % U(8)
    for i in range(U(0), nb8, U(8)):
        starts = _eight_rows(rows, i, d)
        for f in range(U(0), d8, U(8)):
            _tile8(x, starts, f, work, f * stride + i, stride)
    for f in range(d):  # what the tiles left: the last rows, the last features
        dst = f * stride
        for i in range(nb8 if f < d8 else U(0), nb):
            work[dst + i] = x[U(rows[i]) * d + f]


@njit(**INLINE)
def _columns_combine(params, w0, stride, work, src, bu, n, o, nb):
    """work[o:o + nb] += the sum over k < n of params[w0 + k stride] times the
    row work[src + k bu:] (feature-major rows of a block): four rows per pass,
    so that the output row is loaded and stored once per four of them."""
    n4 = n - n % U(4)
    for k in range(U(0), n4, U(4)):
        c0 = params[w0 + k * stride]
        c1 = params[w0 + (k + U(1)) * stride]
        c2 = params[w0 + (k + U(2)) * stride]
        c3 = params[w0 + (k + U(3)) * stride]
        a0 = src + k * bu
        a1, a2, a3 = a0 + bu, a0 + U(2) * bu, a0 + U(3) * bu
        for i in range(nb):
            work[o + i] += ((c0 * work[a0 + i] + c1 * work[a1 + i])
                            + (c2 * work[a2 + i] + c3 * work[a3 + i]))
    for k in range(n4, n):
        c = params[w0 + k * stride]
        a = src + k * bu
        for i in range(nb):
            work[o + i] += c * work[a + i]


@njit(**INLINE)
def _columns_combine4(params, w0, stride, work, src, bu, n, o, nb):
    """``_columns_combine`` for four output rows at once, o + j bu for j < 4,
    with the weights params[w0 + k stride + j]: each pass reads four input
    rows once for four outputs (half a load per multiply-add where one output
    at a time takes a load and a quarter), in the same order of sums for
    each output as ``_columns_combine`` (a block of 1,024 rows, 34 inputs ->
    16 units: 12 against 22 us in float32, 25 against 50 us in float64, AMD
    EPYC)."""
    n4 = n - n % U(4)
    o1, o2, o3 = o + bu, o + U(2) * bu, o + U(3) * bu
    for k in range(U(0), n4, U(4)):
        w1 = w0 + k * stride
        w2, w3, w4 = w1 + stride, w1 + U(2) * stride, w1 + U(3) * stride
        c00, c01, c02, c03 = params[w1], params[w1 + U(1)], params[w1 + U(2)], params[w1 + U(3)]
        c10, c11, c12, c13 = params[w2], params[w2 + U(1)], params[w2 + U(2)], params[w2 + U(3)]
        c20, c21, c22, c23 = params[w3], params[w3 + U(1)], params[w3 + U(2)], params[w3 + U(3)]
        c30, c31, c32, c33 = params[w4], params[w4 + U(1)], params[w4 + U(2)], params[w4 + U(3)]
        a0 = src + k * bu
        a1, a2, a3 = a0 + bu, a0 + U(2) * bu, a0 + U(3) * bu
        for i in range(nb):
            x0, x1, x2, x3 = work[a0 + i], work[a1 + i], work[a2 + i], work[a3 + i]
            work[o + i] += (c00 * x0 + c10 * x1) + (c20 * x2 + c30 * x3)
            work[o1 + i] += (c01 * x0 + c11 * x1) + (c21 * x2 + c31 * x3)
            work[o2 + i] += (c02 * x0 + c12 * x1) + (c22 * x2 + c32 * x3)
            work[o3 + i] += (c03 * x0 + c13 * x1) + (c23 * x2 + c33 * x3)
    for k in range(n4, n):
        a = src + k * bu
        for j in range(U(4)):
            c = params[w0 + k * stride + j]
            out = o + j * bu
            for i in range(nb):
                work[out + i] += c * work[a + i]


@njit(**JIT)
def _columns_forward(X, rows, params, sizes, offs, at, stride, act, work):
    """The forward pass of a block of rows (X's rows ``rows``), feature-major:
    row i of the block is column i of every layer's matrix, whose rows lie
    ``stride`` apart (the input's transposed by ``_transpose_rows``).
    For each output unit: its bias, then one axpy over the block's rows per
    input unit (four units at a time, ``_columns_combine4``), then f; every
    loop runs over the rows."""
    L = sizes.shape[0] - 1
    d = U(sizes[0])
    bu = U(stride)
    nb = U(rows.shape[0])
    _transpose_rows(_flat(X), rows, d, work, bu)
    for l in range(L):
        n_in, n_out = U(sizes[l]), U(sizes[l + 1])
        src, dst = at[l], at[l + 1]
        wl, bl = U(offs[2 * l]), U(offs[2 * l + 1])
        for u0 in range(U(0), n_out, U(4)):
            units = min(U(4), n_out - u0)
            for u in range(u0, u0 + units):
                o = dst + u * bu
                bv = params[bl + u]
                for i in range(nb):
                    work[o + i] = bv
            if units == U(4):
                _columns_combine4(params, wl + u0, n_out, work, src, bu, n_in, dst + u0 * bu, nb)
            else:
                for u in range(u0, n_out):
                    _columns_combine(params, wl + u, n_out, work, src, bu, n_in, dst + u * bu,
                                     nb)
            if l < L - 1:
                for u in range(u0, u0 + units):
                    _act_span(work, dst + u * bu, nb, act)


@njit(**REDUCE)
def _weighted_sum(work, at, w, rows):
    """sum_i w[rows[i]] * work[at + i] in float64 (w empty: all 1)."""
    total = 0.0
    if w.shape[0] == 0:
        for i in range(U(rows.shape[0])):
            total += np.float64(work[at + i])
    else:
        for i in range(U(rows.shape[0])):
            total += w[rows[i]] * np.float64(work[at + i])
    return total


@njit(**JIT)
def _columns_softmax(y, w, rows, scale, k, stride, work, zo, r0, r1):
    """Softmax + cross-entropy of a feature-major block of logits (k rows,
    ``stride`` apart, at work[zo:]), vectorised over the block's rows: one output
    stream per loop, so that each vectorises. Replaces the logits by the
    delta w_r * scale * (p - onehot(label)) and returns the weighted sum of
    the rows' losses (float64). Scratch: four row vectors, at r0 and r0 +
    stride (label as a float, the row's weight times ``scale``), r1 and r1 +
    stride (max, then the sum of exps; z[label] - max, then the loss)."""
    nb = U(rows.shape[0])
    bu = U(stride)
    ku = U(k)
    dt = work.dtype.type
    lab, ws, top, row = r0, r0 + bu, r1, r1 + bu
    weighted = w.shape[0] > 0
    for i in range(nb):
        r = rows[i]
        work[lab + i] = dt(y[r])
        work[ws + i] = dt((w[r] if weighted else 1.0) * scale)
    for i in range(nb):
        work[top + i] = work[zo + i]
    for c in range(U(1), ku):
        zc = zo + c * bu
        for i in range(nb):
            work[top + i] = max(work[top + i], work[zc + i])
    for i in range(nb):
        work[row + i] = -work[top + i]
    for c in range(ku):
        zc = zo + c * bu
        cf = dt(c)
        for i in range(nb):
            work[row + i] += work[zc + i] if work[lab + i] == cf else dt(0.0)
    for c in range(ku):
        zc = zo + c * bu
        for i in range(nb):
            work[zc + i] = _exp_t(work[zc + i] - work[top + i])
    for i in range(nb):
        work[top + i] = work[zo + i]
    for c in range(U(1), ku):
        zc = zo + c * bu
        for i in range(nb):
            work[top + i] += work[zc + i]
    for i in range(nb):
        work[row + i] = _log_t(work[top + i]) - work[row + i]
    total = _weighted_sum(work, row, w, rows)
    for i in range(nb):
        work[top + i] = work[ws + i] / work[top + i]
    for c in range(ku):
        zc = zo + c * bu
        cf = dt(c)
        for i in range(nb):
            work[zc + i] = work[zc + i] * work[top + i] - (work[ws + i] if work[lab + i] == cf
                                                         else dt(0.0))
    return total


@njit(**JIT)
def _columns_binary(y, w, rows, scale, stride, work, zo, r0, r1):
    """``_columns_softmax`` for two classes: with v = z[other] - z[label], the
    loss is softplus(v) and the delta ws * sigmoid(v) for the other class, its
    negative for the label, both from one exp and one log
    (``_sigmoid_softplus``, in the block's precision) in one vectorised pass,
    where the general form takes two exps, a log and a dozen passes. Scratch:
    row vectors at r0 (1 where the label is class 0), r0 + stride (the row's
    weight times ``scale``) and r1 (the rows' losses)."""
    nb = U(rows.shape[0])
    bu = U(stride)
    dt = work.dtype.type
    first, ws, z1 = r0, r0 + bu, zo + bu
    weighted = w.shape[0] > 0
    for i in range(nb):
        r = rows[i]
        work[first + i] = dt(1.0) if y[r] == 0 else dt(0.0)
        work[ws + i] = dt((w[r] if weighted else 1.0) * scale)
    for i in range(nb):
        one = work[first + i] != dt(0.0)
        a, b = work[zo + i], work[z1 + i]
        v = b - a if one else a - b
        p, loss = _sigmoid_softplus(v, dt(1.0))
        work[r1 + i] = loss
        q = work[ws + i] * p
        work[zo + i] = -q if one else q
        work[z1 + i] = q if one else -q
    return _weighted_sum(work, r1, w, rows)


@njit(**JIT)
def _columns_softmax_output(y, w, rows, scale, k, stride, work, zo, g0, g1):
    """The softmax output layer of a feature-major block: its loss (returned,
    weighted, float64) and its delta in place of the logits, vectorised over
    the rows (``_columns_binary`` for two classes, else
    ``_columns_softmax``)."""
    if k == 2:
        return _columns_binary(y, w, rows, scale, stride, work, zo, g0, g1)
    return _columns_softmax(y, w, rows, scale, k, stride, work, zo, g0, g1)


@njit(**JIT)
def _columns_target_output(Y, w, rows, start, order, scale, output, k, stride, work, zo, g0,
                           g1):
    """``_columns_softmax_output`` for the other outputs, by ``target_rows``
    on a row-major copy of the logits in g0, the delta coming back from
    g1."""
    nb = U(rows.shape[0])
    bu, ku = U(stride), U(k)
    for c in range(ku):
        for i in range(nb):
            work[g0 + i * ku + c] = work[zo + c * bu + i]
    m = rows.shape[0]
    Zr = work[g0 : g0 + U(m * k)].reshape(m, k)
    Dr = work[g1 : g1 + U(m * k)].reshape(m, k)
    total = target_rows(Zr, Y, w, order, start, scale, output, Dr)
    for c in range(ku):
        for i in range(nb):
            work[zo + c * bu + i] = work[g1 + i * ku + c]
    return total


@njit(**JIT)
def _add_four(g, i, step, t0, t1, t2, t3):
    """g[i + k step] += tk for k < 4: four sums of a gradient stored."""
    g[i] += t0
    g[i + step] += t1
    g[i + U(2) * step] += t2
    g[i + U(3) * step] += t3


@njit(**INLINE_REDUCE)
def _columns_dots(work, a, d0, bu, n, nb, grads, g0):
    """grads[g0 + u] += the dot product of the rows work[a:a + nb] and
    work[d0 + u bu:] over the block, for u < n: four at once, sharing the
    loads of the first row."""
    dt = work.dtype.type
    n4 = n - n % U(4)
    for u in range(U(0), n4, U(4)):
        r0 = d0 + u * bu
        r1, r2, r3 = r0 + bu, r0 + U(2) * bu, r0 + U(3) * bu
        t0, t1, t2, t3 = _four_dots(work, a, work, r0, r1, r2, r3, nb)
        _add_four(grads, g0 + u, U(1), t0, t1, t2, t3)
    for u in range(n4, n):
        r = d0 + u * bu
        t = dt(0.0)
        for i in range(nb):
            t += work[a + i] * work[r + i]
        grads[g0 + u] += t


@njit(**INLINE_REDUCE)
def _columns_dots4(work, a, d0, bu, n, nb, grads, g0, gs):
    """``_columns_dots`` for four input rows at once, a + k bu for k < 4,
    into grads[g0 + k gs + u]: each pass loads four input and four delta
    rows for sixteen dot products (half a load per multiply-add where one
    input at a time takes a load and a quarter). LLVM splits the sums into
    lanes in its own way here, so the gradient rounds differently from the
    one-input loop (not less exactly). An epoch of 20,000 x 64 -> 10 tanh ->
    4 in batches of 1,024, one thread: 1.52-1.66 -> 1.23-1.31 ms in float32,
    3.0-3.4 -> 2.7-2.9 ms in float64 (AMD EPYC); about 0.5 s more to compile."""
    dt = work.dtype.type
    a1, a2, a3 = a + bu, a + U(2) * bu, a + U(3) * bu
    n4 = n - n % U(4)
    for u in range(U(0), n4, U(4)):
        r0 = d0 + u * bu
        r1, r2, r3 = r0 + bu, r0 + U(2) * bu, r0 + U(3) * bu
        t00 = t01 = t02 = t03 = dt(0.0)
        t10 = t11 = t12 = t13 = dt(0.0)
        t20 = t21 = t22 = t23 = dt(0.0)
        t30 = t31 = t32 = t33 = dt(0.0)
        for i in range(nb):
            x0, x1, x2, x3 = work[a + i], work[a1 + i], work[a2 + i], work[a3 + i]
            e0, e1, e2, e3 = work[r0 + i], work[r1 + i], work[r2 + i], work[r3 + i]
            t00 += x0 * e0
            t01 += x0 * e1
            t02 += x0 * e2
            t03 += x0 * e3
            t10 += x1 * e0
            t11 += x1 * e1
            t12 += x1 * e2
            t13 += x1 * e3
            t20 += x2 * e0
            t21 += x2 * e1
            t22 += x2 * e2
            t23 += x2 * e3
            t30 += x3 * e0
            t31 += x3 * e1
            t32 += x3 * e2
            t33 += x3 * e3
        _add_four(grads, g0 + u, U(1), t00, t01, t02, t03)
        _add_four(grads, g0 + gs + u, U(1), t10, t11, t12, t13)
        _add_four(grads, g0 + U(2) * gs + u, U(1), t20, t21, t22, t23)
        _add_four(grads, g0 + U(3) * gs + u, U(1), t30, t31, t32, t33)
    for u in range(n4, n):
        t0, t1, t2, t3 = _four_dots(work, d0 + u * bu, work, a, a1, a2, a3, nb)
        _add_four(grads, g0 + u, gs, t0, t1, t2, t3)


@njit(**REDUCE)
def _columns_backward(params, grads, sizes, offs, at, stride, nb, act, work):
    """The backward pass of a feature-major block, its gradient added to
    ``grads``: per layer from the top, dW[f, u] += the dot product over the
    block's rows of input f and delta u, db[u] += the sum of delta u, and the
    delta of the layer below, sum_u W[f, u] delta_u times f'(.), from the
    current W. The logits' block holds the output delta; the hidden deltas
    alternate between the two delta buffers."""
    L = sizes.shape[0] - 1
    bu = U(stride)
    nbu = U(nb)
    dt = work.dtype.type
    cur = at[L]
    for l in range(L - 1, -1, -1):
        n_in, n_out = U(sizes[l]), U(sizes[l + 1])
        src = at[l]
        wl, bl = U(offs[2 * l]), U(offs[2 * l + 1])
        for u in range(n_out):
            du = cur + u * bu
            s = dt(0.0)
            for i in range(nbu):
                s += work[du + i]
            grads[bl + u] += s
        f4 = n_in - n_in % U(4)
        for f in range(U(0), f4, U(4)):
            _columns_dots4(work, src + f * bu, cur, bu, n_out, nbu, grads, wl + f * n_out, n_out)
        for f in range(f4, n_in):
            _columns_dots(work, src + f * bu, cur, bu, n_out, nbu, grads, wl + f * n_out)
        if l > 0:
            nxt = at[L + 1] if cur != at[L + 1] else at[L + 2]
            for f in range(n_in):
                g = nxt + f * bu
                a = src + f * bu
                for i in range(nbu):
                    work[g + i] = dt(0.0)
                _columns_combine(params, wl + f * n_out, U(1), work, cur, bu, n_out, g, nbu)
                if act == RELU:
                    for i in range(nbu):
                        work[g + i] = work[g + i] if work[a + i] > 0 else dt(0.0)
                elif act == SIGMOID:
                    for i in range(nbu):
                        work[g + i] *= work[a + i] * (dt(1.0) - work[a + i])
                elif act == TANH:
                    for i in range(nbu):
                        work[g + i] *= dt(1.0) - work[a + i] * work[a + i]
            cur = nxt


@njit(**BY_ADDRESS)
def _columns_block_softmax(X, y, Y, w, order, b0, rows, params, sizes, offs, at, stride, act,
                           output, scale, work, G):
    """Forward, output and backward pass of one feature-major block, the rows
    ``rows`` (``order[b0:]``), in its scratch ``work`` (laid out by ``at``),
    under the softmax output: their gradient times ``scale`` added to ``G``.
    Returns their weighted loss (float64). The other outputs have a pass of
    their own, ``_columns_block_targets``, so that a first fit compiles only
    its own output."""
    L = sizes.shape[0] - 1
    _columns_forward(X, rows, params, sizes, offs, at, stride, act, work)
    loss = _columns_softmax_output(y, w, rows, scale, sizes[L], stride, work, at[L], at[L + 1],
                                   at[L + 2])
    _columns_backward(params, G, sizes, offs, at, stride, rows.shape[0], act, work)
    return loss


@njit(**BY_ADDRESS)
def _columns_block_targets(X, y, Y, w, order, b0, rows, params, sizes, offs, at, stride, act,
                           output, scale, work, G):
    """``_columns_block_softmax`` for the outputs with targets (squared,
    logistic, poisson: ``output``)."""
    L = sizes.shape[0] - 1
    _columns_forward(X, rows, params, sizes, offs, at, stride, act, work)
    loss = _columns_target_output(Y, w, rows, b0, order, scale, output, sizes[L], stride, work,
                                  at[L], at[L + 1], at[L + 2])
    _columns_backward(params, G, sizes, offs, at, stride, rows.shape[0], act, work)
    return loss
