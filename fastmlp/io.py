"""Saving and loading fitted models: one ``.npz`` file, no pickles.

    >>> from fastmlp.io import save, load
    >>> save(model, "model.npz")          # writes exactly "model.npz"
    >>> model = load("model.npz")

Loading never executes code from the file: it is read with
``numpy.load(path, allow_pickle=False)``, the header is JSON, and every member
is checked before a model is built from it. A round trip is bit-exact: the
weights, the optimiser state (Adam moments or SGD velocity, step count) and the
random generator's state come back as they were, so ``predict`` returns the
same values and ``partial_fit`` continues exactly as the saved model would
have.

Paths
-----
``save(model, path)`` writes the file ``path`` itself: no suffix is added or
required (unlike ``numpy.savez``, which appends ``.npz`` to a name without it).
``save(model, "m")`` writes ``m`` and ``save(model, "m.npz")`` writes ``m.npz``;
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

File format, version 1
----------------------
An uncompressed ZIP archive as written by ``numpy.savez`` (every member is an
``.npy`` array; ``numpy.load(path, allow_pickle=False)`` reads it):

=================== ========================================================
member              contents
=================== ========================================================
``__fastmlp__``     uint8, 1-D: the header, UTF-8 encoded JSON (below)
``params``          float32 or float64, 1-D: every weight and bias in the
                    kernels' layout ``[W0, b0, W1, b1, ...]`` (W row-major,
                    ``(n_in, n_out)``); ``coefs_``/``intercepts_`` are views
``sizes``           int64, 1-D: layer widths ``(n_features, *hidden, n_out)``
``state1``          like ``params``: Adam's first moment or SGD's velocity
``state2``          like ``params``: Adam's second moment. Absent when the
                    solver keeps one state array (SGD), whose second state is
                    the first one
``loss_curve``      float64, 1-D: ``loss_curve_``
``classes``         1-D, sorted ``classes_`` (present when the model has
                    them): integers, floats, bools, unicode or bytes strings,
                    datetimes. Labels that were an object array of ``str``
                    are stored as unicode and turned back into an object array
=================== ========================================================

The header is a JSON object with the keys

* ``format``: ``"fastmlp-mlp"``; ``version``: ``1`` (an integer);
  ``fastmlp_version``, ``numpy_version``: the writer's, for information only.
* ``params``: the hyper-parameters, ``MLP.get_params()``. JSON numbers,
  strings, booleans and null stand for themselves; numpy scalars are stored as
  the equal Python number. Tagged objects stand for other values:
  ``{"__tuple__": [...]}`` a tuple, ``{"__float__": "nan"}`` a non-finite
  float, ``{"__dtype__": "float32"}`` a NumPy dtype or scalar type,
  ``{"__ndarray__": [...], "dtype": "<u4"}`` a small array,
  ``{"__generator__": "model"}`` the model's own random generator (``random_state``
  was a ``Generator``, which the model draws from), ``{"__generator__": {...}}``
  another generator, by its ``bit_generator.state``.
* ``state``: the learned state that is not an array: ``output`` (0 softmax
  classification, 1 squared-error regression), ``dtype``, ``solver``, ``step``
  (optimiser steps taken), ``n_iter``, ``n_features_in``, ``backend``,
  ``y_1d`` (regression: whether ``predict`` returns 1-D; null when unset),
  ``activation`` (the activation the weights were trained with, by name;
  null when the model does not record it),
  ``classes_object`` (``classes_`` was an object array of ``str``),
  ``state2_is_state1`` (SGD: one state array) and ``rng``, the model's
  ``numpy.random.Generator`` as its ``bit_generator.state`` (with the tags
  above for arrays in it).
* ``arrays``: for every array member, ``{"dtype": "<f4", "shape": [n],
  "sha256": "..."}``; the digest is of the array's bytes in C order. Members
  and entries must match one to one.

Version policy: ``version`` changes whenever a change to the members or the
header would make an older reader misread a file or a newer reader misread an
older file. A reader refuses versions it does not know (a newer file asks for a
newer fastmlp), unknown members, and anything that does not pass its checks;
the readers of later versions keep reading every earlier version. Adding a
hyper-parameter with a default to ``MLP`` needs no new version: a file without
it gets the default; a file with a hyper-parameter this fastmlp does not know is
refused. New learned state in ``MLP`` needs a new entry here (and a new version
when older files cannot supply it); ``tests/test_save_load.py`` compares every
attribute of a fitted model with its loaded copy, so a forgotten one fails.

Errors
------
``save``: ``NotFittedError`` for an unfitted model; ``TypeError`` for labels or
hyper-parameters that cannot be stored without pickle (e.g. an object array of
mixed Python objects as ``classes_``); ``OSError`` from the file system.
``load``: ``FileNotFoundError`` for a missing file; ``ModelFileError`` (a
``ValueError``) naming the problem for anything that is not an intact fastmlp
model file of a known version: a non-zip file, a truncated or corrupted file,
a foreign ``.npz``, a file with a pickled object array, a newer version.
"""

