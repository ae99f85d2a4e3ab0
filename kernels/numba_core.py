"""Compiled (numba) kernels: every formula as an in-place loop.

Each kernel writes into an ``out`` array that its caller provides and
allocates nothing. Inner loops index flat (1-D) views with plain offsets:
making a row view per row costs more than a narrow row's arithmetic. The whole-epoch kernel ``train_epoch`` calls the others, so
they all live in this one module: numba rebuilds a cached function only when
its own source file changes, and a callee in another file would go stale.

Elementwise math uses ``_exp``, a range-reduced polynomial that vectorises
(numba has no SIMD ``exp`` on this platform). Results are computed in float64
and stored in the array's dtype.

Sections: constants, exp, matrix products, activations, softmax and losses,
optimisers, network forward, whole epoch.
"""

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from .config import INLINE, JIT, NARROW, PARALLEL_MIN_ELEMENTS, PJIT, PREDICT_CHUNK, REDUCE, SMALL_GEMM

# ---------------------------------------------------------------- constants
IDENTITY, SIGMOID, TANH, RELU = 0, 1, 2, 3
SOFTMAX, SQUARED = 0, 1
SGD, ADAM = 0, 1
BETA1, BETA2, EPS = 0.9, 0.999, 1e-8  # Adam

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
    for i in range(m):
        ci = C[i]
        ai = A[i]
        for j in range(n):
            ci[j] = 0.0
        for p in range(k):
            av = ai[p]
            bp = B[p]
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
    c = _flat(C)
    for i in range(c.shape[0]):
        c[i] = 0.0
    for p in range(m):
        ap = A[p]
        bp = B[p]
        for i in range(k):
            av = ap[i]
            ci = C[i]
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
    for i in range(m):
        ai = A[i]
        ci = C[i]
        for j in range(n):
            bj = B[j]
            s = 0.0
            for p in range(k):
                s += ai[p] * bj[p]
            ci[j] = s


@njit(**REDUCE)
def sum_squares(a):
    """Sum of a**2 over a 1-D array, in float64 (vectorised: summation order is
    fixed by the compiled code, not by the data)."""
    s = 0.0
    for i in range(a.shape[0]):
        v = np.float64(a[i])
        s += v * v
    return s


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
            base = i * n
            for j in range(n):
                z[base + j] += b[j]
        _act_flat(z, r0 * n, r1 * n, act)
    elif act == RELU:
        for i in range(r0, r1):
            base = i * n
            for j in range(n):
                v = z[base + j] + b[j]
                z[base + j] = 0.0 if v < 0 else v
    elif act == SIGMOID:
        for i in range(r0, r1):
            base = i * n
            for j in range(n):
                z[base + j] = _sigmoid(z[base + j] + b[j], f32)
    else:
        for i in range(r0, r1):
            base = i * n
            for j in range(n):
                z[base + j] = _tanh(z[base + j] + b[j], f32)


@njit(**JIT)
def linear(X, W, b, act, out):
    """out = f(X @ W + b): one product, then one fused pass for bias and f."""
    gemm_nn(X, W, out)
    bias_act_rows(out, b, act, 0, out.shape[0])


@njit(**JIT)
def act_backward_rows(A, dA, act, out, r0, r1):
    """out = dA * f'(.) from the activation output A, rows r0..r1-1."""
    n = A.shape[1]
    lo, hi = r0 * n, r1 * n
    a, d, o = _flat(A)[lo:hi], _flat(dA)[lo:hi], _flat(out)[lo:hi]
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


