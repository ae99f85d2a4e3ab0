"""Compiled (numba) kernels: every formula as an in-place loop.

Each kernel writes into arrays its caller provides and allocates nothing but
small views, except ``predict_rows``, which returns its result. Inner loops
index flat (1-D) views with plain offsets: making a row view per row costs more
than a narrow row's arithmetic. The whole-epoch kernel ``train_epoch`` and the
full-batch ``loss_gradient`` call the others, so they all live in this one
module (numba rebuilds a cached function only when its own source file
changes; the values it takes from ``codes`` and ``config`` are checked by
``ensure_fresh``).

Elementwise math uses ``_exp``, a range-reduced polynomial that vectorises
(numba has no SIMD ``exp`` on this platform). Results are computed in float64
and stored in the array's dtype.

The input X of the training and prediction kernels is either a C-contiguous
2-D array or a CSR triple ``(data, indices, indptr)``; only the first layer
differs (``_first_forward``, ``_first_gradient``), chosen by type when numba
compiles, so a dense fit never compiles the sparse code.

Sections: set-up, exp, matrix products, activations, output layers,
optimisers, layout and the first layer, network forward, training.
"""

import os
import warnings

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core.registry import CPUDispatcher
from numba.extending import intrinsic, overload

from . import config
from .codes import (ADAM, IDENTITY, LOGISTIC, POISSON, RELU, SIGMOID, SOFTMAX, SQUARED,
                    TANH)
from .config import NARROW, PARALLEL_MIN_ELEMENTS, PREDICT_CHUNK, SMALL_GEMM


# ------------------------------------------------------------------ set-up
def _disk_cache():
    """Whether numba can cache this module's kernels on disk.

    numba picks the directory itself: ``NUMBA_CACHE_DIR``, else the
    ``__pycache__`` beside this file, else a per-user cache directory. When it
    can write none of them, the kernels are compiled anew in every process.
    """
    def probe():
        return 0

    try:
        dispatcher = njit(cache=True)(probe)
    except RuntimeError:  # numba found no writable directory
        warnings.warn("fastmlp: numba finds no writable cache directory; the kernels are "
                      "compiled anew in every process (set NUMBA_CACHE_DIR to a writable "
                      "directory)", RuntimeWarning, stacklevel=3)
        return False
    wanted = os.environ.get("NUMBA_CACHE_DIR")
    path = getattr(getattr(dispatcher, "_cache", None), "cache_path", None)
    if wanted and path and not os.path.abspath(path).startswith(os.path.abspath(wanted)):
        warnings.warn(f"fastmlp: NUMBA_CACHE_DIR={wanted!r} is not writable; numba caches "
                      f"fastmlp's kernels in {path} instead", RuntimeWarning, stacklevel=3)
    return True


_CACHE = _disk_cache()
JIT = dict(config.JIT, cache=_CACHE)
#: Type-dispatched helpers (``overload``): compiled into the kernels that call
#: them and cached only as part of those, so that ``ensure_fresh`` rebuilding the
#: kernels rebuilds them too.
OVERLOAD = dict(config.JIT, cache=False)
REDUCE = dict(config.REDUCE, cache=_CACHE)
INLINE = dict(config.INLINE, cache=_CACHE)

#: Every value from another module that the compiled code below freezes in.
_FROZEN = (IDENTITY, SIGMOID, TANH, RELU, SOFTMAX, SQUARED, LOGISTIC, POISSON, ADAM,
           NARROW, PARALLEL_MIN_ELEMENTS, PREDICT_CHUNK, SMALL_GEMM)


@njit(**JIT)
def _frozen():
    """``_FROZEN`` as it was when this module's cache was compiled."""
    return _FROZEN


def ensure_fresh():
    """Rebuild every cached kernel of this module if a value in ``_FROZEN``
    changed since the cache was written; returns whether it did.

    numba keys its cache on this file's own source, so an edit of ``codes`` or
    ``config`` alone would leave stale machine code on disk.
    """
    if _frozen() == _FROZEN:
        return False
    for value in list(globals().values()):
        if isinstance(value, CPUDispatcher):
            value.recompile()  # drops its on-disk index; compiles again on next use
    return True


# ---------------------------------------------------------------------- exp
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_SHIFTER = 6755399441055744.0  # 1.5 * 2**52: adding it rounds to an integer
_SHIFTER_BITS = 0x4338000000000000
_EXP_LO = -708.0
_EXP_HI = 709.782712893384  # log(largest float64)


@intrinsic
def _bits_of(typingctx, x):
    """The int64 with the bit pattern of float64 ``x``."""
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