import hashlib
import json
import numbers
import os
import stat
import sys
import tempfile

import numpy as np

from .errors import NotFittedError
from .kernels import ACTIVATIONS, BACKENDS, OUTPUTS, SOLVERS, n_params
from .net import views

__all__ = ["save", "load", "ModelFileError", "FORMAT", "VERSION"]

#: The ``format`` entry of the header.
FORMAT = "fastmlp-mlp"
#: The version this module writes; it reads every version in ``READABLE``.
VERSION = 1
READABLE = (1,)

_HEADER = "__fastmlp__"
_REQUIRED = ("params", "sizes", "state1", "loss_curve")
_OPTIONAL = ("state2", "classes")
_ZIP_MAGIC = b"PK\x03\x04"
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")
_LABEL_KINDS = "biufUSmM"


class ModelFileError(ValueError):
    """A file is not an intact fastmlp model file of a version this fastmlp reads."""


# ---------------------------------------------------------------------- save
def save(model, path):
    """Write the fitted ``model`` to the file ``path`` (exactly that name), atomically.

    See the module docstring for the format and for what happens on failure.
    Returns ``path`` as a ``str``. Raises ``NotFittedError`` if the model was
    never fitted and ``TypeError`` if its labels or hyper-parameters cannot be
    stored without pickle.
    """
    from .model import MLP

    if not isinstance(model, MLP):
        raise TypeError(f"save needs a fastmlp MLP, got {type(model).__name__}")
    if not hasattr(model, "_params"):
        raise NotFittedError("this MLP is not fitted yet: call fit or partial_fit before save")
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    members = _pack(model)
    _write_atomic(path, members)
    return path


def _pack(model):
    """The archive's members: the header (as uint8) and the arrays."""
    params = _flat(model._params, "params")
    dtype = np.dtype(model._dtype)
    if params.dtype != dtype or dtype.name not in ("float32", "float64"):
        raise TypeError(f"model parameters have dtype {params.dtype}, expected {dtype}")
    shared = model._state2 is model._state1
    arrays = {
        "params": params,
        "sizes": np.ascontiguousarray(model._sizes, dtype=np.int64),
        "state1": _flat(model._state1, "state1"),
        "loss_curve": np.asarray(model.loss_curve_, dtype=np.float64).reshape(-1),
    }
    if not shared:
        arrays["state2"] = _flat(model._state2, "state2")
    classes_object = False
    if hasattr(model, "classes_"):
        arrays["classes"], classes_object = _pack_classes(model.classes_)
    for name in ("state1", "state2"):
        if name in arrays and (arrays[name].dtype != dtype or arrays[name].shape != params.shape):
            raise TypeError(f"optimiser state {name} has dtype {arrays[name].dtype} and shape "
                            f"{arrays[name].shape}; expected {dtype} and {params.shape}")
    rng = model._rng
    state = {
        "output": int(model._output),
        "dtype": dtype.name,
        "solver": str(model._solver),
        "step": int(model._step),
        "n_iter": int(model.n_iter_),
        "n_features_in": int(model.n_features_in_),
        "backend": str(model.backend_),
        "y_1d": bool(model._y_1d) if hasattr(model, "_y_1d") else None,
        "activation": _activation_name(model),
        "classes_object": classes_object,
        "state2_is_state1": shared,
        "rng": _encode(rng.bit_generator.state, "the random generator's state"),
    }
    hyper = {}
    for name, value in model.get_params().items():
        if isinstance(value, np.random.Generator):
            hyper[name] = {"__generator__": "model" if value is rng else
                           _encode(value.bit_generator.state, name)}
        else:
            hyper[name] = _encode(value, name)
    header = {
        "format": FORMAT,
        "version": VERSION,
        "fastmlp_version": getattr(sys.modules.get("fastmlp"), "__version__", None),
        "numpy_version": np.__version__,
        "params": hyper,
        "state": state,
        "arrays": {name: _describe(arr) for name, arr in arrays.items()},
    }
    text = json.dumps(header, sort_keys=True, allow_nan=False, separators=(",", ":"))
    members = {_HEADER: np.frombuffer(text.encode("utf-8"), dtype=np.uint8)}
    members.update(arrays)
    return members


