"""Exp and log: range-reduced polynomials that vectorise, in float64 and in
float32, the sigmoid, tanh and softplus built on them, and ``_exp_t`` and
friends, which pick the precision by the value's type.

Each is compiled once and LLVM inlines it into the loops that call it, which
then vectorise; the two tanh are larger than LLVM inlines by itself (a loop
of tanh calls runs at half speed) and are inlined at numba's level
(``INLINE``), which costs compile time at every call.
"""

import numpy as np
from numba import njit, types
from numba.extending import overload

from ._setup import INLINE, JIT, OVERLOAD
from .bits import _bits32_of, _bits_of, _float32_of, _float_of, _half_pow2_32


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


@njit(**JIT)
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
def _exp_reduced(x, f32):
    """(exp(c), q) for c = x clamped to [-708, log(max float64)]: c = k ln2 + r
    with |r| <= ln2/2, q = exp(r) - 1 = ``_expm1_reduced(r)`` and exp(c) =
    2**k (1 + q), 2**k built from its bits. Where |x| <= ln2/2, k = 0 and r =
    x: q is expm1(x) itself (``_tanh`` uses both). Branch-free."""
    c = min(max(x, _EXP_LO), _EXP_HI)
    t = c * _LOG2E + _SHIFTER
    k = t - _SHIFTER
    q = _expm1_reduced((c - k * _LN2_HI) - k * _LN2_LO, f32)
    # 2**(k-1), times 2 below: k reaches 1024 near the top of the range
    scale = _float_of((_bits_of(t) - _SHIFTER_BITS + 1022) << 52)
    return ((1.0 + q) * scale) * 2.0, q


@njit(**JIT)
def _exp(x, f32):
    """exp(x) in float64: within 2 ulp of float64, or (``f32`` true) within
    1e-8 relative, plenty for a float32 result. 0 below -708, inf above
    log(max float64). ``_exp_reduced``, then the ends of the range;
    branch-free, so loops over it vectorise; ``f32`` is a constant where it
    is inlined.
    """
    y = _exp_reduced(x, f32)[0]
    y = 0.0 if x < _EXP_LO else y
    y = np.inf if x > _EXP_HI else y
    return y


@njit(**JIT)
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


@njit(**JIT)
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


@njit(**JIT)
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


@njit(**JIT)
def _sigmoid(v, f32):
    return 1.0 / (1.0 + _exp(-v, f32))


@njit(**INLINE)
def _tanh(v, f32):
    """tanh(v) = (1 - e) / (1 + e) with e = exp(-2|v|); for |v| < ln2/4, where
    1 - e cancels, -q / (2 + q) with q = expm1(-2|v|) instead (relative
    accuracy down to 0). One polynomial serves both (``_exp_reduced``: q is
    expm1(-2|v|) where |v| < ln2/4; below the range of ``_exp`` e is tiny
    instead of 0, and tanh is 1 either way). Both are selected, not branched
    to: loops stay branch-free."""
    a = abs(v)
    e, q = _exp_reduced(-2.0 * a, f32)
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
                       lambda x: _exp32(x), lambda x: _exp(x, np.bool_(False)))
_log_t = _in_precision("_log_t", "log(x) (x > 0) in x's own precision: ``_log32`` or "
                       "``_log64``.", lambda x: _log32(x), lambda x: _log64(x))
_sigmoid_t = _in_precision("_sigmoid_t", "The sigmoid in x's own precision.",
                           lambda x: np.float32(1.0) / (np.float32(1.0) + _exp32(-x)),
                           lambda x: _sigmoid(x, np.bool_(False)))
_tanh_t = _in_precision("_tanh_t", "tanh in x's own precision.",
                        lambda x: _tanh32(x), lambda x: _tanh(x, np.bool_(False)))


@njit(**INLINE)
def _sigmoid_softplus(v, one):
    """(sigmoid(v), softplus(v) = log(1 + exp(v))) in the precision of v and
    ``one`` (1 in v's type), finite for any finite v, from one exp: e =
    exp(-|v|), c = 1 + e, sigmoid(v) = 1 / c (v >= 0) or e / c, softplus(v)
    = max(v, 0) + log1p(e) with log1p(e) = log(c) + (e - (c - 1)) / c (the
    rounding of c corrected). Branch-free, where a call of the C library's
    log1p cost more than the rest of a row's output; inlined, so that a loop
    over it vectorises (float32 at twice float64's width)."""
    e = _exp_t(-abs(v))
    c = one + e
    inv = one / c
    return (one if v >= 0 else e) * inv, max(v, one - one) + (_log_t(c) + (e - (c - one)) * inv)