@intrinsic
def _float_of(typingctx, n):
    """The float64 with the bit pattern of int64 ``n``."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


@njit(**INLINE)
def _expm1_reduced(r, f32):
    """exp(r) - 1 for |r| <= ln2/2, relative error within 2 ulp of float64 (or,
    ``f32`` true, 1e-8): the Taylor polynomial of degree 13 (7), without its
    leading 1, in Estrin's scheme, whose short dependency chain keeps narrow
    loops fast."""
    r2 = r * r
    r4 = r2 * r2
    q = (r + r2 * (1.0 / 2.0 + r * (1.0 / 6.0))
         + r4 * ((1.0 / 24.0 + r * (1.0 / 120.0)) + r2 * (1.0 / 720.0 + r * (1.0 / 5040.0))))
    if not f32:
        r8 = r4 * r4
        hi = (((1.0 / 40320.0 + r * (1.0 / 362880.0)) + r2 * (1.0 / 3628800.0 + r * (1.0 / 39916800.0)))
              + r4 * (1.0 / 479001600.0 + r * (1.0 / 6227020800.0)))
        q = q + r8 * hi
    return q


@njit(**INLINE)
def _exp(x, f32):
    """exp(x) in float64: within 2 ulp of float64, or (``f32`` true) within
    1e-8 relative, plenty for a float32 result. 0 below -708, inf above
    log(max float64).

    x = k ln2 + r with |r| <= ln2/2; exp(r) = 1 + ``_expm1_reduced(r)``; 2**k
    built from its bits. Branch-free, so loops over it vectorise; ``f32`` is a
    constant where it is inlined.
    """
    c = min(max(x, _EXP_LO), _EXP_HI)
    t = c * _LOG2E + _SHIFTER
    k = t - _SHIFTER
    r = (c - k * _LN2_HI) - k * _LN2_LO
    p = 1.0 + _expm1_reduced(r, f32)
    # 2**(k-1), times 2 below: k reaches 1024 near the top of the range
    scale = _float_of((_bits_of(t) - _SHIFTER_BITS + 1022) << 52)
    y = (p * scale) * 2.0
    y = 0.0 if x < _EXP_LO else y
    y = np.inf if x > _EXP_HI else y
    return y


@njit(**INLINE)
def _sigmoid(v, f32):
    return 1.0 / (1.0 + _exp(-v, f32))


@njit(**INLINE)
def _tanh(v, f32):
    """tanh(v) = (1 - e) / (1 + e) with e = exp(-2|v|); for |v| < ln2/4, where
    1 - e cancels, -q / (2 + q) with q = expm1(-2|v|) instead (relative
    accuracy down to 0). Both are computed: the select keeps loops branch-free."""
    a = abs(v)
    e = _exp(-2.0 * a, f32)
    big = (1.0 - e) / (1.0 + e)
    q = _expm1_reduced(-2.0 * a, f32)
    small = -q / (2.0 + q)
    t = small if a < 0.17328679513998632 else big
    return t if v >= 0 else -t


@njit(**INLINE)
def _softplus(v):
    """log(1 + exp(v)) in float64, finite for any finite v."""
    return max(v, 0.0) + np.log1p(_exp(-abs(v), False))


# ---------------------------------------------------------- matrix products
@njit(**JIT)
def _flat(A):
    """1-D view of a C-contiguous array."""
    return A.reshape(A.size)


@njit(**JIT)
def gemm_nn(A, B, C):
    """C = A @ B."""
    m, k = A.shape
    n = B.shape[1]
    if m * n * k > SMALL_GEMM:
        np.dot(A, B, C)
        return
    a, b, c = _flat(A), _flat(B), _flat(C)
    for i in range(m):
        ci = c[i * n : (i + 1) * n]
        for j in range(n):
            ci[j] = 0.0
        for p in range(k):
            av = a[i * k + p]
            bp = b[p * n : (p + 1) * n]
            for j in range(n):
                ci[j] += av * bp[j]


@njit(**JIT)
def gemm_tn(A, B, C):
    """C = A.T @ B."""
    m, k = A.shape
    n = B.shape[1]
    if m * n * k > SMALL_GEMM:
        np.dot(A.T, B, C)
        return
    a, b, c = _flat(A), _flat(B), _flat(C)
    for i in range(c.shape[0]):
        c[i] = 0.0
    for p in range(m):
        bp = b[p * n : (p + 1) * n]
        for i in range(k):
            av = a[p * k + i]
            ci = c[i * n : (i + 1) * n]
            for j in range(n):
                ci[j] += av * bp[j]


@njit(**JIT)
def gemm_nt(A, B, C):
    """C = A @ B.T."""
    m, k = A.shape
    n = B.shape[0]
    if m * n * k > SMALL_GEMM:
        np.dot(A, B.T, C)
        return
    a, b, c = _flat(A), _flat(B), _flat(C)
    for i in range(m):
        ai = a[i * k : (i + 1) * k]
        for j in range(n):
            bj = b[j * k : (j + 1) * k]
            s = 0.0
            for p in range(k):
                s += ai[p] * bj[p]
            c[i * n + j] = s


@njit(**REDUCE)
def sum_squares(a):
    """Sum of a**2 over a 1-D array, in float64 (vectorised: summation order is
    fixed by the compiled code, not by the data)."""
    s = 0.0
    for i in range(a.shape[0]):
        v = np.float64(a[i])
        s += v * v
    return s


@njit(**REDUCE)
def column_sums(D, out):
    """out[j] = sum over rows of D[:, j], in the dtype of ``out``."""
    m, n = D.shape
    d = _flat(D)
    for j in range(n):
        out[j] = 0.0
    for i in range(m):
        row = d[i * n : (i + 1) * n]
        for j in range(n):
            out[j] += row[j]


# -------------------------------------------------------------- activations
@njit(**JIT)
def _act_flat(z, lo, hi, act):
    """z[lo:hi] = f(z[lo:hi]) in place: one long loop that vectorises."""
    f32 = z.itemsize == 4  # a compile-time constant: no branch in the loops
    z = z[lo:hi]  # loops from 0 index without wraparound checks, and vectorise
    if act == RELU:
        for i in range(z.shape[0]):
            v = z[i]
            z[i] = 0.0 if v < 0 else v
    elif act == SIGMOID:
        for i in range(z.shape[0]):
            z[i] = _sigmoid(z[i], f32)
    elif act == TANH:
        for i in range(z.shape[0]):
            z[i] = _tanh(z[i], f32)


@njit(**JIT)
def bias_act_rows(Z, b, act, r0, r1):
    """Z[r] = f(Z[r] + b) in place for rows r0..r1-1.

    Wide rows take one fused pass; narrow rows (a short inner loop cannot
    vectorise f) add the bias first, then apply f over the whole block.
    """
    n = Z.shape[1]
    z = _flat(Z)
    f32 = Z.itemsize == 4
    if n < NARROW or act == IDENTITY:
        for i in range(r0, r1):
            row = z[i * n : (i + 1) * n]
            for j in range(n):
                row[j] += b[j]
        _act_flat(z, r0 * n, r1 * n, act)
    elif act == RELU:
        for i in range(r0, r1):
            row = z[i * n : (i + 1) * n]
            for j in range(n):
                v = row[j] + b[j]
                row[j] = 0.0 if v < 0 else v
    elif act == SIGMOID:
        for i in range(r0, r1):
            row = z[i * n : (i + 1) * n]
            for j in range(n):
                row[j] = _sigmoid(row[j] + b[j], f32)
    else:
        for i in range(r0, r1):
            row = z[i * n : (i + 1) * n]
            for j in range(n):
                row[j] = _tanh(row[j] + b[j], f32)


@njit(**JIT)
def linear(X, W, b, act, out):
    """out = f(X @ W + b): one product, then one fused pass for bias and f."""
    gemm_nn(X, W, out)
    bias_act_rows(out, b, act, 0, out.shape[0])


@njit(**JIT)
def act_backward(A, dA, act, out):
    """out = dA * f'(.) from the activation output A (out may be dA)."""
    a, d, o = _flat(A), _flat(dA), _flat(out)
    if act == RELU:
        for i in range(o.shape[0]):
            o[i] = d[i] if a[i] > 0 else 0.0
    elif act == SIGMOID:
        for i in range(o.shape[0]):
            o[i] = d[i] * (a[i] * (1.0 - a[i]))
    elif act == TANH:
        for i in range(o.shape[0]):
            o[i] = d[i] * (1.0 - a[i] * a[i])
    else:
        for i in range(o.shape[0]):
            o[i] = d[i]


