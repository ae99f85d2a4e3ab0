"""Every option of the compiled kernels, and the sizes they tune by, in one place.

The kernels never spell out a numba option themselves: they use ``JIT``
(serial), ``PARALLEL`` (the row-block kernels, whose ``prange`` loops numba's
threads run), ``INLINE`` (scalar helpers), ``REDUCE`` (vectorised sums) or
``INLINE_REDUCE`` (the helpers of those), with ``PYTHON_ENTRY`` or
``C_ENTRY`` added where Python or an address calls them; ``ADAPTER`` is the
one C function compiled apart (``numba_core.blas``). This
module imports nothing heavy and changes nothing outside itself: the numba core
reads it when it is first loaded, and the API reads the sizes that choose an
epoch's kernel (``api.epoch_path``).

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
#: Neither of numba's two wrappers of a compiled function is generated: the
#: one Python calls (it unboxes every argument) and the C entry point of
#: numba's first-class functions. Most functions are only called from other
#: compiled code, which calls them directly, and the wrappers made almost a
#: quarter of the LLVM code compiled for a first fit. The kernels that Python
#: calls add ``PYTHON_ENTRY``; the functions called by address add ``C_ENTRY``.
JIT = dict(nogil=True, cache=True, error_model="numpy", fastmath=set(FASTMATH),
           no_cpython_wrapper=True, no_cfunc_wrapper=True)

#: Added to the options of a kernel that Python calls.
PYTHON_ENTRY = dict(no_cpython_wrapper=False)

#: Added to the options of a function that compiled code calls by address.
C_ENTRY = dict(no_cfunc_wrapper=False)

#: Sums that may be vectorised: ``reassoc`` lets LLVM split them into lanes.
#: The order is then fixed by the compiled code (the same on every run), not
#: by the data. Nothing that calls ``_exp`` may use it.
REDUCE = dict(JIT, fastmath=set(FASTMATH | {"reassoc"}))

#: The passes of the row-block kernels: the same options, their ``prange``
#: loops run by numba's thread pool (each also has a serial twin compiled with
#: ``JIT``). Only ``prange`` is parallelised: numba's other automatic
#: parallelisations (array expressions, reductions) add compile time and are
#: not used.
PARALLEL = dict(JIT, parallel={"prange": True, "comprehension": False, "reduction": False,
                               "inplace_binop": False, "setitem": False, "numpy": False,
                               "stencil": False, "fusion": False})

#: The C adapter over numba's route to SciPy's BLAS (``numba_core.blas``),
#: compiled only where numpy bundles no OpenBLAS of its own: one small
#: function, compiled again in each such process rather than cached.
ADAPTER = dict(nopython=True, cache=False)

#: Helpers inlined at numba's level: small layout helpers, and the scalar
#: functions that LLVM would otherwise leave as calls inside the loops that
#: call them (tanh), so that those loops vectorise. Inlining at numba's level
#: types and lowers the helper again at every call: it is kept for these.
INLINE = dict(JIT, inline="always")

#: Helpers of ``REDUCE`` kernels, inlined into them: one compiled call does a
#: whole pass of many short loops (a call passes every array as several
#: machine words, which costs more than a narrow loop).
INLINE_REDUCE = dict(REDUCE, inline="always")

#: Up to this many multiply-adds a matrix product is a plain loop, not a BLAS
#: call (a single row times a matrix is a loop at any size: ``gemm_nn``).
#: OpenBLAS's small-matrix kernels beat the loops from about this size up, by
#: 4-15x on the narrow products of row blocks and of small outputs (34 x 64 x 3:
#: 2.5 against 0.3 us; 256 x 64 x 1: 12.9 against 1.2 us; AMD EPYC, SciPy's
#: OpenBLAS 0.3.30, one thread); below it both take about 0.1 us.
SMALL_GEMM = 1 << 6

#: ReLU rows narrower than this are handled in two passes (bias, then f over
#: the whole block) so that the activation's loop is long enough to vectorise
#: (the other activations always are: ``activations.bias_act_rows``).
NARROW = 16

#: Rows of one forward pass in ``predict``: bounds the scratch memory.
PREDICT_CHUNK = 4096

#: Narrow networks (every layer after the input at most this wide) train in
#: feature-major blocks (``numba_core.train_columns``) when their batches hold at
#: least ``COLUMNS_MIN_BATCH`` rows: rows then fill the vector lanes that the
#: few units of a layer cannot.
COLUMNS_MAX_WIDTH = 16
COLUMNS_MIN_BATCH = 32

#: Rows per feature-major block: the block's activations stay in the L1/L2 cache.
COLUMNS_BLOCK = 1024

#: Entries between two feature-major rows of a block beyond its rows
#: (``blocks.columns_stride``). Rows of 1,024 float32 would lie exactly 4 KiB
#: apart: every row then maps to the same cache sets, and a load waits for a
#: store to another row whose address ends in the same 12 bits (4K aliasing).
#: 16 more entries (64 or 128 bytes) put the rows a cache line or two out of
#: step (the input's transposition, 1,024 rows of 8 float32 features: 1.2
#: against 2.3 us; of 64 features: 8 against 37 us; AMD EPYC).
COLUMNS_PAD = 16


#: Row blocks (``blocks.rows_plan``): a batch is split into blocks of at least
#: ``BLOCK_MIN_ROWS`` rows, at most ``BLOCK_MAX`` of them, whatever the number
#: of threads; each block's forward and backward pass runs on one thread with
#: its own scratch and gradient, and the gradients are summed in block order.
BLOCK_MIN_ROWS = 32
BLOCK_MAX = 16

#: The cost model that picks row blocks over BLAS's own threads: a layout whose
#: weights and biases number at most this trains in row blocks (each block's
#: gradient is summed once per batch, which costs more than BLAS's threads gain
#: once the layers are large: measured on AMD EPYC, mid at 28k parameters gains
#: from the blocks and mnist-shape at 235k loses; README, "Threads").
BLOCKS_MAX_PARAMS = 1 << 17

#: Entries of the parameter vector per task of the parallel sum of the blocks'
#: gradients and of the update that follows it.
UPDATE_CHUNK = 1 << 11
#: Seconds a cold compile of each function called by address, and of each
#: kernel that calls them, takes (AMD EPYC, numba 0.68; any other function:
#: 1): how ``numba_core.parallel_compile`` shares a first call's compiles
#: between processes. Only the relative sizes matter.
COMPILE_COST = {"_forward_rows": 2.7, "_block_loss_softmax": 1.4,
                "_block_loss_targets": 2.0, "_block_backward": 2.5,
                "_columns_block_softmax": 4.7, "_columns_block_targets": 4.3,
                "_update_span": 0.8, "_train_epoch_by": 2.0, "train_blocks": 4.0,
                "train_blocks_serial": 3.0, "train_columns": 2.5, "train_columns_serial": 2.0,
                "loss_gradient_blocks": 3.5, "loss_gradient_blocks_serial": 2.0}
