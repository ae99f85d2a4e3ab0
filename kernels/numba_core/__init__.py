"""Compiled (numba) kernels: every formula as an in-place loop.

Each kernel writes into arrays its caller provides and allocates nothing but
small views and index arrays, except ``predict_rows``, which allocates its
scratch. The whole-epoch kernels and the full-batch ``loss_gradient`` call the
others, across the files of this package; numba rebuilds a cached function
only when its own source file changes, so ``ensure_fresh`` (``freshness``)
rebuilds every kernel when any file of the package, ``blocks``, or a value
taken from ``codes`` and ``config`` changed since the cache was written.

An epoch is trained by one of four kernels with one signature; the API picks
one by the shape of the work (``api.epoch_path``), and each is its own
compiled entry point, so that a fit compiles only the one it uses:

- ``train_rows`` (``train_rows.py``): batches of one row (dense X). Per row,
  the forward pass over flat parameters, then per layer from the top one
  sweep that takes the delta for the layer below from the old weights and
  updates the layer.
- ``train_columns`` (``train_row_blocks.py``, its passes in
  ``train_columns.py``): narrow networks on large batches (dense X). Blocks of
  ``COLUMNS_BLOCK`` rows are transposed (feature-major), so that every inner
  loop runs over the rows of the block and vectorises however narrow the
  layers are; the blocks run in parallel.
- ``train_blocks`` (``train_row_blocks.py``): small and medium layers on
  batches of 64 rows or more (dense or CSR X): each batch split into row
  blocks (``blocks.rows_plan``) that numba's threads train in parallel, each
  with single-threaded products, the gradients summed in block order.
- ``train_epoch`` (``train_batches.py``): everything else (large layers,
  batches of one row under Adam, small batches): the whole batch at once,
  products by BLAS and its threads (or plain loops below ``SMALL_GEMM``), a
  fused pass per layer for the activation's derivative and the bias gradient
  (the block gradient of the row-block kernels, over the whole batch), then
  a one-pass update of the parameters (under SGD without Nesterov's step, BLAS
  puts the first layer's weight gradient straight into the velocity).

The row-block kernels (``api.ROW_BLOCK_KERNELS``, ``train_row_blocks.py``)
split rows the same way for any number of threads and sum in a fixed order,
so their results do not depend on it; each has a serial twin for where
numba's threads cannot run (``parallel_ok``). ``train_epoch``,
``train_blocks``, ``train_columns`` and ``loss_gradient_blocks`` are Python
functions over compiled ones (``_train_epoch_by``, ``_train_blocks_by``, ...)
to which they pass the forward, loss and backward passes of a block of
rows (``_forward_rows``, ``_block_loss_softmax`` or ``_block_loss_targets``,
``_block_backward``) or of a feature-major block (``_columns_block_softmax``
or ``_columns_block_targets``) and/or the optimiser's update of a span of
parameters, ``_update_span``, by address (``block_gradient.py``,
``_setup.ByAddress``): each is compiled once into machine code of its own
rather than again into every function that calls it. Their types are known
before any is compiled, so a first call compiles them side by side, in
helper processes where numba caches on disk (``parallel_compile``; the
README's "Compile time of a first fit").

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

Files, one per section: ``_setup`` (set-up), ``bits``, ``exp_log`` (exp and
log), ``blas`` (BLAS's gemm as compiled code calls it: numpy's own OpenBLAS
where numpy bundles one), ``products`` (matrix products), ``activations``, ``outputs`` (output
layers), ``optimisers``, ``layout`` (layout and the first layer), ``network``
(network forward), ``block_gradient`` (a block's forward and backward
pass, and what is called by address), training in ``train_batches``,
``train_rows``, ``train_columns``, ``train_full_batch`` and
``train_row_blocks``, ``thread_safety``, ``parallel_compile`` (compiling in
helper processes); and ``freshness`` and ``record``, which keep the cache
fresh. This module only gathers the names the API and the tests use, and
makes every function compiled without an entry point for Python refuse a call
from Python with a TypeError (``_setup.CompiledOnly``).
"""

from ._setup import _CACHE, close_python_entries
from .activations import act_backward, bias_act_rows, linear
from .network import forward, predict_rows
from .freshness import _FROZEN, REBUILT, _dispatchers, _source_key, ensure_fresh
from .optimisers import adam_rate, adam_step, adam_update, sgd_step, sgd_update
from .outputs import log_softmax, output_rows, softmax
from .products import column_sums, gemm_nn, gemm_nt, gemm_tn, sum_squares
from .record import _frozen
from .thread_safety import parallel_ok, threading_layer
from .block_gradient import _block_backward, _block_loss_softmax, _block_loss_targets
from .train_batches import _train_epoch_by, train_epoch
from .train_full_batch import loss_gradient
from .train_row_blocks import (_loss_gradient_blocks_by, _loss_gradient_blocks_serial_by,
                               _train_blocks_by, _train_blocks_serial_by, _train_columns_by,
                               _train_columns_serial_by, loss_gradient_blocks,
                               loss_gradient_blocks_serial, train_blocks, train_blocks_serial,
                               train_columns, train_columns_serial)
from .train_rows import train_rows

close_python_entries(_dispatchers())