# ------------------------------------------------------------ output layers
@njit(**JIT)
def _row(order, start, i):
    """The data row of a batch's row i: order[start + i], or start + i when
    ``order`` is empty (the rows in their own order)."""
    return order[start + i] if order.shape[0] else start + i


@njit(**JIT)
def _shift_exp(z, p, d, r0, r1, n):
    """Rows r0..r1-1 of z, minus their max, into d; their exp into p.

    Two passes (short per-row loops, then one long vectorised exp) beat one
    pass whose exp loop is only a row long. p or d may be z.
    """
    for i in range(r0, r1):
        base = i * n
        top = z[base]
        for j in range(base + 1, base + n):
            v = z[j]
            top = v if v > top else top
        for j in range(base, base + n):
            v = z[j] - top
            d[j] = v
            p[j] = v
    f32 = p.itemsize == 4
    block = p[r0 * n : r1 * n]
    for j in range(block.shape[0]):
        block[j] = _exp(block[j], f32)


@njit(**JIT)
def _normalise(p, base, n):
    """Divide p[base:base + n] by its sum; returns log(sum)."""
    s = 0.0
    for j in range(base, base + n):
        s += p[j]
    inv = 1.0 / s
    for j in range(base, base + n):
        p[j] *= inv
    return np.log(s)


