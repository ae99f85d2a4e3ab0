"""The GEMM-only floor of each training workload.

One epoch's matrix products and nothing else: for every minibatch (contiguous
rows, no gather), the forward ``A[l] = A[l-1] @ W[l]`` of every layer, then
backward ``G[l] = A[l-1].T @ D[l]`` for every layer and ``D[l-1] = D[l] @ W[l].T``
for every layer but the first (the input needs no gradient; fastmlp,
scikit-learn and PyTorch skip it too). No bias, activation, loss or update.

The products are BLAS calls inside one ``@njit`` function on preallocated
buffers, through the very route fastmlp's compiled kernels take
(``fastmlp.kernels.numba_core.blas.gemm``: numpy's own OpenBLAS where
numpy's wheel bundles it, else SciPy's), so the same library and thread pool
as fastmlp's compiled epoch; numba's ``np.dot`` would call SciPy's OpenBLAS,
another build (measured 10-30 % slower per product than numpy's on the Intel
kind). Note that
fastmlp runs products below ``kernels.config.SMALL_GEMM`` multiply-adds as
plain loops, not BLAS calls, so on tiny batches (seed-ionosphere, batch 1) the
epoch can beat this "floor": there it measures BLAS call overhead.

``training.Epoch*.time_epoch`` / ``floor.*.time_gemm_floor`` is the ratio to read.
"""

import numpy as np

from . import (DTYPES, LARGE_WORKLOADS, SMALL_WORKLOADS, WORKLOADS, LargeSettings, batch_size,
               cached, make_data)

_KERNEL = None


def gemm_epoch_kernel():
    """The compiled floor (compiled lazily so that discovery never imports numba)."""
    global _KERNEL
    if _KERNEL is None:
        from . import require

        numba = require("numba")
        from fastmlp.kernels.numba_core.blas import gemm

        @numba.njit(nogil=True)
        def gemm_epoch(Xf, widths, Ws, As, Ds, Gs, batch):
            d = widths[0]
            n = Xf.shape[0] // d
            L = len(Ws)
            for start in range(0, n, batch):
                m = min(batch, n - start)
                Xb = Xf[start * d:(start + m) * d].reshape(m, d)
                for l in range(L):
                    w = widths[l + 1]
                    out = As[l][:m * w].reshape(m, w)
                    if l == 0:
                        gemm(False, False, m, w, d, 1.0, Xb, Ws[l], 0.0, out)
                    else:
                        v = widths[l]
                        A = As[l - 1][:m * v].reshape(m, v)
                        gemm(False, False, m, w, v, 1.0, A, Ws[l], 0.0, out)
                for l in range(L - 1, -1, -1):
                    w = widths[l + 1]
                    D = Ds[l][:m * w].reshape(m, w)
                    if l == 0:
                        gemm(True, False, d, w, m, 1.0, Xb, D, 0.0, Gs[l])
                    else:
                        v = widths[l]
                        A = As[l - 1][:m * v].reshape(m, v)
                        gemm(True, False, v, w, m, 1.0, A, D, 0.0, Gs[l])
                        gemm(False, True, m, v, w, 1.0, D, Ws[l], 0.0,
                             Ds[l - 1][:m * v].reshape(m, v))

        _KERNEL = gemm_epoch
    return _KERNEL


class GemmFloor:
    """Preallocated weights and buffers of one workload, and its floor epoch."""

    def __init__(self, workload, dtype):
        w = WORKLOADS[workload]
        X, _ = make_data(workload, dtype)
        rng = np.random.default_rng(1)
        widths = (w["d"],) + w["hidden"] + (w["k"],)
        self.widths = np.array(widths, dtype=np.int64)
        self.batch = batch_size(workload)
        b = self.batch
        L = len(widths) - 1
        self.Ws = tuple((rng.uniform(-1, 1, (widths[l], widths[l + 1]))
                         * np.sqrt(3.0 / widths[l])).astype(dtype) for l in range(L))
        self.Gs = tuple(np.zeros_like(W) for W in self.Ws)
        self.As = tuple(np.zeros(b * widths[l + 1], dtype=dtype) for l in range(L))
        # deltas: small finite values (never denormal or NaN garbage from np.empty)
        self.Ds = tuple((0.01 * rng.standard_normal(b * widths[l + 1])).astype(dtype)
                        for l in range(L))
        self.Xf = X.reshape(-1)
        self.kernel = gemm_epoch_kernel()
        # compile and touch every buffer once, on a couple of batches
        rows = min(X.shape[0], 2 * b)
        self.kernel(self.Xf[:rows * w["d"]], self.widths, self.Ws, self.As, self.Ds, self.Gs, b)

    def epoch(self):
        self.kernel(self.Xf, self.widths, self.Ws, self.As, self.Ds, self.Gs, self.batch)


class Floor:
    """GEMM floor of one epoch of the small workloads."""

    params = [SMALL_WORKLOADS, DTYPES]
    param_names = ["workload", "dtype"]
    timeout = 600
    repeat = (3, 20, 15.0)

    def setup(self, workload, dtype):
        self.floor = cached(("floor", workload, dtype), lambda: GemmFloor(workload, dtype))

    def time_gemm_floor(self, workload, dtype):
        self.floor.epoch()


class FloorLarge(LargeSettings, Floor):
    """GEMM floor of one epoch of mnist-shape and wide."""

    params = [LARGE_WORKLOADS, DTYPES]
    timeout = 1200
