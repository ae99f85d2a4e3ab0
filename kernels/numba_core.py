"""Compiled (numba) kernels: every formula as an in-place loop.

Each kernel writes into arrays its caller provides and allocates nothing but
small views and index arrays, except ``predict_rows``, which returns its
result. The whole-epoch kernels and the full-batch ``loss_gradient`` call the
others, so they all live in this one module (numba rebuilds a cached function
only when its own source file changes; the values it takes from ``codes`` and
``config`` are checked by ``ensure_fresh``).

An epoch is trained by one of four kernels with one signature; the API picks
one by the shape of the work (``api.epoch_path``), and each is its own
compiled entry point, so that a fit compiles only the one it uses:

- ``train_rows``: batches of one row (dense X). Per row, the forward pass
  over flat parameters, then per layer from the top one sweep that takes the
  delta for the layer below from the old weights and updates the layer.
- ``train_columns``: narrow networks on large batches (dense X). Blocks of
  ``COLUMNS_BLOCK`` rows are transposed (feature-major), so that every inner
  loop runs over the rows of the block and vectorises however narrow the
  layers are; the blocks run in parallel.
- ``train_blocks``: small and medium layers on batches of 64 rows or more
  (dense or CSR X): each batch split into row blocks (``blocks.rows_plan``)
  that numba's threads train in parallel, each with single-threaded
  products, the gradients summed in block order.
- ``train_epoch``: everything else (large layers, batches of one row under
  Adam, small batches): the whole batch at once, products by BLAS and its
  threads (or plain loops below ``SMALL_GEMM``), a fused pass per layer for
  the activation's derivative and the bias gradient, and a one-pass update
  of each layer.

The row-block kernels (``api.ROW_BLOCK_KERNELS``, section "training: row
blocks") split rows the same way for any number of threads and sum in a
fixed order, so their results do not depend on it; each has a serial twin
for where numba's threads cannot run (``parallel_ok``).

Inner loops that must vectorise index flat arrays with unsigned offsets: a
signed computed index (``a[o + j]``) makes numba emit a wraparound select that
stops LLVM's vectoriser, and a view per row costs more than a narrow row's
arithmetic. Elementwise math uses range-reduced polynomials that vectorise
(numba has no SIMD ``exp`` or ``log`` on this platform): ``_exp`` in float64,
and float32 twins (``_exp32``, ``_log32``, ``_tanh32``) that keep float32
loops at twice the vector width; ``_exp_t`` and friends pick by the value's
type.

The input X of the training and prediction kernels is either a C-contiguous
2-D array or a CSR triple ``(data, indices, indptr)``; only the first layer
of ``train_epoch`` differs (``_first_forward``, ``_first_gradient``), chosen by
type when numba compiles, so a dense fit never compiles the sparse code.

Sections: set-up, bits, exp and log, matrix products, activations, output
layers, optimisers, layout and the first layer, network forward, training
(batches, rows, columns, full batch, row blocks), thread safety.
"""

import hashlib
import inspect
import os
import types as pytypes
import warnings

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core.registry import CPUDispatcher
from numba.extending import intrinsic, overload

from . import blocks, config
from .codes import (ADAM, IDENTITY, LOGISTIC, POISSON, RELU, SIGMOID, SOFTMAX, SQUARED,
                    TANH)
from .config import (BLOCK_MAX, BLOCK_MIN_ROWS, COLUMNS_BLOCK, NARROW, PREDICT_CHUNK,
                     SMALL_GEMM, UPDATE_CHUNK)


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
PARALLEL = dict(config.PARALLEL, cache=_CACHE)
REDUCE = dict(config.REDUCE, cache=_CACHE)
INLINE = dict(config.INLINE, cache=_CACHE)
INLINE_REDUCE = dict(config.INLINE_REDUCE, cache=_CACHE)


def _source_key(module):
    """A number that changes with ``module``'s source (the first 60 bits of its
    SHA-1): the compiled code below calls functions of it."""
    return int(hashlib.sha1(inspect.getsource(module).encode()).hexdigest()[:15], 16)


#: Every value from another module that the compiled code below freezes in,
#: and the source of ``blocks``, whose functions it compiles.
_FROZEN = (IDENTITY, SIGMOID, TANH, RELU, SOFTMAX, SQUARED, LOGISTIC, POISSON, ADAM,
           NARROW, PREDICT_CHUNK, SMALL_GEMM, COLUMNS_BLOCK, BLOCK_MIN_ROWS, BLOCK_MAX,
           UPDATE_CHUNK, _source_key(blocks))

#: Unsigned index type of the loops that must vectorise (see the module's docstring).
U = np.uint64


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


# --------------------------------------------------------------------- bits
def _bitcast(src, dst, ir_dst, doc):
    """An intrinsic that reinterprets the bits of a ``src`` scalar as ``dst``."""

    @intrinsic
    def cast(typingctx, x):
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir_dst)

        return dst(src), codegen

    cast.__doc__ = doc
    return cast


_bits_of = _bitcast(types.float64, types.int64, ir.IntType(64),
                    "The int64 with the bit pattern of float64 ``x``.")
_float_of = _bitcast(types.int64, types.float64, ir.DoubleType(),
                     "The float64 with the bit pattern of int64 ``n``.")
_bits32_of = _bitcast(types.float32, types.int32, ir.IntType(32),
                      "The int32 with the bit pattern of float32 ``x``.")
_float32_of = _bitcast(types.int32, types.float32, ir.FloatType(),
                       "The float32 with the bit pattern of int32 ``n``.")


@intrinsic
def _half_pow2_32(typingctx, t):
    """2**(k-1) as a float32, for ``t = k + 1.5 * 2**23`` (float32, k an integer
    in [-125, 128]), built in int32 arithmetic so that float32 loops keep their
    vector width."""
    sig = types.float32(types.float32)

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        b = builder.bitcast(args[0], i32)
        b = builder.sub(b, ir.Constant(i32, 0x4B400000 - 126))
        b = builder.shl(b, ir.Constant(i32, 23))
        return builder.bitcast(b, ir.FloatType())

    return sig, codegen


@intrinsic
def _abs_key(typingctx, x):
    """|x|'s bit pattern as an integer of x's width (int32 for float32, int64
    for float64): it orders like |x|, and NaN and inf are the keys >=
    ``_inf_key``. Tracking the largest key is
    an integer max reduction, which vectorises; a comparison chain of floats
    does not."""
    if x == types.float32:
        def codegen(context, builder, signature, args):
            b = builder.bitcast(args[0], ir.IntType(32))
            return builder.and_(b, ir.Constant(ir.IntType(32), 0x7FFFFFFF))

        return types.int32(x), codegen
    if x == types.float64:
        def codegen(context, builder, signature, args):
            b = builder.bitcast(args[0], ir.IntType(64))
            return builder.and_(b, ir.Constant(ir.IntType(64), 0x7FFFFFFFFFFFFFFF))

        return types.int64(x), codegen
    return None


@njit(**JIT)
def _inf_key(a):
    """The ``_abs_key`` of inf in a's dtype: keys below it are finite values."""
    return 0x7F800000 if a.itemsize == 4 else 0x7FF0000000000000


