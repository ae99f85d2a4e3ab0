"""The compiled kernels follow edits of ``kernels/codes.py`` and ``kernels/config.py``.

numba freezes the module globals a kernel reads into its machine code, and keys its disk
cache on the kernel's own source file only: an edit of codes.py or config.py alone would
leave stale code on disk. ``numba_core._FROZEN`` lists those values; ``ensure_fresh``
(run by ``fastmlp.kernels.get('numba')``) compares them with the values frozen in the
cache (``_frozen()``) and recompiles when they differ.

Checked here: that ``_FROZEN`` lists every numeric value numba_core takes from codes and
config; and, in fresh processes on a copy of the package (its own cache beside it), that
after an edit the kernels are recompiled and compute with the new value, while a run
without an edit loads them from the cache.
"""

import ast
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import fastmlp
import fastmlp.kernels
from fastmlp.kernels import codes, config, numba_core

SOURCES = (codes, config)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _taken_from_codes_and_config():
    """Names of numba_core's numeric globals that codes or config define with the same
    value, and ``config.X`` / ``codes.X`` read by attribute in its source."""
    taken = {name for name, value in vars(numba_core).items()
             if _is_number(value) and not name.startswith("__")
             and any(name in vars(m) and vars(m)[name] == value
                     and type(vars(m)[name]) is type(value) for m in SOURCES)}
    for node in ast.walk(ast.parse(inspect.getsource(numba_core))):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in ("codes", "config")
                and _is_number(getattr(globals()[node.value.id], node.attr, None))):
            taken.add(f"{node.value.id}.{node.attr}")
    return taken


def _frozen_names():
    """The names in the ``_FROZEN = (...)`` assignment of numba_core's source."""
    for node in ast.parse(inspect.getsource(numba_core)).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and getattr(node.targets[0], "id", None) == "_FROZEN"):
            assert isinstance(node.value, ast.Tuple)
            return [ast.unparse(e) for e in node.value.elts]
    raise AssertionError("numba_core assigns no _FROZEN tuple")


def _compiled_modules():
    """Other modules of the package whose functions numba_core compiles (``njit(**...)(
    module.function)``)."""
    modules = set()
    for node in ast.walk(ast.parse(inspect.getsource(numba_core))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Call)
                and getattr(node.func.func, "id", None) == "njit" and node.args
                and isinstance(node.args[0], ast.Attribute)
                and isinstance(node.args[0].value, ast.Name)):
            modules.add(node.args[0].value.id)
    return modules


def test_frozen_lists_every_value_taken_from_codes_and_config():
    taken = _taken_from_codes_and_config()
    # the codes and sizes the compiled code compares against (a sanity floor)
    assert {"RELU", "SIGMOID", "TANH", "SOFTMAX", "POISSON", "ADAM", "SMALL_GEMM",
            "PREDICT_CHUNK", "NARROW", "BLOCK_MIN_ROWS", "UPDATE_CHUNK"} <= taken
    names = _frozen_names()
    assert len(names) == len(set(names))
    # the source of every module whose functions the core compiles is frozen too
    sources = {n for n in names if n.startswith("_source_key(")}
    assert _compiled_modules() == {"blocks"}
    assert sources == {f"_source_key({m})" for m in _compiled_modules()}
    names = [n for n in names if n not in sources]
    assert set(names) == taken, (f"taken but not frozen: {sorted(taken - set(names))}; "
                                 f"frozen but not taken: {sorted(set(names) - taken)}")
    values = tuple(eval(name, vars(numba_core)) for name in _frozen_names())  # noqa: S307
    assert numba_core._FROZEN == values


# ------------------------------------------------------- fresh processes on a copy
CHILD = r'''
import json
import sys

sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path.insert(0, sys.argv[1])
import numpy as np

import fastmlp.kernels.numba_core as core

assert core.__file__.startswith(sys.argv[1]), core.__file__
rebuilt = core.ensure_fresh()
import fastmlp.kernels

k = fastmlp.kernels.get("numba")  # runs ensure_fresh again: nothing left to rebuild
assert k._core is core
rng = np.random.default_rng(0)
if sys.argv[2] == "softmax":
    Z = rng.normal(size=(5, 3))
    got = k.softmax(Z)
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    expected = E / E.sum(axis=1, keepdims=True)
    dispatcher = core.softmax
else:  # a relu network, dense input, hidden layer wider than NARROW
    sizes = [3, 20, 2]
    X = rng.normal(size=(6, 3))
    params = rng.normal(size=(3 + 1) * 20 + (20 + 1) * 2)
    got = k.predict(X, params, sizes, "relu", "squared")[0]
    W0, b0 = params[:60].reshape(3, 20), params[60:80]
    W1, b1 = params[80:120].reshape(20, 2), params[120:]
    expected = np.maximum(X @ W0 + b0, 0.0) @ W1 + b1
    dispatcher = core.predict_rows
print(json.dumps({
    "frozen": list(core._frozen()),
    "FROZEN": list(core._FROZEN),
    "rebuilt": rebuilt,
    "rebuilt_again": core.ensure_fresh(),
    "hits": sum(dispatcher.stats.cache_hits.values()),
    "misses": sum(dispatcher.stats.cache_misses.values()),
    "error": float(np.max(np.abs(got - expected))),
}))
'''


