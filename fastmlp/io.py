"""Saving and loading fitted models: one ``.npz`` file, no pickles.

    >>> model.save("model.npz")           # writes exactly "model.npz"
    >>> model = MLP.load("model.npz")     # or fastmlp.load("model.npz")

This module only serialises, and knows no model class: the model gives its
state (``MLP._state()``: plain values and named arrays) and restores itself
from it (``MLP._from_state``), which checks that the parts fit together.

Loading never executes code from the file: it is read with
``numpy.load(path, allow_pickle=False)`` and the header is JSON. A round trip
is bit-exact: the weights, the optimiser state (Adam moments or SGD velocity,
step count) and the random generator's state come back as they were, so
``predict`` returns the same values and ``partial_fit`` continues exactly as
the saved model would have.

Paths
-----
``save(model, path)`` writes the file ``path`` itself: no suffix is added or
required (unlike ``numpy.savez``, which appends ``.npz`` to a name without it).
``load`` reads exactly the path it is given. ``.npz`` is the conventional
suffix. ``path`` is a ``str`` or ``os.PathLike``; ``save`` returns it as a
``str``.

Saving is atomic: the archive is written to a temporary file in the target's
directory (``.<name>.<random>.tmp``), flushed and fsync'ed, and then renamed
over ``path`` with ``os.replace``. A failure at any point (an exception, a full
disk, Ctrl-C) leaves ``path`` as it was (the previous file or no file) and
removes the temporary file; only a hard crash of the process (a kill, a power
cut) can leave the hidden temporary file behind, never a partial file under
``path``. An existing file keeps its permission bits; a new one gets
``0o666 & ~umask``. A symlink at ``path`` is replaced, not followed.

File format, version 2
----------------------
An uncompressed ZIP archive as written by ``numpy.savez`` (every member is an
``.npy`` array; ``numpy.load(path, allow_pickle=False)`` reads it). The zip's
CRC-32 of every member catches a corrupted or truncated file; the model's own
checks catch parts that do not fit together. Members:

======================= ====================================================
member                  contents
======================= ====================================================
``__fastmlp__``         uint8, 1-D: the header, UTF-8 encoded JSON (below)
``params``              float32 or float64, 1-D: every weight and bias in the
                        kernels' layout ``[W0, b0, W1, b1, ...]`` (W row-major,
                        ``(n_in, n_out)``); ``coefs_``/``intercepts_`` are views
``sizes``               int64, 1-D: layer widths ``(n_features, *hidden, n_out)``
``state1``              like ``params``: SGD's velocity or Adam's first moment
                        (absent for L-BFGS)
``state2``              like ``params``: Adam's second moment (Adam only)
``loss_curve``          float64, 1-D: ``loss_curve_`` (sgd and adam)
``validation_scores``   float64, 1-D: ``validation_scores_`` (when fitted with
                        a validation set)
``classes``             1-D, sorted ``classes_`` (classifiers): integers,
                        floats, bools, unicode or bytes strings, datetimes.
                        Labels that were an object array of ``str`` are
                        stored as unicode and turned back into an object array
======================= ====================================================

The header is a JSON object with the keys ``format`` (``"fastmlp-mlp"``),
``version`` (``2``), ``fastmlp_version`` and ``numpy_version`` (the writer's,
for information), ``arrays`` (the member names, sorted), ``classes_object``
(``classes_`` was an object array of ``str``), ``extra`` (the JSON values of
``save``'s ``extra``; its arrays are the members ``extra.<name>``) and ``values``: the model's
state values (``MLP._state()``) as JSON. JSON numbers, strings, booleans and
null stand for themselves; tagged objects stand for other values:
``{"__tuple__": [...]}`` a tuple, ``{"__float__": "nan"}`` a non-finite
float, ``{"__dtype__": "float32"}`` a NumPy dtype or scalar type,
``{"__ndarray__": [...], "dtype": "<u4"}`` a small array,
``{"__generator__": {...}}`` a ``numpy.random.Generator`` by its
``bit_generator.state``, and ``{"__generator__": "model"}`` the model's own
generator (``random_state`` was the Generator the model draws from).

The command line keeps its preprocessing in ``extra`` under ``preprocessing``,
a JSON value with a version of its own (documented in ``fastmlp/tables.py``):
an older fastmlp loads the model from such a file, and only its command line
refuses a preprocessing version it does not know.

Version policy: ``version`` changes whenever a change to the members or the
header would make an older reader misread a file or a newer reader misread an
older file. A reader refuses versions it does not know (a newer file asks for a
newer fastmlp), unknown members, and anything that does not pass its checks;
readers keep reading every earlier version (version 1 files, written by
fastmlp 0.1, load as they were saved). Adding a hyper-parameter with a
default needs no new version: a file without it gets the default.

Errors
------
``save``: ``NotFittedError`` for an unfitted model; ``TypeError`` for labels or
hyper-parameters that cannot be stored without pickle (e.g. an object array of
mixed Python objects as ``classes_``); ``OSError`` from the file system.
``load``: ``FileNotFoundError`` for a missing file; ``ModelFileError`` (a
``ValueError``) naming the problem for anything that is not an intact fastmlp
model file of a known version: a non-zip file, a truncated or corrupted file,
a foreign ``.npz``, a file with a pickled object array, a newer version, or
weights or optimiser state (``params``, ``state1``, ``state2``) holding NaN or
inf (the error names the member).
"""

