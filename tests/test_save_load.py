"""fastmlp.io: bit-exact round trips, optimiser state, atomic saves, hostile files."""

import concurrent.futures
import io
import json
import os
import pathlib
import pickle
import stat
import struct
import subprocess
import sys
import textwrap
import threading
import warnings
import zipfile

import numpy as np
import pytest

from fastmlp import MLP, ConvergenceWarning, NotFittedError, load, save
from fastmlp.io import ModelFileError

BACKENDS = ["numba", "numpy"]
DTYPES = ["float32", "float64"]

_rng = np.random.default_rng(1234)
X = _rng.standard_normal((60, 4))
X_NEW = _rng.standard_normal((25, 4))
TARGETS = {
    "int": np.arange(60) % 3,
    "str_object": np.array(["cat", "dog", "emu"], dtype=object)[np.arange(60) % 3],
    "str_unicode": np.array(["cat", "dog", "emu"])[np.arange(60) % 3],
    "reg_1d": X @ np.array([0.5, -1.0, 0.25, 2.0]),
    "reg_2d": np.c_[X[:, 0] - X[:, 1], X[:, 2] * X[:, 3], X.sum(axis=1)],
}


def fitted(target="int", backend="numba", dtype="float32", solver="adam", epochs=3, y=None,
           **kw):
    y = TARGETS[target] if y is None else y
    kw.setdefault("random_state", 0)
    kw.setdefault("batch_size", 16)
    model = MLP((6, 5), epochs=epochs, backend=backend, dtype=dtype, solver=solver, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


def assert_same_model(a, b):
    """Every attribute of ``a`` exists in ``b`` with the same value, dtype and layout.

    This also guards the format: an attribute that ``fit`` starts setting and
    the model's state does not carry fails here. Not carried, by design: the
    learning-rate object (rebuilt from ``lr`` by the next call) and the best
    epoch's weights kept during a validated ``fit`` (used only inside it).
    """
    assert set(vars(a)) == set(vars(b)), set(vars(a)) ^ set(vars(b))
    for name, va in vars(a).items():
        vb = getattr(b, name)
        if name == "_net":
            meta_a, arrays_a = va.state()
            meta_b, arrays_b = vb.state()
            assert meta_a == meta_b
            assert set(arrays_a) == set(arrays_b)
            for key, arr in arrays_a.items():
                assert arr.dtype == arrays_b[key].dtype and arr.tobytes() == arrays_b[key].tobytes()
            assert (vb.state2 is vb.state1) == (va.state2 is va.state1)
            assert vb.grads.shape == va.grads.shape and vb.grads.dtype == va.grads.dtype
        elif name == "_lr":
            assert vb is None and (va is None or va.value == a.lr)
        elif name == "_best_params":
            assert vb is None
        elif name == "_rng":
            assert same_state(vb.bit_generator.state, va.bit_generator.state)
            assert type(vb.bit_generator) is type(va.bit_generator)
        elif name == "random_state" and isinstance(va, np.random.Generator):
            assert vb is b._rng  # still the generator the model draws from
        elif isinstance(va, np.ndarray):
            assert vb.dtype == va.dtype and vb.shape == va.shape, name
            if va.dtype.kind in "fc":
                assert va.tobytes() == vb.tobytes(), name
            else:
                assert va.tolist() == vb.tolist(), name
        elif isinstance(va, list):
            assert [type(v) for v in va] == [type(v) for v in vb] and va == vb, name
        else:
            assert type(va) is type(vb) and va == vb, (name, va, vb)
    for wa, wb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_, strict=True):
        assert wa.dtype == wb.dtype and wa.shape == wb.shape
        assert wa.tobytes() == wb.tobytes()
        assert np.shares_memory(wb, b._net.params)  # views, as after fit
    if not isinstance(a.random_state, np.random.Generator):  # its repr shows an address
        assert repr(a) == repr(b)