@njit(**JIT)
def n_chunks(rows, cols):
    """How many row chunks a ``prange`` loop over rows x cols should use."""
    if rows * cols < PARALLEL_MIN_ELEMENTS or rows < 2:
        return 1
    return min(rows, max(2, (rows * cols) // PARALLEL_MIN_ELEMENTS))


@njit(**JIT)
def act_backward(A, dA, act, out):
    """out = dA * f'(.), rows split across threads when the array is large."""
    m, n = A.shape
    if n_chunks(m, n) == 1:  # a parallel region costs tens of microseconds to enter
        act_backward_rows(A, dA, act, out, 0, m)
    else:
        _act_backward_par(A, dA, act, out)


@njit(**PJIT)
def _act_backward_par(A, dA, act, out):
    m, n = A.shape
    chunks = n_chunks(m, n)
    for c in prange(chunks):
        act_backward_rows(A, dA, act, out, (c * m) // chunks, ((c + 1) * m) // chunks)


# --------------------------------------------------- softmax and the losses
@njit(**JIT)
def _lse_parts(z, base, n):
    """(max, sum of exp(z - max)) of z[base:base + n]."""
    top = z[base]
    for j in range(1, n):
        v = z[base + j]
        top = v if v > top else top
    s = 0.0
    f32 = z.itemsize == 4
    for j in range(n):
        s += _exp(z[base + j] - top, f32)
    return top, s


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
def softmax_rows(Z, out, r0, r1):
    n = Z.shape[1]
    z, o = _flat(Z), _flat(out)
    _shift_exp(z, o, o, r0, r1, n)
    for i in range(r0, r1):
        _normalise(o, i * n, n)


@njit(**JIT)
def log_softmax_rows(Z, out, r0, r1):
    n = Z.shape[1]
    z, o = _flat(Z), _flat(out)
    for i in range(r0, r1):
        top, s = _lse_parts(z, i * n, n)
        log_s = np.log(s)
        for j in range(i * n, (i + 1) * n):
            o[j] = (z[j] - top) - log_s  # not z - (top + log s): exact next to huge logits


@njit(**JIT)
def softmax(Z, out):
    m, n = Z.shape
    if n_chunks(m, n) == 1:
        softmax_rows(Z, out, 0, m)
    else:
        _softmax_par(Z, out)


@njit(**PJIT)
def _softmax_par(Z, out):
    m, n = Z.shape
    chunks = n_chunks(m, n)
    for c in prange(chunks):
        softmax_rows(Z, out, (c * m) // chunks, ((c + 1) * m) // chunks)


@njit(**JIT)
def log_softmax(Z, out):
    m, n = Z.shape
    if n_chunks(m, n) == 1:
        log_softmax_rows(Z, out, 0, m)
    else:
        _log_softmax_par(Z, out)


@njit(**PJIT)
def _log_softmax_par(Z, out):
    m, n = Z.shape
    chunks = n_chunks(m, n)
    for c in prange(chunks):
        log_softmax_rows(Z, out, (c * m) // chunks, ((c + 1) * m) // chunks)


@njit(**JIT)
def cross_entropy_rows(Z, y, order, start, scale, P, D):
    """Softmax + cross-entropy + its gradient for one batch, fused.

    Row i's label is y[order[start + i]] (y[i] when ``order`` is empty).
    P = softmax(Z) row-wise (P may be Z itself); D = (P - onehot) * scale.
    Returns the summed loss of the rows in float64: log(sum(exp(z - max)))
    minus the label's (z - max), exact for any finite logits.
    """
    m, n = Z.shape
    z, p, d = _flat(Z), _flat(P), _flat(D)
    _shift_exp(z, p, d, 0, m, n)  # d holds z - max for now
    total = 0.0
    for i in range(m):
        base = i * n
        label = base + (y[i] if order.shape[0] == 0 else y[order[start + i]])
        total += _normalise(p, base, n) - d[label]
        p_label = np.float64(p[label])  # read before D is written: P may be D
        for j in range(base, base + n):
            d[j] = p[j] * scale
        d[label] = (p_label - 1.0) * scale
    return total


@njit(**JIT)
def cross_entropy_sum(Z, y):
    n = Z.shape[1]
    z = _flat(Z)
    total = 0.0
    for i in range(Z.shape[0]):
        top, s = _lse_parts(z, i * n, n)
        total += np.log(s) - (z[i * n + y[i]] - top)
    return total


@njit(**JIT)
def squared_error_rows(Z, Y, order, start, scale, D):
    """D = (Z - T) * scale; returns the sum of 0.5 * (Z - T)**2 in float64.

    Row i's target T[i] is Y[order[start + i]] (Y[i] when ``order`` is empty).
    """
    n = Z.shape[1]
    z, t, d = _flat(Z), _flat(Y), _flat(D)
    total = 0.0
    for i in range(Z.shape[0]):
        src = (i if order.shape[0] == 0 else order[start + i]) * n
        for j in range(n):
            e = np.float64(z[i * n + j]) - t[src + j]
            total += 0.5 * e * e
            d[i * n + j] = e * scale
    return total


# --------------------------------------------------------------- optimisers
@njit(**JIT)
def _limit(a):
    """Largest finite value of a's dtype (float32 or float64)."""
    return 3.4028234663852886e38 if a.itemsize == 4 else 1.7976931348623157e308


@njit(**REDUCE)
def sgd_check(params, grads, velocity, lr, momentum, nesterov, decay, i0, i1):
    """First half of an SGD step on entries i0..i1-1: adds the L2 term
    ``decay * params`` to ``grads``, stores nothing else, and returns (whether
    every new value would be finite in the dtype, sum of the new params**2)."""
    limit = _limit(params)
    ok = True
    sq = 0.0
    params, grads, velocity = params[i0:i1], grads[i0:i1], velocity[i0:i1]
    for i in range(params.shape[0]):
        g = grads[i] + decay * params[i]
        grads[i] = g
        v = momentum * velocity[i] - lr * g
        p = params[i] + (momentum * v - lr * g if nesterov else v)
        ok &= (abs(v) <= limit) & (abs(p) <= limit)
        sq += p * p
    return ok, sq


@njit(**JIT)
def sgd_apply(params, grads, velocity, lr, momentum, nesterov, i0, i1):
    """velocity = momentum * velocity - lr * grads; params += velocity
    (Nesterov: params += momentum * velocity - lr * grads), entries i0..i1-1."""
    params, grads, velocity = params[i0:i1], grads[i0:i1], velocity[i0:i1]
    for i in range(params.shape[0]):
        g = grads[i]
        v = momentum * velocity[i] - lr * g
        velocity[i] = v
        params[i] += momentum * v - lr * g if nesterov else v


@njit(**JIT)
def adam_rate(lr, beta1, beta2, step):
    """Adam's step size with both bias corrections folded in."""
    return lr * np.sqrt(1.0 - beta2**step) / (1.0 - beta1**step)


@njit(**REDUCE)
def adam_check(params, grads, m1, m2, rate, beta1, beta2, eps, decay, i0, i1):
    """First half of an Adam step; see ``sgd_check``."""
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
        ok &= (abs(a) <= limit) & (b <= limit) & (abs(p) <= limit)
        sq += p * p
    return ok, sq


@njit(**JIT)
def adam_apply(params, grads, m1, m2, rate, beta1, beta2, eps, i0, i1):
    """Adam's moment updates and step (``rate`` from ``adam_rate``), entries i0..i1-1."""
    params, grads, m1, m2 = params[i0:i1], grads[i0:i1], m1[i0:i1], m2[i0:i1]
    for i in range(params.shape[0]):
        g = grads[i]
        a = beta1 * m1[i] + (1.0 - beta1) * g
        b = beta2 * m2[i] + (1.0 - beta2) * (g * g)
        m1[i] = a
        m2[i] = b
        params[i] -= rate * a / (np.sqrt(b) + eps)


@njit(**JIT)
def sgd_update(params, grads, velocity, lr, momentum, nesterov):
    n = params.shape[0]
    if n_chunks(n, 1) == 1:
        sgd_apply(params, grads, velocity, lr, momentum, nesterov, 0, n)
    else:
        _sgd_update_par(params, grads, velocity, lr, momentum, nesterov)


@njit(**PJIT)
def _sgd_update_par(params, grads, velocity, lr, momentum, nesterov):
    n = params.shape[0]
    chunks = n_chunks(n, 1)
    for c in prange(chunks):
        sgd_apply(params, grads, velocity, lr, momentum, nesterov,
                  (c * n) // chunks, ((c + 1) * n) // chunks)


@njit(**JIT)
def adam_update(params, grads, m1, m2, step, lr, beta1, beta2, eps):
    n = params.shape[0]
    rate = adam_rate(lr, beta1, beta2, step)
    if n_chunks(n, 1) == 1:
        adam_apply(params, grads, m1, m2, rate, beta1, beta2, eps, 0, n)
    else:
        _adam_update_par(params, grads, m1, m2, rate, beta1, beta2, eps)


@njit(**PJIT)
def _adam_update_par(params, grads, m1, m2, rate, beta1, beta2, eps):
    n = params.shape[0]
    chunks = n_chunks(n, 1)
    for c in prange(chunks):
        adam_apply(params, grads, m1, m2, rate, beta1, beta2, eps,
                   (c * n) // chunks, ((c + 1) * n) // chunks)


@njit(**JIT)
def update(params, grads, state1, state2, sizes, solver, lr, momentum, nesterov, decay, step):
    """One optimiser step over every layer, the L2 term ``decay * W`` added to
    the weights' gradients, applied only if every new value is finite.

    Returns (applied, sum of the new weights**2): the next batch's L2 loss.
    """
    rate = adam_rate(lr, BETA1, BETA2, step + 1)
    ok = True
    sq = 0.0
    off = 0
    for l in range(sizes.shape[0] - 1):
        nw = sizes[l] * sizes[l + 1]
        for lo, hi, dec in ((off, off + nw, decay), (off + nw, off + nw + sizes[l + 1], 0.0)):
            if solver == ADAM:
                good, part = adam_check(params, grads, state1, state2, rate, BETA1, BETA2,
                                        EPS, dec, lo, hi)
            else:
                good, part = sgd_check(params, grads, state1, lr, momentum, nesterov, dec, lo, hi)
            ok = ok and good
            if dec > 0:
                sq += part
        off += nw + sizes[l + 1]
    if not ok:
        return False, sq
    if solver == ADAM:
        adam_apply(params, grads, state1, state2, rate, BETA1, BETA2, EPS, 0, params.shape[0])
    else:
        sgd_apply(params, grads, state1, lr, momentum, nesterov, 0, params.shape[0])
    return True, sq


# ---------------------------------------------------------- network forward
@njit(**JIT)
def _weights(params, sizes, layer):
    """Views of layer ``layer``'s W (n_in, n_out) and b (n_out) in ``params``."""
    off = 0
    for l in range(layer):
        off += (sizes[l] + 1) * sizes[l + 1]
    n_in = sizes[layer]
    n_out = sizes[layer + 1]
    W = params[off : off + n_in * n_out].reshape(n_in, n_out)
    b = params[off + n_in * n_out : off + (n_in + 1) * n_out]
    return W, b


@njit(**JIT)
def forward(X, params, sizes, act, output, buf_a, buf_b, out):
    """Network output for the rows of X: probabilities (softmax) or values.

    buf_a and buf_b are 1-D scratch of at least rows * widest hidden layer.
    """
    m = X.shape[0]
    L = sizes.shape[0] - 1
    prev = X
    for l in range(L):
        W, b = _weights(params, sizes, l)
        n_out = sizes[l + 1]
        if l == L - 1:
            dst = out
        elif l % 2 == 0:
            dst = buf_a[: m * n_out].reshape(m, n_out)
        else:
            dst = buf_b[: m * n_out].reshape(m, n_out)
        linear(prev, W, b, act if l < L - 1 else IDENTITY, dst)
        prev = dst
    if output == SOFTMAX:
        softmax_rows(out, out, 0, m)


@njit(**JIT)
def _first_nonfinite_row(A):
    """The first row of 2-D ``A`` holding NaN or inf, or -1."""
    a = _flat(A)
    n = A.shape[1]
    for i in range(A.shape[0]):
        bad = False
        for j in range(i * n, (i + 1) * n):
            bad |= not np.isfinite(a[j])
        if bad:
            return i
    return -1


@njit(**JIT)
def predict_rows(X, params, sizes, act, output):
    """``forward`` over all rows of X in chunks, allocating its own output and
    scratch: one compiled call per prediction. Returns (out, labels, bad):
    labels is each row's argmax (the class code under a softmax output), bad
    the first row whose input or output is not finite (-1: none)."""
    m = X.shape[0]
    L = sizes.shape[0] - 1
    k = sizes[L]
    widest = 1
    for l in range(1, L):
        widest = max(widest, sizes[l])
    out = np.empty((m, k), dtype=X.dtype)
    labels = np.zeros(m, dtype=np.int64)
    bad = _first_nonfinite_row(X)
    if bad >= 0:
        return out, labels, bad
    chunk = min(m, PREDICT_CHUNK)
    buf_a = np.empty(chunk * widest, dtype=X.dtype)
    buf_b = np.empty(chunk * widest, dtype=X.dtype)
    for r0 in range(0, m, chunk):
        r1 = min(m, r0 + chunk)
        forward(X[r0:r1], params, sizes, act, output, buf_a, buf_b, out[r0:r1])
    bad = _first_nonfinite_row(out)
    o = _flat(out)
    for i in range(m):
        best = 0
        for j in range(1, k):
            if o[i * k + j] > o[i * k + best]:
                best = j
        labels[i] = best
    return out, labels, bad


# -------------------------------------------------------------- whole epoch
@njit(**JIT)
def _offsets(sizes, batch_size):
    """Start of each block in the epoch's work array: the batch's input rows,
    each layer's activations, then two gradient buffers of the widest layer."""
    L = sizes.shape[0] - 1
    offs = np.empty(L + 3, dtype=np.int64)
    off = 0
    for l in range(L + 1):
        offs[l] = off
        off += batch_size * sizes[l]
    widest = 0
    for l in range(1, L + 1):
        widest = max(widest, sizes[l])
    offs[L + 1] = off
    offs[L + 2] = off + batch_size * widest
    return offs


@njit(**JIT)
def _block(work, offs, i, m, width):
    return work[offs[i] : offs[i] + m * width].reshape(m, width)


@njit(**JIT)
def train_epoch(X, y, Y, order, params, grads, state1, state2, step, sizes, act, output,
                solver, lr, momentum, nesterov, l2, batch_size, work):
    """One epoch of minibatch training; see the NumPy backend for the same
    algorithm written with array expressions. Returns (mean loss, step, rows
    done). A batch whose loss, or any new parameter or optimiser value, is not
    finite stops the epoch before its update: everything stays finite.
    """
    n = order.shape[0]
    L = sizes.shape[0] - 1
    n_in = sizes[0]
    offs = _offsets(sizes, batch_size)
    x = _flat(X)
    total = 0.0
    sq = 0.0
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        # gather the batch's rows
        xb = work[: m * n_in]
        for i in range(m):
            src = order[start + i] * n_in
            for j in range(n_in):
                xb[i * n_in + j] = x[src + j]
        # forward
        prev = _block(work, offs, 0, m, n_in)
        for l in range(L):
            W, b = _weights(params, sizes, l)
            A = _block(work, offs, l + 1, m, sizes[l + 1])
            linear(prev, W, b, act if l < L - 1 else IDENTITY, A)
            prev = A
        # loss and output delta
        D = _block(work, offs, L + 1, m, sizes[L])
        scale = 1.0 / m
        if output == SOFTMAX:
            loss = cross_entropy_rows(prev, y, order, start, scale, prev, D)
        else:
            loss = squared_error_rows(prev, Y, order, start, scale, D)
        if l2 > 0:
            if start == 0:  # later batches have it from the previous update
                sq = 0.0
                for l in range(L):
                    W, b = _weights(params, sizes, l)
                    sq += sum_squares(_flat(W))
            loss += 0.5 * l2 * sq
        if not np.isfinite(loss):
            return np.nan, step, start
        total += loss
        # backward
        cur = 0
        for l in range(L - 1, -1, -1):
            W, b = _weights(params, sizes, l)
            gW, gb = _weights(grads, sizes, l)
            w = sizes[l + 1]
            D = _block(work, offs, L + 1 + cur, m, w)
            prev = _block(work, offs, l, m, sizes[l])
            gemm_tn(prev, D, gW)  # the L2 term is added in ``update``
            d = _flat(D)
            for j in range(w):
                gb[j] = 0.0
            for i in range(m):
                for j in range(w):
                    gb[j] += d[i * w + j]
            if l > 0:
                nxt = _block(work, offs, L + 2 - cur, m, sizes[l])
                gemm_nt(D, W, nxt)
                act_backward_rows(prev, nxt, act, nxt, 0, m)
                cur = 1 - cur
        applied, sq = update(params, grads, state1, state2, sizes, solver, lr, momentum,
                             nesterov, l2 * scale, step)
        if not applied:
            return np.nan, step, start
        step += 1
    return total / n, step, n
