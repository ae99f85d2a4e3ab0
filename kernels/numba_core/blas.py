"""BLAS's matrix product (gemm) as the compiled kernels call it.

Compiled code calls ``fastmlp_sgemm`` or ``fastmlp_dgemm``: C functions with
CBLAS's signature (row-major operands, 64-bit integers). Machine code names
these symbols, not an address, so the code numba caches on disk stays valid
whatever they are bound to. Importing this module binds them, before any
kernel is compiled or loaded from the cache, to one of two sources:

- ``numpy``: the CBLAS entry points of the OpenBLAS that numpy's wheels bundle
  (``libscipy_openblas64_``, with 64-bit integers: ``scipy_cblas_sgemm64_``),
  the library behind numpy's own ``@``. A product called through it runs as
  fast as numpy's (numba's ``np.dot`` calls SciPy's OpenBLAS, another build,
  measured 10-30 % slower per product on Intel Xeon, about as fast on AMD
  EPYC), and the call compiles in a tenth of the time of numba's ``np.dot``.
- ``scipy``: wherever numpy bundles no such library (conda's numpy, MKL, an
  older wheel), an adapter compiled here that calls numba's own route to
  SciPy's BLAS (``numba_xxgemm``, what ``np.dot`` calls in compiled code:
  Fortran's column-major gemm, with the operands swapped to compute the same
  row-major product).

``FASTMLP_KERNEL_BLAS`` (``numpy`` or ``scipy``) picks one; by default
``numpy`` where numpy bundles it (asked for where it does not: a warning,
and ``scipy``). The choice is made without numba, in ``bundled_blas``, where
the thread settings read it too. ``SOURCE`` and ``LIBRARY`` say which is in
use (``fastmlp.show_config()`` prints them).
"""

import os
import warnings

import llvmlite.binding as ll
from llvmlite import ir
from numba import cfunc, types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

from ..bundled_blas import VARIABLE, kernels_blas, requested
from ..config import ADAPTER

#: The C symbols compiled code calls, by dtype letter.
SYMBOLS = {"s": "fastmlp_sgemm", "d": "fastmlp_dgemm"}

#: CBLAS's values for row-major order and for an operand used as it is or transposed.
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112