# -------------------------------------------------------------- exp and log
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_SHIFTER = 6755399441055744.0  # 1.5 * 2**52: adding it rounds to an integer
_SHIFTER_BITS = 0x4338000000000000
_EXP_LO = -708.0
_EXP_HI = 709.782712893384  # log(largest float64)
_SHIFTER32 = 12582912.0  # 1.5 * 2**23
_LN2_HI32 = 0.693359375  # ln 2 in two float32 parts
_LN2_LO32 = -2.12194440e-4
_EXP32_LO = -87.0
_EXP32_HI = 88.72  # just below log(largest float32)
_SQRT_HALF_BITS = 0x3FE6A09E667F3BCD  # sqrt(1/2) in float64
_SQRT_HALF_BITS32 = 0x3F3504F3  # sqrt(1/2) in float32


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
def _exp32(x):
    """exp(x) in float32 arithmetic (float32 x), within 2 ulp of float32; inf
    above log(max float32), 0 below -87 (results under 2e-38 may flush to 0).
    The scheme of ``_exp`` with a degree-6 polynomial, at float32's vector
    width."""
    f = np.float32
    c = min(max(x, f(_EXP32_LO)), f(_EXP32_HI))
    t = c * f(_LOG2E) + f(_SHIFTER32)
    k = t - f(_SHIFTER32)
    r = (c - k * f(_LN2_HI32)) - k * f(_LN2_LO32)
    r2 = r * r
    p = ((r + r2 * (f(1.0 / 2.0) + r * f(1.0 / 6.0)))
         + (r2 * r2) * ((f(1.0 / 24.0) + r * f(1.0 / 120.0)) + r2 * f(1.0 / 720.0)))
    y = ((f(1.0) + p) * _half_pow2_32(t)) * f(2.0)
    y = f(0.0) if x < f(_EXP32_LO) else y
    y = f(np.inf) if x > f(_EXP32_HI) else y
    return y


@njit(**INLINE)
def _log64(x):
    """log(x) for finite float64 x > 0 (normal), within about 1 ulp; branch-free.

    x = 2**e m with m in [sqrt(1/2), sqrt(2)); log(m) = 2 atanh(s), s = (m - 1)
    / (m + 1), by its odd series in s (|s| < 0.172) to degree 21."""
    b = _bits_of(x)
    e = (b - _SQRT_HALF_BITS) >> 52
    m = _float_of(b - (e << 52))
    s = (m - 1.0) / (m + 1.0)
    z = s * s
    z2 = z * z
    p = ((1.0 / 3.0 + z * (1.0 / 5.0)) + z2 * (1.0 / 7.0 + z * (1.0 / 9.0))
         + (z2 * z2) * (((1.0 / 11.0 + z * (1.0 / 13.0)) + z2 * (1.0 / 15.0 + z * (1.0 / 17.0)))
                        + (z2 * z2) * (1.0 / 19.0 + z * (1.0 / 21.0))))
    ef = np.float64(e)
    return ef * _LN2_HI + ((2.0 * s + 2.0 * s * (z * p)) + ef * _LN2_LO)


@njit(**INLINE)
def _log32(x):
    """log(x) for finite float32 x > 0 (normal) in float32 arithmetic, within
    about 2 ulp of float32: ``_log64``'s scheme to degree 9."""
    f = np.float32
    b = _bits32_of(x)
    e = (b - np.int32(_SQRT_HALF_BITS32)) >> np.int32(23)
    m = _float32_of(b - (e << np.int32(23)))
    s = (m - f(1.0)) / (m + f(1.0))
    z = s * s
    p = (f(1.0 / 3.0) + z * f(1.0 / 5.0)) + (z * z) * (f(1.0 / 7.0) + z * f(1.0 / 9.0))
    ef = f(e)
    return ef * f(_LN2_HI32) + ((f(2.0) * s + f(2.0) * s * (z * p)) + ef * f(_LN2_LO32))


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
    q = _expm1_reduced(-2.0 * a, f32)
    small = a < 0.17328679513998632
    t = (-q if small else 1.0 - e) / ((2.0 + q) if small else (1.0 + e))  # one division
    return t if v >= 0 else -t


@njit(**INLINE)
def _tanh32(v):
    """tanh in float32 arithmetic: (1 - e) / (1 + e), e = exp(-2|v|), and for
    |v| < 0.17 its odd Taylor polynomial to degree 7 (relative accuracy down
    to 0); branch-free."""
    f = np.float32
    a = abs(v)
    e = _exp32(f(-2.0) * a)
    big = (f(1.0) - e) / (f(1.0) + e)
    a2 = a * a
    small = a * (f(1.0) + a2 * (f(-1.0 / 3.0) + a2 * (f(2.0 / 15.0) + a2 * f(-17.0 / 315.0))))
    t = small if a < f(0.17) else big
    return t if v >= f(0.0) else -t


@njit(**INLINE)
def _softplus(v):
    """log(1 + exp(v)) in float64, finite for any finite v."""
    return max(v, 0.0) + np.log1p(_exp(-abs(v), False))


def _in_precision(name, doc, f32, f64):
    """A function of one float that numba compiles to ``f32`` for a float32
    argument and to ``f64`` otherwise, inlined where it is called."""

    def dispatch(x):
        raise NotImplementedError  # compiled by the overload below

    dispatch.__name__ = dispatch.__qualname__ = name
    dispatch.__doc__ = doc

    @overload(dispatch, jit_options=OVERLOAD, inline="always")
    def impl(x):
        return f32 if x == types.float32 else f64

    return dispatch


_exp_t = _in_precision("_exp_t", "exp(x) in x's own precision: ``_exp32`` or ``_exp``.",
                       lambda x: _exp32(x), lambda x: _exp(x, False))
_log_t = _in_precision("_log_t", "log(x) (x > 0) in x's own precision: ``_log32`` or "
                       "``_log64``.", lambda x: _log32(x), lambda x: _log64(x))
_sigmoid_t = _in_precision("_sigmoid_t", "The sigmoid in x's own precision.",
                           lambda x: np.float32(1.0) / (np.float32(1.0) + _exp32(-x)),
                           lambda x: _sigmoid(x, False))
_tanh_t = _in_precision("_tanh_t", "tanh in x's own precision.",
                        lambda x: _tanh32(x), lambda x: _tanh(x, False))


# ---------------------------------------------------------- matrix products
@njit(**JIT)
def _flat(A):
    """1-D view of a C-contiguous array."""
    return A.reshape(A.size)


@njit(**JIT)
def gemm_nn(A, B, C):
    """C = A @ B; a single row of A is a plain loop at any size (one pass over
    B, which BLAS cannot beat). The loop takes eight rows of B per pass over a
    row of C: one load and store of C per eight multiply-adds."""
    m, k = A.shape
    n = B.shape[1]
    if m * n * k > SMALL_GEMM and m > 1:
        np.dot(A, B, C)
        return
    a, b, c = _flat(A), _flat(B), _flat(C)
    ku, nu = U(k), U(n)
    k8 = ku - ku % U(8)
    for i in range(U(m)):
        ci = i * nu
        ai = i * ku
        for j in range(nu):
            c[ci + j] = 0.0
        for p in range(U(0), k8, U(8)):
            a0, a1, a2, a3 = a[ai + p], a[ai + p + U(1)], a[ai + p + U(2)], a[ai + p + U(3)]
            a4, a5, a6, a7 = a[ai + p + U(4)], a[ai + p + U(5)], a[ai + p + U(6)], a[ai + p + U(7)]
            b0 = p * nu
            b1, b2, b3, b4 = b0 + nu, b0 + U(2) * nu, b0 + U(3) * nu, b0 + U(4) * nu
            b5, b6, b7 = b0 + U(5) * nu, b0 + U(6) * nu, b0 + U(7) * nu
            for j in range(nu):
                c[ci + j] += (((a0 * b[b0 + j] + a1 * b[b1 + j]) + (a2 * b[b2 + j] + a3 * b[b3 + j]))
                              + ((a4 * b[b4 + j] + a5 * b[b5 + j]) + (a6 * b[b6 + j] + a7 * b[b7 + j])))
        for p in range(k8, ku):
            av = a[ai + p]
            bp = p * nu
            for j in range(nu):
                c[ci + j] += av * b[bp + j]


@njit(**JIT)
def gemm_tn(A, B, C):
    """C = A.T @ B."""
    m, k = A.shape
    n = B.shape[1]
    if m * n * k > SMALL_GEMM:
        np.dot(A.T, B, C)
        return
    a, b, c = _flat(A), _flat(B), _flat(C)
    ku, nu = U(k), U(n)
    for i in range(c.shape[0]):
        c[i] = 0.0
    for p in range(U(m)):
        bp = p * nu
        for i in range(ku):
            av = a[p * ku + i]
            ci = i * nu
            for j in range(nu):
                c[ci + j] += av * b[bp + j]