@njit(**JIT)
def softmax(Z, out):
    """Row-wise softmax (out may be Z)."""
    m, n = Z.shape
    z, o = _flat(Z), _flat(out)
    _shift_exp(z, o, o, 0, m, n)
    for i in range(m):
        _normalise(o, i * n, n)


@njit(**JIT)
def log_softmax(Z, out):
    """Row-wise log-softmax, (z - max) - log(sum(exp(z - max)))."""
    m, n = Z.shape
    z, o = _flat(Z), _flat(out)
    f32 = Z.itemsize == 4
    for i in range(m):
        base = i * n
        top = z[base]
        for j in range(base + 1, base + n):
            v = z[j]
            top = v if v > top else top
        s = 0.0
        for j in range(base, base + n):
            s += _exp(z[j] - top, f32)
        log_s = np.log(s)
        for j in range(base, base + n):
            o[j] = (z[j] - top) - log_s  # not z - (top + log s): exact next to huge logits


@njit(**JIT)
def output_rows(Z, y, Y, w, order, start, scale, output, D):
    """The output layer of one batch, fused with its loss and its delta.

    Z (m x k) holds the output layer's pre-activations (logits); they are
    replaced by the output: softmax, sigmoid (logistic), exp (poisson) or
    left as they are (squared). Row i's target is y[r] (softmax: an integer
    label) or Y[r] (a row of k values) and its weight w[r] (1 when w is empty),
    with r = ``_row(order, start, i)``. Writes D = w[r] * (output - target) *
    scale, the gradient of the loss below times ``scale``, and returns the
    weighted sum over rows of each row's loss, in float64:

    - softmax: log(sum(exp(z))) - z[label], by log-sum-exp (exact for any
      finite logits);
    - squared: 0.5 * sum((z - t)**2);
    - logistic: sum(softplus(z) - t * z), the binary cross-entropy of
      sigmoid(z) without rounding sigmoid(z) first;
    - poisson: sum(t log t - t z - t + exp(z)), the Poisson deviance
      y log(y / p) - y + p at p = exp(z) (0 log 0 = 0).
    """
    m, k = Z.shape
    z, d = _flat(Z), _flat(D)
    weighted = w.shape[0] > 0
    f32 = Z.itemsize == 4
    total = 0.0
    if output == SOFTMAX:
        _shift_exp(z, z, d, 0, m, k)  # d holds z - max for now
        for i in range(m):
            r = _row(order, start, i)
            base = i * k
            label = base + y[r]
            wr = w[r] if weighted else 1.0
            total += wr * (_normalise(z, base, k) - d[label])
            p_label = np.float64(z[label])
            ws = wr * scale
            for j in range(base, base + k):
                d[j] = z[j] * ws
            d[label] = (p_label - 1.0) * ws
        return total
    t = _flat(Y)
    for i in range(m):
        r = _row(order, start, i)
        wr = w[r] if weighted else 1.0
        ws = wr * scale
        row = 0.0
        for j in range(k):
            v = np.float64(z[i * k + j])
            tv = np.float64(t[r * k + j])
            if output == SQUARED:
                p = v
                row += 0.5 * (v - tv) * (v - tv)
            elif output == LOGISTIC:
                p = _sigmoid(v, f32)
                row += _softplus(v) - tv * v
            else:  # POISSON
                p = _exp(v, False)
                row += (tv * np.log(tv) if tv > 0 else 0.0) - tv * v - tv + p
            z[i * k + j] = p
            d[i * k + j] = (p - tv) * ws
        total += wr * row
    return total


# --------------------------------------------------------------- optimisers
@njit(**JIT)
def _limit(a):
    """Largest finite value of a's dtype (float32 or float64)."""
    return 3.4028234663852886e38 if a.itemsize == 4 else 1.7976931348623157e308


@njit(**REDUCE)
def sgd_step(params, grads, velocity, lr, momentum, nesterov, decay, i0, i1):
    """One SGD step on entries i0..i1-1, in one pass: grads += decay * params
    (the L2 term, kept in ``grads``), velocity = momentum * velocity - lr *
    grads, params += velocity (Nesterov: params += momentum * velocity - lr *
    grads). Returns (whether every new value is finite in the dtype, sum of
    the new params**2)."""
    limit = _limit(params)
    ok = True
    sq = 0.0
    params, grads, velocity = params[i0:i1], grads[i0:i1], velocity[i0:i1]
    for i in range(params.shape[0]):
        g = grads[i] + decay * params[i]
        grads[i] = g
        v = momentum * velocity[i] - lr * g
        p = params[i] + (momentum * v - lr * g if nesterov else v)
        velocity[i] = v
        params[i] = p
        ok &= (abs(v) <= limit) & (abs(p) <= limit)
        sq += p * p
    return ok, sq


@njit(**JIT)
def adam_rate(lr, beta1, beta2, step):
    """Adam's step size for update number ``step`` (>= 1), both bias
    corrections folded in."""
    return lr * np.sqrt(1.0 - beta2**step) / (1.0 - beta1**step)


