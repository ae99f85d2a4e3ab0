"""Backend selection, import cost and the warm-up, each in a fresh process."""

import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
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


def test_import_loads_no_backend_and_no_extra():
    """``import fastmlp`` imports neither numba nor the optional libraries (onnx
    and skl2onnx included), and importing the compiled core compiles no kernel (it
    reads the record of its cache, ``_frozen``, and nothing else)."""
    code = ("import sys, fastmlp\n"
            "heavy = ['numba', 'sklearn', 'matplotlib', 'tqdm', 'pandas', 'pyarrow', 'dask', "
            "'torch', 'scipy.optimize', 'onnx', 'skl2onnx', 'onnxruntime']\n"
            "print(sorted(m for m in heavy if m in sys.modules))\n"
            "import fastmlp.kernels.numba_core as c\n"
            "from numba.core.registry import CPUDispatcher\n"
            "ds = [v for v in vars(c).values() if isinstance(v, CPUDispatcher) "
            "and v is not c._frozen]\n"
            "print(len(ds), sum(len(d.signatures) for d in ds), len(c._frozen.signatures))")
    out = run(code)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.strip().splitlines()
    assert first == "[]"
    n, compiled, record = map(int, second.split())
    assert n > 10 and compiled == 0 and record == 1


def test_warmup_then_dense_fits_compile_nothing_more():
    """warmup() prepares what a fit and a predict of dense data need, for every
    activation, output and solver of MLP and the scikit-learn drop-in, every
    batch size, writeable or read-only X."""
    code = ("import warnings; warnings.simplefilter('ignore')\n"
            "import numpy as np, fastmlp, fastmlp.kernels.numba_core as c\n"
            "from fastmlp.sklearn import MLPClassifier, MLPRegressor\n"
            "def count():\n"  # every compiled function of every file of the core
            "    return sum(len(v.signatures) for v in c._dispatchers())\n"
            "fastmlp.warmup()\n"
            "before = count()\n"
            "X = np.random.default_rng(0).standard_normal((50, 4))\n"
            "for dt in ('float32', 'float64'):\n"
            "    for act in ('relu', 'tanh', 'sigmoid', 'identity'):\n"
            "        for solver in ('adam', 'sgd', 'lbfgs'):\n"
            "            fastmlp.MLP((3, 2), act, solver=solver, dtype=dt, epochs=2).fit(X, X[:, 0] > 0).predict(X)\n"
            "            fastmlp.MLP((3,), act, solver=solver, dtype=dt, epochs=2).fit(X, X[:, :2]).predict(X)\n"
            "    sk = dict(max_iter=2, dtype=dt)\n"
            "    MLPClassifier((3,), **sk).fit(X, X[:, 0] > 0).predict(X)\n"
            "    MLPClassifier((3,), **sk).fit(X, X[:, :3] > 0).predict(X)\n"
            "    MLPRegressor(hidden_layer_sizes=(3,), loss='poisson', **sk).fit(X, np.abs(X[:, 0])).predict(X)\n"
            "    Xr = X.astype(dt)\n"  # read-only input, as a pandas frame or a memory map gives
            "    Xr.flags.writeable = False\n"
            "    for batch in (1, 8, 50):\n"
            "        fastmlp.MLP((3,), solver='sgd', batch_size=batch, dtype=dt, epochs=1).fit(Xr, Xr[:, 0] > 0).predict(Xr[:1])\n"
            "print(before, count())")
    out = run(code)
    assert out.returncode == 0, out.stderr
    before, after = map(int, out.stdout.split())
    assert before == after > 0


def test_unwritable_numba_cache_dir_falls_back_with_a_warning(tmp_path):
    """NUMBA_CACHE_DIR that cannot be created: numba caches the kernels in the next
    place it can write, and fastmlp says where."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    locked = blocker / "cache"  # cannot be created, not even by root
    code = ("import warnings\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    import numpy as np, fastmlp\n"
            "    X = np.random.default_rng(0).standard_normal((20, 3))\n"
            "    print(fastmlp.MLP((3,), epochs=1).partial_fit(X, X[:, 0] > 0).n_iter_)\n"
            "messages = [str(x.message) for x in w if 'not writable' in str(x.message)]\n"
            "print(len(messages))\n"
            "print(messages[0].split(' in ')[-1].split(' instead')[0] if messages else '')")
    out = run(code, NUMBA_CACHE_DIR=str(locked), XDG_CACHE_HOME=str(tmp_path / "xdg"))
    assert out.returncode == 0, out.stderr
    n_iter, n_warnings, where = out.stdout.strip().splitlines()
    assert (n_iter, n_warnings) == ("1", "1")
    assert list(pathlib.Path(where).rglob("*.nbi")), f"nothing cached in {where}"


def test_no_writable_cache_anywhere_compiles_in_memory_with_a_warning(tmp_path):
    """A copy of the package whose kernel directory cannot hold a __pycache__, no
    usable NUMBA_CACHE_DIR and no writable home: the kernels compile in memory."""
    root = pathlib.Path(__file__).resolve().parents[1]
    shutil.copytree(root / "fastmlp", tmp_path / "pkg" / "fastmlp",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(root / "kernels", tmp_path / "pkg" / "fastmlp" / "kernels",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "pkg" / "fastmlp" / "kernels" / "numba_core" / "__pycache__").write_text(
        "a file, not a dir")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code = ("import sys, warnings\n"
            "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]\n"
            f"sys.path.insert(0, {str(tmp_path / 'pkg')!r})\n"
            "sys.dont_write_bytecode = True\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    import numpy as np, fastmlp\n"
            "    X = np.random.default_rng(0).standard_normal((20, 3))\n"
            "    print(fastmlp.MLP((3,), epochs=1).partial_fit(X, X[:, 0] > 0).n_iter_)\n"
            "print(fastmlp.__file__.startswith(sys.path[0]))\n"
            "print(sum('no writable cache directory' in str(x.message) for x in w))")
    out = run(code, NUMBA_CACHE_DIR=str(blocker / "cache"), HOME=str(blocker),
              XDG_CACHE_HOME=str(blocker / "xdg"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "True", "1"]


@pytest.mark.parametrize("hidden, rows, batch, path", [
    ((3,), 40, 16, "train_epoch"),  # small batches: each batch at once
    ((3,), 400, 100, "train_columns"),  # a narrow network on batches of 100 rows
    ((20,), 400, 100, "train_blocks"),  # in row blocks
])
def test_verbose_announces_kernel_preparation_once(hidden, rows, batch, path):
    from fastmlp.kernels import api, codes

    sizes = np.array([3, *hidden, 2])
    assert api.epoch_path(np.empty((rows, 3)), sizes, batch, codes.SOFTMAX, codes.ADAM) == path
    code = ("import numpy as np, fastmlp\n"
            f"X = np.random.default_rng(0).standard_normal(({rows}, 3))\n"
            "for _ in range(2):\n"
            f"    fastmlp.MLP({hidden}, batch_size={batch}, epochs=2, verbose=True)"
            ".partial_fit(X, X[:, 0] > 0)\n")
    out = run(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("preparing the numba kernels for float32") == 1
    assert out.stdout.count("kernels ready in") == 1
    assert out.stdout.count("epoch 1: loss") == 2
