"""Input checks: every bad input becomes a ValueError or TypeError that names it.

``check_X`` and ``check_y`` turn whatever the user passed (NumPy arrays of any
dtype and memory layout, lists of lists, pandas DataFrames and Series) into the
arrays the kernels take, or refuse it with a message that says what is wrong
and where (row and column of the first bad value). ``check_params`` validates
the hyper-parameters of an ``MLP`` and states the allowed values or range of
every one it refuses.
"""

import functools
import numbers
from types import SimpleNamespace

import numpy as np

DTYPES = {"float32": np.float32, "float64": np.float64}


def _as_array(data, name):
    """np.asarray without surprises: ragged and exotic inputs are refused clearly."""
    if data is None:
        raise ValueError(f"{name} is None; pass an array-like")
    if is_sparse(data):
        raise TypeError(f"{name} is a sparse matrix; {name} must be dense "
                        f"(pass {name}.toarray())")
    if isinstance(data, np.ma.MaskedArray) and np.ma.is_masked(data):
        raise ValueError(f"{name} is a masked array with masked values; fill them first "
                         f"({name}.filled(...))")
    if hasattr(data, "to_numpy") and callable(data.to_numpy):  # pandas and friends
        data = data.to_numpy()
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name} is ragged or not array-like ({exc})") from None
    return arr


def is_sparse(data):
    """Whether ``data`` is a scipy.sparse matrix or array."""
    return hasattr(data, "tocsr") and hasattr(data, "nnz")


def check_sparse_X(X, dtype, n_features=None, name="X"):
    """A scipy.sparse X as the kernels' CSR triple (data, indices, indptr), data
    in ``dtype``: never densified. Refuses what ``check_X`` refuses."""
    csr = X.tocsr()
    _check_shape(csr.shape, name, n_features)
    kind = csr.dtype.kind
    if kind == "c":
        raise TypeError(f"{name} holds complex numbers; fastmlp needs real-valued features")
    if kind not in "biuf":
        raise TypeError(f"{name} has dtype {csr.dtype}; fastmlp needs numeric features")
    if kind == "f" and not np.isfinite(csr.data).all():
        at = int(np.argmin(np.isfinite(csr.data)))
        row = int(np.searchsorted(csr.indptr, at, side="right")) - 1
        raise ValueError(f"{name} holds a non-finite value ({csr.data[at]}) at row {row}, "
                         f"column {int(csr.indices[at])}; remove or impute NaN and inf first")
    with np.errstate(over="ignore"):
        data = np.ascontiguousarray(csr.data, dtype=dtype)
    if not np.isfinite(data).all():
        at = int(np.argmin(np.isfinite(data)))
        row = int(np.searchsorted(csr.indptr, at, side="right")) - 1
        raise ValueError(f"{name} value {csr.data[at]} at row {row}, column "
                         f"{int(csr.indices[at])} is too large for {data.dtype}; scale the "
                         "inputs or use dtype='float64'")
    return data, np.ascontiguousarray(csr.indices), np.ascontiguousarray(csr.indptr)


def _check_shape(shape, name, n_features):
    """X must be 2-D, non-empty, and as wide as the fitted model (if any)."""
    if len(shape) != 2:
        hint = " (use X.reshape(-1, 1) for a single feature)" if len(shape) == 1 else ""
        raise ValueError(f"{name} must be 2-D (samples x features), got {len(shape)}-D "
                         f"shape {shape}{hint}")
    if shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 samples (shape {shape})")
    if shape[1] == 0:
        raise ValueError(f"{name} has 0 features (shape {shape})")
    if n_features is not None and shape[1] != n_features:
        raise ValueError(f"{name} has {shape[1]} features, but the model was fitted "
                         f"with {n_features}")


def _first_bad(mask):
    """(row, column) of the first True in a 2-D boolean mask."""
    idx = np.argwhere(mask)[0]
    return int(idx[0]), int(idx[1]) if idx.size > 1 else 0


def _where(shape, flat_index):
    """'row r, column c' (or 'row r' for 1-D) of a flat index into ``shape``."""
    pos = np.unravel_index(flat_index, shape)
    if len(pos) == 1:
        return f"row {int(pos[0])}"
    return f"row {int(pos[0])}, column {int(pos[1])}" + (
        "".join(f", index {int(p)}" for p in pos[2:]))