def same_state(a, b):
    """Deep equality of bit-generator states (dicts holding ints and arrays)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(
            same_state(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return type(a) is type(b) and a == b


def assert_same_predictions(a, b, X_):
    pa, pb = a.predict(X_), b.predict(X_)
    assert pa.dtype == pb.dtype and pa.shape == pb.shape
    assert pa.tolist() == pb.tolist() if pa.dtype.kind not in "f" else pa.tobytes() == pb.tobytes()
    if hasattr(a, "classes_"):
        assert a.predict_proba(X_).tobytes() == b.predict_proba(X_).tobytes()


# ------------------------------------------------------------------ round trips
@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_round_trip_is_bit_exact_and_training_continues_identically(
        tmp_path, backend, dtype, target, solver):
    original = fitted(target, backend, dtype, solver, nesterov=solver == "sgd")
    path = save(original, tmp_path / "model.npz")
    assert path == str(tmp_path / "model.npz")
    copy = load(path)
    assert type(copy) is MLP
    assert_same_model(original, copy)
    assert_same_predictions(original, copy, X_NEW)
    assert copy.score(X, TARGETS[target]) == original.score(X, TARGETS[target])
    # partial_fit continues exactly as the original does: weights, optimiser state, RNG
    y = TARGETS[target]
    for _ in range(2):
        original.partial_fit(X, y)
        copy.partial_fit(X, y)
    assert original._net.step == copy._net.step > 0
    for name in ("params", "state1", "state2"):
        assert (getattr(original._net, name).tobytes()
                == getattr(copy._net, name).tobytes()), name
    assert original.loss_curve_ == copy.loss_curve_
    assert same_state(original._rng.bit_generator.state, copy._rng.bit_generator.state)
    assert_same_predictions(original, copy, X_NEW)


@pytest.mark.parametrize("backend", BACKENDS)
def test_saving_a_loaded_model_writes_the_same_content(tmp_path, backend):
    original = fitted("str_object", backend)
    first = save(original, tmp_path / "a.npz")
    second = save(load(first), tmp_path / "b.npz")
    with np.load(first, allow_pickle=False) as za, np.load(second, allow_pickle=False) as zb:
        assert sorted(za.files) == sorted(zb.files)
        for key in za.files:
            assert za[key].dtype == zb[key].dtype and za[key].tobytes() == zb[key].tobytes(), key


@pytest.mark.parametrize("make_generator", [
    lambda: np.random.default_rng(5),
    lambda: np.random.Generator(np.random.MT19937(3)),
    lambda: np.random.Generator(np.random.Philox(4)),
    lambda: np.random.Generator(np.random.SFC64(6)),
], ids=["PCG64", "MT19937", "Philox", "SFC64"])
def test_generator_random_state_round_trips(tmp_path, make_generator):
    original = fitted("int", random_state=make_generator())
    assert original.random_state is original._rng
    copy = load(save(original, tmp_path / "m.npz"))
    assert copy.random_state is copy._rng
    assert_same_model(original, copy)
    # a later fit draws its initial weights from the shared generator: same as the original
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        original.fit(X, TARGETS["int"])
        copy.fit(X, TARGETS["int"])
    assert original._net.params.tobytes() == copy._net.params.tobytes()


def test_hyper_parameters_round_trip_with_their_types(tmp_path):
    model = fitted("reg_1d", dtype=np.float64, activation="tanh", lr=np.float32(0.01),
                   n_threads=1, shuffle=False, l2=0.0, tol=np.float64(1e-3), patience=3,
                   batch_size=np.int64(16), verbose=False, task="regression")
    copy = load(save(model, tmp_path / "m.npz"))
    params = copy.get_params()
    assert params["hidden"] == (6, 5) and type(params["hidden"]) is tuple
    assert params["dtype"] is np.float64
    assert params["lr"] == float(np.float32(0.01))
    assert params["batch_size"] == 16 and params["n_threads"] == 1 and params["shuffle"] is False
    assert params["task"] == "regression" and params["activation"] == "tanh"
    model.set_params(dtype=np.dtype("float64"), hidden=[6, 5])
    copy = load(save(model, tmp_path / "m.npz"))
    assert copy.dtype == np.dtype("float64") and isinstance(copy.dtype, np.dtype)
    assert copy.hidden == [6, 5]


def test_hyper_parameter_without_a_pickle_free_form_is_refused(tmp_path):
    model = fitted("int").set_params(verbose=object())
    with pytest.raises(TypeError, match="cannot save hyper-parameter verbose"):
        save(model, tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("labels,task", [
    (np.array([True, False])[np.arange(60) % 2], "auto"),
    (np.array([-1.5, 0.0, 2.25])[np.arange(60) % 3], "classification"),
    (np.array([-3, 7, 100], dtype=np.int8)[np.arange(60) % 3], "auto"),
    (np.array([3, 7, 2**40], dtype=np.uint64)[np.arange(60) % 3], "auto"),
    (np.array([b"no", b"yes"])[np.arange(60) % 2], "auto"),
    (np.array(["", "ünïcode ☃", "z" * 40])[np.arange(60) % 3], "auto"),
    (np.array(["x", "y", "w"], dtype=object)[np.arange(60) % 3], "auto"),
    (np.array(["2020-01-01", "2021-06-01"], dtype="M8[D]")[np.arange(60) % 2], "classification"),
], ids=["bool", "float", "int8", "uint64", "bytes", "unicode", "object_str", "datetime"])
def test_label_types_round_trip(tmp_path, labels, task):
    model = fitted(y=labels, task=task)
    copy = load(save(model, tmp_path / "m.npz"))
    assert copy.classes_.dtype == model.classes_.dtype
    assert copy.classes_.tolist() == model.classes_.tolist()
    assert_same_model(model, copy)
    assert_same_predictions(model, copy, X_NEW)


def _object_labels(values):
    arr = np.empty(60, dtype=object)
    for i in range(60):
        arr[i] = values[i % len(values)]
    return arr


@pytest.mark.parametrize("labels", [
    _object_labels([1, 2, 3]),
    _object_labels([0.5, 1.5]),
    _object_labels([(1, 2), (3, 4)]),
], ids=["object_ints", "object_floats", "tuples"])
def test_non_string_object_labels_are_refused_at_save(tmp_path, labels):
    model = fitted(y=labels)
    assert model.classes_.dtype == object
    with pytest.raises(TypeError, match="cannot save a model whose classes_ hold"):
        save(model, tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []


def test_labels_with_trailing_nul_are_refused_rather_than_altered(tmp_path):
    model = fitted(y=np.array(["a", "a\x00"], dtype=object)[np.arange(60) % 2])
    with pytest.raises(TypeError, match="NUL"):
        save(model, tmp_path / "m.npz")


def test_unfitted_model_cannot_be_saved(tmp_path):
    with pytest.raises(NotFittedError):
        save(MLP(), tmp_path / "m.npz")
    with pytest.raises(TypeError, match="needs a fastmlp MLP"):
        save(object(), tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------- paths
def test_the_file_written_is_exactly_the_path_given(tmp_path):
    model = fitted()
    assert save(model, tmp_path / "plain") == str(tmp_path / "plain")
    assert save(model, str(tmp_path / "with.npz")) == str(tmp_path / "with.npz")
    assert sorted(os.listdir(tmp_path)) == ["plain", "with.npz"]  # no suffix added
    assert save(model, pathlib.Path(tmp_path / "path.npz")) == str(tmp_path / "path.npz")
    for name in ("plain", "with.npz", "path.npz"):
        assert_same_model(model, load(tmp_path / name))
    save(model, tmp_path / "other.npz")
    with pytest.raises(FileNotFoundError, match=r"there is .*other\.npz"):
        load(tmp_path / "other")
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nothing.npz")
    # the file is an ordinary npz that numpy reads without pickle
    with np.load(tmp_path / "plain", allow_pickle=False) as z:
        assert {"__fastmlp__", "params", "sizes", "state1", "state2", "loss_curve",
                "classes"} == set(z.files)
        header = json.loads(z["__fastmlp__"].tobytes())
        assert header["format"] == "fastmlp-mlp" and header["version"] == 2


def test_permissions_of_an_existing_file_are_kept(tmp_path):
    target = tmp_path / "m.npz"
    model = fitted()
    save(model, target)
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    target.chmod(0o640)
    save(model, target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


# ---------------------------------------------------------- atomic saving
def _old_file(tmp_path):
    target = tmp_path / "model.npz"
    save(fitted("int", epochs=1), target)
    return target, target.read_bytes()


def _half_then(exc):
    """A stand-in for np.savez that writes part of an archive and then fails."""
    real = np.savez

    def fake(file, **arrays):
        real(file, **arrays)
        file.truncate(file.tell() // 2)  # half an archive is on disk
        raise exc

    return fake


@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"),
                                 KeyboardInterrupt(), RuntimeError("boom")],
                         ids=["disk_full", "ctrl_c", "bug"])
def test_failure_mid_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path, monkeypatch, exc):
    target, before = _old_file(tmp_path)
    monkeypatch.setattr(np, "savez", _half_then(exc))
    with pytest.raises(type(exc)):
        save(fitted("str_object"), target)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.npz"]
    load(target)  # still the old, intact model


@pytest.mark.parametrize("where", ["fsync", "replace", "chmod"])
def test_failure_after_the_write_keeps_the_old_file_and_leaves_no_temp_file(
        tmp_path, monkeypatch, where):
    target, before = _old_file(tmp_path)
    calls = []

    def fail(*args, **kwargs):
        calls.append(args)
        raise OSError(5, f"{where} failed")

    monkeypatch.setattr(os, where, fail)
    with pytest.raises(OSError, match=f"{where} failed"):
        save(fitted("str_object"), target)
    assert calls
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.npz"]


def test_saving_onto_a_directory_fails_cleanly(tmp_path):
    (tmp_path / "adir").mkdir()
    with pytest.raises(OSError):
        save(fitted(), tmp_path / "adir")
    assert os.listdir(tmp_path) == ["adir"] and os.listdir(tmp_path / "adir") == []


def test_concurrent_saves_to_one_path_leave_one_complete_file(tmp_path):
    models = [fitted("int", backend, dtype) for backend in BACKENDS for dtype in DTYPES]
    target = tmp_path / "shared.npz"
    start = threading.Barrier(len(models))

    def work(model):
        start.wait()
        for _ in range(5):
            save(model, target)

    with concurrent.futures.ThreadPoolExecutor(len(models)) as pool:
        list(pool.map(work, models, timeout=120))
    assert os.listdir(tmp_path) == ["shared.npz"]
    copy = load(target)
    assert any(copy._net.params.tobytes() == m._net.params.tobytes() for m in models)


def test_failed_first_save_leaves_no_file_at_all(tmp_path, monkeypatch):
    monkeypatch.setattr(np, "savez", _half_then(OSError(28, "No space left on device")))
    with pytest.raises(OSError):
        save(fitted(), tmp_path / "model.npz")
    assert os.listdir(tmp_path) == []


def test_hard_crash_mid_save_never_leaves_a_partial_file_under_the_target_name(tmp_path):
    target, before = _old_file(tmp_path)
    # A child process that dies (os._exit: no cleanup, no exception handlers) in the
    # middle of writing the archive of another model over the same path.
    child = textwrap.dedent(f"""
        import os, sys, warnings
        import numpy as np
        warnings.simplefilter("ignore")
        from fastmlp import MLP
        from fastmlp.io import save
        X = np.random.default_rng(0).standard_normal((30, 4))
        model = MLP((4,), epochs=1, backend="numpy", random_state=1).fit(X, np.arange(30) % 2)
        real = np.lib.format.write_array
        count = []
        def dying_write_array(fp, array, *args, **kwargs):
            count.append(1)
            if len(count) == 3:
                fp.write(b"partial")
                sys.stdout.flush()
                os._exit(17)
            return real(fp, array, *args, **kwargs)
        np.lib.format.write_array = dying_write_array
        save(model, {str(target)!r})
        print("not reached")
    """)
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 17, proc.stderr
    assert target.read_bytes() == before
    load(target)
    leftovers = sorted(set(os.listdir(tmp_path)) - {"model.npz"})
    # a killed process cannot clean up: at most its hidden temporary file remains
    assert len(leftovers) <= 1 and all(n.startswith(".model.npz.") and n.endswith(".tmp")
                                       for n in leftovers), leftovers


# ---------------------------------------------------------------- bad files
@pytest.fixture(scope="module")
def good_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("good") / "model.npz"
    model = MLP((2,), epochs=2, random_state=0, batch_size=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X[:, :2], TARGETS["int"])
    save(model, path)
    return path, model


def _members(path):
    with np.load(path, allow_pickle=False) as z:
        members = {k: z[k] for k in z.files}
    header = json.loads(members.pop("__fastmlp__").tobytes())
    return header, members


def _write(path, header, members):
    raw = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(path, __fastmlp__=raw, **members)
    return path


def test_missing_empty_and_non_zip_files(tmp_path, good_file):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "absent.npz")
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(ModelFileError, match="the file is empty"):
        load(tmp_path / "empty.npz")
    (tmp_path / "text.npz").write_text("hello, I am not a model\n")
    with pytest.raises(ModelFileError, match="not a zip"):
        load(tmp_path / "text.npz")
    np.save(tmp_path / "array.npy", np.arange(5.0))
    with pytest.raises(ModelFileError, match="not a zip"):
        load(tmp_path / "array.npy")
    (tmp_path / "pickle.npz").write_bytes(pickle.dumps({"params": np.ones(3)}))
    with pytest.raises(ModelFileError, match="not a zip"):
        load(tmp_path / "pickle.npz")
    assert issubclass(ModelFileError, ValueError)


def test_truncated_files_are_refused(tmp_path, good_file):
    data = good_file[0].read_bytes()
    cuts = sorted({4, 10, 100, len(data) // 3, len(data) // 2, len(data) - 22, len(data) - 1}
                  | set(range(0, len(data), 97)))
    for cut in cuts:
        path = tmp_path / f"cut{cut}.npz"
        path.write_bytes(data[:cut])
        with pytest.raises(ModelFileError) as info:
            load(path)
        assert str(path) in str(info.value)


def _member_data_ranges(data):
    """[start, end) of every member's bytes in a zip archive (after its local header)."""
    ranges = []
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        for info in z.infolist():
            off = info.header_offset
            name_len, extra_len = struct.unpack("<HH", data[off + 26:off + 30])
            start = off + 30 + name_len + extra_len
            ranges.append((start, start + info.compress_size))
    return ranges


