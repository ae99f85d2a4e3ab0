"""Every option of the compiled kernels, and the sizes they tune by, in one place.

The kernels never spell out a numba option themselves: they use ``JIT``
(serial), ``PJIT`` (``prange`` loops), ``INLINE`` (scalar helpers) or
``REDUCE`` (vectorised sums). This module imports nothing heavy and changes
nothing outside itself: the numba core reads it when it is first loaded.

The numba core freezes the sizes below into its compiled code; it checks them
against its cached machine code when it loads and rebuilds the cache when one
changed (``numba_core.ensure_fresh``), so editing a value here takes effect.
"""

#: fastmath flags that keep NaN and inf checks working: ``nnan``/``ninf`` are
#: left out on purpose (with them ``np.isfinite`` is compiled away), and so is
#: ``reassoc`` (it would let LLVM undo the rounding tricks of ``_exp`` and would
#: make sums depend on vector width).
FASTMATH = frozenset({"nsz", "arcp", "contract", "afn"})

#: Serial kernels: no Python error model (its division check blocks SIMD).
JIT = dict(nogil=True, cache=True, error_model="numpy", fastmath=set(FASTMATH))

#: Sums that may be vectorised: ``reassoc`` lets LLVM split them into lanes.
#: The order is then fixed by the compiled code (the same on every run), not
#: by the data. Nothing that calls ``_exp`` may use it.
REDUCE = dict(JIT, fastmath=set(FASTMATH | {"reassoc"}))

#: Kernels with ``prange`` loops.
PJIT = dict(JIT, parallel=True)

#: Scalar helpers (exp, sigmoid, tanh): inlined into the loops that call them,
#: at numba's level, so that those loops vectorise.
INLINE = dict(JIT, inline="always")

#: Elements (rows x columns) of elementwise work below which a ``prange`` loop
#: does not pay: waking the threads costs tens of microseconds.
PARALLEL_MIN_ELEMENTS = 1 << 17

#: Below this many multiply-adds a matrix product is a plain loop, not a BLAS call.
SMALL_GEMM = 1 << 14

#: Rows narrower than this are handled in two passes (bias, then f over the
#: whole block) so that the activation's loop is long enough to vectorise.
NARROW = 16

#: Rows of one forward pass in ``predict``: bounds the scratch memory.
PREDICT_CHUNK = 4096

#: The OpenMP wait policy numba's thread pool starts with (see
#: ``numba_core.start_threads``): idle workers sleep at once instead of spinning
#: on the cores that BLAS is using.
OMP_WAIT_POLICY = "passive"