import json
import numbers
import os
import stat
import sys
import tempfile

import numpy as np

from .errors import NotFittedError

__all__ = ["save", "load", "ModelFileError", "FORMAT", "VERSION"]

#: The ``format`` entry of the header.
FORMAT = "fastmlp-mlp"
#: The version this module writes; it reads every version in ``READABLE``.
VERSION = 2
READABLE = (1, 2)

_HEADER = "__fastmlp__"
_ZIP_MAGIC = b"PK\x03\x04"
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")
_LABEL_KINDS = "biufUSmM"
#: Prefix of the members that hold arrays of ``extra``.
_EXTRA = "extra."
#: Members a version 2 file may hold (besides extras).
_MEMBERS = ("params", "sizes", "state1", "state2", "loss_curve", "validation_scores",
            "classes")
#: Members that must hold only finite numbers: the weights and the optimiser state.
_FINITE = {"params": "the weights and biases", "state1": "the optimiser's first state",
           "state2": "the optimiser's second state"}


class ModelFileError(ValueError):
    """A file is not an intact fastmlp model file of a version this fastmlp reads."""


# ---------------------------------------------------------------------- save
def save(model, path, *, extra=None):
    """Write the fitted ``model`` to the file ``path`` (exactly that name), atomically.

    ``extra``: a dict of more things to keep in the file, name -> a JSON-ready
    value (numbers, strings, booleans, None, lists, tuples, dicts with string
    keys) or a numeric or string array; ``load(path, extra=True)`` gives it
    back. See the module docstring for the format and for what happens on
    failure. Returns ``path`` as a ``str``. Raises ``NotFittedError`` if the
    model was never fitted and ``TypeError`` if its labels, hyper-parameters or
    extras cannot be stored without pickle.
    """
    if not callable(getattr(model, "_state", None)):
        raise TypeError(f"save needs a fastmlp MLP, got {type(model).__name__}")
    if "_net" not in getattr(model, "__dict__", {}):
        raise NotFittedError("this MLP is not fitted yet: call fit or partial_fit before save")
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    _write_atomic(path, _pack(*model._state(), extra or {}))
    return path


def _pack(values, arrays, extra):
    """The archive's members: the header (as uint8) and the arrays."""
    arrays = dict(arrays)
    extra_values = {}
    for name, value in extra.items():
        if not isinstance(name, str) or not name or name.startswith("__"):
            raise TypeError(f"extra names must be non-empty strings, got {name!r}")
        if isinstance(value, np.ndarray):
            if value.dtype.kind not in _LABEL_KINDS:
                raise TypeError(f"cannot save extra {name!r}: arrays of dtype {value.dtype} "
                                "have no pickle-free form")
            arrays[_EXTRA + name] = value
        else:
            extra_values[name] = _encode(value, f"extra {name}")
    classes_object = False
    if "classes" in arrays:
        arrays["classes"], classes_object = _pack_classes(arrays["classes"])
    rng = values.get("rng")
    header = {
        "format": FORMAT,
        "version": VERSION,
        "fastmlp_version": getattr(sys.modules.get("fastmlp"), "__version__", None),
        "numpy_version": np.__version__,
        "arrays": sorted(arrays),
        "classes_object": classes_object,
        "values": {key: _encode(value, key, rng) for key, value in values.items()},
        "extra": extra_values,
    }
    text = json.dumps(header, sort_keys=True, allow_nan=False, separators=(",", ":"))
    members = {_HEADER: np.frombuffer(text.encode("utf-8"), dtype=np.uint8)}
    members.update({name: np.ascontiguousarray(arr) for name, arr in arrays.items()})
    return members


