"""Which BLAS the numba kernels' products call: by default the OpenBLAS that
numpy's wheels bundle, the library behind numpy's own ``@``.

Plain Python (ctypes, no numba): the numba core binds its products to the
library chosen here (``numba_core.blas``), and the thread settings cap that
library and tell it from the others loaded beside it, SciPy's among them
(``fastmlp.threads``), without loading numba.
"""

import ctypes
import functools
import glob
import os

import numpy as np

#: The environment variable that picks the source of the products, and its values.
VARIABLE = "FASTMLP_KERNEL_BLAS"
SOURCES = ("numpy", "scipy")

_NUMPY_DIR = os.path.dirname(np.__file__)
#: Where the wheels put numpy's OpenBLAS: numpy 2's ``libscipy_openblas64_`` and
#: numpy 1.2x's ``libopenblas64_`` (Linux, Windows: ``numpy.libs``; macOS:
#: ``.dylibs``).
PATTERNS = (os.path.join(_NUMPY_DIR, os.pardir, "numpy.libs", "*openblas64*"),
            os.path.join(_NUMPY_DIR, ".dylibs", "*openblas64*"))
#: Its CBLAS gemm, by dtype letter: numpy 2's build, numpy 1.2x's.
_ENTRY_NAMES = ("scipy_cblas_{}gemm64_", "cblas_{}gemm64_")
LETTERS = ("s", "d")


def numpy_openblas():
    """The real paths of the OpenBLAS builds numpy bundles, in a fixed order;
    empty where it bundles none (conda's numpy, MKL)."""
    return [os.path.realpath(path) for pattern in PATTERNS for path in sorted(glob.glob(pattern))]


def numpy_gemm():
    """(library path, {letter: address}) of the CBLAS gemm of numpy's bundled
    OpenBLAS, or None where numpy bundles none."""
    for path in numpy_openblas():
        try:
            library = ctypes.CDLL(path)  # numpy loaded it: the same library
        except OSError:
            continue
        for name in _ENTRY_NAMES:
            try:
                found = {t: getattr(library, name.format(t)) for t in LETTERS}
            except AttributeError:
                continue
            return path, {t: ctypes.cast(f, ctypes.c_void_p).value for t, f in found.items()}
    return None


def requested():
    """``FASTMLP_KERNEL_BLAS`` as set ('' where unset); a ValueError naming a
    value that is not a source."""
    value = os.environ.get(VARIABLE, "").strip().lower()
    if value and value not in SOURCES:
        raise ValueError(f"{VARIABLE}={value!r} is not a BLAS source of fastmlp's kernels; "
                         f"valid values: {', '.join(SOURCES)}")
    return value


@functools.lru_cache(maxsize=1)
def kernels_blas():
    """(source, library path, {letter: address}) of the numba kernels'
    products, decided once per process: ('numpy', its path, its gemm) unless
    ``FASTMLP_KERNEL_BLAS=scipy`` or numpy bundles no usable OpenBLAS, else
    ('scipy', None, None): SciPy's BLAS through numba's route."""
    value = requested()
    found = numpy_gemm() if value != "scipy" else None
    if found is not None:
        return ("numpy",) + found
    return "scipy", None, None