def test_corrupted_bytes_are_detected_or_harmless(tmp_path, good_file):
    """Corrupt the bytes of a small model file one at a time (a sample of every
    region: every fourth byte): the load either fails
    with a ModelFileError, or the byte was zip bookkeeping that readers ignore
    (a timestamp, the local copy of a size) and the model is the very same."""
    path, model = good_file
    data = bytearray(path.read_bytes())
    inside = _member_data_ranges(data)
    assert sum(end - start for start, end in inside) > len(data) // 2
    bad = tmp_path / "bad.npz"
    detected = harmless = 0
    for i in range(0, len(data), 4):
        flipped = bytearray(data)
        flipped[i] ^= (0xFF, 0x01, 0x80, 0x20)[i % 4]
        bad.write_bytes(flipped)
        try:
            copy = load(bad)
        except ModelFileError:
            detected += 1
            continue
        harmless += 1
        assert not any(start <= i < end for start, end in inside), \
            f"corrupting byte {i}, inside a member, went unnoticed"
        assert_same_model(model, copy)
    assert detected > 0.8 * (detected + harmless), (detected, harmless)


def test_foreign_npz_is_refused(tmp_path):
    path = tmp_path / "foreign.npz"
    np.savez(path, a=np.random.default_rng(0).standard_normal(10), b=np.arange(3))
    with pytest.raises(ModelFileError, match="not a fastmlp model file.*no '__fastmlp__' header"):
        load(path)
    with zipfile.ZipFile(tmp_path / "docs.zip", "w") as z:
        z.writestr("readme.txt", "just a zip")
    with pytest.raises(ModelFileError, match="not a fastmlp model file"):
        load(tmp_path / "docs.zip")


