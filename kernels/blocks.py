"""How the row-block kernels split rows into blocks.

The split depends on the number of rows alone, never on the number of
threads, so that a block's arithmetic, and the order in which the blocks'
gradients are summed, are the same for any thread count: the trained weights
are too. Plain Python with no imports beyond the configuration: the API
sizes scratch with these functions and the numba core compiles them into its
kernels.
"""

from .config import BLOCK_MAX, BLOCK_MIN_ROWS, COLUMNS_BLOCK, COLUMNS_PAD


def rows_plan(rows):
    """(blocks, rows per block) for a batch of ``rows`` rows: as many blocks
    of at least ``BLOCK_MIN_ROWS`` rows as the batch allows, at most
    ``BLOCK_MAX``, the rows shared out evenly (the last block may hold fewer).
    A smaller batch of the same epoch keeps the rows per block and takes
    fewer blocks."""
    blocks = rows // BLOCK_MIN_ROWS
    if blocks < 1:
        blocks = 1
    if blocks > BLOCK_MAX:
        blocks = BLOCK_MAX
    return blocks, (rows + blocks - 1) // blocks


def columns_plan(rows):
    """(blocks in flight, rows per block) of the feature-major kernel for a
    batch of ``rows`` rows: blocks of up to ``COLUMNS_BLOCK`` rows (their
    activations stay in the cache), taken ``BLOCK_MAX`` at a time."""
    block = min(rows, COLUMNS_BLOCK)
    blocks = (rows + block - 1) // block
    return min(blocks, BLOCK_MAX), block


def columns_stride(block):
    """Entries from one feature-major row of a block of ``block`` rows to the
    next in the feature-major kernel's scratch: the rows and ``COLUMNS_PAD``
    more."""
    return block + COLUMNS_PAD