def _is_missing(v):
    """None, pandas.NA/NaT or a float NaN."""
    if v is None:
        return True
    if isinstance(v, numbers.Real) and not isinstance(v, numbers.Integral):
        try:
            return bool(v != v)
        except TypeError:
            return False
    return type(v).__name__ in ("NAType", "NaTType")


def _object_to_float(arr, name):
    """An object array of numbers as float64; strings, bytes, None/NA and
    anything float() refuses are named with their place."""
    flat = arr.reshape(-1)
    for i, v in enumerate(flat):
        if isinstance(v, (str, bytes, np.str_, np.bytes_)):
            raise TypeError(f"{name} holds a string ({v!r}) at {_where(arr.shape, i)}; "
                            "fastmlp needs numeric features: encode them as numbers first")
        if _is_missing(v):
            raise ValueError(f"{name} holds a missing value ({v!r}) at {_where(arr.shape, i)}; "
                             "remove or impute missing values first")
    try:
        return arr.astype(np.float64)
    except (ValueError, TypeError, OverflowError):
        pass
    for i, v in enumerate(flat):
        try:
            float(v)
        except (ValueError, TypeError, OverflowError):
            raise TypeError(f"{name} holds a non-numeric value {v!r} (type {type(v).__name__}) "
                            f"at {_where(arr.shape, i)}; convert or encode it as a number "
                            "first") from None
    raise TypeError(f"{name} holds non-numeric values (dtype object); "
                    "convert or encode them as numbers first")


def _numeric_columns(frame):
    """True when every column of a pandas DataFrame (or a Series) has a numeric
    or bool dtype, nullable extension dtypes included (strings are not)."""
    dtypes = getattr(frame, "dtypes", None)
    dtypes = dtypes.tolist() if hasattr(dtypes, "tolist") else [dtypes]
    return all(getattr(dt, "kind", "O") in "biuf" for dt in dtypes)


def check_X(X, dtype, n_features=None, name="X"):
    """A C-contiguous 2-D array of ``dtype`` with only finite values.

    ints, bools, float16 and float64 are converted, and so are object arrays
    (and pandas frames with nullable or mixed column types) that hold only
    numbers; strings, complex numbers, missing values, NaN and inf are refused
    with the place of the first bad value.
    """
    if (type(X) is np.ndarray and X.dtype.kind == "f" and X.ndim == 2 and X.shape[0]
            and X.shape[1] and (n_features is None or X.shape[1] == n_features)):
        # a plain float array, the usual case: convert, and if every value is finite
        # there is nothing more to check (otherwise the full path below names the problem)
        if X.dtype == dtype and X.flags.c_contiguous:
            out = X
        else:
            with np.errstate(over="ignore"):
                out = np.ascontiguousarray(X, dtype=dtype)
        flat = out.reshape(-1)
        with np.errstate(over="ignore", invalid="ignore"):
            # a NaN or inf makes the sum of squares (float32: OpenBLAS's sdot, one
            # thread) or the sum (float64: OpenBLAS's ddot runs on its threads,
            # which then spin for a while and took a core from the row-block
            # kernels' threads: a float64 seed-pulsar epoch at 0.2x its one-thread
            # speed) NaN or inf; a finite one proves every value finite (an
            # overflow goes the full way below)
            total = np.dot(flat, flat) if flat.dtype == np.float32 else np.add.reduce(flat)
            if np.isfinite(total):
                return out
    if hasattr(X, "to_numpy") and callable(X.to_numpy) and _numeric_columns(X):
        # pandas with nullable (Int64, Float64, boolean) or mixed numeric columns:
        # one float64 array with missing values as NaN, so that they are found below
        try:
            X = X.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            pass
    arr = _as_array(X, name)
    kind = arr.dtype.kind
    if kind == "c":
        raise TypeError(f"{name} holds complex numbers; fastmlp needs real-valued features")
    if kind in "OSUVMm":
        if kind != "O":
            raise TypeError(f"{name} has dtype {arr.dtype}; fastmlp needs numeric features")
        arr = _object_to_float(arr, name)
        kind = "f"
    _check_shape(arr.shape, name, n_features)
    if kind == "f" and not np.isfinite(arr).all():
        r, c = _first_bad(~np.isfinite(arr))
        raise ValueError(f"{name} holds a non-finite value ({arr[r, c]}) at row {r}, column {c}; "
                         "remove or impute NaN and inf first")
    with np.errstate(over="ignore"):  # overflow is reported below, as an error
        out = np.ascontiguousarray(arr, dtype=dtype)
    if kind == "f" and arr.dtype.itemsize > out.dtype.itemsize and not np.isfinite(out).all():
        r, c = _first_bad(~np.isfinite(out))
        raise ValueError(f"{name} value {arr[r, c]} at row {r}, column {c} is too large for "
                         f"{out.dtype}; scale the inputs or use dtype='float64'")
    return out