@pytest.mark.parametrize("edit,message", [
    (lambda h: h.update(version=3), "version 3 is not supported.*upgrade fastmlp"),
    (lambda h: h.update(version=0), "version 0 is not supported"),
    (lambda h: h.update(version="2"), "no valid format version"),
    (lambda h: h.pop("version"), "no valid format version"),
    (lambda h: h.update(format="something-else"), "format 'something-else'"),
    (lambda h: h["values"]["network"].update(output="hinge"), "invalid model: .*output 'hinge'"),
    (lambda h: h["values"]["network"].update(solver="lbfgs"),
     r"invalid model: solver lbfgs keeps \[\], found \['state1', 'state2'\]"),
    (lambda h: h["values"]["network"].update(step=-1), "invalid model: optimiser step -1"),
    (lambda h: h["values"].update(n_iter=99), "invalid model: .*99"),
    (lambda h: h["values"].update(backend="cuda"), "invalid model: backend 'cuda'"),
    (lambda h: h["values"]["hyper_parameters"].update(activation="swish"),
     "invalid model: activation must be one of .*'swish'"),
    (lambda h: h["values"]["hyper_parameters"].update(colour="red"),
     "hyper-parameters do not fit"),
    (lambda h: h["values"]["rng"]["__generator__"].update(bit_generator="Evil"),
     "bit generator 'Evil'"),
    (lambda h: h.update(arrays="params"), "no valid 'arrays' entry"),
])
def test_wrong_version_and_inconsistent_headers_are_refused(tmp_path, good_file, edit, message):
    header, members = _members(good_file[0])
    edit(header)
    path = _write(tmp_path / "edited.npz", header, members)
    with pytest.raises(ModelFileError, match=message):
        load(path)


