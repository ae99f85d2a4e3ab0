"""The compiled kernels follow edits of ``kernels/codes.py``, ``kernels/config.py``,
``kernels/blocks.py`` and of every file of the ``kernels/numba_core/`` package.

numba freezes the module globals a kernel reads, and the functions it calls, into its
machine code, and keys its disk cache on the kernel's own source file only: an edit of
codes.py or config.py, or of a callee in another file of the core, alone would leave
stale code on disk. ``numba_core._FROZEN`` lists those values and a key of the source
of blocks.py and of every file of the core; ``ensure_fresh`` (run by
``fastmlp.kernels.get('numba')``) compares them with the values frozen in the cache
(``_frozen()``) and recompiles every kernel of the core when they differ.

Checked here: that ``_FROZEN`` lists every numeric value the core takes from codes and
config, and the source of every file of the core; and, in fresh processes on a copy of
the package (its own cache beside it), that after an edit the kernels are recompiled
and compute with the new value, a caller in another file than the edited one included,
while a run without an edit loads them from the cache.
"""

import ast
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import fastmlp
import fastmlp.kernels
from fastmlp.kernels import blocks, codes, config, numba_core
from fastmlp.kernels.numba_core import freshness, record

SOURCES = (codes, config)


def _core_files():
    """Every ``.py`` file of the core's package directory, with its module, by listing the
    directory (a file added later is listed too)."""
    files = sorted(Path(numba_core.__file__).parent.glob("*.py"))
    assert len(files) > 10
    return [(path, numba_core if path.stem == "__init__" else
             importlib.import_module(f"{numba_core.__name__}.{path.stem}")) for path in files]


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _taken_from_codes_and_config():
    """Names of the numeric globals of the core's files that codes or config define with
    the same value, and ``config.X`` / ``codes.X`` read by attribute in their source."""
    taken = set()
    for path, module in _core_files():
        taken |= {name for name, value in vars(module).items()
                  if _is_number(value) and not name.startswith("__")
                  and any(name in vars(m) and vars(m)[name] == value
                          and type(vars(m)[name]) is type(value) for m in SOURCES)}
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in ("codes", "config")
                    and _is_number(getattr(globals()[node.value.id], node.attr, None))):
                taken.add(f"{node.value.id}.{node.attr}")
    return taken


def _frozen_names():
    """The module of the core that assigns ``_FROZEN = (...)``, and the names in that
    tuple before its last element, ``*(...)``: the keys of the core's own files."""
    found = []
    for path, module in _core_files():
        for node in ast.parse(path.read_text()).body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and getattr(node.targets[0], "id", None) == "_FROZEN"):
                assert isinstance(node.value, ast.Tuple)
                *names, keys = node.value.elts
                assert isinstance(keys, ast.Starred), ast.unparse(keys)
                found.append((module, [ast.unparse(e) for e in names]))
    assert len(found) == 1, f"_FROZEN assigned {len(found)} times in the core"
    return found[0]


def _compiled_modules():
    """Other modules of the package whose functions the core compiles (``njit(**...)(
    module.function)``)."""
    modules = set()
    for path, _ in _core_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Call)
                    and getattr(node.func.func, "id", None) == "njit" and node.args
                    and isinstance(node.args[0], ast.Attribute)
                    and isinstance(node.args[0].value, ast.Name)):
                modules.add(node.args[0].value.id)
    return modules


def _key_position(module):
    """Where ``_FROZEN`` holds the source key of ``module``."""
    return numba_core._FROZEN.index(freshness._source_key(module))


def test_frozen_lists_every_value_taken_from_codes_and_config():
    taken = _taken_from_codes_and_config()
    # the codes and sizes the compiled code compares against (a sanity floor)
    assert {"RELU", "SIGMOID", "TANH", "SOFTMAX", "POISSON", "ADAM", "SMALL_GEMM",
            "PREDICT_CHUNK", "NARROW", "BLOCK_MIN_ROWS", "UPDATE_CHUNK"} <= taken
    module, names = _frozen_names()
    assert len(names) == len(set(names))
    # the source of every module whose functions the core compiles is frozen too
    sources = {n for n in names if n.startswith("_source_key(")}
    assert _compiled_modules() == {"blocks"}
    assert sources == {f"_source_key({m})" for m in _compiled_modules()}
    values = [n for n in names if n not in sources]
    assert set(values) == taken, (f"taken but not frozen: {sorted(taken - set(values))}; "
                                  f"frozen but not taken: {sorted(set(values) - taken)}")
    frozen = tuple(eval(name, vars(module)) for name in names)  # noqa: S307
    assert numba_core._FROZEN[:len(names)] == frozen