def is_classification(y):
    """The rule: integer, bool, string or object labels mean classification;
    floating-point targets mean regression."""
    return _as_array(y, "y").dtype.kind in "biuOSU"


def _check_labels(arr):
    """Labels that np.unique and np.searchsorted can work with."""
    kind = arr.dtype.kind
    if kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"y holds a non-finite label at row {int(np.argmin(np.isfinite(arr)))}")
    if kind == "c":
        raise TypeError("y holds complex numbers; labels must be integers, bools or strings")
    if kind != "O":
        return arr
    for i, v in enumerate(arr):
        if _is_missing(v):
            raise ValueError(f"y holds a missing label ({v!r}) at row {i}; "
                             "remove those rows or give them a label")
    try:
        np.unique(arr)
    except TypeError:
        kinds = sorted({type(v).__name__ for v in arr})
        raise TypeError(f"y mixes labels that cannot be ordered ({', '.join(kinds)}); "
                        "use labels of one type") from None
    return arr


def check_y(y, n_samples, classification):
    """1-D labels (classification) or a 2-D float64 target array (regression)."""
    arr = _as_array(y, "y")
    if arr.ndim == 2 and arr.shape[1] == 1 and classification:
        arr = arr[:, 0]
    if arr.ndim not in (1, 2) or (classification and arr.ndim != 1):
        raise ValueError(f"y must be 1-D{'' if classification else ' or 2-D'}, "
                         f"got shape {arr.shape}")
    if arr.shape[0] != n_samples:
        raise ValueError(f"X has {n_samples} samples but y has {arr.shape[0]}")
    if classification:
        return _check_labels(arr)
    if arr.dtype.kind == "O":
        try:
            arr = arr.astype(np.float64)
        except (ValueError, TypeError):
            raise TypeError("regression targets must be numeric, got dtype object "
                            "holding non-numbers") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"regression targets must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        r, c = _first_bad(~np.isfinite(arr.reshape(arr.shape[0], -1)))
        raise ValueError(f"y holds a non-finite target at row {r}" +
                         (f", column {c}" if arr.ndim == 2 else "") + "; remove or impute it first")
    return arr.reshape(n_samples, -1)


def check_sample_weight(sample_weight, n_samples):
    """Per-row weights as float64 (an empty array for None: every row weighs 1).
    They must be finite and >= 0, one per row, and not all 0."""
    if sample_weight is None:
        return np.empty(0, dtype=np.float64)
    arr = _as_array(sample_weight, "sample_weight")
    if arr.ndim == 0:
        arr = np.full(n_samples, arr)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"sample_weight must be numeric, got dtype {arr.dtype}")
    if arr.shape != (n_samples,):
        raise ValueError(f"sample_weight must have shape ({n_samples},), one weight per "
                         f"row, got {arr.shape}")
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"sample_weight must be finite and >= 0; row {i} has {arr[i]}")
    if not arr.any():
        raise ValueError("sample_weight is 0 for every row: there is nothing to learn from")
    return arr


def _positive_int(value, name, allow_zero=False):
    ok = isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
    if not ok or value < (0 if allow_zero else 1):
        raise ValueError(f"{name} must be an integer >= {0 if allow_zero else 1}, got {value!r}")
    return int(value)


