"""A first call compiles side by side in helper processes
(``numba_core.parallel_compile``), and nothing depends on it.

Each compiling test runs in a fresh process with an empty numba cache of its
own (``tmp_path``): the helpers hand what they compile over through that cache.

- the jobs the cache lacks are shared out to helpers, which this process then
  loads from the cache instead of compiling; what cannot be cached compiles
  here; a second process finds everything cached and starts no helper;
- ``FASTMLP_COMPILE_PROCESSES=1`` starts none; a bad value is refused by name;
- a helper that fails leaves a warning and its share is compiled here, with
  the same results; a cache entry that names another function's data (two
  processes writing one cache index at once) is compiled here again; helpers
  start only from a Python interpreter;
- a real first fit whose kernels the helpers compiled trains the model that
  this process trains, and no kernel is compiled twice.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import fastmlp
from fastmlp.kernels.numba_core import parallel_compile

from compile_targets import first_fit_weights

TESTS = Path(__file__).parent

JOBS_CHILD = textwrap.dedent('''
    import json, sys, warnings
    import numpy as np
    from numba import types
    sys.path.insert(0, sys.argv[1])
    import compile_targets as t
    from fastmlp.kernels.numba_core import parallel_compile as pc

    if len(sys.argv) > 2:  # a Python that cannot start: every helper fails
        sys.executable = sys.argv[2]
    started = []
    _start = pc._start

    def spy(share):
        started.append(sorted(d.py_func.__name__ for d, _ in share))
        return _start(share)

    pc._start = spy
    vector, f = types.Array(types.float64, 1, "C"), types.float64
    jobs = [(t.scaled_sum, (vector, f)), (t.first_and_last, (vector,)),
            (t.count_above, (vector, f)), (t.not_cached, (vector,))]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pc.compile_all(jobs)
    x = np.arange(5.0)
    values = [t.scaled_sum(x, 2.0), list(t.first_and_last(x)), t.count_above(x, 2.5),
              t.not_cached(x)]
    print(json.dumps({
        "started": sorted(started),
        "values": values,
        "hits": {d.py_func.__name__: sum(d.stats.cache_hits.values()) for d, _ in jobs},
        "misses": {d.py_func.__name__: sum(d.stats.cache_misses.values()) for d, _ in jobs},
        "signatures": {d.py_func.__name__: len(d.signatures) for d, _ in jobs},
        "warnings": [str(w.message) for w in caught],
    }))
''')

EXPECTED_VALUES = [20.0, [0.0, 4.0], 2, 5]
CACHED = ("count_above", "first_and_last", "scaled_sum")


def _env(cache, processes):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "FASTMLP_"))}
    env["NUMBA_CACHE_DIR"] = str(cache)
    if processes is not None:
        env["FASTMLP_COMPILE_PROCESSES"] = str(processes)
    return env


def _jobs(tmp_path, cache, processes=None, *extra):
    script = tmp_path / "jobs_child.py"
    script.write_text(JOBS_CHILD)
    out = subprocess.run([sys.executable, str(script), str(TESTS), *extra], capture_output=True,
                         text=True, env=_env(cache, processes), timeout=240)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_helpers_compile_what_the_cache_lacks_and_this_process_loads_it(tmp_path):
    cache = tmp_path / "cache"
    first = _jobs(tmp_path, cache, 3)
    assert first["values"] == EXPECTED_VALUES
    # three cacheable jobs, up to three processes: this one keeps a share (it starts
    # first), the helpers take the rest (how many: the cost model's shares)
    assert 1 <= len(first["started"]) <= 2
    away = [name for share in first["started"] for name in share]
    assert away and set(away) < set(CACHED) and len(set(away)) == len(away)
    for name in away:  # loaded from the cache the helper wrote, not compiled here
        assert first["hits"][name] == 1 and first["misses"][name] == 0
    for name in set(CACHED) - set(away):
        assert first["misses"][name] == 1 and first["hits"][name] == 0
    assert first["hits"]["not_cached"] == 0  # no disk cache: compiled here, never sent away
    assert all(count == 1 for count in first["signatures"].values())  # nothing compiled twice
    assert first["warnings"] == []

    second = _jobs(tmp_path, cache, 3)  # everything cached now: no helper
    assert second["started"] == []
    assert second["values"] == EXPECTED_VALUES
    assert all(second["hits"][name] == 1 for name in CACHED)


def test_one_process_starts_no_helper(tmp_path):
    result = _jobs(tmp_path, tmp_path / "cache", 1)
    assert result["started"] == []
    assert result["values"] == EXPECTED_VALUES
    assert all(result["misses"][name] == 1 for name in CACHED)


def test_a_failing_helper_warns_and_its_share_compiles_here(tmp_path):
    broken = tmp_path / "python-broken"
    broken.write_text("#!/bin/sh\necho no interpreter here >&2\nexit 3\n")
    broken.chmod(0o755)
    result = _jobs(tmp_path, tmp_path / "cache", 3, str(broken))
    assert result["started"]
    assert result["values"] == EXPECTED_VALUES
    assert all(result["misses"][name] == 1 and result["hits"][name] == 0 for name in CACHED)
    assert len(result["warnings"]) == len(result["started"])
    for message in result["warnings"]:
        assert "failed (3: no interpreter here)" in message
        assert "FASTMLP_COMPILE_PROCESSES=1" in message


MISMATCH_CHILD = textwrap.dedent('''
    import json, sys
    import numpy as np
    from numba import types
    sys.path.insert(0, sys.argv[1])
    import compile_targets as t
    from fastmlp.kernels.numba_core import parallel_compile as pc

    f = types.float64
    wide, narrow = types.Array(types.float64, 1, "C"), types.Array(types.float32, 1, "C")
    if sys.argv[2] == "write":  # cache the float64 function, then point float32's entry at it
        t.scaled_sum.compile((wide, f))
        cache = t.scaled_sum._cache
        codegen = t.scaled_sum.targetctx.codegen()
        index = cache._cache_file._load_index()
        index[cache._index_key((narrow, f), codegen)] = index[cache._index_key((wide, f), codegen)]
        cache._cache_file._save_index(index)
        print(json.dumps({}))
    else:
        pc.compile_all([(t.scaled_sum, (narrow, f))])
        x = np.arange(5, dtype=np.float32)
        print(json.dumps({"value": t.scaled_sum(x, 2.0),
                          "signatures": [str(s) for s in t.scaled_sum.signatures]}))
''')


def test_a_cache_entry_naming_another_functions_data_is_compiled_again(tmp_path):
    """Two processes adding entries to one function's cache index at the same moment
    can leave an entry naming the other's data; the function is then compiled here."""
    script = tmp_path / "mismatch_child.py"
    script.write_text(MISMATCH_CHILD)
    env = _env(tmp_path / "cache", 1)
    results = []
    for step in ("write", "read"):
        out = subprocess.run([sys.executable, str(script), str(TESTS), step],
                             capture_output=True, text=True, env=env, timeout=240)
        assert out.returncode == 0, out.stderr
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    assert results[1]["value"] == 20.0
    assert len(results[1]["signatures"]) == 2  # the float64 one the cache gave, float32 compiled
    assert any("float32" in sig for sig in results[1]["signatures"])


