"""Input checks: every bad input becomes a ValueError or TypeError that names it."""

import numbers

import numpy as np

DTYPES = {"float32": np.float32, "float64": np.float64}


def _as_array(data, name):
    """np.asarray without surprises: ragged and exotic inputs are refused clearly."""
    if hasattr(data, "to_numpy") and callable(data.to_numpy):  # pandas and friends
        data = data.to_numpy()
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name} is ragged or not array-like ({exc})") from None
    return arr


def _first_bad(mask):
    """(row, column) of the first True in a 2-D boolean mask."""
    idx = np.argwhere(mask)[0]
    return int(idx[0]), int(idx[1]) if idx.size > 1 else 0


def check_X(X, dtype, n_features=None, name="X"):
    """A C-contiguous 2-D array of ``dtype`` with only finite values.

    ints, bools, float16 and float64 are converted; strings, objects, complex
    numbers, NaN and inf are refused with the place of the first bad value.
    """
    arr = _as_array(X, name)
    kind = arr.dtype.kind
    if kind == "c":
        raise TypeError(f"{name} holds complex numbers; fastmlp needs real-valued features")
    if kind in "OSUVMm":
        if kind == "O":
            try:
                arr = arr.astype(np.float64)
            except (ValueError, TypeError):
                raise TypeError(f"{name} holds non-numeric values (dtype object); "
                                "convert or encode them as numbers first") from None
        else:
            raise TypeError(f"{name} has dtype {arr.dtype}; fastmlp needs numeric features")
    if arr.ndim != 2:
        hint = " (use X.reshape(-1, 1) for a single feature)" if arr.ndim == 1 else ""
        raise ValueError(f"{name} must be 2-D (samples x features), got {arr.ndim}-D "
                         f"shape {arr.shape}{hint}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 samples (shape {arr.shape})")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has 0 features (shape {arr.shape})")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(f"{name} has {arr.shape[1]} features, but the model was fitted "
                         f"with {n_features}")
    if kind == "f" and not np.isfinite(arr).all():
        r, c = _first_bad(~np.isfinite(arr))
        raise ValueError(f"{name} holds a non-finite value ({arr[r, c]}) at row {r}, column {c}; "
                         "remove or impute NaN and inf first")
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
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ValueError(f"y holds a non-finite label at row {int(np.argmin(np.isfinite(arr)))}")
        return arr
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"regression targets must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        r, c = _first_bad(~np.isfinite(arr.reshape(arr.shape[0], -1)))
        raise ValueError(f"y holds a non-finite target at row {r}" +
                         (f", column {c}" if arr.ndim == 2 else "") + "; remove or impute it first")
    return arr.reshape(n_samples, -1)


def _positive_int(value, name, allow_zero=False):
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok or value < (0 if allow_zero else 1):
        raise ValueError(f"{name} must be an integer >= {0 if allow_zero else 1}, got {value!r}")
    return int(value)


def _number(value, name, low, high=np.inf, low_open=False):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and value <= high
    if not ok:
        bracket = "(" if low_open else "["
        raise ValueError(f"{name} must be a finite number in {bracket}{low}, {high}], got {value!r}")
    return float(value)


def check_params(model):
    """Validate the hyper-parameters of an MLP; returns them normalised as a dict."""
    from .kernels import ACTIVATIONS, SOLVERS, BACKENDS

    hidden = model.hidden
    if isinstance(hidden, numbers.Integral) and not isinstance(hidden, bool):
        hidden = (hidden,)
    try:
        hidden = tuple(hidden)
    except TypeError:
        raise ValueError(f"hidden must be a tuple of layer widths, got {model.hidden!r}") from None
    hidden = tuple(_positive_int(h, "every hidden layer width") for h in hidden)
    if model.activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}; "
                         f"got {model.activation!r}")
    if model.solver not in SOLVERS:
        raise ValueError(f"solver must be one of {', '.join(SOLVERS)}; got {model.solver!r}")
    dtype = np.dtype(model.dtype).name if isinstance(model.dtype, type) else model.dtype
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {model.dtype!r}")
    if model.backend is not None and model.backend not in BACKENDS:
        raise ValueError(f"backend must be None or one of {', '.join(BACKENDS)}; "
                         f"got {model.backend!r}")
    if model.task not in ("auto", "classification", "regression"):
        raise ValueError(f"task must be 'auto', 'classification' or 'regression'; "
                         f"got {model.task!r}")
    if model.n_threads is not None:
        _positive_int(model.n_threads, "n_threads")
    seed = model.random_state
    if seed is not None and not isinstance(seed, (numbers.Integral, np.random.Generator)):
        raise ValueError(f"random_state must be None, an int or a numpy Generator; got {seed!r}")
    return dict(
        hidden=hidden,
        lr=_number(model.lr, "lr", 0.0, low_open=True),
        momentum=_number(model.momentum, "momentum", 0.0, 1.0),
        l2=_number(model.l2, "l2", 0.0),
        tol=_number(model.tol, "tol", 0.0),
        batch_size=_positive_int(model.batch_size, "batch_size"),
        epochs=_positive_int(model.epochs, "epochs"),
        patience=_positive_int(model.patience, "patience"),
        dtype=DTYPES[dtype],
    )