def _copy_package(tmp_path):
    """fastmlp/ and kernels/ copied to tmp_path/fastmlp and tmp_path/fastmlp/kernels,
    without any cache."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc")
    pkg = tmp_path / "pkg"
    shutil.copytree(Path(fastmlp.__file__).parent, pkg / "fastmlp", ignore=skip)
    shutil.rmtree(pkg / "fastmlp" / "kernels", ignore_errors=True)
    shutil.copytree(Path(fastmlp.kernels.__file__).parent, pkg / "fastmlp" / "kernels",
                    ignore=skip)
    (tmp_path / "child.py").write_text(CHILD)
    return pkg


def _run(tmp_path, pkg, mode):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NUMBA_", "FASTMLP_", "PYTHON"))}
    # -B: no .pyc files, whose timestamps could hide an edit made within the same second
    out = subprocess.run([sys.executable, "-B", str(tmp_path / "child.py"), str(pkg), mode],
                         capture_output=True, text=True, env=env, timeout=240)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _edit(path, pattern, replacement):
    text = path.read_text()
    new, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    assert count == 1, f"{pattern!r} found {count} times in {path}"
    path.write_text(new)


def _check_edit_takes_effect(tmp_path, mode, module, pattern, replacement, position, value):
    pkg = _copy_package(tmp_path)
    first = _run(tmp_path, pkg, mode)
    assert first["frozen"] == first["FROZEN"] == list(numba_core._FROZEN)
    assert first["misses"] > 0 and first["hits"] == 0  # nothing cached yet: compiled
    assert first["error"] < 1e-12
    _edit(pkg / "fastmlp" / "kernels" / module, pattern, replacement)
    second = _run(tmp_path, pkg, mode)
    assert second["FROZEN"][position] == (value if value is not None else
                                          second["FROZEN"][position])
    assert second["FROZEN"][position] != first["FROZEN"][position]
    assert second["rebuilt"] is True and second["rebuilt_again"] is False
    assert second["frozen"] == second["FROZEN"]  # the cache now holds the new value
    assert second["misses"] > 0 and second["hits"] == 0  # recompiled, not loaded
    assert second["error"] < 1e-12, "the kernel computed with stale code"
    third = _run(tmp_path, pkg, mode)
    assert third["frozen"] == third["FROZEN"] == second["FROZEN"]
    assert third["rebuilt"] is False
    assert third["hits"] > 0 and third["misses"] == 0  # loaded from the cache
    assert third["error"] < 1e-12


def test_editing_config_recompiles_the_kernels(tmp_path):
    position = _frozen_names().index("PREDICT_CHUNK")
    _check_edit_takes_effect(tmp_path, "softmax", "config.py", r"^PREDICT_CHUNK = .*$",
                             "PREDICT_CHUNK = 1000", position, 1000)


def test_editing_codes_recompiles_the_kernels(tmp_path):
    """RELU's code changes from 3 to 7: every kernel that compares an activation code
    against RELU must see 7, the first layer's included."""
    assert codes.RELU == 3
    position = _frozen_names().index("RELU")
    _check_edit_takes_effect(tmp_path, "predict", "codes.py",
                             r"^IDENTITY, SIGMOID, TANH, RELU = 0, 1, 2, 3$",
                             "IDENTITY, SIGMOID, TANH, RELU = 0, 1, 2, 7", position, 7)


def test_editing_the_block_plan_recompiles_the_kernels(tmp_path):
    """numba_core compiles ``blocks.rows_plan`` into its row-block kernels: an edit of
    blocks.py alone (here a rewritten clamp, same results) changes its source key and
    rebuilds the cache."""
    position = _frozen_names().index("_source_key(blocks)")
    _check_edit_takes_effect(tmp_path, "softmax", "blocks.py",
                             r"^    if blocks > BLOCK_MAX:$", "    if blocks >= BLOCK_MAX + 1:",
                             position, None)