def _pack_classes(classes):
    arr = np.asarray(classes)
    if arr.ndim != 1:
        raise TypeError(f"classes_ must be 1-D to be saved, got shape {arr.shape}")
    kind = arr.dtype.kind
    if kind in _LABEL_KINDS:
        return np.ascontiguousarray(arr), False
    if kind == "O":
        values = arr.tolist()
        others = sorted({type(v).__name__ for v in values if not isinstance(v, str)})
        if others:
            raise TypeError(
                f"cannot save a model whose classes_ hold {', '.join(others)} objects: only "
                "integer, float, bool and string labels can be stored without pickle; "
                "encode the labels as integers or strings and fit again")
        unicode = np.array(values, dtype=str) if values else np.array([], dtype="<U1")
        if unicode.tolist() != values:  # NumPy unicode arrays drop trailing NUL characters
            raise TypeError("cannot save string labels that end in NUL characters ('\\x00')")
        return unicode, True
    raise TypeError(f"cannot save classes_ of dtype {arr.dtype}: only integer, float, bool "
                    "and string labels can be stored without pickle")


def _encode(value, name, rng=None):
    """A JSON-ready form of a state value (tags as documented)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if np.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, name, rng) for v in value]}
    if isinstance(value, list):
        return [_encode(v, name, rng) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) and not k.startswith("__")
                                       for k in value):
        return {k: _encode(v, name if name != "hyper_parameters" else k, rng)
                for k, v in value.items()}
    if isinstance(value, np.random.Generator):
        if value is rng and name != "rng":
            return {"__generator__": "model"}
        return {"__generator__": _encode(value.bit_generator.state, name)}
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return {"__dtype__": np.dtype(value).name, "type": not isinstance(value, np.dtype)}
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return {"__ndarray__": value.tolist(), "dtype": value.dtype.str}
    raise TypeError(f"cannot save hyper-parameter {name}={value!r} "
                    f"(type {type(value).__name__}): it has no pickle-free representation")


def _write_atomic(path, members):
    directory = os.path.dirname(os.path.abspath(path))
    mode = _mode_for(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **members)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def _mode_for(path):
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _umask():
    """The process umask, read without changing it (Linux); 0o022 elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def _fsync_directory(directory):
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------- load
def load(path, cls, *, extra=False):
    """Read a model of class ``cls`` written by ``save`` from the file ``path``
    (exactly that name); ``MLP.load`` and ``fastmlp.load`` call this with MLP.

    With ``extra=True`` returns (model, the ``extra`` dict it was saved with,
    empty for files without). Raises ``FileNotFoundError`` for a missing file and
    ``ModelFileError`` (a ``ValueError``) naming the problem for any file that
    is not an intact fastmlp model file of a version this fastmlp reads. Never
    unpickles anything.
    """
    if not (isinstance(cls, type) and callable(getattr(cls, "_from_state", None))):
        raise TypeError(f"cls must be MLP or a subclass of it, got {cls!r}")
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    header, arrays = _read(path)
    extras = {name[len(_EXTRA):]: arrays.pop(name) for name in list(arrays)
              if name.startswith(_EXTRA)}
    encoded = header.get("extra", {})
    if not isinstance(encoded, dict):
        raise _fail(path, "the header has no valid 'extra' entry")
    extras.update({name: _decode(value, path) for name, value in encoded.items()})
    values, arrays = (_from_version_1 if header["version"] == 1 else _from_version_2)(
        header, arrays, path)
    _check_finite(arrays, path)
    try:
        model = cls._from_state(values, arrays)
    except (ValueError, TypeError, KeyError) as exc:
        raise _fail(path, f"invalid model: {exc}") from None
    return (model, extras) if extra else model


def _fail(path, message):
    return ModelFileError(f"{path!r}: {message}")


def _check_finite(arrays, path):
    """Refuse weights or optimiser state that hold NaN or inf: training never
    leaves them so (it stops and puts the weights back), so such a file was
    edited or damaged consistently, and every prediction would be NaN."""
    for name, what in _FINITE.items():
        arr = arrays.get(name)
        if arr is None or arr.dtype.kind != "f":  # absent, or refused by the model's checks
            continue
        finite = np.isfinite(arr)
        if not finite.all():
            at = int(np.argmin(finite.ravel()))
            raise _fail(path, f"member {name!r} ({what}) holds {arr.size - int(finite.sum())} "
                              f"non-finite value(s), the first {arr.ravel()[at]} at index {at}; "
                              "the model cannot predict. Retrain it, or restore the file from "
                              "a copy")


