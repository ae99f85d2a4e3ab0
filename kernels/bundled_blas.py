"""Where numpy's wheels keep the OpenBLAS they bundle, the library behind
numpy's own ``@``.

The numba core binds its products to it (``numba_core.blas``) and the thread
settings tell it from the others loaded beside it, SciPy's among them
(``fastmlp.threads``). Nothing here loads a library.
"""

import glob
import os

import numpy as np

_NUMPY_DIR = os.path.dirname(np.__file__)
#: Where the wheels put it: numpy 2's ``libscipy_openblas64_`` and numpy 1.2x's
#: ``libopenblas64_`` (Linux, Windows: ``numpy.libs``; macOS: ``.dylibs``).
PATTERNS = (os.path.join(_NUMPY_DIR, os.pardir, "numpy.libs", "*openblas64*"),
            os.path.join(_NUMPY_DIR, ".dylibs", "*openblas64*"))


def numpy_openblas():
    """The real paths of the OpenBLAS builds numpy bundles, in a fixed order;
    empty where it bundles none (conda's numpy, MKL)."""
    return [os.path.realpath(path) for pattern in PATTERNS for path in sorted(glob.glob(pattern))]