def _activation_name(model):
    """The activation the model was fitted with (its ``_act`` code), by name."""
    if not hasattr(model, "_act"):
        return None
    names = {int(code): name for name, code in ACTIVATIONS.items()}
    if int(model._act) not in names:
        raise TypeError(f"model attribute _act={model._act!r} is not an activation code")
    return names[int(model._act)]


def _flat(arr, name):
    arr = np.asarray(arr)
    if arr.ndim != 1:
        raise TypeError(f"model attribute {name} is not a flat vector (shape {arr.shape})")
    return np.ascontiguousarray(arr)


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


def _describe(arr):
    return {"dtype": arr.dtype.str, "shape": list(arr.shape), "sha256": _digest(arr)}


def _digest(arr):
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def _encode(value, name):
    """A JSON-ready form of a hyper-parameter (or RNG state); tags as documented."""
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
        return {"__tuple__": [_encode(v, name) for v in value]}
    if isinstance(value, list):
        return [_encode(v, name) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) and not k.startswith("__")
                                       for k in value):
        return {k: _encode(v, name) for k, v in value.items()}
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
def load(path, *, cls=None):
    """Read a model written by ``save`` from the file ``path`` (exactly that name).

    ``cls`` is the class to build (default ``fastmlp.MLP``; ``MLP.load`` passes
    its own class). Raises ``FileNotFoundError`` for a missing file and
    ``ModelFileError`` (a ``ValueError``) naming the problem for any file that
    is not an intact fastmlp model file of a version this fastmlp reads. Never
    unpickles anything.
    """
    from .model import MLP

    cls = MLP if cls is None else cls
    if not (isinstance(cls, type) and issubclass(cls, MLP)):
        raise TypeError(f"cls must be MLP or a subclass of it, got {cls!r}")
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    header, arrays = _read(path)
    return _build(header, arrays, path, cls)


def _fail(path, message):
    return ModelFileError(f"{path!r}: {message}")


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
            return _read_archive(npz, path)


def _read_archive(npz, path):
    names = set(npz.files)
    if _HEADER not in names:
        listed = ", ".join(sorted(names)[:8]) or "nothing"
        raise _fail(path, f"a zip (.npz) archive but not a fastmlp model file: it has no "
                          f"{_HEADER!r} header (it holds {listed})")
    header = _read_header(npz, path)
    described = header["arrays"]
    unknown = names - set(described) - {_HEADER}
    missing = set(described) - names
    if unknown or missing:
        parts = ([f"unexpected members {sorted(unknown)}"] if unknown else []) + (
            [f"missing members {sorted(missing)}"] if missing else [])
        raise _fail(path, "the archive does not match its header: " + "; ".join(parts))
    arrays = {name: _read_member(npz, name, described[name], path) for name in described}
    return header, arrays


def _read_header(npz, path):
    raw = _read_member(npz, _HEADER, None, path)
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
                          f"fastmlp reads version{'s' if len(READABLE) > 1 else ''} "
                          f"{', '.join(map(str, READABLE))}"
                          + ("; upgrade fastmlp to load it" if newer else ""))
    for key, kind in (("params", dict), ("state", dict), ("arrays", dict)):
        if not isinstance(header.get(key), kind):
            raise _fail(path, f"the header has no valid {key!r} entry")
    names = set(header["arrays"])
    bad = [n for n in names if n not in _REQUIRED + _OPTIONAL]
    if bad or not set(_REQUIRED) <= names:
        raise _fail(path, f"the header lists arrays {sorted(names)}; version {version} has "
                          f"{', '.join(_REQUIRED)} and optionally {', '.join(_OPTIONAL)}")
    for name, desc in header["arrays"].items():
        if not (isinstance(desc, dict) and isinstance(desc.get("dtype"), str)
                and isinstance(desc.get("shape"), list) and isinstance(desc.get("sha256"), str)):
            raise _fail(path, f"the header's description of array {name!r} is invalid")
    return header


def _read_member(npz, name, desc, path):
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
    if desc is not None:
        if (arr.dtype.str != desc["dtype"] or list(arr.shape) != desc["shape"]
                or _digest(arr) != desc["sha256"]):
            raise _fail(path, f"member {name!r} does not match its checksum, dtype or shape in "
                              "the header: the file is corrupted")
    return arr


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


def _one_of(value, allowed):
    return isinstance(value, str) and value in allowed