def _read(path):
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        hint = f" (there is {path + '.npz'!r})" if os.path.isfile(path + ".npz") else ""
        raise FileNotFoundError(2, f"no such model file{hint}", path) from None
    with f:
        magic = f.read(4)
        if magic != _ZIP_MAGIC:
            what = "the file is empty" if not magic else "it is not a zip (.npz) archive"
            raise _fail(path, f"not a fastmlp model file: {what}")
        f.seek(0)
        try:
            npz = np.load(f, allow_pickle=False)
        except Exception as exc:  # BadZipFile, EOFError, OSError, ...
            raise _fail(path, f"not a readable fastmlp model file: the archive is truncated or "
                              f"corrupted ({type(exc).__name__}: {exc})") from exc
        with npz:
            names = set(npz.files)
            if _HEADER not in names:
                listed = ", ".join(sorted(names)[:8]) or "nothing"
                raise _fail(path, f"a zip (.npz) archive but not a fastmlp model file: it has "
                                  f"no {_HEADER!r} header (it holds {listed})")
            header = _read_header(npz, path)
            listed = set(header["arrays"])
            unknown, missing = names - listed - {_HEADER}, listed - names
            if unknown or missing:
                parts = ([f"unexpected members {sorted(unknown)}"] if unknown else []) + (
                    [f"missing members {sorted(missing)}"] if missing else [])
                raise _fail(path, "the archive does not match its header: " + "; ".join(parts))
            return header, {name: _read_member(npz, name, path) for name in sorted(listed)}


def _read_header(npz, path):
    raw = _read_member(npz, _HEADER, path)
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise _fail(path, f"the header is not a 1-D uint8 array (dtype {raw.dtype}, "
                          f"shape {raw.shape})")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _fail(path, f"the header is not valid JSON ({exc}); the file is corrupted") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = header.get("format") if isinstance(header, dict) else None
        raise _fail(path, f"not a fastmlp model file: its header names format {found!r}, "
                          f"not {FORMAT!r}")
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise _fail(path, f"the header has no valid format version (got {version!r})")
    if version not in READABLE:
        newer = version > max(READABLE)
        raise _fail(path, f"fastmlp model file format version {version} is not supported: this "
                          f"fastmlp reads versions {', '.join(map(str, READABLE))}"
                          + ("; upgrade fastmlp to load it" if newer else ""))
    arrays = header.get("arrays")
    if version == 1:  # a dict of descriptions, keyed by member name
        arrays = list(arrays) if isinstance(arrays, dict) else None
    if not (isinstance(arrays, list) and all(isinstance(a, str) for a in arrays)):
        raise _fail(path, "the header has no valid 'arrays' entry")
    header["arrays"] = arrays
    for key in ("values",) if version == 2 else ("params", "state"):
        if not isinstance(header.get(key), dict):
            raise _fail(path, f"the header has no valid {key!r} entry")
    return header


def _read_member(npz, name, path):
    try:
        arr = npz[name]
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "bject arrays" in str(exc):
            raise _fail(path, f"member {name!r} is a pickled object array; fastmlp model files "
                              "never contain pickles, so it was not loaded") from None
        raise _fail(path, f"member {name!r} cannot be read: the file is truncated or corrupted "
                          f"({exc})") from exc
    except Exception as exc:  # BadZipFile (CRC), EOFError, zlib.error, OSError, ...
        raise _fail(path, f"member {name!r} cannot be read: the file is truncated or corrupted "
                          f"({type(exc).__name__}: {exc})") from exc
    if not isinstance(arr, np.ndarray) or arr.dtype.hasobject:
        raise _fail(path, f"member {name!r} is not a plain array")
    return arr


def _from_version_2(header, arrays, path):
    """(values, arrays) of a version 2 file for ``MLP._from_state``."""
    unknown = sorted(set(arrays) - set(_MEMBERS))
    if unknown:
        raise _fail(path, f"version 2 files have no members {unknown}")
    encoded = header["values"]
    rng = _decode(encoded.get("rng"), path)
    if not isinstance(rng, np.random.Generator):
        raise _fail(path, "invalid model: the random generator's state is missing")
    values = {key: _decode(value, path, rng) for key, value in encoded.items() if key != "rng"}
    values["rng"] = rng
    if not isinstance(values.get("hyper_parameters"), dict):
        raise _fail(path, "invalid model: no hyper-parameters")
    arrays["classes"] = _classes(arrays.get("classes"), header.get("classes_object"), path)
    return values, arrays