@njit(**REDUCE)
def adam_step(params, grads, m1, m2, rate, beta1, beta2, eps, decay, i0, i1):
    """One Adam step on entries i0..i1-1 (``rate`` from ``adam_rate``), in one
    pass, the L2 term added to ``grads`` first; returns what ``sgd_step`` does."""
    limit = _limit(params)
    ok = True
    sq = 0.0
    params, grads, m1, m2 = params[i0:i1], grads[i0:i1], m1[i0:i1], m2[i0:i1]
    for i in range(params.shape[0]):
        g = grads[i] + decay * params[i]
        grads[i] = g
        a = beta1 * m1[i] + (1.0 - beta1) * g
        b = beta2 * m2[i] + (1.0 - beta2) * (g * g)
        p = params[i] - rate * a / (np.sqrt(b) + eps)
        m1[i] = a
        m2[i] = b
        params[i] = p
        ok &= (abs(a) <= limit) & (b <= limit) & (abs(p) <= limit)
        sq += p * p
    return ok, sq


@njit(**JIT)
def sgd_update(params, grads, velocity, lr, momentum, nesterov):
    sgd_step(params, grads, velocity, lr, momentum, nesterov, 0.0, 0, params.shape[0])


@njit(**JIT)
def adam_update(params, grads, m1, m2, step, lr, beta1, beta2, eps):
    adam_step(params, grads, m1, m2, adam_rate(lr, beta1, beta2, step), beta1, beta2, eps,
              0.0, 0, params.shape[0])


@njit(**JIT)
def _update_layer(params, grads, state1, state2, lo, mid, hi, solver, lr, momentum, nesterov,
                  beta1, beta2, eps, rate, decay):
    """One optimiser step on a layer: W = params[lo:mid] with the L2 term
    ``decay * W``, b = params[mid:hi] without. Returns (all new values finite,
    sum of the new W**2)."""
    if solver == ADAM:
        ok_w, sq = adam_step(params, grads, state1, state2, rate, beta1, beta2, eps, decay,
                             lo, mid)
        ok_b, _ = adam_step(params, grads, state1, state2, rate, beta1, beta2, eps, 0.0,
                            mid, hi)
    else:
        ok_w, sq = sgd_step(params, grads, state1, lr, momentum, nesterov, decay, lo, mid)
        ok_b, _ = sgd_step(params, grads, state1, lr, momentum, nesterov, 0.0, mid, hi)
    return ok_w and ok_b, sq


# ---------------------------------------------- layout and the first layer
@njit(**JIT)
def _layers(sizes):
    """Start of each layer's W and b in the flat parameter vector: layer l's W
    is [offs[2l], offs[2l+1]), its b [offs[2l+1], offs[2l+2])."""
    L = sizes.shape[0] - 1
    offs = np.empty(2 * L + 1, dtype=np.int64)
    off = 0
    for l in range(L):
        offs[2 * l] = off
        off += sizes[l] * sizes[l + 1]
        offs[2 * l + 1] = off
        off += sizes[l + 1]
    offs[2 * L] = off
    return offs


@njit(**JIT)
def _weights(params, sizes, offs, l):
    """Views of layer l's W (n_in, n_out) and b (n_out) in ``params``."""
    W = params[offs[2 * l] : offs[2 * l + 1]].reshape(sizes[l], sizes[l + 1])
    b = params[offs[2 * l + 1] : offs[2 * l + 2]]
    return W, b


@njit(**JIT)
def _offsets(sizes, rows, input_rows):
    """Start of each block in the work array (see ``work_size``): the batch's
    input rows (``input_rows`` of them: none for sparse X, which is read in
    place), each layer's activations, two delta buffers of the widest layer,
    then scratch for the largest weight matrix."""
    L = sizes.shape[0] - 1
    offs = np.empty(L + 4, dtype=np.int64)
    off = 0
    for l in range(L + 1):
        offs[l] = off
        off += (rows if l > 0 else input_rows) * sizes[l]
    widest = 0
    for l in range(1, L + 1):
        widest = max(widest, sizes[l])
    offs[L + 1] = off
    offs[L + 2] = off + rows * widest
    offs[L + 3] = off + 2 * rows * widest
    return offs


@njit(**JIT)
def _block(work, offs, i, m, width):
    return work[offs[i] : offs[i] + m * width].reshape(m, width)


def _n_rows(X):
    """Rows of X, a dense array or a CSR triple."""
    raise NotImplementedError  # compiled by the overload below


@overload(_n_rows, jit_options=OVERLOAD)
def _n_rows_impl(X):
    if isinstance(X, types.Array):
        return lambda X: X.shape[0]
    return lambda X: X[2].shape[0] - 1


def _input_rows(X, rows):
    """Rows of the work array's input block: ``rows`` for dense X, 0 for CSR."""
    raise NotImplementedError  # compiled by the overload below


