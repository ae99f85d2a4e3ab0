"""Start-up costs, each measured in a fresh Python subprocess (seconds).

- ``track_import``: ``import fastmlp`` (numpy included) in a new interpreter;
- ``track_first_fit_warm_cache``: ``import fastmlp`` + the first ``fit`` (one
  epoch) of seed-ionosphere (351x34 -> (20, 20) sigmoid -> 2, SGD, batch 1),
  with numba's on-disk cache already filled (``setup`` runs the same script
  once first);
- ``track_first_fit_cold_cache``: the same with ``NUMBA_CACHE_DIR`` pointing at a
  fresh, empty temporary directory, so every kernel the fit needs is compiled;
- ``track_first_fit_cold_cache_digits``: ``import fastmlp`` + ``MLP(epochs=2).fit``
  on the bundled digits (float32, default network: the row-block kernel and its
  parallel passes) with an empty ``NUMBA_CACHE_DIR``: the compile time of a
  first fit on a parallel kernel (the kernel and the passes it calls by address
  compiled side by side, in helper processes: the default);
- ``track_first_fit_cold_cache_digits_one_process``: the same compiled in the
  fitting process alone (``FASTMLP_COMPILE_PROCESSES=1``).

The clock runs inside the subprocess (``time.perf_counter``), so interpreter
start-up is excluded; the first-fit scripts make their data with numpy before
the clock starts. ``FASTMLP_BACKEND`` selects the backend in the subprocess.
Import and warm-cache times are the median of three subprocesses.
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap

from . import BACKENDS, fastmlp_backend_or_skip

IMPORT_SCRIPT = """
import time
t0 = time.perf_counter()
import fastmlp
print(time.perf_counter() - t0)
"""

FIRST_FIT_SCRIPT = """
import time, warnings
import numpy as np
rng = np.random.default_rng(0)
X = rng.standard_normal((351, 34)).astype(np.float32)
y = (X[:, 0] + 0.5 * rng.standard_normal(351) > 0).astype(np.int64)
t0 = time.perf_counter()
import fastmlp
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    fastmlp.MLP((20, 20), "sigmoid", solver="sgd", lr=0.01, momentum=0.9, batch_size=1,
                epochs=1, random_state=0).fit(X, y)
print(time.perf_counter() - t0)
"""

FIRST_FIT_DIGITS_SCRIPT = """
import time, warnings
import numpy as np
from fastmlp.datasets import load_digits
X, y = load_digits()
X = X.astype(np.float32)
t0 = time.perf_counter()
import fastmlp
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    fastmlp.MLP(epochs=2, random_state=0).fit(X, y)
print(time.perf_counter() - t0)
"""


def run_script(script, backend, **env_extra):
    env = dict(os.environ, FASTMLP_BACKEND=backend, **env_extra)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=env,
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"subprocess failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return float(proc.stdout.strip().splitlines()[-1])


class Startup:
    params = [BACKENDS]
    param_names = ["backend"]
    unit = "seconds"
    timeout = 900

    def setup(self, backend):
        fastmlp_backend_or_skip(backend)
        # fill numba's cache (the default location) for the warm-cache benchmark
        run_script(FIRST_FIT_SCRIPT, backend)

    def track_import(self, backend):
        return statistics.median(run_script(IMPORT_SCRIPT, backend) for _ in range(3))

    def track_first_fit_warm_cache(self, backend):
        return statistics.median(run_script(FIRST_FIT_SCRIPT, backend) for _ in range(3))

    def track_first_fit_cold_cache(self, backend):
        return cold_cache_run(FIRST_FIT_SCRIPT, backend)

    def track_first_fit_cold_cache_digits(self, backend):
        return cold_cache_run(FIRST_FIT_DIGITS_SCRIPT, backend)

    def track_first_fit_cold_cache_digits_one_process(self, backend):
        return cold_cache_run(FIRST_FIT_DIGITS_SCRIPT, backend, FASTMLP_COMPILE_PROCESSES="1")


def cold_cache_run(script, backend, **env_extra):
    """``run_script`` with numba's cache in a fresh, empty directory."""
    cache = tempfile.mkdtemp(prefix="fastmlp-bench-numba-cache-")
    try:
        return run_script(script, backend, NUMBA_CACHE_DIR=cache, **env_extra)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