def _from_version_1(header, arrays, path):
    """(values, arrays) of a version 1 file (fastmlp 0.1) in today's terms."""
    state = header["state"]
    unknown = sorted(set(arrays) - {"params", "sizes", "state1", "state2", "loss_curve",
                                    "classes"})
    if unknown:
        raise _fail(path, f"version 1 files have no members {unknown}")
    rng = _generator(_decode(state.get("rng"), path), path)  # stored as a plain state
    outputs = {0: "softmax", 1: "squared"}
    output = state.get("output")
    if isinstance(output, bool) or output not in outputs:
        raise _fail(path, f"invalid model: output {output!r}")
    hyper = {k: _decode(v, path, rng) for k, v in header["params"].items()}
    curve = arrays.get("loss_curve")
    n_iter = state.get("n_iter")
    if curve is None or curve.ndim != 1 or curve.shape[0] != n_iter:
        raise _fail(path, f"invalid model: loss_curve has shape "
                          f"{None if curve is None else curve.shape} for n_iter {n_iter}")
    solver = state.get("solver")
    if solver not in ("sgd", "adam"):
        raise _fail(path, f"invalid model: solver {solver!r}")
    network = {"activation": state.get("activation") or hyper.get("activation"),
               "output": outputs[output], "solver": solver, "step": state.get("step"),
               "dtype": state.get("dtype")}
    if state.get("state2_is_state1"):
        arrays.pop("state2", None)
    values = {
        "hyper_parameters": hyper,
        "network": network,
        "backend": state.get("backend"),
        "rng": rng,
        "n_iter": n_iter,
        "t": 0,  # not recorded by version 1
        "n_features_in": state.get("n_features_in"),
        "y_1d": state.get("y_1d"),
        "loss": float(curve[-1]) if curve.size else None,
        "best_loss": float(curve.min()) if curve.size else float("inf"),
        "no_improvement_count": 0,
        "best_validation_score": None,
    }
    arrays["classes"] = _classes(arrays.get("classes"), state.get("classes_object"), path)
    return values, arrays


def _classes(classes, stored_as_unicode, path):
    if classes is None:
        return None
    if classes.ndim != 1 or classes.dtype.kind not in _LABEL_KINDS:
        raise _fail(path, f"invalid model: classes of dtype {classes.dtype} and shape "
                          f"{classes.shape}")
    if stored_as_unicode:
        if classes.dtype.kind != "U":
            raise _fail(path, "invalid model: object labels stored as non-unicode")
        classes = classes.astype(object)
    else:
        classes = np.array(classes, dtype=classes.dtype.newbyteorder("="))
    if classes.size >= 2 and not bool(np.all(classes[1:] > classes[:-1])):
        raise _fail(path, "invalid model: classes are not sorted and unique")
    return classes


def _decode(value, path, rng=None):
    if isinstance(value, list):
        return [_decode(v, path, rng) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tuple__" in value:
        return tuple(_decode(v, path, rng) for v in value["__tuple__"])
    if "__float__" in value:
        text = value["__float__"]
        if text not in ("nan", "inf", "-inf"):
            raise _fail(path, f"invalid float tag {text!r} in the header")
        return float(text)
    if "__dtype__" in value:
        try:
            dtype = np.dtype(value["__dtype__"])
        except TypeError:
            raise _fail(path, f"invalid dtype {value['__dtype__']!r} in the header") from None
        return dtype.type if value.get("type") else dtype
    if "__ndarray__" in value:
        try:
            return np.array(value["__ndarray__"], dtype=np.dtype(value["dtype"]))
        except (TypeError, ValueError, KeyError, OverflowError):
            raise _fail(path, "invalid array in the header") from None
    if "__generator__" in value:
        if value["__generator__"] == "model":
            return rng
        return _generator(_decode(value["__generator__"], path), path)
    return {k: _decode(v, path, rng) for k, v in value.items()}


def _generator(state, path):
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if name not in _BIT_GENERATORS:
        raise _fail(path, f"unknown random bit generator {name!r} in the header")
    try:
        bit_generator = getattr(np.random, name)()
        bit_generator.state = state
    except (TypeError, ValueError, KeyError) as exc:
        raise _fail(path, f"invalid state of the {name} random generator ({exc})") from None
    return np.random.Generator(bit_generator)