def test_inconsistent_arrays_are_refused(tmp_path, good_file):
    header, members = _members(good_file[0])
    members["sizes"] = members["sizes"] + 1
    with pytest.raises(ModelFileError, match="invalid model"):
        load(_write(tmp_path / "b.npz", header, members))
    header, members = _members(good_file[0])
    members["params"] = members["params"].astype(np.float64)
    with pytest.raises(ModelFileError, match="invalid model: params has dtype float64"):
        load(_write(tmp_path / "c.npz", header, members))
    header, members = _members(good_file[0])
    members["classes"] = members["classes"][::-1].copy()
    with pytest.raises(ModelFileError, match="not sorted"):
        load(_write(tmp_path / "d.npz", header, members))
    header, members = _members(good_file[0])
    members["loss_curve"] = members["loss_curve"][:1]
    with pytest.raises(ModelFileError, match="invalid model: loss_curve"):
        load(_write(tmp_path / "e.npz", header, members))


def test_a_consistent_edit_is_a_valid_model(tmp_path, good_file):
    """The format has no per-member digests: the zip's CRC-32 catches accidental
    damage (see the corrupted-bytes test), the checks catch parts that do not fit,
    and a deliberate, consistent edit of the weights is simply another model."""
    header, members = _members(good_file[0])
    members["params"] = members["params"] + np.float32(1)
    edited = load(_write(tmp_path / "a.npz", header, members))
    np.testing.assert_array_equal(edited._net.params, good_file[1]._net.params + np.float32(1))


