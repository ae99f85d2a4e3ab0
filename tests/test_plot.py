"""Learning curves with matplotlib (Agg backend), and the error without it."""

import subprocess
import sys
import warnings

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import matplotlib.image  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

import fastmlp  # noqa: E402
from fastmlp import MLP  # noqa: E402
from fastmlp.plot import learning_curves, save_learning_curves  # noqa: E402


def data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    return X, (X[:, 0] - X[:, 2] > 0).astype(np.int64)


def fit(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastmlp.ConvergenceWarning)
        return model.fit(X, y)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_loss_and_validation_score_per_epoch_on_two_axes():
    X, y = data()
    model = fit(MLP((8,), epochs=12, validation=0.2, tol=0.0, patience=100, random_state=0),
                X, y)
    ax = learning_curves(model, title="test run")
    assert ax.get_title() == "test run"
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "training loss"
    (loss,) = ax.get_lines()
    assert np.array_equal(loss.get_xdata(), np.arange(1, 13))
    assert np.array_equal(loss.get_ydata(), model.loss_curve_)
    twin = ax.figure.axes[-1]
    assert twin is not ax and twin.get_ylabel() == "validation accuracy"
    score, best = twin.get_lines()
    assert np.array_equal(score.get_ydata(), model.validation_scores_)
    top = int(np.argmax(model.validation_scores_))
    assert best.get_xdata()[0] == top + 1
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["training loss", "validation accuracy",
                      f"best: {model.validation_scores_[top]:.4f} (epoch {top + 1})"]


def test_without_validation_one_axis_and_the_given_one():
    X, y = data()
    model = fit(MLP((8,), epochs=5, random_state=0), X, y)
    fig, ax = plt.subplots()
    assert learning_curves(model, ax, log_loss=True) is ax
    assert fig.axes == [ax]
    assert ax.get_yscale() == "log"
    assert np.array_equal(ax.get_lines()[0].get_ydata(), model.loss_curve_)


def test_a_regressor_shows_r2():
    X, _ = data()
    model = fit(MLP((8,), epochs=6, validation=0.2, random_state=0), X, X[:, 0] * 2.0)
    ax = learning_curves(model)
    assert ax.figure.axes[-1].get_ylabel() == "validation R\u00b2"


def test_scikit_learn_drop_in_with_early_stopping():
    pytest.importorskip("sklearn")
    from fastmlp.sklearn import MLPClassifier

    X, y = data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MLPClassifier((8,), max_iter=15, early_stopping=True, random_state=0).fit(X, y)
    ax = learning_curves(model)
    assert np.array_equal(ax.get_lines()[0].get_ydata(), model.loss_curve_)
    assert np.array_equal(ax.figure.axes[-1].get_lines()[0].get_ydata(),
                          model.validation_scores_)


def test_save_writes_an_image_of_the_figure_size(tmp_path):
    X, y = data()
    model = fit(MLP((8,), epochs=5, validation=0.2, random_state=0), X, y)
    path = tmp_path / "curves.png"
    assert save_learning_curves(model, path, dpi=50) == path
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == (200, 320)  # 6.4 x 4.0 inches at 50 dots per inch
    assert image[..., :3].std() > 0.05  # not a blank canvas
    svg = tmp_path / "curves.svg"
    save_learning_curves(model, svg)
    assert svg.read_text().lstrip().startswith("<?xml")


def test_models_without_a_curve_are_refused():
    X, y = data()
    with pytest.raises(fastmlp.NotFittedError, match="not fitted"):
        learning_curves(MLP(), None)
    lbfgs = fit(MLP((4,), solver="lbfgs", epochs=20), X, y)
    with pytest.raises(ValueError, match="lbfgs"):
        learning_curves(lbfgs)


def test_without_matplotlib_the_error_says_what_to_install():
    code = ("import sys\n"
            "sys.modules['matplotlib'] = None\n"
            "import numpy as np, fastmlp\n"
            "from fastmlp.plot import learning_curves\n"
            "X = np.random.default_rng(0).standard_normal((30, 2))\n"
            "m = fastmlp.MLP((2,), epochs=2, backend='numpy').fit(X, X[:, 0] > 0)\n"
            "try:\n"
            "    learning_curves(m)\n"
            "except ImportError as e:\n"
            "    print(e)\n")
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "pip install 'fastmlp[plot]'" in out.stdout
    assert "matplotlib" in out.stdout


def test_importing_the_module_imports_no_matplotlib():
    code = "import sys, fastmlp.plot; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "False", out.stderr