def test_helpers_need_a_python_to_start(monkeypatch):
    for name, expected in (("/usr/bin/python3.11", True), ("/opt/conda/bin/python", True),
                           ("/usr/bin/uwsgi", False), ("", False)):
        monkeypatch.setattr(sys, "executable", name)
        assert parallel_compile._can_start() is expected, name
    monkeypatch.setattr(sys, "executable", "/usr/bin/python3")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert parallel_compile._can_start() is False


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_bad_process_count_is_refused_by_name(monkeypatch, value):
    monkeypatch.setenv("FASTMLP_COMPILE_PROCESSES", value)
    with pytest.raises(ValueError, match="FASTMLP_COMPILE_PROCESSES"):
        parallel_compile.processes()


def test_the_default_is_the_cores_and_one_core_compiles_alone(monkeypatch):
    from fastmlp import threads

    monkeypatch.delenv("FASTMLP_COMPILE_PROCESSES", raising=False)
    for cores, expected in ((1, 1), (2, 2), (16, 16)):
        monkeypatch.setattr(threads, "default_threads", lambda cores=cores: cores)
        assert parallel_compile.processes() == expected
    monkeypatch.setenv("FASTMLP_COMPILE_PROCESSES", "4")
    assert parallel_compile.processes() == 4


def test_show_config_names_the_compile_processes(monkeypatch):
    import io

    monkeypatch.setenv("FASTMLP_COMPILE_PROCESSES", "2")
    out = io.StringIO()
    fastmlp.show_config(file=out)
    assert "first compile: up to 2 processes" in out.getvalue()


FIT_CHILD = textwrap.dedent('''
    import json, sys
    sys.path.insert(0, sys.argv[1])
    from compile_targets import first_fit_weights
    from fastmlp.kernels.numba_core import (block_gradient, network, optimisers,
                                            train_row_blocks)
    from fastmlp.kernels.numba_core import parallel_compile as pc

    started = []
    _start = pc._start

    def spy(share):
        started.extend(d.py_func.__name__ for d, _ in share)
        return _start(share)

    pc._start = spy
    weights = first_fit_weights()
    roots = {d.py_func.__name__: d for d in (
        network._forward_rows, block_gradient._block_loss_softmax, block_gradient._block_backward,
        optimisers._update_span, train_row_blocks._train_blocks_by)}
    print(json.dumps({
        "weights": weights,
        "started": sorted(started),
        "signatures": {n: len(d.signatures) for n, d in roots.items()},
        "hits": {n: sum(d.stats.cache_hits.values()) for n, d in roots.items()},
    }))
''')


@pytest.mark.filterwarnings("ignore:MLP stopped after")
def test_a_first_fit_compiled_by_helpers_trains_the_same_model(tmp_path):
    script = tmp_path / "fit_child.py"
    script.write_text(FIT_CHILD)
    out = subprocess.run([sys.executable, str(script), str(TESTS)], capture_output=True,
                         text=True, env=_env(tmp_path / "cache", 3), timeout=400)
    assert out.returncode == 0, out.stderr
    child = json.loads(out.stdout.strip().splitlines()[-1])
    # the row-block kernel, its three passes and the update: the cache lacked all five
    assert child["started"], "no helper was started"
    assert set(child["started"]) < {"_forward_rows", "_block_loss_softmax", "_block_backward",
                                    "_update_span", "train_blocks"}
    for name in child["started"]:
        assert child["hits"][name] == 1  # loaded from what a helper compiled
    assert all(count == 1 for count in child["signatures"].values())  # none compiled twice
    assert first_fit_weights() == child["weights"]  # what this process's kernels train