@pytest.mark.parametrize("member", ["params", "state1", "state2"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_or_optimiser_state_are_refused(tmp_path, good_file, member, value):
    """A consistent edit (the zip's checksums are right) that puts NaN or inf in
    the weights or the Adam moments is refused at load, naming the member."""
    header, members = _members(good_file[0])
    edited = members[member].copy()
    edited[3] = value
    members[member] = edited
    path = _write(tmp_path / "nonfinite.npz", header, members)
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None  # an intact archive: only the values are wrong
    with pytest.raises(ModelFileError) as info:
        load(path)
    message = str(info.value)
    assert f"member {member!r}" in message and "at index 3" in message
    assert str(np.float32(value)) in message and str(path) in message


def test_missing_and_extra_members_are_refused(tmp_path, good_file):
    header, members = _members(good_file[0])
    del members["state1"]
    with pytest.raises(ModelFileError, match=r"missing members \['state1'\]"):
        load(_write(tmp_path / "a.npz", header, members))
    header, members = _members(good_file[0])
    members["extra"] = np.zeros(3)
    with pytest.raises(ModelFileError, match=r"unexpected members \['extra'\]"):
        load(_write(tmp_path / "b.npz", header, members))
    header, members = _members(good_file[0])
    np.savez(tmp_path / "c.npz", __fastmlp__=np.frombuffer(b"{not json", np.uint8), **members)
    with pytest.raises(ModelFileError, match="header is not valid JSON"):
        load(tmp_path / "c.npz")


class _CreatesMarker:
    """Unpickling this object creates the file ``marker`` (via builtins.open)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _evil_array(marker):
    arr = np.empty(2, dtype=object)
    arr[0] = _CreatesMarker(marker)
    arr[1] = "payload"
    return arr


@pytest.mark.parametrize("where", ["params", "header", "extra_member"])
def test_pickled_object_arrays_are_never_unpickled(tmp_path, good_file, where):
    marker = tmp_path / "pwned"
    header, members = _members(good_file[0])
    raw_header = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    if where == "params":
        members["params"] = _evil_array(marker)
    elif where == "header":
        raw_header = _evil_array(marker)
    else:
        members["evil"] = _evil_array(marker)
        header["arrays"].append("evil")
        raw_header = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    path = tmp_path / "evil.npz"
    np.savez(path, __fastmlp__=raw_header, **members)  # pickles the object array
    # the file is armed: unpickling its object array would create the marker ...
    with np.load(path, allow_pickle=True) as z:
        probe = z["__fastmlp__" if where == "header" else
                  "params" if where == "params" else "evil"]
    assert marker.exists()
    probe[0].close()
    marker.unlink()
    # ... and load refuses the file without unpickling anything
    with pytest.raises(ModelFileError) as info:
        load(path)
    assert not marker.exists()
    assert "pickle" in str(info.value)


# ------------------------------------------------------------ older files
@pytest.mark.parametrize("name", ["v1-classifier-adam-float32", "v1-regressor-sgd-float64"])
def test_version_1_files_load_as_they_were_saved(tmp_path, name):
    """Files written by fastmlp 0.1 (format version 1, in tests/data with what that
    version predicted for them) load, predict the same, and keep training."""
    data = pathlib.Path(__file__).parent / "data"
    expected = json.loads((data / "v1-expected.json").read_text())[name]
    inputs = np.load(data / "v1-inputs.npy")
    model = load(data / f"{name}.npz")
    assert model.n_iter_ == expected["n_iter"] and model._net.step == expected["step"]
    assert [float(v) for v in model.loss_curve_] == expected["loss_curve"]
    prediction = model.predict(inputs)
    if "proba" in expected:
        assert prediction.tolist() == expected["predict"]
        assert model.predict_proba(inputs).tolist() == expected["proba"]
    else:
        assert prediction.tolist() == expected["predict"]  # bit-exact floats through JSON
    # saved again, it is a version 2 file of the same model
    again = load(save(model, tmp_path / "v2.npz"))
    assert_same_model(model, again)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        y = prediction if "proba" in expected else prediction.astype(np.float64)
        model.partial_fit(inputs, y)
    assert model.n_iter_ == expected["n_iter"] + 1
