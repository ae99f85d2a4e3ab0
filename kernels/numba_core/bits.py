"""Bits: reinterpreting a float's bits as an integer and back, for the range
reductions of exp and log and for finiteness checks by integer maxima.
"""

from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from ._setup import JIT


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