@njit(**JIT)
def gemm_nt(A, B, C):
    """C = A @ B.T."""
    m, k = A.shape
    n = B.shape[0]
    if m * n * k > SMALL_GEMM:
        np.dot(A, B.T, C)
        return
    a, b, c = _flat(A), _flat(B), _flat(C)
    ku, nu = U(k), U(n)
    for i in range(U(m)):
        ai = i * ku
        for j in range(nu):
            bj = j * ku
            s = 0.0
            for p in range(ku):
                s += a[ai + p] * b[bj + p]
            c[i * nu + j] = s


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
    nu = U(n)
    for j in range(nu):
        out[j] = 0.0
    for i in range(U(m)):
        base = i * nu
        for j in range(nu):
            out[j] += d[base + j]


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


@njit(**INLINE)
def _act_span(z, lo, n, act):
    """z[lo:lo + n] = f(z[lo:lo + n]) in place, in z's own precision (unsigned
    lo and n, no view): the activation of the training kernels."""
    if act == RELU:
        for j in range(n):
            v = z[lo + j]
            z[lo + j] = 0.0 if v < 0 else v
    elif act == SIGMOID:
        for j in range(n):
            z[lo + j] = _sigmoid_t(z[lo + j])
    elif act == TANH:
        for j in range(n):
            z[lo + j] = _tanh_t(z[lo + j])


@njit(**JIT)
def bias_act_rows(Z, b, act, r0, r1):
    """Z[r] = f(Z[r] + b) in place for rows r0..r1-1.

    Wide rows take one fused pass; narrow rows (a short inner loop cannot
    vectorise f) add the bias first, then apply f over the whole block.
    """
    n = Z.shape[1]
    z = _flat(Z)
    f32 = Z.itemsize == 4
    nu = U(n)
    if n < NARROW or act == IDENTITY:
        for i in range(U(r0), U(r1)):
            row = i * nu
            for j in range(nu):
                z[row + j] += b[j]
        _act_flat(z, r0 * n, r1 * n, act)
    elif act == RELU:
        for i in range(U(r0), U(r1)):
            row = i * nu
            for j in range(nu):
                v = z[row + j] + b[j]
                z[row + j] = 0.0 if v < 0 else v
    elif act == SIGMOID:
        for i in range(U(r0), U(r1)):
            row = i * nu
            for j in range(nu):
                z[row + j] = _sigmoid(z[row + j] + b[j], f32)
    else:
        for i in range(U(r0), U(r1)):
            row = i * nu
            for j in range(nu):
                z[row + j] = _tanh(z[row + j] + b[j], f32)


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


@njit(**JIT)
def _act_backward_sums(A, G, act, gb):
    """G *= f'(.) in place from the activation output A, and gb = the column
    sums of the result (the bias gradient of the layer whose delta G is): one
    pass instead of two."""
    m, n = G.shape
    a, g = _flat(A), _flat(G)
    nu = U(n)
    for j in range(nu):
        gb[j] = 0.0
    for i in range(U(m)):
        row = i * nu
        if act == RELU:
            for j in range(nu):
                v = g[row + j] if a[row + j] > 0 else 0.0
                g[row + j] = v
                gb[j] += v
        elif act == SIGMOID:
            for j in range(nu):
                v = g[row + j] * (a[row + j] * (1.0 - a[row + j]))
                g[row + j] = v
                gb[j] += v
        elif act == TANH:
            for j in range(nu):
                v = g[row + j] * (1.0 - a[row + j] * a[row + j])
                g[row + j] = v
                gb[j] += v
        else:
            for j in range(nu):
                gb[j] += g[row + j]


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
        total += wr * _target_row(z, i * k, d, i * k, t, r * k, k, wr * scale, output)
    return total


@njit(**JIT)
def _target_row(z, zo, d, do, t, to, k, ws, output):
    """One row of the squared, logistic or poisson output (``output_rows``):
    the k logits at z[zo:] are replaced by the output, the delta (output -
    target) * ws goes to d[do:], the targets being t[to:]; returns the row's
    loss in float64."""
    f32 = z.itemsize == 4
    row = 0.0
    for j in range(k):
        v = np.float64(z[zo + j])
        tv = np.float64(t[to + j])
        if output == SQUARED:
            p = v
            row += 0.5 * (v - tv) * (v - tv)
        elif output == LOGISTIC:
            p = _sigmoid(v, f32)
            row += _softplus(v) - tv * v
        else:  # POISSON
            p = _exp(v, False)
            row += (tv * np.log(tv) if tv > 0 else 0.0) - tv * v - tv + p
        z[zo + j] = p
        d[do + j] = (p - tv) * ws
    return row


# --------------------------------------------------------------- optimisers
@njit(**REDUCE)
def sgd_step(params, grads, velocity, lr, momentum, nesterov, decay, i0, i1, keep):
    """One SGD step on entries i0..i1-1, in one pass, in the arrays' precision:
    g = grads + decay * params (the L2 term; stored back into ``grads`` when
    ``keep``), velocity = momentum * velocity - lr * g, params += velocity
    (Nesterov: params += momentum * velocity - lr * g). Returns (whether every
    new value is finite in the dtype, sum of the new params**2)."""
    dt = params.dtype.type
    lr_, mom, dec = dt(lr), dt(momentum), dt(decay)
    c1, c2 = (mom, lr_) if nesterov else (dt(1.0), dt(0.0))
    key = _abs_key(dt(0.0))
    sq = 0.0
    params, grads, velocity = params[i0:i1], grads[i0:i1], velocity[i0:i1]
    for i in range(params.shape[0]):
        g = grads[i] + dec * params[i]
        v = mom * velocity[i] - lr_ * g
        p = params[i] + (c1 * v - c2 * g)
        if keep:
            grads[i] = g
        velocity[i] = v
        params[i] = p
        key = max(key, max(_abs_key(v), _abs_key(p)))
        sq += np.float64(p) * np.float64(p)
    return key < _inf_key(params), sq


@njit(**JIT)
def adam_rate(lr, beta1, beta2, step):
    """Adam's step size for update number ``step`` (>= 1), both bias
    corrections folded in."""
    return lr * np.sqrt(1.0 - beta2**step) / (1.0 - beta1**step)


@njit(**REDUCE)
def adam_step(params, grads, m1, m2, rate, beta1, beta2, eps, decay, i0, i1):
    """One Adam step on entries i0..i1-1 (``rate`` from ``adam_rate``), in one
    pass, the L2 term added to ``grads`` first; returns what ``sgd_step`` does.
    Computed in float64 and rounded when stored: a float32 square of a large
    gradient would overflow where the stored moment does not."""
    dt = params.dtype.type
    key = _abs_key(dt(0.0))
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
        stored = dt(p)
        key = max(key, max(_abs_key(dt(a)), max(_abs_key(dt(b)), _abs_key(stored))))
        sq += np.float64(stored) * np.float64(stored)
    return key < _inf_key(params), sq


@njit(**JIT)
def sgd_update(params, grads, velocity, lr, momentum, nesterov):
    sgd_step(params, grads, velocity, lr, momentum, nesterov, 0.0, 0, params.shape[0], False)


@njit(**JIT)
def adam_update(params, grads, m1, m2, step, lr, beta1, beta2, eps):
    adam_step(params, grads, m1, m2, adam_rate(lr, beta1, beta2, step), beta1, beta2, eps,
              0.0, 0, params.shape[0])


@njit(**JIT)
def _update_layer(params, grads, state1, state2, lo, mid, hi, solver, lr, momentum, nesterov,
                  beta1, beta2, eps, rate, decay, keep):
    """One optimiser step on a layer: W = params[lo:mid] with the L2 term
    ``decay * W``, b = params[mid:hi] without; SGD stores the gradient with
    its L2 term only when ``keep``. Returns (all new values finite, sum of
    the new W**2)."""
    if solver == ADAM:
        ok_w, sq = adam_step(params, grads, state1, state2, rate, beta1, beta2, eps, decay,
                             lo, mid)
        ok_b, _ = adam_step(params, grads, state1, state2, rate, beta1, beta2, eps, 0.0,
                            mid, hi)
    else:
        ok_w, sq = sgd_step(params, grads, state1, lr, momentum, nesterov, decay, lo, mid,
                            keep)
        ok_b, _ = sgd_step(params, grads, state1, lr, momentum, nesterov, 0.0, mid, hi, keep)
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