@intrinsic
def _xxgemm(typingctx, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
    """numba's ``numba_xxgemm`` (Fortran's gemm of SciPy's BLAS) computing the
    row-major C = alpha op(A) op(B) + beta C of CBLAS: column-major, that is
    C^T = op(B)^T op(A)^T, so B goes first. ``transa``/``transb``: CBLAS's
    values; A, B, C: pointers to the dtype of ``alpha``."""
    dtype = alpha
    sig = types.int32(types.int32, types.int32, types.int64, types.int64, types.int64, dtype,
                      types.voidptr, types.int64, types.voidptr, types.int64, dtype,
                      types.voidptr, types.int64)

    def codegen(context, builder, signature, args):
        ta, tb, m_, n_, k_, alpha_, a, lda_, b, ldb_, beta_, c, ldc_ = args
        char = ir.IntType(8)
        voidptr = cgutils.voidptr_t
        fnty = ir.FunctionType(ir.IntType(32), [char, char, char, cgutils.intp_t,
                                                cgutils.intp_t, cgutils.intp_t, voidptr,
                                                voidptr, cgutils.intp_t, voidptr,
                                                cgutils.intp_t, voidptr, voidptr,
                                                cgutils.intp_t])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")

        def letter(flag):
            trans = builder.icmp_signed("==", flag, ir.Constant(flag.type, TRANS))
            return builder.select(trans, ir.Constant(char, ord("t")), ir.Constant(char, ord("n")))

        kind = ir.Constant(char, ord("s" if dtype == types.float32 else "d"))
        slots = [builder.bitcast(cgutils.alloca_once_value(builder, v), voidptr)
                 for v in (alpha_, beta_)]
        return builder.call(fn, [kind, letter(tb), letter(ta), n_, m_, k_, slots[0], b, ldb_,
                                 a, lda_, slots[1], c, ldc_])

    return sig, codegen


def _adapter(dtype):
    """A C function with CBLAS's gemm signature (row-major only) over numba's
    route to SciPy's BLAS."""
    sig = types.void(types.int32, types.int32, types.int32, types.int64, types.int64,
                     types.int64, dtype, types.voidptr, types.int64, types.voidptr, types.int64,
                     dtype, types.voidptr, types.int64)

    def gemm(order, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
        _xxgemm(transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)

    return cfunc(sig, **ADAPTER)(gemm)


def _choose():
    source, path, addresses = kernels_blas()  # ValueError for a bad FASTMLP_KERNEL_BLAS
    if source == "numpy":
        return "numpy", path, addresses, ()
    if requested() == "numpy":
        warnings.warn(f"{VARIABLE}=numpy, but this numpy bundles no OpenBLAS whose CBLAS "
                      f"gemm fastmlp can call; the kernels call SciPy's BLAS",
                      RuntimeWarning, stacklevel=2)
    import scipy.linalg.cython_blas  # noqa: F401  (fails clearly where SciPy is missing)

    adapters = (_adapter(types.float32), _adapter(types.float64))
    path = "SciPy's BLAS (scipy.linalg.cython_blas, numba's numba_xxgemm)"
    return "scipy", path, {"s": adapters[0].address, "d": adapters[1].address}, adapters


#: Which source the kernels' products use ('numpy' or 'scipy'), and its
#: library file (for 'scipy': a description). ``_KEEP`` holds the adapters'
#: machine code for as long as the process runs.
SOURCE, LIBRARY, _ADDRESSES, _KEEP = _choose()
for _letter, _symbol in SYMBOLS.items():
    ll.add_symbol(_symbol, _ADDRESSES[_letter])


@intrinsic
def gemm(typingctx, transa, transb, m, n, k, alpha, A, B, beta, C):
    """C = alpha op(A) @ op(B) + beta C by BLAS (``fastmlp_sgemm``/
    ``fastmlp_dgemm``): op(A), m x k, is A or (``transa``) A.T; op(B), k x n,
    is B or (``transb``) B.T. A, B and C: C-contiguous 2-D arrays of one float
    dtype, each row one leading dimension; m, n and k at least 1; alpha and
    beta: floats, rounded to that dtype (beta 0: C's old values are not read)."""
    arrays = (A, B, C)
    if not all(isinstance(a, types.Array) and a.ndim == 2 and a.layout == "C" for a in arrays):
        raise TypingError("gemm takes C-contiguous 2-D arrays")
    dtype = A.dtype
    if dtype not in (types.float32, types.float64) or B.dtype != dtype or C.dtype != dtype:
        raise TypingError("gemm takes float32 or float64 arrays of one dtype")
    if not all(isinstance(s, types.Float) for s in (alpha, beta)):
        raise TypingError("gemm takes float scalars alpha and beta")
    sig = types.none(types.boolean, types.boolean, types.int64, types.int64, types.int64,
                     alpha, A, B, beta, C)

    def codegen(context, builder, signature, args):
        ta, tb, m_, n_, k_, alpha_, a_, b_, beta_, c_ = args
        scalars = [context.cast(builder, v, t, dtype)
                   for v, t in ((alpha_, signature.args[5]), (beta_, signature.args[8]))]
        int32, int64 = ir.IntType(32), ir.IntType(64)
        real = context.get_value_type(dtype)
        voidptr = cgutils.voidptr_t
        fnty = ir.FunctionType(ir.VoidType(), [int32, int32, int32, int64, int64, int64, real,
                                               voidptr, int64, voidptr, int64, real, voidptr,
                                               int64])
        fn = cgutils.get_or_insert_function(
            builder.module, fnty, SYMBOLS["s" if dtype == types.float32 else "d"])
        pointers, leading = [], []
        for ty, value in zip(arrays, (a_, b_, c_)):
            array = context.make_array(ty)(context, builder, value)
            pointers.append(builder.bitcast(array.data, voidptr))
            width = cgutils.unpack_tuple(builder, array.shape, 2)[1]
            one = ir.Constant(width.type, 1)
            leading.append(builder.select(builder.icmp_signed("<", width, one), one, width))

        def flag(trans):
            return builder.select(trans, ir.Constant(int32, TRANS), ir.Constant(int32, NO_TRANS))

        builder.call(fn, [ir.Constant(int32, ROW_MAJOR), flag(ta), flag(tb), m_, n_, k_,
                          scalars[0], pointers[0], leading[0], pointers[1], leading[1],
                          scalars[1], pointers[2], leading[2]])
        return context.get_dummy_value()

    return sig, codegen


def describe():
    """Which BLAS the products call, in words."""
    if SOURCE == "numpy":
        return f"numpy's OpenBLAS, its CBLAS entry points ({os.path.basename(LIBRARY)})"
    return f"{LIBRARY}, through an adapter"