@overload(_input_rows, jit_options=OVERLOAD)
def _input_rows_impl(X, rows):
    if isinstance(X, types.Array):
        return lambda X, rows: rows
    return lambda X, rows: 0


def _input_block(X, work, offs, m, n_in):
    """The work block for m gathered input rows (dense X; an empty one for CSR)."""
    raise NotImplementedError  # compiled by the overload below


@overload(_input_block, jit_options=OVERLOAD)
def _input_block_impl(X, work, offs, m, n_in):
    if isinstance(X, types.Array):
        return lambda X, work, offs, m, n_in: work[offs[0] : offs[0] + m * n_in].reshape(m, n_in)
    return lambda X, work, offs, m, n_in: work[:0].reshape(0, n_in)


def _first_forward(X, order, start, m, W, b, act, buf, out):
    """out = f(X[rows] @ W + b) for the m rows ``_row(order, start, i)``;
    ``buf`` (m x n_in) receives the dense rows where the product needs them.
    Returns the input block the gradient reads (``buf``, or X's row itself)."""
    raise NotImplementedError  # compiled by the overload below


@overload(_first_forward, jit_options=OVERLOAD)
def _first_forward_impl(X, order, start, m, W, b, act, buf, out):
    if isinstance(X, types.Array):
        def dense(X, order, start, m, W, b, act, buf, out):
            n_in = X.shape[1]
            if order.shape[0] == 0:  # rows in their own order: X's rows, no copy
                rows = X[start : start + m]
            elif m == 1:  # one row: X's own row, no copy
                r = order[start]
                rows = X[r : r + 1]
            else:
                x, xb = _flat(X), _flat(buf)
                for i in range(m):
                    src = _row(order, start, i) * n_in
                    dst = xb[i * n_in : (i + 1) * n_in]
                    for j in range(n_in):
                        dst[j] = x[src + j]
                rows = buf
            linear(rows, W, b, act, out)
            return rows

        return dense

    def csr(X, order, start, m, W, b, act, buf, out):
        data, indices, indptr = X
        n = W.shape[1]
        w, o = _flat(W), _flat(out)
        for i in range(m):
            r = _row(order, start, i)
            row = o[i * n : (i + 1) * n]
            for j in range(n):
                row[j] = 0.0
            for p in range(indptr[r], indptr[r + 1]):
                v = data[p]
                wr = w[indices[p] * n : (indices[p] + 1) * n]
                for j in range(n):
                    row[j] += v * wr[j]
        bias_act_rows(out, b, act, 0, m)
        return buf

    return csr


def _first_gradient(X, order, start, rows, D, gW):
    """gW = X[rows]^T @ D for the first layer: ``rows`` is what
    ``_first_forward`` returned (dense), or the CSR rows are read again."""
    raise NotImplementedError  # compiled by the overload below


@overload(_first_gradient, jit_options=OVERLOAD)
def _first_gradient_impl(X, order, start, rows, D, gW):
    if isinstance(X, types.Array):
        def dense(X, order, start, rows, D, gW):
            gemm_tn(rows, D, gW)

        return dense

    def csr(X, order, start, rows, D, gW):
        data, indices, indptr = X
        m, n = D.shape
        g, d = _flat(gW), _flat(D)
        for j in range(g.shape[0]):
            g[j] = 0.0
        for i in range(m):
            r = _row(order, start, i)
            di = d[i * n : (i + 1) * n]
            for p in range(indptr[r], indptr[r + 1]):
                v = data[p]
                gr = g[indices[p] * n : (indices[p] + 1) * n]
                for j in range(n):
                    gr[j] += v * di[j]

    return csr


# ---------------------------------------------------------- network forward
@njit(**JIT)
def _forward_rows(X, order, start, m, params, sizes, offs, act, output, work, wo, out):
    """Activations of m rows through every layer into the work blocks (layer
    l's output in block l + 1); the last layer's into ``out`` (logits: the
    output function is applied by the caller). Returns the first layer's input
    block."""
    L = sizes.shape[0] - 1
    W, b = _weights(params, sizes, offs, 0)
    dst = out if L == 1 else _block(work, wo, 1, m, sizes[1])
    first = _first_forward(X, order, start, m, W, b, act if L > 1 else IDENTITY,
                           _input_block(X, work, wo, m, sizes[0]), dst)
    prev = dst
    for l in range(1, L):
        W, b = _weights(params, sizes, offs, l)
        dst = out if l == L - 1 else _block(work, wo, l + 1, m, sizes[l + 1])
        linear(prev, W, b, act if l < L - 1 else IDENTITY, dst)
        prev = dst
    return first


@njit(**JIT)
def _output_only(out, output):
    """The output function applied to logits in place (no loss)."""
    m, k = out.shape
    if output == SOFTMAX:
        softmax(out, out)
    elif output == LOGISTIC:
        _act_flat(_flat(out), 0, m * k, SIGMOID)
    elif output == POISSON:
        o = _flat(out)
        for j in range(o.shape[0]):
            o[j] = _exp(np.float64(o[j]), False)