@njit(**JIT)
def _gather(X, order, start, m, buf):
    """buf[i] = X[order[start + i]] for the m rows of a batch."""
    n_in = U(X.shape[1])
    x, xb = _flat(X), _flat(buf)
    rows = order[start : start + m]
    for i in range(U(m)):
        src = U(rows[i]) * n_in
        dst = i * n_in
        for j in range(n_in):
            xb[dst + j] = x[src + j]


def _first_forward(X, order, start, m, W, b, act, buf, out):
    """out = f(X[rows] @ W + b) for the m rows ``_row(order, start, i)``;
    ``buf`` (m x n_in) receives the dense rows where the product needs them.
    Returns the input block the gradient reads (``buf``, or X's row itself)."""
    raise NotImplementedError  # compiled by the overload below


@overload(_first_forward, jit_options=OVERLOAD)
def _first_forward_impl(X, order, start, m, W, b, act, buf, out):
    if isinstance(X, types.Array):
        def dense(X, order, start, m, W, b, act, buf, out):
            if order.shape[0] == 0:  # rows in their own order: X's rows, no copy
                rows = X[start : start + m]
            elif m == 1:  # one row: X's own row, no copy
                r = order[start]
                rows = X[r : r + 1]
            else:
                _gather(X, order, start, m, buf)
                rows = buf
            linear(rows, W, b, act, out)
            return rows

        return dense

    def csr(X, order, start, m, W, b, act, buf, out):
        data, indices, indptr = X
        n = W.shape[1]
        nu = U(n)
        w, o = _flat(W), _flat(out)
        for i in range(m):
            r = _row(order, start, i)
            row = U(i) * nu
            for j in range(nu):
                o[row + j] = 0.0
            for p in range(indptr[r], indptr[r + 1]):
                v = data[p]
                wr = U(indices[p]) * nu
                for j in range(nu):
                    o[row + j] += v * w[wr + j]
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
        nu = U(n)
        g, d = _flat(gW), _flat(D)
        for j in range(g.shape[0]):
            g[j] = 0.0
        for i in range(m):
            r = _row(order, start, i)
            di = U(i) * nu
            for p in range(indptr[r], indptr[r + 1]):
                v = data[p]
                gr = U(indices[p]) * nu
                for j in range(nu):
                    g[gr + j] += v * d[di + j]

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