def _number(value, name, low, high=np.inf, low_open=False):
    ok = (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
          and np.isfinite(value))
    if ok:
        ok = (value > low if low_open else value >= low) and value <= high
    if not ok:
        opening = "(" if low_open else "["
        closing = ")" if high == np.inf else "]"
        raise ValueError(f"{name} must be a finite number in {opening}{low:g}, {high:g}{closing}, "
                         f"got {value!r}")
    return float(value)


def _fraction(value, name):
    """A float in [0, 1)."""
    ok = (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
          and 0 <= value < 1)
    if not ok:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def _flag(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _choice(value, name, allowed):
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def _dtype_name(value):
    """'float32' or 'float64' for any spelling NumPy understands; else None."""
    if isinstance(value, str) and value in DTYPES:
        return value
    try:
        name = np.dtype(value).name if value is not None else None
    except (TypeError, ValueError):
        return None
    return name if name in DTYPES else None


#: The hyper-parameters of an MLP that ``check_params`` reads.
PARAMS = ("hidden", "activation", "solver", "dtype", "backend", "task", "n_threads",
          "random_state", "nesterov", "shuffle", "verbose", "lr", "momentum", "l2", "tol",
          "batch_size", "epochs", "patience", "validation")


def check_params(model):
    """Validate the hyper-parameters of an MLP; returns them normalised as a dict.

    ``partial_fit`` checks them on every call: the result for values already
    checked (the same values of the same types) is remembered, unless one of
    them cannot be hashed (a list of widths), which is checked every time."""
    values = tuple(getattr(model, name) for name in PARAMS)
    key = tuple((type(v), v) for v in values)
    try:
        hash(key)
    except TypeError:
        return _check_params(SimpleNamespace(**dict(zip(PARAMS, values))))
    return dict(_checked_params(key))


@functools.lru_cache(maxsize=64)
def _checked_params(key):
    return _check_params(SimpleNamespace(**{name: v for name, (_, v) in zip(PARAMS, key)}))


def _check_params(model):
    from .kernels import ACTIVATIONS, BACKENDS
    from .network import SOLVERS

    hidden = model.hidden
    if isinstance(hidden, numbers.Integral) and not isinstance(hidden, (bool, np.bool_)):
        hidden = (hidden,)
    if isinstance(hidden, (str, bytes)):
        raise ValueError(f"hidden must be a tuple of layer widths, got {model.hidden!r}")
    try:
        hidden = tuple(hidden)
    except TypeError:
        raise ValueError(f"hidden must be a tuple of layer widths, got {model.hidden!r}") from None
    hidden = tuple(_positive_int(h, "every hidden layer width") for h in hidden)
    _choice(model.activation, "activation", tuple(ACTIVATIONS))
    _choice(model.solver, "solver", tuple(SOLVERS))
    dtype = _dtype_name(model.dtype)
    if dtype is None:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {model.dtype!r}")
    if model.backend is not None:
        if not isinstance(model.backend, str) or model.backend not in BACKENDS:
            raise ValueError(f"backend must be None or one of {', '.join(BACKENDS)}; "
                             f"got {model.backend!r}")
    _choice(model.task, "task", ("auto", "classification", "regression"))
    if model.n_threads is not None:
        _positive_int(model.n_threads, "n_threads")
    seed = model.random_state
    if seed is not None and not isinstance(seed, np.random.Generator):
        if not isinstance(seed, numbers.Integral) or isinstance(seed, (bool, np.bool_)) or seed < 0:
            raise ValueError("random_state must be None, an integer >= 0 or a numpy Generator; "
                             f"got {seed!r}")
    _flag(model.nesterov, "nesterov")
    _flag(model.shuffle, "shuffle")
    _flag(model.verbose, "verbose")
    return dict(
        hidden=hidden,
        lr=_number(model.lr, "lr", 0.0, low_open=True),
        momentum=_number(model.momentum, "momentum", 0.0, 1.0),
        l2=_number(model.l2, "l2", 0.0),
        tol=_number(model.tol, "tol", 0.0),
        batch_size=_positive_int(model.batch_size, "batch_size"),
        epochs=_positive_int(model.epochs, "epochs"),
        patience=_positive_int(model.patience, "patience"),
        validation=_fraction(model.validation, "validation"),
        dtype=DTYPES[dtype],
    )