@njit(**JIT)
def forward(X, params, sizes, act, output, buf_a, buf_b, out):
    """Network output for the rows of dense X; buf_a and buf_b are 1-D scratch
    of at least rows * widest hidden layer."""
    m = X.shape[0]
    L = sizes.shape[0] - 1
    offs = _layers(sizes)
    prev = X
    for l in range(L):
        W, b = _weights(params, sizes, offs, l)
        n_out = sizes[l + 1]
        if l == L - 1:
            dst = out
        elif l % 2 == 0:
            dst = buf_a[: m * n_out].reshape(m, n_out)
        else:
            dst = buf_b[: m * n_out].reshape(m, n_out)
        linear(prev, W, b, act if l < L - 1 else IDENTITY, dst)
        prev = dst
    _output_only(out, output)


@njit(**JIT)
def _first_nonfinite(a, cols):
    """The first row (of width ``cols``) of flat ``a`` holding NaN or inf, or -1."""
    for i in range(a.shape[0] // cols):
        bad = False
        for j in range(i * cols, (i + 1) * cols):
            bad |= not np.isfinite(a[j])
        if bad:
            return i
    return -1


def _first_nonfinite_input(X):
    """The first row of X (dense or CSR) holding NaN or inf, or -1."""
    raise NotImplementedError  # compiled by the overload below


@overload(_first_nonfinite_input, jit_options=OVERLOAD)
def _first_nonfinite_input_impl(X):
    if isinstance(X, types.Array):
        return lambda X: _first_nonfinite(_flat(X), X.shape[1])

    def csr(X):
        data, indices, indptr = X
        for r in range(indptr.shape[0] - 1):
            for p in range(indptr[r], indptr[r + 1]):
                if not np.isfinite(data[p]):
                    return r
        return -1

    return csr


@njit(**JIT)
def predict_rows(X, params, sizes, act, output):
    """The network's output for every row of X (dense or CSR) in chunks,
    allocating its result and scratch: one compiled call per prediction.
    Returns (out, labels, bad): labels is each row's argmax (the class code
    under a softmax output), bad the first row whose input or output is not
    finite (-1: none)."""
    m = _n_rows(X)
    L = sizes.shape[0] - 1
    k = sizes[L]
    out = np.empty((m, k), dtype=params.dtype)
    labels = np.zeros(m, dtype=np.int64)
    bad = _first_nonfinite_input(X)
    if bad >= 0:
        return out, labels, bad
    offs = _layers(sizes)
    chunk = max(1, min(m, PREDICT_CHUNK))
    wo = _offsets(sizes, chunk, _input_rows(X, chunk))
    work = np.empty(wo[L + 1], dtype=params.dtype)
    empty = np.empty(0, dtype=np.int64)
    for r0 in range(0, m, chunk):
        r1 = min(m, r0 + chunk)
        block = out[r0:r1]
        _forward_rows(X, empty, r0, r1 - r0, params, sizes, offs, act, output, work, wo, block)
        _output_only(block, output)
    o = _flat(out)
    bad = _first_nonfinite(o, k)
    for i in range(m):
        best = 0
        for j in range(1, k):
            if o[i * k + j] > o[i * k + best]:
                best = j
        labels[i] = best
    return out, labels, bad


# ----------------------------------------------------------------- training
@njit(**JIT)
def _batch_weight(w, order, start, m):
    """Sum of the m rows' weights (m when unweighted)."""
    if w.shape[0] == 0:
        return float(m)
    s = 0.0
    for i in range(m):
        s += w[_row(order, start, i)]
    return s


@njit(**JIT)
def _penalty_squares(params, sizes, offs):
    """Sum of the squares of every weight (not the biases)."""
    sq = 0.0
    for l in range(sizes.shape[0] - 1):
        sq += sum_squares(params[offs[2 * l] : offs[2 * l + 1]])
    return sq


@njit(**JIT)
def _backward(X, order, start, m, first, params, sizes, offs, act, work, wo, l, gW, gb):
    """Layer l's gradient into gW (prev^T D) and gb (column sums of D) from its
    delta D in the work block of layer l, and, for l > 0, the delta of layer
    l - 1 from the current (not yet updated) W."""
    L = sizes.shape[0] - 1
    D = _block(work, wo, L + 1 + (L - 1 - l) % 2, m, sizes[l + 1])
    if l == 0:
        _first_gradient(X, order, start, first, D, gW)
    else:
        gemm_tn(_block(work, wo, l, m, sizes[l]), D, gW)
    column_sums(D, gb)
    if l > 0:
        W, _ = _weights(params, sizes, offs, l)
        nxt = _block(work, wo, L + 1 + (L - l) % 2, m, sizes[l])
        gemm_nt(D, W, nxt)
        act_backward(_block(work, wo, l, m, sizes[l]), nxt, act, nxt)


@njit(**JIT)
def train_epoch(X, y, Y, w, order, params, grads, state1, state2, step, sizes, act, output,
                solver, lr, momentum, nesterov, beta1, beta2, eps, l2, batch_size, work):
    """One epoch of minibatch training; the NumPy backend has the same
    algorithm as array expressions. Returns (data loss, penalty, step, rows
    done): the two loss parts summed over batches, each batch's weighted by its
    rows over its total weight. Each layer is updated right after its delta
    for the layer below is taken, in one pass over its parameters. A batch
    whose loss, or any new parameter or optimiser value, is not finite stops
    the epoch at once (rows done < len(order)); the caller restores what it
    saved, since layers above may have been updated.
    """
    n = order.shape[0]
    L = sizes.shape[0] - 1
    offs = _layers(sizes)
    wo = _offsets(sizes, batch_size, _input_rows(X, batch_size))
    data_total = 0.0
    penalty_total = 0.0
    sq = -1.0  # sum of W**2, known after the first update
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        weight = _batch_weight(w, order, start, m)
        if weight == 0.0:  # rows of zero weight: nothing to learn from them
            continue
        out = _block(work, wo, L, m, sizes[L])
        first = _forward_rows(X, order, start, m, params, sizes, offs, act, output, work, wo,
                              out)
        scale = 1.0 / weight
        data = output_rows(out, y, Y, w, order, start, scale, output,
                           _block(work, wo, L + 1, m, sizes[L]))
        penalty = 0.0
        if l2 > 0:
            if sq < 0:
                sq = _penalty_squares(params, sizes, offs)
            penalty = 0.5 * l2 * sq
        if not np.isfinite(data + penalty):
            return np.nan, np.nan, step, start
        data_total += data * m * scale
        penalty_total += penalty * m * scale
        rate = adam_rate(lr, beta1, beta2, step + 1)
        ok = True
        sq_new = 0.0
        for l in range(L - 1, -1, -1):
            gW, gb = _weights(grads, sizes, offs, l)
            _backward(X, order, start, m, first, params, sizes, offs, act, work, wo, l, gW, gb)
            good, part = _update_layer(params, grads, state1, state2, offs[2 * l],
                                       offs[2 * l + 1], offs[2 * l + 2], solver, lr, momentum,
                                       nesterov, beta1, beta2, eps, rate, l2 * scale)
            ok = ok and good
            sq_new += part
        if not ok:
            return np.nan, np.nan, step, start
        sq = sq_new
        step += 1
    return data_total, penalty_total, step, n


@njit(**JIT)
def loss_gradient(X, y, Y, w, params, grads, sizes, act, output, l2, chunk, work):
    """The loss of the whole data set and its gradient, for full-batch solvers.

    Rows are taken ``chunk`` at a time (``work`` is ``work_size(sizes,
    chunk)`` long); each chunk's gradient goes to scratch and is added to
    ``grads``. With S the total weight (rows when unweighted), returns (data
    loss, penalty) = (sum of weighted row losses / S, 0.5 * l2 * sum(W**2) /
    S) and leaves in ``grads`` the gradient of their sum.
    """
    n = _n_rows(X)
    L = sizes.shape[0] - 1
    offs = _layers(sizes)
    wo = _offsets(sizes, chunk, _input_rows(X, chunk))
    rows = np.empty(0, dtype=np.int64)  # empty order: rows in their own order
    weight = _batch_weight(w, rows, 0, n)
    scale = 1.0 / weight if weight > 0 else 0.0
    data = 0.0
    for j in range(grads.shape[0]):
        grads[j] = 0.0
    scratch = work[wo[L + 3] :]
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        out = _block(work, wo, L, m, sizes[L])
        first = _forward_rows(X, rows, start, m, params, sizes, offs, act, output, work, wo,
                              out)
        data += output_rows(out, y, Y, w, rows, start, scale, output,
                            _block(work, wo, L + 1, m, sizes[L]))
        for l in range(L - 1, -1, -1):
            lo, mid, hi = offs[2 * l], offs[2 * l + 1], offs[2 * l + 2]
            gW = scratch[: mid - lo].reshape(sizes[l], sizes[l + 1])
            gb = scratch[mid - lo : hi - lo]
            _backward(X, rows, start, m, first, params, sizes, offs, act, work, wo, l, gW, gb)
            g, part = grads[lo:hi], scratch[: hi - lo]
            for j in range(hi - lo):
                g[j] += part[j]
    for l in range(L):
        g, p = grads[offs[2 * l] : offs[2 * l + 1]], params[offs[2 * l] : offs[2 * l + 1]]
        for j in range(p.shape[0]):
            g[j] += l2 * scale * p[j]
    return data * scale, 0.5 * l2 * _penalty_squares(params, sizes, offs) * scale