# ------------------------------------------------------- training: batches
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
def _last_live(w, order, batch_size):
    """Start of the epoch's last batch of nonzero weight (-1: none): the batch
    whose gradient ``grads`` keeps."""
    n = order.shape[0]
    start = ((n - 1) // batch_size) * batch_size
    while start >= 0:
        if _batch_weight(w, order, start, min(batch_size, n - start)) > 0:
            return start
        start -= batch_size
    return -1


@njit(**JIT)
def _penalty_squares(params, sizes, offs):
    """Sum of the squares of every weight (not the biases)."""
    sq = 0.0
    for l in range(sizes.shape[0] - 1):
        sq += sum_squares(params[offs[2 * l] : offs[2 * l + 1]])
    return sq


@njit(**JIT)
def _batch_penalty(params, sizes, offs, l2, sq):
    """(a batch's L2 penalty 0.5 * l2 * sum(W**2), the sum of squares): ``sq``
    is the sum the last update left (< 0: none yet, computed here)."""
    if l2 <= 0:
        return 0.0, sq
    if sq < 0:
        sq = _penalty_squares(params, sizes, offs)
    return 0.5 * l2 * sq, sq


@njit(**JIT)
def _delta(work, wo, sizes, m, l):
    """Layer l's delta block: the two delta buffers alternate from the top."""
    L = sizes.shape[0] - 1
    return _block(work, wo, L + 1 + (L - 1 - l) % 2, m, sizes[l + 1])


@njit(**JIT)
def _layer_gradient(X, order, start, m, first, sizes, work, wo, l, gW):
    """gW = A^T D for layer l, A its input block (the first layer's from X) and
    D its delta."""
    D = _delta(work, wo, sizes, m, l)
    if l == 0:
        _first_gradient(X, order, start, first, D, gW)
    else:
        gemm_tn(_block(work, wo, l, m, sizes[l]), D, gW)


@njit(**JIT)
def _delta_below(params, sizes, offs, act, work, wo, m, l, gb_below):
    """The delta of layer l - 1, (D W^T) * f'(A), from layer l's delta D and its
    current (not yet updated) W; with the column sums of the result (the bias
    gradient of layer l - 1) into ``gb_below`` in the same pass."""
    W, _ = _weights(params, sizes, offs, l)
    nxt = _delta(work, wo, sizes, m, l - 1)
    gemm_nt(_delta(work, wo, sizes, m, l), W, nxt)
    _act_backward_sums(_block(work, wo, l, m, sizes[l]), nxt, act, gb_below)


@njit(**JIT)
def train_epoch(X, y, Y, w, order, params, grads, state1, state2, step, sizes, act, output,
                solver, lr, momentum, nesterov, beta1, beta2, eps, l2, batch_size, work):
    """One epoch of minibatch training; the NumPy backend has the same
    algorithm as array expressions. Returns (data loss, penalty, step, rows
    done): the two loss parts summed over batches, each batch's weighted by its
    rows over its total weight. Per layer from the top: its weight gradient
    (a product), the delta for the layer below from the current W, fused with
    the activation's derivative and the bias gradient of the layer below,
    then the layer's update in one pass over its parameters. A batch whose
    loss, or any new parameter or optimiser value, is not finite stops the
    epoch at once (rows done < len(order)); the caller restores what it saved,
    since layers above may have been updated.
    """
    n = order.shape[0]
    L = sizes.shape[0] - 1
    offs = _layers(sizes)
    wo = _offsets(sizes, batch_size, _input_rows(X, batch_size))
    last = _last_live(w, order, batch_size)
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
        D = _delta(work, wo, sizes, m, L - 1)
        data = output_rows(out, y, Y, w, order, start, scale, output, D)
        penalty, sq = _batch_penalty(params, sizes, offs, l2, sq)
        if not np.isfinite(data + penalty):
            return np.nan, np.nan, step, start
        data_total += data * m * scale
        penalty_total += penalty * m * scale
        rate = adam_rate(lr, beta1, beta2, step + 1)
        ok = True
        sq_new = 0.0
        _, gb = _weights(grads, sizes, offs, L - 1)
        column_sums(D, gb)
        for l in range(L - 1, -1, -1):
            gW, _ = _weights(grads, sizes, offs, l)
            _layer_gradient(X, order, start, m, first, sizes, work, wo, l, gW)
            if l > 0:
                _delta_below(params, sizes, offs, act, work, wo, m, l,
                             _weights(grads, sizes, offs, l - 1)[1])
            good, part = _update_layer(params, grads, state1, state2, offs[2 * l],
                                       offs[2 * l + 1], offs[2 * l + 2], solver, lr, momentum,
                                       nesterov, beta1, beta2, eps, rate, l2 * scale,
                                       start == last)
            ok = ok and good
            sq_new += part
        if not ok:
            return np.nan, np.nan, step, start
        sq = sq_new
        step += 1
    return data_total, penalty_total, step, n


# ---------------------------------------------------------- training: rows
@njit(**INLINE)
def _row_layout(sizes):
    """Unsigned offsets of the one-row kernel: (widths, start of each layer's
    W and b in the parameters, start of each layer's activation in the work
    array). Work holds the input row at ``acts[0]`` = 0, layer l's activation
    at ``acts[l]`` (the logits last), then two delta buffers of the widest
    layer at ``acts[L + 1]`` and ``acts[L + 2]``."""
    L = sizes.shape[0] - 1
    widths = np.empty(L + 1, dtype=np.uint64)
    w_at = np.empty(L, dtype=np.uint64)
    b_at = np.empty(L, dtype=np.uint64)
    acts = np.empty(L + 3, dtype=np.uint64)
    off = 0
    for l in range(L):
        w_at[l] = off
        off += sizes[l] * sizes[l + 1]
        b_at[l] = off
        off += sizes[l + 1]
    a = 0
    widest = 0
    for l in range(L + 1):
        widths[l] = sizes[l]
        acts[l] = a
        a += sizes[l]
        if l > 0:
            widest = max(widest, sizes[l])
    acts[L + 1] = a
    acts[L + 2] = a + widest
    return widths, w_at, b_at, acts


@njit(**JIT)
def _transpose_layers(src, dst, widths, w_at, b_at, back):
    """dst = src with every layer's W (n_in x n_out, row-major) transposed to
    n_out x n_in at the same offsets, biases copied; ``back``: the inverse."""
    for l in range(w_at.shape[0]):
        n_in, n_out, wl = widths[l], widths[l + 1], w_at[l]
        for i in range(n_in):
            for j in range(n_out):
                if back:
                    dst[wl + i * n_out + j] = src[wl + j * n_in + i]
                else:
                    dst[wl + j * n_in + i] = src[wl + i * n_out + j]
        for j in range(b_at[l], b_at[l] + n_out):
            dst[j] = src[j]


@njit(**REDUCE)
def _row_dots(T, work, src, dst, n_in, n_out, wl, bl):
    """work[dst + j] = b[j] + the dot product of W's column j (row j of the
    transposed layer in T) and the input work[src:src + n_in]: four outputs
    per pass over the input, which shares its loads and overlaps four
    reductions."""
    dt = work.dtype.type
    n4 = n_out - n_out % U(4)
    for j in range(U(0), n4, U(4)):
        r0 = wl + j * n_in
        r1, r2, r3 = r0 + n_in, r0 + U(2) * n_in, r0 + U(3) * n_in
        s0 = s1 = s2 = s3 = dt(0.0)
        for i in range(n_in):
            a = work[src + i]
            s0 += T[r0 + i] * a
            s1 += T[r1 + i] * a
            s2 += T[r2 + i] * a
            s3 += T[r3 + i] * a
        work[dst + j] = s0 + T[bl + j]
        work[dst + j + U(1)] = s1 + T[bl + j + U(1)]
        work[dst + j + U(2)] = s2 + T[bl + j + U(2)]
        work[dst + j + U(3)] = s3 + T[bl + j + U(3)]
    for j in range(n4, n_out):
        row = wl + j * n_in
        s = dt(0.0)
        for i in range(n_in):
            s += T[row + i] * work[src + i]
        work[dst + j] = s + T[bl + j]


@njit(**INLINE)
def _row_forward(x, xs, T, work, widths, w_at, b_at, acts, act):
    """One row, X's x[xs:xs + widths[0]], copied to work[0:] and taken through
    every layer: layer l's activation (logits for the last) into
    work[acts[l + 1]:]; T holds the layers transposed
    (``_transpose_layers``)."""
    L = widths.shape[0] - 1
    for i in range(widths[0]):
        work[i] = x[xs + i]
    for l in range(L):
        _row_dots(T, work, acts[l], acts[l + 1], widths[l], widths[l + 1], w_at[l], b_at[l])
        if l < L - 1:
            _act_span(work, acts[l + 1], widths[l + 1], act)


@njit(**INLINE)
def _row_softmax(work, zo, do, k, label):
    """Softmax + cross-entropy of one row of k logits at work[zo:], in float64:
    writes the delta p - onehot(label) to work[do:] and returns the row's loss
    log(sum(exp(z - max))) - (z[label] - max)."""
    top = np.float64(work[zo])
    for c in range(U(1), k):
        top = max(top, np.float64(work[zo + c]))
    s = 0.0
    for c in range(k):
        e = _exp(np.float64(work[zo + c]) - top, False)
        work[do + c] = e
        s += e
    p_label = np.float64(work[do + label]) / s
    inv = 1.0 / s
    for c in range(k):
        work[do + c] = work[do + c] * inv
    work[do + label] = p_label - 1.0
    return np.log(s) - (np.float64(work[zo + label]) - top)


@njit(**INLINE_REDUCE)
def _slope_span(work, at, src, n, act):
    """work[at:at + n] *= f'(.) from the activations work[src:src + n]."""
    dt = work.dtype.type
    if act == SIGMOID:
        for i in range(n):
            a = work[src + i]
            work[at + i] *= a * (dt(1.0) - a)
    elif act == TANH:
        for i in range(n):
            a = work[src + i]
            work[at + i] *= dt(1.0) - a * a
    elif act == RELU:
        for i in range(n):
            work[at + i] = work[at + i] if work[src + i] > 0 else dt(0.0)


@njit(**INLINE_REDUCE)
def _layer_squares(T, V, wl, bl, n_out):
    """(whether a layer's new W, b and velocities in T and V are all finite,
    the sum of its W**2 in float64), in one pass over T: the sum of squares of
    W and b is finite exactly when they are (a float32 square cannot overflow
    a float64 sum), and a velocity that is not finite leaves a parameter that
    is not. Only a float64 sum that overflows takes the exact check
    (``_abs_key`` of every value)."""
    sq_w = 0.0
    sq_b = 0.0
    for i in range(wl, bl):
        p = np.float64(T[i])
        sq_w += p * p
    for i in range(bl, bl + n_out):
        p = np.float64(T[i])
        sq_b += p * p
    if np.isfinite(sq_w + sq_b):
        return True, sq_w
    key = _abs_key(T[wl])
    for i in range(wl, bl + n_out):
        key = max(key, max(_abs_key(T[i]), _abs_key(V[i])))
    return key < _inf_key(T), sq_w


@njit(**INLINE_REDUCE)
def _row_gradient(T, G, work, src, cur, n_in, n_out, wl, bl, decay):
    """One row's gradient of a transposed layer into G: the outer product of
    its delta work[cur:] and its input work[src:], plus ``decay * W``; the
    bias gradient is the delta."""
    for j in range(n_out):
        G[bl + j] = work[cur + j]
    for j in range(n_out):
        d = work[cur + j]
        row = wl + j * n_in
        for i in range(n_in):
            G[row + i] = work[src + i] * d + decay * T[row + i]


@njit(**INLINE_REDUCE)
def _row_sweep(T, V, work, src, cur, nxt, n_in, n_out, wl, bl, lr, momentum, c1, c2, decay,
               below):
    """One row's SGD step on a transposed layer, fused with its gradient and
    (when ``below``) the delta of the layer below, in one sweep: each element
    of W adds its old value times delta j into the delta below, then takes
    g = a_i d_j + decay W, v = momentum v - lr g, W += c1 v - c2 g (plain:
    c1 = 1, c2 = 0; Nesterov: c1 = momentum, c2 = lr). The inner loops run
    over the layer's inputs and carry no reduction, so that they vectorise
    however narrow the layer; all scalars in the arrays' dtype."""
    dt = work.dtype.type
    for j in range(n_out):
        g = work[cur + j]
        v = momentum * V[bl + j] - lr * g
        V[bl + j] = v
        T[bl + j] += c1 * v - c2 * g
    if below:
        for i in range(n_in):
            work[nxt + i] = dt(0.0)
    for j in range(n_out):
        d = work[cur + j]
        row = wl + j * n_in
        if below:
            for i in range(n_in):
                wv = T[row + i]
                work[nxt + i] += wv * d
                g = work[src + i] * d + decay * wv
                v = momentum * V[row + i] - lr * g
                V[row + i] = v
                T[row + i] = wv + (c1 * v - c2 * g)
        else:
            for i in range(n_in):
                wv = T[row + i]
                g = work[src + i] * d + decay * wv
                v = momentum * V[row + i] - lr * g
                V[row + i] = v
                T[row + i] = wv + (c1 * v - c2 * g)


@njit(**REDUCE)
def _row_backward(T, V, G, work, widths, w_at, b_at, acts, act, lr, momentum, c1, c2, decay,
                  keep):
    """The backward pass and SGD step of one row, every layer from the top, in
    one call: ``_row_sweep``, and first, when ``keep``, the gradient into G.
    The output delta is at work[acts[L + 1]:]. Returns (every new value
    finite, sum of the new W**2)."""
    L = widths.shape[0] - 1
    ok = True
    sq = 0.0
    cur, nxt = acts[L + 1], acts[L + 2]
    for l in range(L - 1, -1, -1):
        n_in, n_out, wl, bl, src = widths[l], widths[l + 1], w_at[l], b_at[l], acts[l]
        if keep:
            _row_gradient(T, G, work, src, cur, n_in, n_out, wl, bl, decay)
        _row_sweep(T, V, work, src, cur, nxt, n_in, n_out, wl, bl, lr, momentum, c1, c2, decay,
                   l > 0)
        good, part = _layer_squares(T, V, wl, bl, n_out)
        if l > 0:
            _slope_span(work, nxt, src, n_in, act)
        ok = ok and good
        sq += part
        cur, nxt = nxt, cur
    return ok, sq


@njit(**INLINE)
def _last_live_row(w, order):
    """The epoch's last row of nonzero weight (-1: none)."""
    s = order.shape[0] - 1
    if w.shape[0] == 0:
        return s
    while s >= 0 and w[order[s]] == 0.0:
        s -= 1
    return s


@njit(**JIT)
def train_rows(X, y, Y, w, order, params, grads, state1, state2, step, sizes, act, output,
               solver, lr, momentum, nesterov, beta1, beta2, eps, l2, batch_size, work):
    """``train_epoch`` for SGD on batches of one row (``batch_size`` 1, dense
    X): the same results without the block machinery.

    For the epoch, the parameters and velocity are copied with every layer's
    W transposed (n_out x n_in, ``_transpose_layers``), and copied back at the
    end: a layer's forward pass is then one dot product per output and its
    update one reduction-free loop over the inputs per output, both long and
    contiguous, where the row-major layout gives short loops over the outputs
    with a reduction each (the narrow layers of batch-1 networks cannot fill
    the vector lanes that way). Per row: the forward pass (``_row_forward``),
    the output layer and its loss (``_row_softmax``, or ``_target_row`` for
    the other outputs), then the backward pass and update
    (``_row_backward``). The row's weight w scales the L2 term to l2 / w; its
    delta is that of an unweighted row. ``grads`` gets the gradient of the
    epoch's last row of nonzero weight. A failed row returns at once without
    copying back: the caller restores the arrays it saved."""
    n = order.shape[0]
    L = sizes.shape[0] - 1
    widths, w_at, b_at, acts = _row_layout(sizes)
    T = np.empty_like(params)
    V = np.empty_like(params)
    G = np.empty_like(params)
    _transpose_layers(params, T, widths, w_at, b_at, False)
    _transpose_layers(state1, V, widths, w_at, b_at, False)
    x = _flat(X)
    t = _flat(Y)
    k = widths[L]
    zo, do = acts[L], acts[L + 1]
    last = _last_live_row(w, order)
    dt = params.dtype.type
    lr_, mom = dt(lr), dt(momentum)
    c1, c2 = (mom, lr_) if nesterov else (dt(1.0), dt(0.0))
    data_total = 0.0
    penalty_total = 0.0
    sq = -1.0
    for s in range(n):
        r = order[s]
        weight = w[r] if w.shape[0] else 1.0
        if weight == 0.0:
            continue
        _row_forward(x, U(r) * widths[0], T, work, widths, w_at, b_at, acts, act)
        scale = 1.0 / weight
        if output == SOFTMAX:
            data = weight * _row_softmax(work, zo, do, k, U(y[r]))
        else:
            data = weight * _target_row(work, zo, work, do, t, U(r) * k, k, 1.0, output)
        penalty = 0.0
        if l2 > 0:
            if sq < 0:
                sq = 0.0
                for l in range(L):
                    sq += sum_squares(T[w_at[l] : b_at[l]])
            penalty = 0.5 * l2 * sq
        if not np.isfinite(data + penalty):
            return np.nan, np.nan, step, s
        data_total += data * scale
        penalty_total += penalty * scale
        ok, sq = _row_backward(T, V, G, work, widths, w_at, b_at, acts, act, lr_, mom, c1, c2,
                               dt(l2 * scale), s == last)
        if not ok:
            return np.nan, np.nan, step, s
        step += 1
    _transpose_layers(T, params, widths, w_at, b_at, True)
    _transpose_layers(V, state1, widths, w_at, b_at, True)
    if last >= 0:
        _transpose_layers(G, grads, widths, w_at, b_at, True)
    return data_total, penalty_total, step, n


# ------------------------------------------------------- training: columns
@njit(**JIT)
def _column_offsets(sizes, block):
    """Unsigned start of each feature-major block in the work array: the input
    (d x block), each hidden layer's activations, the logits (k x block,
    later the output delta), then two buffers of widest x block for the
    deltas of the hidden layers."""
    L = sizes.shape[0] - 1
    at = np.empty(L + 3, dtype=np.uint64)
    off = 0
    widest = 0
    for l in range(L + 1):
        at[l] = off
        off += sizes[l] * block
        if l > 0:
            widest = max(widest, sizes[l])
    at[L + 1] = off
    at[L + 2] = off + widest * block
    return at


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


@njit(**JIT)
def _columns_forward(X, rows, params, sizes, offs, at, block, act, work):
    """The forward pass of a block of rows (X's rows ``rows``), feature-major:
    row i of the block is column i of every layer's matrix, ``block`` apart.
    For each output unit: its bias, then one axpy over the block's rows per
    input unit, then f; every loop runs over the rows."""
    L = sizes.shape[0] - 1
    d = U(sizes[0])
    bu = U(block)
    nb = U(rows.shape[0])
    x = _flat(X)
    for f in range(d):
        dst = f * bu
        for i in range(nb):
            work[dst + i] = x[U(rows[i]) * d + f]
    for l in range(L):
        n_in, n_out = U(sizes[l]), U(sizes[l + 1])
        src, dst = at[l], at[l + 1]
        wl, bl = U(offs[2 * l]), U(offs[2 * l + 1])
        for u in range(n_out):
            o = dst + u * bu
            bv = params[bl + u]
            for i in range(nb):
                work[o + i] = bv
            _columns_combine(params, wl + u, n_out, work, src, bu, n_in, o, nb)
            if l < L - 1:
                _act_span(work, o, nb, act)


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
def _columns_softmax(y, w, rows, scale, k, block, work, zo, r0, r1):
    """Softmax + cross-entropy of a feature-major block of logits (k rows of
    ``block`` at work[zo:]), vectorised over the block's rows: one output
    stream per loop, so that each vectorises. Replaces the logits by the
    delta w_r * scale * (p - onehot(label)) and returns the weighted sum of
    the rows' losses (float64). Scratch: four row vectors, at r0 and r0 +
    block (label as a float, the row's weight times ``scale``), r1 and r1 +
    block (max, then the sum of exps; z[label] - max, then the loss)."""
    nb = U(rows.shape[0])
    bu = U(block)
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
def _columns_binary(y, w, rows, scale, block, work, zo, r0, r1):
    """``_columns_softmax`` for two classes: with v = z[other] - z[label], the
    loss is softplus(v) = max(v, 0) + log1p(e), e = exp(-|v|), and the delta
    ws * sigmoid(v) for the other class, its negative for the label. One exp
    and one log per row and one vectorised pass, where the general form takes
    two exps, a log and a dozen passes; log1p(e) is log(c) + (e - (c - 1)) /
    c with c = 1 + e (the rounding of c corrected). Scratch: row vectors at
    r0 (1 where the label is class 0), r0 + block (the row's weight times
    ``scale``) and r1 (the rows' losses)."""
    nb = U(rows.shape[0])
    bu = U(block)
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
        e = _exp_t(-abs(v))
        c = dt(1.0) + e
        inv = dt(1.0) / c
        work[r1 + i] = max(v, dt(0.0)) + (_log_t(c) + (e - (c - dt(1.0))) * inv)
        q = work[ws + i] * ((dt(1.0) if v >= dt(0.0) else e) * inv)
        work[zo + i] = -q if one else q
        work[z1 + i] = q if one else -q
    return _weighted_sum(work, r1, w, rows)


@njit(**JIT)
def _columns_output(y, Y, w, rows, start, order, scale, output, k, block, work, zo, g0, g1):
    """The output layer of a feature-major block: its loss (returned, weighted,
    float64) and its delta in place of the logits. Softmax is vectorised over
    the rows (``_columns_binary`` for two classes, else ``_columns_softmax``);
    the other outputs go through ``output_rows`` on a row-major copy in g0,
    the delta coming back from g1."""
    if output == SOFTMAX:
        if k == 2:
            return _columns_binary(y, w, rows, scale, block, work, zo, g0, g1)
        return _columns_softmax(y, w, rows, scale, k, block, work, zo, g0, g1)
    nb = U(rows.shape[0])
    bu, ku = U(block), U(k)
    for c in range(ku):
        for i in range(nb):
            work[g0 + i * ku + c] = work[zo + c * bu + i]
    m = rows.shape[0]
    Zr = work[g0 : g0 + U(m * k)].reshape(m, k)
    Dr = work[g1 : g1 + U(m * k)].reshape(m, k)
    total = output_rows(Zr, y, Y, w, order, start, scale, output, Dr)
    for c in range(ku):
        for i in range(nb):
            work[zo + c * bu + i] = work[g1 + i * ku + c]
    return total


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
        t0 = t1 = t2 = t3 = dt(0.0)
        for i in range(nb):
            x = work[a + i]
            t0 += x * work[r0 + i]
            t1 += x * work[r1 + i]
            t2 += x * work[r2 + i]
            t3 += x * work[r3 + i]
        grads[g0 + u] += t0
        grads[g0 + u + U(1)] += t1
        grads[g0 + u + U(2)] += t2
        grads[g0 + u + U(3)] += t3
    for u in range(n4, n):
        r = d0 + u * bu
        t = dt(0.0)
        for i in range(nb):
            t += work[a + i] * work[r + i]
        grads[g0 + u] += t


@njit(**REDUCE)
def _columns_backward(params, grads, sizes, offs, at, block, nb, act, work):
    """The backward pass of a feature-major block, its gradient added to
    ``grads``: per layer from the top, dW[f, u] += the dot product over the
    block's rows of input f and delta u, db[u] += the sum of delta u, and the
    delta of the layer below, sum_u W[f, u] delta_u times f'(.), from the
    current W. The logits' block holds the output delta; the hidden deltas
    alternate between the two delta buffers."""
    L = sizes.shape[0] - 1
    bu = U(block)
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
        for f in range(n_in):
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


# ---------------------------------------------------- training: full batch
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
        D = _delta(work, wo, sizes, m, L - 1)
        data += output_rows(out, y, Y, w, rows, start, scale, output, D)
        _, gb = _weights(grads, sizes, offs, L - 1)
        part = scratch[: sizes[L]]
        column_sums(D, part)
        for j in range(sizes[L]):
            gb[j] += part[j]
        for l in range(L - 1, -1, -1):
            lo, mid = offs[2 * l], offs[2 * l + 1]
            gW = scratch[: mid - lo].reshape(sizes[l], sizes[l + 1])
            _layer_gradient(X, rows, start, m, first, sizes, work, wo, l, gW)
            g = grads[lo:mid]
            for j in range(mid - lo):
                g[j] += scratch[j]
            if l > 0:
                _, gb = _weights(grads, sizes, offs, l - 1)
                part = scratch[: sizes[l]]
                _delta_below(params, sizes, offs, act, work, wo, m, l, part)
                for j in range(sizes[l]):
                    gb[j] += part[j]
    for l in range(L):
        g, p = grads[offs[2 * l] : offs[2 * l + 1]], params[offs[2 * l] : offs[2 * l + 1]]
        for j in range(p.shape[0]):
            g[j] += l2 * scale * p[j]
    return data * scale, 0.5 * l2 * _penalty_squares(params, sizes, offs) * scale


# --------------------------------------------------- training: row blocks
def _renamed(fn, name, namespace=None):
    """A copy of function ``fn`` named ``name`` (numba names its cache files by
    it) that reads its globals from ``namespace`` (default: its module's)."""
    g = pytypes.FunctionType(fn.__code__, fn.__globals__ if namespace is None else namespace,
                             name, fn.__defaults__, fn.__closure__)
    g.__qualname__ = name
    g.__module__, g.__doc__ = fn.__module__, fn.__doc__
    return g


def _pass_twins(fn):
    """A parallel pass ``fn`` (named ``_NAME``) compiled twice: as ``_NAME``
    with its ``prange`` loop run by numba's threads, and as ``_NAME_serial``
    with it run in order on the calling thread."""
    return (njit(**PARALLEL)(_renamed(fn, fn.__name__)),
            njit(**JIT)(_renamed(fn, fn.__name__ + "_serial")))


_rows_plan = njit(**JIT)(blocks.rows_plan)
_columns_plan = njit(**JIT)(blocks.columns_plan)


@njit(**JIT)
def _block_gradient(X, y, Y, w, order, start, m, params, sizes, offs, act, output, scale,
                    work, wo, G):
    """Forward, loss and backward of the m rows ``_row(order, start, i)``
    with their own scratch ``work`` (laid out by ``wo``), the gradient of
    their loss times ``scale`` written to ``G`` (a whole parameter vector).
    Returns the rows' weighted loss (float64)."""
    L = sizes.shape[0] - 1
    out = _block(work, wo, L, m, sizes[L])
    first = _forward_rows(X, order, start, m, params, sizes, offs, act, output, work, wo, out)
    D = _delta(work, wo, sizes, m, L - 1)
    loss = output_rows(out, y, Y, w, order, start, scale, output, D)
    column_sums(D, _weights(G, sizes, offs, L - 1)[1])
    for l in range(L - 1, -1, -1):
        _layer_gradient(X, order, start, m, first, sizes, work, wo, l,
                        _weights(G, sizes, offs, l)[0])
        if l > 0:
            _delta_below(params, sizes, offs, act, work, wo, m, l,
                         _weights(G, sizes, offs, l - 1)[1])
    return loss


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


@njit(**JIT)
def _update_span(params, grads, state1, state2, offs, c0, c1, solver, lr, momentum,
                 nesterov, beta1, beta2, eps, rate, decay, keep):
    """The optimiser step of ``_update_layer`` on the entries c0..c1-1 of the
    parameter vector, whichever layers' weights and biases they hold.
    Returns (all new values finite, sum of the new weights**2 among them)."""
    ok = True
    sq = 0.0
    for l in range((offs.shape[0] - 1) // 2):
        for part in range(2):  # the weights (with the L2 term), then the biases
            i0 = max(c0, offs[2 * l + part])
            i1 = min(c1, offs[2 * l + part + 1])
            if i0 >= i1:
                continue
            d = decay if part == 0 else 0.0
            if solver == ADAM:
                good, s = adam_step(params, grads, state1, state2, rate, beta1, beta2, eps, d,
                                    i0, i1)
            else:
                good, s = sgd_step(params, grads, state1, lr, momentum, nesterov, d, i0, i1,
                                   keep)
            ok = ok and good
            if part == 0:
                sq += s
    return ok, sq


def _rows_pass(X, y, Y, w, order, start, m, rows, params, sizes, offs, act, output, scale,
               work, wo, slots, losses):
    """The m rows from ``start`` in blocks of ``rows`` rows, one block per
    task: block b's scratch is the b-th ``wo[L + 3]`` entries of ``work``, its
    gradient the b-th parameter vector in ``slots``. Returns the rows' loss,
    the blocks' losses summed in block order."""
    P = params.shape[0]
    wb = wo[sizes.shape[0] + 2]
    nb = (m + rows - 1) // rows
    for b in prange(nb):
        r0 = b * rows
        losses[b] = _block_gradient(X, y, Y, w, order, start + r0, min(rows, m - r0), params,
                                    sizes, offs, act, output, scale, work[b * wb : (b + 1) * wb],
                                    wo, slots[b * P : (b + 1) * P])
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


def _update_pass(params, grads, state1, state2, offs, slots, nb, solver, lr, momentum,
                 nesterov, beta1, beta2, eps, rate, decay, keep, oks, sqs):
    """The batch's gradient (the sum of the nb blocks' gradients in ``slots``)
    into ``grads`` and the optimiser's step, in spans of ``UPDATE_CHUNK``
    parameters, one per task. Returns (all new values finite, sum of the new
    weights**2), the spans' sums added in span order."""
    P = params.shape[0]
    spans = oks.shape[0]
    for c in prange(spans):
        c0 = c * UPDATE_CHUNK
        c1 = min(P, c0 + UPDATE_CHUNK)
        _sum_blocks(slots, nb, P, grads, c0, c1, False)
        oks[c], sqs[c] = _update_span(params, grads, state1, state2, offs, c0, c1, solver, lr,
                                      momentum, nesterov, beta1, beta2, eps, rate, decay, keep)
    ok = True
    sq = 0.0
    for c in range(spans):
        ok = ok and oks[c]
        sq += sqs[c]
    return ok, sq


_update_pass, _update_pass_serial = _pass_twins(_update_pass)


def _columns_pass(X, y, Y, w, order, start, m, first, nb, block, params, sizes, offs, at, act,
                  output, scale, work, wb, slots, losses):
    """Feature-major blocks ``first`` to ``first + nb - 1`` of the batch of m
    rows from ``start``, one per task, each with its scratch (``wb`` entries
    of ``work``) and its gradient in ``slots``. Returns their loss, summed in
    block order."""
    L = sizes.shape[0] - 1
    P = params.shape[0]
    for b in prange(nb):
        b0 = start + (first + b) * block
        rows = order[b0 : min(b0 + block, start + m)]
        bw = work[U(b) * wb : U(b + 1) * wb]
        G = slots[b * P : (b + 1) * P]
        G[:] = 0.0
        _columns_forward(X, rows, params, sizes, offs, at, block, act, bw)
        losses[b] = _columns_output(y, Y, w, rows, b0, order, scale, output, sizes[L], block,
                                    bw, at[L], at[L + 1], at[L + 2])
        _columns_backward(params, G, sizes, offs, at, block, rows.shape[0], act, bw)
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
    return (njit(**JIT)(_renamed(fn, name)),
            njit(**JIT)(_renamed(fn, name + "_serial", serial)))


def _train_blocks(X, y, Y, w, order, params, grads, state1, state2, step, sizes, act, output,
                  solver, lr, momentum, nesterov, beta1, beta2, eps, l2, batch_size, work):
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
    data_total = 0.0
    penalty_total = 0.0
    sq = -1.0
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        weight = _batch_weight(w, order, start, m)
        if weight == 0.0:
            continue
        scale = 1.0 / weight
        data = _rows_pass(X, y, Y, w, order, start, m, rows, params, sizes, offs, act, output,
                          scale, work, wo, slots, losses)
        penalty, sq = _batch_penalty(params, sizes, offs, l2, sq)
        if not np.isfinite(data + penalty):
            return np.nan, np.nan, step, start
        data_total += data * m * scale
        penalty_total += penalty * m * scale
        nb = (m + rows - 1) // rows
        rate = adam_rate(lr, beta1, beta2, step + 1)
        if spans == 1:  # one span: on this thread, without waking the others
            _sum_blocks(slots, nb, P, grads, 0, P, False)
            ok, sq = _update_span(params, grads, state1, state2, offs, 0, P, solver, lr,
                                  momentum, nesterov, beta1, beta2, eps, rate, l2 * scale,
                                  start == last)
        else:
            ok, sq = _update_pass(params, grads, state1, state2, offs, slots, nb, solver, lr,
                                  momentum, nesterov, beta1, beta2, eps, rate, l2 * scale,
                                  start == last, oks, sqs)
        if not ok:
            return np.nan, np.nan, step, start
        step += 1
    return data_total, penalty_total, step, n


train_blocks, train_blocks_serial = _twins(_train_blocks)


def _train_columns(X, y, Y, w, order, params, grads, state1, state2, step, sizes, act, output,
                   solver, lr, momentum, nesterov, beta1, beta2, eps, l2, batch_size, work):
    """``train_epoch`` for narrow networks on large batches (dense X; softmax
    needs k >= 2): each batch in blocks of up to ``COLUMNS_BLOCK`` rows,
    transposed (``_columns_forward``, ``_columns_output``,
    ``_columns_backward``), up to ``BLOCK_MAX`` blocks at a time in parallel,
    each into its own gradient; the gradients are summed in block order, then
    each layer's update runs in one pass. The same results as ``train_epoch``
    up to rounding (sums taken in another order), and the same for any number
    of threads."""
    n = order.shape[0]
    L = sizes.shape[0] - 1
    P = params.shape[0]
    offs = _layers(sizes)
    nb_max, block = _columns_plan(batch_size)
    at = _column_offsets(sizes, block)
    widest = 0
    for l in range(1, L + 1):
        widest = max(widest, sizes[l])
    wb = at[L + 2] + U(widest * block)
    slots = work[U(nb_max) * wb : U(nb_max) * (wb + U(P))]
    losses = np.empty(nb_max)
    last = _last_live(w, order, batch_size)
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
            data += _columns_pass(X, y, Y, w, order, start, m, first, nb, block, params, sizes,
                                  offs, at, act, output, scale, work, wb, slots, losses)
            _sum_blocks(slots, nb, P, grads, 0, P, first > 0)
        penalty, sq = _batch_penalty(params, sizes, offs, l2, sq)
        if not np.isfinite(data + penalty):
            return np.nan, np.nan, step, start
        data_total += data * m * scale
        penalty_total += penalty * m * scale
        rate = adam_rate(lr, beta1, beta2, step + 1)
        ok = True
        sq = 0.0
        for l in range(L):
            good, part = _update_layer(params, grads, state1, state2, offs[2 * l],
                                       offs[2 * l + 1], offs[2 * l + 2], solver, lr, momentum,
                                       nesterov, beta1, beta2, eps, rate, l2 * scale,
                                       start == last)
            ok = ok and good
            sq += part
        if not ok:
            return np.nan, np.nan, step, start
        step += 1
    return data_total, penalty_total, step, n


train_columns, train_columns_serial = _twins(_train_columns)


def _loss_gradient_blocks(X, y, Y, w, params, grads, sizes, act, output, l2, chunk, work):
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
        data += _rows_pass(X, y, Y, w, order, start, m, rows, params, sizes, offs, act, output,
                           scale, work, wo, slots, losses)
        _sum_pass(slots, (m + rows - 1) // rows, grads, start > 0)
    for l in range(L):
        g, p = grads[offs[2 * l] : offs[2 * l + 1]], params[offs[2 * l] : offs[2 * l + 1]]
        for j in range(p.shape[0]):
            g[j] += l2 * scale * p[j]
    return data * scale, 0.5 * l2 * _penalty_squares(params, sizes, offs) * scale


loss_gradient_blocks, loss_gradient_blocks_serial = _twins(_loss_gradient_blocks)



# ------------------------------------------------------------ thread safety
_forked_from_omp = False


def _after_fork():
    """In a child process: numba's GNU OpenMP layer, once started in the
    parent, stops any child that enters a parallel region; remember it."""
    global _forked_from_omp
    from numba.np.ufunc import parallel

    if parallel._is_initialized and parallel._threading_layer == "omp":
        _forked_from_omp = True


os.register_at_fork(after_in_child=_after_fork)


def parallel_ok():
    """Whether the row-block kernels may run their parallel twins here: not
    in a child forked after the parent started GNU OpenMP's threads, and not
    on numba's ``workqueue`` layer (which stops a process that enters two
    parallel regions at once, from two threads); elsewhere the serial twins
    run, with the same results."""
    if _forked_from_omp:
        return False
    return threading_layer() != "workqueue"


_layer = None


def threading_layer():
    """The threading layer numba runs the parallel loops on (starting it)."""
    global _layer
    if _layer is None:
        from numba.np.ufunc import parallel

        parallel._launch_threads()
        _layer = parallel._threading_layer
    return _layer
