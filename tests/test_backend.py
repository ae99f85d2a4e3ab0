"""Backend selection, import cost and the warm-up, each in a fresh process."""

import os
import subprocess
import sys

import pytest


def run(code, **env):
    full = dict(os.environ)
    full.pop("FASTMLP_BACKEND", None)
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full,
                          timeout=300)


def test_default_is_numba_and_env_selects_numpy():
    assert run("import fastmlp; print(fastmlp.backend())").stdout.strip() == "numba"
    out = run("import fastmlp; print(fastmlp.backend(), fastmlp.MLP((2,)).fit([[0.], [1.]], [0, 1]).backend_)",
              FASTMLP_BACKEND="numpy")
    assert out.stdout.split() == ["numpy", "numpy"], out.stderr


def test_unknown_backend_fails_loudly():
    out = run("import fastmlp", FASTMLP_BACKEND="cuda")
    assert out.returncode != 0
    assert "FASTMLP_BACKEND='cuda'" in out.stderr and "numba, numpy" in out.stderr


def test_falls_back_to_numpy_without_numba():
    code = ("import sys, warnings; sys.modules['numba'] = None\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    import fastmlp\n"
            "print(fastmlp.backend(), sum('numba cannot be imported' in str(x.message) for x in w))\n"
            "print(fastmlp.MLP((3,), epochs=2).fit([[0.], [1.], [2.]], [0, 1, 1]).predict([[2.]]))")
    out = run(code)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n")
    assert lines[0] == "numpy 1"


def test_per_model_backend_overrides_the_process_default():
    import numpy as np

    from fastmlp import MLP

    X = np.random.default_rng(0).standard_normal((20, 3))
    y = (X[:, 0] > 0).astype(int)
    model = MLP((3,), epochs=1, backend="numpy").partial_fit(X, y)
    assert model.backend_ == "numpy"
    with pytest.raises(ValueError, match="numba, numpy"):
        MLP(backend="torch").fit(X, y)


def test_import_compiles_nothing():
    code = ("import fastmlp, fastmlp.kernels.numba_core as c\n"
            "from numba.core.registry import CPUDispatcher\n"
            "ds = [v for v in vars(c).values() if isinstance(v, CPUDispatcher)]\n"
            "print(len(ds), sum(len(d.signatures) for d in ds))")
    out = run(code)
    n, compiled = map(int, out.stdout.split())
    assert n > 10 and compiled == 0


def test_warmup_then_fit_compiles_nothing_more():
    code = ("import numpy as np, fastmlp, fastmlp.kernels.numba_core as c\n"
            "fastmlp.warmup()\n"
            "before = len(c.train_epoch.signatures) + len(c.predict_rows.signatures)\n"
            "X = np.random.default_rng(0).standard_normal((50, 4))\n"
            "for dt in ('float32', 'float64'):\n"
            "    for act in ('relu', 'tanh', 'sigmoid', 'identity'):\n"
            "        fastmlp.MLP((3, 2), act, dtype=dt, epochs=1).partial_fit(X, X[:, 0] > 0).predict(X)\n"
            "        fastmlp.MLP((3,), act, dtype=dt, solver='sgd').partial_fit(X, X[:, :2]).predict(X)\n"
            "print(before, len(c.train_epoch.signatures) + len(c.predict_rows.signatures))")
    out = run(code)
    assert out.returncode == 0, out.stderr
    before, after = map(int, out.stdout.split())
    assert before == after == 4


def test_unwritable_cache_directory_falls_back_with_a_warning(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    locked = blocker / "cache"  # cannot be created, not even by root
    code = ("import warnings\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    import numpy as np, fastmlp\n"
            "X = np.random.default_rng(0).standard_normal((20, 3))\n"
            "print(fastmlp.MLP((3,), epochs=1).partial_fit(X, X[:, 0] > 0).n_iter_)\n"
            "print(sum('not writable' in str(x.message) for x in w))")
    out = run(code, NUMBA_CACHE_DIR=str(locked), XDG_CACHE_HOME=str(tmp_path / "xdg"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "1"]
    cached = list((tmp_path / "xdg" / "fastmlp" / "numba").rglob("*.nbi"))
    assert cached, "the kernels were not cached in the fallback directory"


def test_verbose_announces_kernel_preparation_once():
    code = ("import numpy as np, fastmlp\n"
            "X = np.random.default_rng(0).standard_normal((40, 3))\n"
            "for _ in range(2):\n"
            "    fastmlp.MLP((3,), epochs=2, verbose=True).partial_fit(X, X[:, 0] > 0)\n")
    out = run(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("preparing the numba kernels for float32") == 1
    assert out.stdout.count("kernels ready in") == 1
    assert out.stdout.count("epoch 1: loss") == 2