def test_frozen_holds_the_source_of_every_file_of_the_core():
    """Every file of the core's directory (listed here, not by the core) has its source
    key in ``_FROZEN``, after the named values, and nothing else follows them."""
    _, names = _frozen_names()
    keys = [freshness._source_key(module) for _, module in _core_files()]
    assert len(set(keys)) == len(keys)
    assert sorted(numba_core._FROZEN[len(names):]) == sorted(keys)
    assert freshness._source_key(blocks) in numba_core._FROZEN[:len(names)]


def test_ensure_fresh_rebuilds_every_compiled_function_of_the_core():
    """``ensure_fresh`` rebuilds every dispatcher of every file (the serial twins and the
    compiled ``blocks.rows_plan`` included), the record last; the record's file holds
    nothing else, so that no edit of another file changes it."""
    from numba.core.registry import CPUDispatcher

    every = {id(v): v for _, module in _core_files() for v in vars(module).values()
             if isinstance(v, CPUDispatcher)}
    rebuilt = freshness._dispatchers()
    assert len(rebuilt) == len({id(d) for d in rebuilt}) == len(every)
    assert set(map(id, rebuilt)) == set(every)
    assert rebuilt[-1] is numba_core._frozen is record._frozen
    names = {d.py_func.__name__ for d in rebuilt}
    assert {"train_blocks_serial", "_rows_pass_serial", "rows_plan", "_train_epoch_by",
            "_block_loss_softmax", "_block_loss_targets", "_block_backward", "_update_span",
            "_target_row", "_act_span"} <= names
    assert {n for n in vars(record) if not n.startswith("__")} == {"njit", "ENTRY", "freshness",
                                                                    "_frozen"}