def _build(header, arrays, path, cls):
    state = header["state"]

    def need(ok, message):
        if not ok:
            raise _fail(path, f"invalid model: {message}")

    def integer(key, low=0):
        value = state.get(key)
        need(isinstance(value, int) and not isinstance(value, bool) and value >= low,
             f"state {key!r} must be an integer >= {low}, got {value!r}")
        return value

    dtype_name = state.get("dtype")
    need(dtype_name in ("float32", "float64"), f"dtype {dtype_name!r}")
    dtype = np.dtype(dtype_name)
    output = state.get("output")
    need(output in OUTPUTS.values() and not isinstance(output, bool), f"output {output!r}")
    need(_one_of(state.get("solver"), SOLVERS), f"solver {state.get('solver')!r}")
    need(_one_of(state.get("backend"), BACKENDS), f"backend {state.get('backend')!r}")
    need(state.get("y_1d") in (None, True, False), f"y_1d {state.get('y_1d')!r}")
    need(isinstance(state.get("classes_object"), bool), "classes_object")
    act = state.get("activation")
    need(act is None or _one_of(act, ACTIVATIONS), f"fitted activation {act!r}")
    shared = state.get("state2_is_state1")
    need(isinstance(shared, bool), "state2_is_state1")
    need(shared == ("state2" not in arrays), "state2 present although shared, or missing")
    step, n_iter, n_features = integer("step"), integer("n_iter"), integer("n_features_in", 1)

    sizes = arrays["sizes"]
    need(sizes.ndim == 1 and sizes.size >= 2 and sizes.dtype.kind in "iu"
         and bool(np.all(sizes >= 1)), f"layer sizes {sizes.tolist()}")
    sizes = np.ascontiguousarray(sizes, dtype=np.int64)
    need(int(sizes[0]) == n_features, f"{n_features} features but the first layer has "
                                      f"{int(sizes[0])} inputs")

    def weights(name):
        arr = arrays[name]
        need(arr.ndim == 1 and arr.dtype.kind == "f" and arr.dtype.itemsize == dtype.itemsize,
             f"{name} has dtype {arr.dtype} and shape {arr.shape}, expected {dtype} 1-D")
        need(arr.size == n_params(sizes), f"{name} has {arr.size} values; layers "
                                          f"{sizes.tolist()} have {n_params(sizes)}")
        return np.array(arr, dtype=dtype, order="C")  # a writable, native-order copy

    params = weights("params")
    state1 = weights("state1")
    state2 = state1 if shared else weights("state2")
    curve = arrays["loss_curve"]
    need(curve.ndim == 1 and curve.dtype == np.float64 and curve.size == n_iter,
         f"loss_curve has shape {curve.shape} for n_iter {n_iter}")

    classes = arrays.get("classes")
    if classes is not None:
        need(classes.ndim == 1 and classes.dtype.kind in _LABEL_KINDS,
             f"classes of dtype {classes.dtype} and shape {classes.shape}")
        if state["classes_object"]:
            need(classes.dtype.kind == "U", "object labels stored as non-unicode")
            classes = classes.astype(object)
        else:
            classes = np.array(classes, dtype=classes.dtype.newbyteorder("="))
        need(classes.size < 2 or bool(np.all(classes[1:] > classes[:-1])),
             "classes are not sorted and unique")
    if output == OUTPUTS["softmax"]:
        need(classes is not None and classes.size == int(sizes[-1]) and classes.size >= 2,
             f"a classifier with {int(sizes[-1])} outputs needs as many classes")

    rng = _generator(_decode(state.get("rng"), path), path)
    hyper = _decode(header["params"], path, rng)
    need(_one_of(hyper.get("activation"), ACTIVATIONS), f"activation {hyper.get('activation')!r}")
    try:
        model = cls(**hyper)
    except TypeError as exc:
        raise _fail(path, f"the file's hyper-parameters do not fit this fastmlp's MLP ({exc}); "
                          "it was written by a different fastmlp version") from None

    if classes is not None:
        model.classes_ = classes
    model._output = output
    model._sizes = sizes
    model._dtype = dtype
    model._rng = rng
    model._params = params
    model._grads = np.zeros_like(params)
    model._state1 = state1
    model._state2 = state2
    model._solver = state["solver"]
    model._step = step
    model._work = None
    model.coefs_, model.intercepts_ = views(params, sizes)
    model.n_features_in_ = n_features
    model.loss_curve_ = [float(v) for v in curve]
    model.n_iter_ = n_iter
    model.backend_ = state["backend"]
    if state["y_1d"] is not None:
        model._y_1d = state["y_1d"]
    if act is not None:
        model._act = ACTIVATIONS[act]
    return model
