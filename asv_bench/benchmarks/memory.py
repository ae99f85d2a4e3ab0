"""Peak memory (max RSS of the benchmark process) of a short ``fit``.

Workload "mnist-10k": 10000 x 784 synthetic rows -> (256, 128) relu -> 10,
momentum SGD, batch 128, three epochs. The data (31 MiB in float32, 63 MiB in
float64) and the imported libraries are part of the peak: asv reports the
process's maximum RSS, which includes what ``setup`` loaded. ``setup`` runs a
tiny fit first so numba's compilation (or cache load) happens there, the same
for every parameter.
"""

import warnings

from . import BACKENDS, DTYPES, L2, LR, MOMENTUM, fastmlp_backend_or_skip, make_data

ROWS, EPOCHS = 10000, 3


class Fit:
    params = [BACKENDS, DTYPES]
    param_names = ["backend", "dtype"]
    timeout = 600

    def setup(self, backend, dtype):
        fastmlp = fastmlp_backend_or_skip(backend)
        self.X, self.y = make_data("mnist-shape", dtype, n=ROWS)

        def model(epochs):
            return fastmlp.MLP((256, 128), "relu", solver="sgd", lr=LR, momentum=MOMENTUM,
                               batch_size=128, l2=L2, epochs=epochs, tol=0.0, patience=epochs + 1,
                               dtype=dtype, backend=backend, random_state=0)

        self.model = model
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model(1).fit(self.X[:256], self.y[:256])

    def peakmem_fit(self, backend, dtype):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: 3 epochs on purpose
            self.model(EPOCHS).fit(self.X, self.y)


#: A fresh process: warm the kernels, reset the peak-RSS mark, make the data,
#: fit, and print the peak RSS above the warm baseline and the budget it is held to.
PEAK_SCRIPT = """
import resource, sys, warnings
import numpy as np
import fastmlp
from fastmlp.kernels import get, n_params

backend, dtype, n, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sizes, batch = (784, 256, 128, 10), 128


def model(epochs):
    return fastmlp.MLP(sizes[1:-1], "relu", solver="sgd", batch_size=batch, epochs=epochs,
                       tol=0.0, patience=epochs + 1, dtype=dtype, backend=backend, random_state=0)


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def peak():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


rng = np.random.default_rng(0)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    model(1).fit(rng.standard_normal((256, 784)).astype(dtype), np.arange(256) % 10)
try:  # reset the peak-RSS mark, so the warm-up's compiler memory is not counted
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
except OSError:
    pass
base = rss()
X = rng.standard_normal((n, 784), dtype=np.dtype(dtype).type)
y = rng.integers(0, 10, n)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    model(epochs).fit(X, y)
item = np.dtype(dtype).itemsize
n_state = 3  # parameters, gradients, momentum
budget = (X.nbytes + y.nbytes + n_state * n_params(np.array(sizes)) * item
          + get(backend).work_size(np.array(sizes), batch) * item + 64 * 2**20)
print(max(peak(), rss()) - base, budget)
"""


class FitBudget:
    """Peak memory of fitting mnist-shape (60000 x 784 -> (256, 128) -> 10, batch
    128, one epoch) in a fresh process, above its warm baseline (interpreter,
    libraries, compiled kernels), against the budget: data + parameters +
    gradients + optimiser state + one batch's activations and deltas + 64 MiB.

    ``track_peak_over_budget`` is that ratio (at most 1 means within budget);
    ``track_peak_mib`` is the measured peak above the baseline.
    """

    params = [BACKENDS, DTYPES]
    param_names = ["backend", "dtype"]
    timeout = 600

    def setup(self, backend, dtype):
        fastmlp_backend_or_skip(backend)

    def _measure(self, backend, dtype):
        import subprocess
        import sys

        key = (backend, dtype)
        if key not in _PEAKS:
            out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, backend, dtype, "60000", "1"],
                                 capture_output=True, text=True, timeout=600, check=True)
            _PEAKS[key] = tuple(int(v) for v in out.stdout.split()[-2:])
        return _PEAKS[key]

    def track_peak_over_budget(self, backend, dtype):
        used, budget = self._measure(backend, dtype)
        return used / budget

    track_peak_over_budget.unit = "ratio"

    def track_peak_mib(self, backend, dtype):
        return self._measure(backend, dtype)[0] / 2**20

    track_peak_mib.unit = "MiB"


_PEAKS = {}