# ------------------------------------------------------- fresh processes on a copy
CHILD = r'''
import json
import sys

sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path.insert(0, sys.argv[1])
import numpy as np

import fastmlp.kernels.numba_core as core

assert core.__file__.startswith(sys.argv[1]), core.__file__
rebuilt = core.REBUILT  # the check made when the core was imported
# a kernel compiled (or loaded) straight from the core, before the public API is loaded:
# its cache entry is covered by the record that the import wrote
core.softmax(np.zeros((2, 3)), np.empty((2, 3)))
import fastmlp.kernels

k = fastmlp.kernels.get("numba")
assert k._core is core
rng = np.random.default_rng(0)
mode, _, factor = sys.argv[2].partition(":")
if mode == "softmax":
    Z = rng.normal(size=(5, 3))
    got = k.softmax(Z)
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    expected = E / E.sum(axis=1, keepdims=True)
    dispatchers = [core.softmax]
else:  # a relu network, dense input, hidden layer wider than NARROW
    sizes = [3, 20, 2]
    X = rng.normal(size=(6 if mode == "predict" else 128, 3))
    params = rng.normal(size=(3 + 1) * 20 + (20 + 1) * 2)
    W0, b0 = params[:60].reshape(3, 20), params[60:80]
    W1, b1 = params[80:120].reshape(20, 2), params[120:]
    out = np.maximum(X @ W0 + b0, 0.0) @ W1 + b1
    if mode == "predict":
        got = k.predict(X, params, sizes, "relu", "squared")[0]
        expected = out
        dispatchers = [core.predict_rows]
    else:  # one epoch at learning rate 0 under the squared loss, its data loss
        # factor * sum((out - Y)**2) by two kernels outside the loss's file
        from fastmlp.kernels import api, codes

        Y = rng.normal(size=(128, 2))
        # train_epoch and train_blocks call the compiled _train_epoch_by and
        # _train_blocks_by, and the block's loss pass (where the loss is) by
        # address: compiled on its own
        dispatchers = [core._train_epoch_by, core._train_blocks_by,
                       core._block_loss_targets]
        got = []
        for kernel in (core.train_epoch, core.train_blocks):
            p, zeros = params.copy(), np.zeros_like(params)
            got.append(kernel(X, np.empty(0, np.int64), Y, np.empty(0), np.arange(128), p,
                              zeros.copy(), zeros.copy(), zeros.copy(), 0, np.array(sizes),
                              codes.RELU, codes.SQUARED, codes.SGD, 0.0, 0.0, False, 0.9,
                              0.999, 1e-8, 0.0, 64, np.empty(api.work_size(sizes, 64)))[0])
            assert np.array_equal(p, params)
        expected = float(factor) * np.sum((out - Y) ** 2)
        got = np.array(got) / expected  # relative error: the loss is in the hundreds
        expected = 1.0
print(json.dumps({
    "frozen": list(core._frozen()),
    "FROZEN": list(core._FROZEN),
    "rebuilt": rebuilt,
    "rebuilt_again": core.ensure_fresh(),
    # the fewest and the most cache hits and misses of one of the dispatchers
    "hits": [f(sum(d.stats.cache_hits.values()) for d in dispatchers) for f in (min, max)],
    "misses": [f(sum(d.stats.cache_misses.values()) for d in dispatchers) for f in (min, max)],
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
    # one process compiles all (the counts of cache hits and misses below are its own)
    env["FASTMLP_COMPILE_PROCESSES"] = "1"
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


def _check_edit_takes_effect(tmp_path, mode, module, pattern, replacement, position, value,
                             edited_mode=None):
    """Three fresh processes on a copy of the package: ``mode`` before the edit of
    ``module`` (a path under kernels/), then ``edited_mode`` (default: ``mode``) twice
    after it; ``_FROZEN[position]`` changes to ``value`` (None: to any other value)."""
    pkg = _copy_package(tmp_path)
    first = _run(tmp_path, pkg, mode)
    assert first["frozen"] == first["FROZEN"] == list(numba_core._FROZEN)
    assert first["misses"][0] > 0 and first["hits"][1] == 0  # nothing cached yet: compiled
    assert first["error"] < 1e-12
    _edit(pkg / "fastmlp" / "kernels" / module, pattern, replacement)
    mode = edited_mode or mode
    second = _run(tmp_path, pkg, mode)
    assert second["FROZEN"][position] == (value if value is not None else
                                          second["FROZEN"][position])
    assert second["FROZEN"][position] != first["FROZEN"][position]
    assert second["rebuilt"] is True and second["rebuilt_again"] is False
    assert second["frozen"] == second["FROZEN"]  # the cache now holds the new value
    assert second["misses"][0] > 0 and second["hits"][1] == 0  # recompiled, not loaded
    assert second["error"] < 1e-12, "the kernel computed with stale code"
    third = _run(tmp_path, pkg, mode)
    assert third["frozen"] == third["FROZEN"] == second["FROZEN"]
    assert third["rebuilt"] is False
    assert third["hits"][0] > 0 and third["misses"][1] == 0  # loaded from the cache
    assert third["error"] < 1e-12


def test_editing_config_recompiles_the_kernels(tmp_path):
    position = _frozen_names()[1].index("PREDICT_CHUNK")
    _check_edit_takes_effect(tmp_path, "softmax", "config.py", r"^PREDICT_CHUNK = .*$",
                             "PREDICT_CHUNK = 1000", position, 1000)


def test_editing_codes_recompiles_the_kernels(tmp_path):
    """RELU's code changes from 3 to 7: every kernel that compares an activation code
    against RELU must see 7, the first layer's included."""
    assert codes.RELU == 3
    position = _frozen_names()[1].index("RELU")
    _check_edit_takes_effect(tmp_path, "predict", "codes.py",
                             r"^IDENTITY, SIGMOID, TANH, RELU = 0, 1, 2, 3$",
                             "IDENTITY, SIGMOID, TANH, RELU = 0, 1, 2, 7", position, 7)


def test_editing_the_block_plan_recompiles_the_kernels(tmp_path):
    """numba_core compiles ``blocks.rows_plan`` into its row-block kernels: an edit of
    blocks.py alone (here a rewritten clamp, same results) changes its source key and
    rebuilds the cache."""
    position = _frozen_names()[1].index("_source_key(blocks)")
    _check_edit_takes_effect(tmp_path, "softmax", "blocks.py",
                             r"^    if blocks > BLOCK_MAX:$", "    if blocks >= BLOCK_MAX + 1:",
                             position, None)


def test_editing_a_callee_recompiles_its_callers_in_other_files(tmp_path):
    """The squared loss (``_target_row`` in outputs.py) weighs its squares by 1.5 instead
    of 0.5: ``train_epoch`` (train_batches.py) and ``train_blocks`` (train_row_blocks.py,
    through the parallel pass that calls ``output_rows``), whose own files are unchanged,
    must be rebuilt and compute the new loss."""
    from fastmlp.kernels.numba_core import outputs

    _check_edit_takes_effect(tmp_path, "epoch:0.5", "numba_core/outputs.py",
                             r"^            row \+= 0\.5 \* \(v - tv\) \* \(v - tv\)$",
                             "            row += 1.5 * (v - tv) * (v - tv)",
                             _key_position(outputs), None, edited_mode="epoch:1.5")
