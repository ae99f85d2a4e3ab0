"""The ``fastmlp`` command line, run as users run it: in a subprocess, on real
files (``python -m fastmlp`` and the installed console script)."""

import csv
import gzip
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

import fastmlp
from customers import customers, frame, reference_encoder, write_csv
from fastmlp.datasets import (BREAST_CANCER_CLASSES, BREAST_CANCER_FEATURES, load_breast_cancer,
                              standardize)

DATA = pathlib.Path(__file__).parent / "data"
SCRIPT = shutil.which("fastmlp", path=os.path.dirname(sys.executable))


def run(*args, cwd=None, script=False, env=None):
    """Run the command line; returns the CompletedProcess (text output)."""
    command = [SCRIPT] if script else [sys.executable, "-m", "fastmlp"]
    return subprocess.run(command + [str(a) for a in args], capture_output=True, text=True,
                          cwd=cwd, timeout=300, env=None if env is None else {**os.environ, **env})


def ok(*args, **kwargs):
    out = run(*args, **kwargs)
    assert out.returncode == 0, out.stderr
    return out


def read_csv(text):
    rows = list(csv.reader(text.splitlines()))
    return rows[0], rows[1:]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A directory with the exported data sets."""
    path = tmp_path_factory.mktemp("cli")
    ok("demo", "--export", path)
    return path


@pytest.fixture(scope="module")
def trained(work):
    """(stdout of train, model path, plot path) of a breast-cancer model."""
    model, plot = work / "model.npz", work / "curves.png"
    out = ok("train", work / "breast_cancer.csv", "--target", "diagnosis", "--hidden", "16",
             "--epochs", "60", "--out", model, "--plot", plot)
    return out, model, plot


def expected_predictions(model_path, X):
    """The Python API's predictions for raw X, scaled with statistics this test
    computes itself from the raw data."""
    model = fastmlp.load(model_path)
    return model.predict(standardize(load_breast_cancer()[0], X)[1]), model


# ------------------------------------------------------------------ basics
def test_help_lists_every_command():
    out = ok("--help")
    for command in ("train", "predict", "info", "export", "doctor", "demo", "bench", "config"):
        assert command in out.stdout
    assert ok("--version").stdout.strip() == f"fastmlp {fastmlp.__version__}"


@pytest.mark.skipif(SCRIPT is None, reason="the console script is installed by pip install")
def test_the_console_script_is_the_same_command(trained):
    _, model, _ = trained
    assert ok("info", model, script=True).stdout == ok("info", model).stdout


def test_no_command_and_unknown_options_exit_2():
    out = run()
    assert out.returncode == 2 and "usage" in out.stderr
    out = run("train", "x.csv", "--target", "y", "--no-such-option")
    assert out.returncode == 2 and "unrecognized arguments: --no-such-option" in out.stderr
    out = run("train", "x.csv", "--target", "y", "--hidden", "8,x")
    assert out.returncode == 2 and "--hidden" in out.stderr
    out = run("train", "x.csv", "--target", "y", "--max-categories", "0")
    assert out.returncode == 2 and "--max-categories: must be >= 1, got 0" in out.stderr
    out = run("train", "x.csv", "--target", "y", "--impute", "mean")
    assert out.returncode == 2 and "--impute: invalid choice: 'mean'" in out.stderr


def test_export_writes_the_bundled_table_with_names(work):
    header, rows = read_csv((work / "breast_cancer.csv").read_text())
    assert header == list(BREAST_CANCER_FEATURES) + ["diagnosis"]
    X, y = load_breast_cancer()
    assert np.array_equal(np.array([r[:-1] for r in rows], dtype=float), X)
    assert [r[-1] for r in rows] == [BREAST_CANCER_CLASSES[k] for k in y]
    header, rows = read_csv((work / "digits.csv").read_text())
    assert header[-1] == "digit" and len(header) == 65 and len(rows) == 1797


# ------------------------------------------------------------------- train
def test_train_reports_scores_and_keeps_the_preprocessing(work, trained):
    out, model_path, _ = trained
    text = out.stdout
    assert "569 rows, 30 features, target 'diagnosis'" in text
    assert "classification, 2 classes: benign, malignant" in text
    assert f"model written to {model_path}" in text
    model, extra = fastmlp.load(model_path, extra=True)
    X, y = load_breast_cancer()
    assert list(model.classes_) == ["benign", "malignant"]  # the labels, as text
    assert model.verbose is False  # shows progress in the command line only
    pre = extra["preprocessing"]
    assert pre["version"] == 2 and pre["impute"] == "median"
    assert [c["name"] for c in pre["columns"]] == list(BREAST_CANCER_FEATURES)
    assert {c["kind"] for c in pre["columns"]} == {"numeric"}
    assert not any(c["indicator"] for c in pre["columns"])  # no empty cells
    assert pre["target"] == "diagnosis" and pre["scale"] == "standard"
    assert np.allclose([c["mean"] for c in pre["columns"]], X.mean(axis=0), rtol=1e-12)
    assert np.allclose([c["scale"] for c in pre["columns"]], X.std(axis=0), rtol=1e-12)
    assert np.array_equal([c["fill"] for c in pre["columns"]], np.median(X, axis=0))
    assert "encoding:" not in text  # nothing to one-hot encode or fill
    labels = np.array([BREAST_CANCER_CLASSES[k] for k in y])
    accuracy = model.score(standardize(X), labels)
    assert f"accuracy on all 569 rows of {work / 'breast_cancer.csv'}: {accuracy:.4f}" in text
    held = 569 - model.t_ // model.n_iter_
    assert (f"validation accuracy: {model.best_validation_score_:.4f} (best epoch, on the "
            f"{held} rows held out from training)") in text
    assert accuracy > 0.9
    # the progress went to stderr: the first epoch and the last one at least
    assert "epoch 1: loss" in out.stderr and f"epoch {model.n_iter_}: loss" in out.stderr


def test_train_draws_the_learning_curves(trained):
    matplotlib = pytest.importorskip("matplotlib")
    import matplotlib.image

    _, model, plot = trained
    assert f"learning curves written to {plot}" in trained[0].stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.image.imread(plot).shape[:2] == (400, 640)


def test_numeric_targets_follow_the_task_rule(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 3))
    table = tmp_path / "numbers.csv"
    with open(table, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["a", "b", "c", "label", "value"])
        for row in X:
            w.writerow([*row, int(row[0] > 0), f"{2.5 * row[1] + 0.1:.6f}"])
    common = ["--epochs", "5", "--hidden", "4", "--out", tmp_path / "m.npz"]
    out = ok("train", table, "--target", "label", "--drop", "value", *common)
    assert "classification, 2 classes: 0, 1" in out.stdout
    assert fastmlp.load(tmp_path / "m.npz").n_features_in_ == 3
    out = ok("train", table, "--target", "value", "--drop", "label", *common)
    assert "task: regression" in out.stdout and "R^2 on all 120 rows" in out.stdout
    out = ok("train", table, "--target", "label", "--task", "regression", *common)
    assert "task: regression" in out.stdout
    header, rows = read_csv(ok("predict", tmp_path / "m.npz", table).stdout)
    assert header == ["label"] and len(rows) == 120


def test_a_training_run_that_overflows_exits_1_with_one_line(tmp_path):
    table = tmp_path / "huge.csv"
    rng = np.random.default_rng(0)
    X = rng.standard_normal((100, 3)) * 1e3
    np.savetxt(table, np.column_stack([X, X[:, 0] > 0]), delimiter=",", header="a,b,c,y",
               comments="", fmt=["%.6f"] * 3 + ["%d"])
    out = run("train", table, "--target", "y", "--scale", "none", "--activation", "identity",
              "--solver", "sgd", "--lr", "10", "--validation", "0")
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1].startswith("fastmlp: training failed: training "
                                                          "diverged")
    assert "Traceback" not in out.stderr


# ----------------------------------------------------------------- predict
def test_predict_writes_labels_like_the_python_api(trained):
    _, model_path, _ = trained
    work = model_path.parent
    out = ok("predict", model_path, work / "breast_cancer.csv")
    header, rows = read_csv(out.stdout)
    assert header == ["diagnosis"]
    expected, _ = expected_predictions(model_path, load_breast_cancer()[0])
    assert [r[0] for r in rows] == list(expected)


def test_predict_picks_the_columns_by_name(trained, tmp_path):
    """Columns in another order, an extra text column and no target: the same
    predictions."""
    _, model_path, _ = trained
    X, _ = load_breast_cancer()
    order = np.random.default_rng(1).permutation(30)
    shuffled = tmp_path / "shuffled.csv"
    with open(shuffled, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["note"] + [BREAST_CANCER_FEATURES[j] for j in order])
        for i, row in enumerate(X):
            w.writerow([f"patient {i}"] + [repr(float(row[j])) for j in order])
    header, rows = read_csv(ok("predict", model_path, shuffled).stdout)
    expected, _ = expected_predictions(model_path, X)
    assert [r[0] for r in rows] == list(expected)


def test_predict_proba_one_column_per_class(trained):
    _, model_path, _ = trained
    header, rows = read_csv(ok("predict", model_path, model_path.parent / "breast_cancer.csv",
                               "--proba").stdout)
    assert header == ["benign", "malignant"]
    P = np.array(rows, dtype=float)
    assert np.allclose(P.sum(axis=1), 1.0, atol=1e-6)
    expected, model = expected_predictions(model_path, load_breast_cancer()[0])
    assert list(model.classes_[P.argmax(axis=1)]) == list(expected)


def test_predict_to_a_file(trained, tmp_path):
    _, model_path, _ = trained
    target = tmp_path / "predictions.csv"
    out = ok("predict", model_path, model_path.parent / "breast_cancer.csv", "--out", target)
    assert out.stdout == ""
    assert "569 predictions written to" in out.stderr
    header, rows = read_csv(target.read_text())
    assert header == ["diagnosis"] and len(rows) == 569


def test_gzipped_csv_and_parquet_read_like_csv(trained, tmp_path):
    _, model_path, _ = trained
    source = model_path.parent / "breast_cancer.csv"
    plain = ok("predict", model_path, source).stdout
    zipped = tmp_path / "data.csv.gz"
    zipped.write_bytes(gzip.compress(source.read_bytes()))
    assert ok("predict", model_path, zipped).stdout == plain
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    X, y = load_breast_cancer()
    columns = {name: X[:, j] for j, name in enumerate(BREAST_CANCER_FEATURES)}
    columns["diagnosis"] = [BREAST_CANCER_CLASSES[k] for k in y]
    parquet = tmp_path / "data.parquet"
    pq.write_table(pa.table(columns), parquet)
    assert ok("predict", model_path, parquet).stdout == plain
    out = ok("train", parquet, "--target", "diagnosis", "--epochs", "3", "--hidden", "4")
    assert "2 classes: benign, malignant" in out.stdout


def test_older_model_files_take_the_columns_in_order(tmp_path):
    """Model files written by fastmlp 0.1 keep no preprocessing: DATA's columns
    are the features, in order."""
    expected = json.loads((DATA / "v1-expected.json").read_text())
    X = np.load(DATA / "v1-inputs.npy")
    table = tmp_path / "inputs.csv"
    np.savetxt(table, X, delimiter=",", header="p,q,r,s", comments="", fmt="%.17g")
    header, rows = read_csv(ok("predict", DATA / "v1-classifier-adam-float32.npz",
                               table).stdout)
    assert header == ["prediction"]
    assert [r[0] for r in rows] == expected["v1-classifier-adam-float32"]["predict"]
    header, rows = read_csv(ok("predict", DATA / "v1-regressor-sgd-float64.npz", table).stdout)
    assert header == ["prediction_0", "prediction_1"]
    assert np.allclose(np.array(rows, dtype=float),
                       expected["v1-regressor-sgd-float64"]["predict"], rtol=1e-12)
    wide = tmp_path / "wide.csv"
    np.savetxt(wide, np.column_stack([X, X[:, 0]]), delimiter=",", header="p,q,r,s,t",
               comments="")
    out = run("predict", DATA / "v1-classifier-adam-float32.npz", wide)
    assert out.returncode == 2
    assert "the model needs 4, the file has 5" in out.stderr


# --------------------------------------------------- tables as they come
@pytest.fixture(scope="module")
def churn(tmp_path_factory):
    """(directory, header, rows, model path) of a customer table with text,
    boolean and integer columns, empty cells and two rows without a target,
    trained with the default options."""
    path = tmp_path_factory.mktemp("churn")
    header, rows = customers(300, seed=11)
    rows[10][-1] = rows[20][-1] = ""
    write_csv(path / "customers.csv", header, rows)
    out = ok("train", path / "customers.csv", "--target", "churn", "--hidden", "16",
             "--epochs", "30", "--out", path / "m.npz")
    return path, header, rows, out


def test_text_columns_and_gaps_train_with_the_defaults(churn):
    path, header, rows, out = churn
    kept = [r for r in rows if r[-1]]
    cities = sorted({r[3] for r in kept})
    assert "" in cities  # the table has empty city cells
    n_features = 2 + 2 + 1 + len(cities) + 2 + 1  # age, income (+indicators), score, ...
    assert f"298 rows, {n_features} features, target 'churn'" in out.stdout
    assert "note: 2 rows with an empty target 'churn' left out of training" in out.stdout
    assert (f"encoding: one-hot: city ({len(cities)}), member (2); empty cells filled with the "
            "median, plus an indicator: age, income") in out.stdout
    model, extra = fastmlp.load(path / "m.npz", extra=True)
    assert model.n_features_in_ == n_features
    columns = {c["name"]: c for c in extra["preprocessing"]["columns"]}
    assert columns["city"] == {"name": "city", "kind": "categorical", "categories": cities}
    incomes = np.array([float(r[1]) for r in kept if r[1]])
    filled = np.array([float(r[1]) if r[1] else np.median(incomes) for r in kept])
    assert columns["income"]["fill"] == np.median(incomes) and columns["income"]["indicator"]
    assert np.isclose(columns["income"]["mean"], filled.mean(), rtol=1e-12)
    assert np.isclose(columns["income"]["scale"], filled.std(), rtol=1e-12)
    assert columns["plan"]["kind"] == "numeric"  # integers are numbers unless --categorical
    assert "churn" not in columns


def test_predict_encodes_a_raw_table_as_scikit_learn_would(churn, tmp_path):
    """Columns reordered, an extra column, unseen cities, a gap where training
    had none: the predictions of the model on scikit-learn's encoding of the
    same rows (fitted on the training rows), and a warning naming the count."""
    pytest.importorskip("sklearn")
    path, header, rows, _ = churn
    kept = [r for r in rows if r[-1]]
    new = [list(r) for r in rows[:40]]
    new[3][3] = new[8][3] = "tokyo"
    new[5][2] = ""  # score: no gaps in training
    order = [5, 3, 1, 0, 2, 4]  # no target
    new_path = write_csv(tmp_path / "new.csv", ["id"] + [header[j] for j in order],
                         [[f"x{i}"] + [r[j] for j in order] for i, r in enumerate(new)])
    out = ok("predict", path / "m.npz", new_path)
    assert out.stderr == ("fastmlp: warning: " + str(new_path) + ": 2 rows of column 'city' "
                          "hold categories not seen in training ('tokyo'); they are encoded as "
                          "all zeros\n")
    got = [r[0] for r in read_csv(out.stdout)[1]]
    names = header[:-1]
    encoder = reference_encoder(frame(names, [r[:-1] for r in kept]).astype({"plan": float}),
                                numeric=("age", "income", "score", "plan"))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        X = encoder.transform(frame(names, [r[:-1] for r in new]).astype({"plan": float}))
    model = fastmlp.load(path / "m.npz")
    assert got == list(model.predict(X))


def test_info_lists_each_columns_encoding(churn):
    path, _, rows, _ = churn
    text = ok("info", path / "m.npz").stdout
    assert "preprocessing: scaling standard, empty cells: median and indicator" in text
    assert "columns (6) -> 15 features:" in text
    assert "  city: categorical, one-hot over '', 'berlin', 'madrid', 'oslo', 'paris', 'rome'" \
        in text
    assert "  member: categorical, one-hot over 'false', 'true'" in text
    incomes = np.median([float(r[1]) for r in rows if r[1] and r[-1]])
    line = next(l for l in text.splitlines() if l.startswith("  income:"))
    assert line.endswith(f"empty cells filled with {incomes:.6g}, with an empty-cell indicator")


def test_doctor_takes_the_raw_table(churn):
    path, _, _, _ = churn
    out = ok("doctor", path / "customers.csv", "--target", "churn", "--hidden", "8",
             "--probe-epochs", "5")
    assert "on 298 rows x 15 features" in out.stdout
    out = ok("doctor", path / "customers.csv", "--model", path / "m.npz", "--probe-epochs", "5")
    assert "fitted model:" in out.stdout


def test_categorical_integers_and_id_columns(churn, tmp_path):
    path, header, rows, _ = churn
    model = tmp_path / "plan.npz"
    ok("train", path / "customers.csv", "--target", "churn", "--categorical", "plan",
       "--epochs", "2", "--hidden", "4", "--out", model)
    assert "  plan: categorical, one-hot over '1', '2', '3'" in ok("info", model).stdout
    ids = write_csv(tmp_path / "ids.csv", ["customer"] + header,
                    [[f"c{i:04d}"] + r for i, r in enumerate(rows)])
    out = run("train", ids, "--target", "churn", "--epochs", "2")
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert ("column 'customer' has 298 distinct values, more than --max-categories 50: an ID or "
            "free text, not a category; leave it out with --drop customer") in out.stderr
    ok("train", ids, "--target", "churn", "--drop", "customer", "--epochs", "2", "--hidden", "4")


def test_tables_need_no_scikit_learn(churn, tmp_path):
    """The encoding is fastmlp's own: train and predict run with scikit-learn
    made unimportable."""
    path, _, _, _ = churn
    code = ("import sys\n"
            "sys.modules['sklearn'] = None\n"
            "from fastmlp.cli import main\n"
            f"status = main(['train', {str(path / 'customers.csv')!r}, '--target', 'churn', "
            f"'--epochs', '2', '--hidden', '4', '--out', {str(tmp_path / 'm.npz')!r}])\n"
            f"status += main(['predict', {str(tmp_path / 'm.npz')!r}, "
            f"{str(path / 'customers.csv')!r}, '--out', {str(tmp_path / 'p.csv')!r}])\n"
            "sys.exit(status)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    header, rows = read_csv((tmp_path / "p.csv").read_text())
    assert header == ["churn"] and len(rows) == 300


def test_a_model_file_of_the_previous_format_predicts_as_it_did(tmp_path):
    """A model written by the command line before text columns and gaps (its
    preprocessing version 1, in tests/data with the probabilities it gave)."""
    model = DATA / "cli-preprocessing-v1.npz"
    table = DATA / "cli-preprocessing-v1.csv"
    expected = (DATA / "cli-preprocessing-v1-proba.csv").read_text()
    got = ok("predict", model, table, "--proba").stdout
    # the same columns and classes, the same probabilities up to float32 rounding (the
    # products may be summed in another order than when the file was written)
    assert got.splitlines()[0] == expected.splitlines()[0]
    np.testing.assert_allclose(np.loadtxt(io.StringIO(got), delimiter=",", skiprows=1),
                               np.loadtxt(io.StringIO(expected), delimiter=",", skiprows=1),
                               rtol=1e-5, atol=1e-8)
    header, rows = read_csv(table.read_text())
    reordered = write_csv(tmp_path / "r.csv", header[::-1], [r[::-1] for r in rows])
    assert ok("predict", model, reordered, "--proba").stdout == got  # columns found by name
    info = ok("info", model).stdout
    assert "empty cells: refused" in info and "columns (3) -> 3 features:" in info
    rows[4][1] = ""
    gap = write_csv(tmp_path / "gap.csv", header, rows)
    out = run("predict", model, gap)
    assert out.returncode == 2
    assert "empty cell in row 5, column 'x2'" in out.stderr


def test_parquet_with_booleans_and_nulls(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    a = rng.standard_normal(60)
    flag = rng.random(60) < 0.5
    a_cells = [None if i % 7 == 0 else float(v) for i, v in enumerate(a)]
    table = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": a_cells, "flag": flag.tolist(),
                             "y": np.where(flag, "on", "off").tolist()}), table)
    out = ok("train", table, "--target", "y", "--epochs", "50", "--hidden", "4",
             "--out", tmp_path / "m.npz", "--validation", "0", "--lr", "0.05")
    assert "one-hot: flag (2)" in out.stdout and "plus an indicator: a" in out.stdout
    assert "accuracy on all 60 rows" in out.stdout
    csv_table = write_csv(tmp_path / "t.csv", ["flag", "a"],
                          [["true" if f else "false", "" if v is None else repr(v)]
                           for f, v in zip(flag, a_cells)])
    header, rows = read_csv(ok("predict", tmp_path / "m.npz", csv_table).stdout)
    assert [r[0] for r in rows] == np.where(flag, "on", "off").tolist()


def test_defaults_match_scikit_learns_pipeline_on_a_customer_table(tmp_path):
    """Held-out accuracy of fastmlp train's defaults on a 3,000-row table with
    text columns and gaps, against scikit-learn's ColumnTransformer(OneHotEncoder,
    SimpleImputer + StandardScaler) + MLPClassifier: within 1 point, each the
    mean over three seeds (one seed's accuracy varies by about a point)."""
    pytest.importorskip("sklearn")
    import warnings

    from sklearn.compose import ColumnTransformer
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.impute import SimpleImputer
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    header, rows = customers(3000, seed=0)
    train, test = rows[:2000], rows[2000:]
    write_csv(tmp_path / "train.csv", header, train)
    write_csv(tmp_path / "test.csv", header, test)
    truth = np.array([r[-1] for r in test])
    ours, theirs = [], []
    for seed in range(3):
        ok("train", tmp_path / "train.csv", "--target", "churn", "--seed", seed,
           "--out", tmp_path / "m.npz")
        predicted = [r[0] for r in read_csv(ok("predict", tmp_path / "m.npz",
                                               tmp_path / "test.csv").stdout)[1]]
        ours.append(np.mean(np.array(predicted) == truth))
        numbers = ["age", "income", "score", "plan"]
        pipeline = make_pipeline(
            ColumnTransformer([
                ("numbers", make_pipeline(SimpleImputer(strategy="median", add_indicator=True),
                                          StandardScaler()), numbers),
                ("text", OneHotEncoder(handle_unknown="ignore"), ["city", "member"])]),
            MLPClassifier(random_state=seed))
        features = frame(header, train).astype({"plan": float})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            pipeline.fit(features.drop(columns="churn"), features["churn"])
        held_out = frame(header, test).astype({"plan": float})
        theirs.append(pipeline.score(held_out.drop(columns="churn"), held_out["churn"]))
    assert np.mean(theirs) > 0.75  # a table the pipeline learns
    assert abs(np.mean(ours) - np.mean(theirs)) <= 0.01, (ours, theirs)


# ------------------------------------------------------------------ export
def onnx_session(path):
    ort = pytest.importorskip("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def graph_inputs(session, header, rows):
    """The graph's inputs from a file's columns, as a caller feeds them: the
    cells as they are in the file, as float32 (NaN for an empty cell) or as
    strings, as the graph declares each input."""
    feeds = {}
    for graph_input in session.get_inputs():
        cells = [r[header.index(graph_input.name)] for r in rows]
        if graph_input.type == "tensor(string)":
            feeds[graph_input.name] = np.array(cells, dtype=object).reshape(-1, 1)
        else:
            assert graph_input.type == "tensor(float)"
            feeds[graph_input.name] = np.array([float(c) if c else np.nan for c in cells],
                                               dtype=np.float32).reshape(-1, 1)
    return feeds


def test_export_onnx_with_the_preprocessing_gives_the_labels_of_predict(churn, tmp_path):
    """The graph, fed a file's columns as they are (True/False as written, empty
    cells, an NA, an unseen city, a gap where training had none, the columns
    reordered with an extra one), gives fastmlp predict's labels and
    probabilities."""
    pytest.importorskip("onnx")
    path, header, rows, _ = churn
    out = ok("export", path / "m.npz", "--onnx", tmp_path / "m.onnx")
    assert f"written to {tmp_path / 'm.onnx'} (opset 21)" in out.stdout
    assert ("inputs: 6, one per column, each [N, 1]; float32 (NaN for an empty cell): age, "
            "income, score, plan; string: city, member") in out.stdout
    assert "outputs: label, probabilities" in out.stdout
    session = onnx_session(tmp_path / "m.onnx")
    assert [(i.name, i.type, i.shape[1]) for i in session.get_inputs()] == [
        ("age", "tensor(float)", 1), ("income", "tensor(float)", 1),
        ("score", "tensor(float)", 1), ("city", "tensor(string)", 1),
        ("member", "tensor(string)", 1), ("plan", "tensor(float)", 1)]
    assert [o.name for o in session.get_outputs()] == ["label", "probabilities"]

    new = [list(r) for r in rows]
    new[0][3], new[1][3], new[2][3] = "NA", "tokyo", "null"
    new[3][4], new[4][4] = "TRUE", "false"
    new[5][2] = ""  # score had no empty cells in training
    assert {r[4] for r in rows} == {"True", "False"} and any(r[1] == "" for r in rows)
    order = [6, 5, 3, 1, 0, 2, 4]
    new_header = ["id"] + [header[j] for j in order]
    new_rows = [[f"x{i}"] + [r[j] for j in order] for i, r in enumerate(new)]
    table = write_csv(tmp_path / "new.csv", new_header, new_rows)
    labels = [r[0] for r in read_csv(ok("predict", path / "m.npz", table).stdout)[1]]
    classes, proba = read_csv(ok("predict", path / "m.npz", table, "--proba").stdout)
    label, probabilities = session.run(None, graph_inputs(session, new_header, new_rows))
    assert label.tolist() == labels
    assert probabilities.dtype == np.float32 and probabilities.shape == (len(rows), 2)
    np.testing.assert_allclose(probabilities, np.array(proba, dtype=float), rtol=0, atol=1e-5)
    assert classes == ["no", "yes"] and len(set(labels)) == 2


def test_export_onnx_of_a_regression_model(churn, tmp_path):
    """A float64 regressor on the same table (its text target churn a feature):
    the graph's variable is fastmlp predict's value."""
    pytest.importorskip("onnx")
    path, header, rows, _ = churn
    ok("train", path / "customers.csv", "--target", "score", "--hidden", "8", "--epochs", "20",
       "--dtype", "float64", "--out", tmp_path / "r.npz")
    out = ok("export", tmp_path / "r.npz", "--onnx", tmp_path / "r.onnx", "--target-opset", "15")
    assert "(opset 15)" in out.stdout and "outputs: variable" in out.stdout
    assert "string: city, member, churn" in out.stdout
    session = onnx_session(tmp_path / "r.onnx")
    (variable,) = session.run(None, graph_inputs(session, header, rows))
    predicted = np.array(read_csv(ok("predict", tmp_path / "r.npz",
                                     path / "customers.csv").stdout)[1], dtype=float)
    assert variable.dtype == np.float64 and variable.shape == (len(rows), 1)
    assert predicted.std() > 0.01  # not a constant
    np.testing.assert_allclose(variable, predicted, rtol=1e-5, atol=1e-5)


def test_export_onnx_of_a_model_saved_from_python(tmp_path):
    """No preprocessing kept: the plain network, one input X, fed the columns
    predict takes in order."""
    pytest.importorskip("onnx")
    X, y = load_breast_cancer()
    X = standardize(X, X)[1][:200]
    model = fastmlp.MLP((8,), epochs=5, random_state=0)
    with pytest.warns(fastmlp.ConvergenceWarning):  # few epochs, on purpose
        model.fit(X, y[:200])
    model.save(tmp_path / "plain.npz")
    out = ok("export", tmp_path / "plain.npz", "--onnx", tmp_path / "plain.onnx")
    assert "input: X, float32 [N, 30]" in out.stdout
    assert "one input X" in ok("info", tmp_path / "plain.npz").stdout
    session = onnx_session(tmp_path / "plain.onnx")
    assert [(i.name, i.shape[1]) for i in session.get_inputs()] == [("X", 30)]
    label, probabilities = session.run(None, {"X": X.astype(np.float32)})
    table = tmp_path / "plain.csv"
    np.savetxt(table, X, delimiter=",", header=",".join(BREAST_CANCER_FEATURES), comments="",
               fmt="%.17g")
    predicted = [int(r[0]) for r in read_csv(ok("predict", tmp_path / "plain.npz",
                                                table).stdout)[1]]
    assert label.tolist() == predicted
    np.testing.assert_allclose(probabilities, model.predict_proba(X), rtol=0, atol=1e-5)


def test_export_onnx_of_a_model_file_of_the_previous_format(tmp_path):
    """A model written by an earlier command line (numeric columns, no empty
    cells): the graph gives the probabilities it gave."""
    pytest.importorskip("onnx")
    ok("export", DATA / "cli-preprocessing-v1.npz", "--onnx", tmp_path / "v1.onnx")
    session = onnx_session(tmp_path / "v1.onnx")
    header, rows = read_csv((DATA / "cli-preprocessing-v1.csv").read_text())
    classes, proba = read_csv((DATA / "cli-preprocessing-v1-proba.csv").read_text())
    label, probabilities = session.run(None, graph_inputs(session, header, rows))
    np.testing.assert_allclose(probabilities, np.array(proba, dtype=float), rtol=0, atol=1e-5)
    assert label.tolist() == [classes[k] for k in np.argmax(np.array(proba, dtype=float), 1)]


def test_export_errors_exit_2_with_one_line(churn, tmp_path):
    path, _, _, _ = churn

    def refused(args, *words, env=None, code=None):
        if code is None:
            out = run("export", *args)
        else:
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 timeout=120)
        assert out.returncode == 2, out.stdout + out.stderr
        assert out.stderr.startswith("fastmlp: error: ") and out.stderr.count("\n") == 1
        for word in words:
            assert word in out.stderr
        assert not (tmp_path / "out.onnx").exists()

    target = ["--onnx", tmp_path / "out.onnx"]
    refused([tmp_path / "nope.npz", *target], "MODEL file", "does not exist")
    refused([write(tmp_path / "text.npz", "not a model\n"), *target],
            "not a fastmlp model file")
    with np.load(path / "m.npz", allow_pickle=False) as z:
        members = {k: z[k] for k in z.files}
    members["params"] = np.full_like(members["params"], np.nan)
    np.savez(tmp_path / "nan.npz", **members)
    refused([tmp_path / "nan.npz", *target], "member 'params'", "non-finite")
    refused([path / "m.npz", *target, "--target-opset", "12"], "target_opset=12 is outside")
    table = write(tmp_path / "label.csv", "label,b,y\n" + "".join(
        f"{i % 3},{i % 5},{'ab'[i % 2]}\n" for i in range(20)))
    ok("train", table, "--target", "y", "--epochs", "2", "--hidden", "2",
       "--out", tmp_path / "label.npz")
    refused([tmp_path / "label.npz", *target], "column 'label' has the name of a graph output",
            "rename the column")
    out = run("export", path / "m.npz", *target, "--target-opset", "x")
    assert out.returncode == 2 and "--target-opset: expected a whole number" in out.stderr
    refused([path / "m.npz", "--onnx", tmp_path / "no" / "dir" / "out.onnx"],
            "cannot write the ONNX file")
    refused(None, "exporting to ONNX needs the onnx package",
            "pip install 'fastmlp[onnx]'",
            code=("import sys\n"
                  "sys.modules['onnx'] = None\n"
                  "from fastmlp.cli import main\n"
                  f"sys.exit(main(['export', {str(path / 'm.npz')!r}, '--onnx', "
                  f"{str(tmp_path / 'out.onnx')!r}]))\n"))


# -------------------------------------------------------------- info, doctor
def test_info_describes_the_model_and_its_preprocessing(trained):
    _, model_path, _ = trained
    text = ok("info", model_path).stdout
    model = fastmlp.load(model_path)
    assert "layers: 30 -> 16 -> 2 (relu hidden units, softmax output)" in text
    assert f"{model.n_params_:,} parameters, float32" in text
    assert "classification, 2 classes: benign, malignant" in text
    assert f"trained: {model.n_iter_} epochs (adam" in text
    assert "preprocessing: scaling standard" in text and "target column 'diagnosis'" in text
    assert "columns (30) -> 30 features:" in text
    X, _ = load_breast_cancer()
    line = next(l for l in text.splitlines() if l.strip().startswith("mean radius:"))
    assert line.strip() == (f"mean radius: numeric, (x - {X[:, 0].mean():.6g}) / "
                            f"{X[:, 0].std():.6g}, empty cells filled with "
                            f"{np.median(X[:, 0]):.6g}")
    old = ok("info", DATA / "v1-classifier-adam-float32.npz").stdout
    assert "preprocessing: none kept" in old and "3 classes: cat, dog, eel" in old


def test_doctor_finds_nothing_wrong_with_the_default_setup(work):
    out = ok("doctor", work / "breast_cancer.csv", "--target", "diagnosis", "--hidden", "16")
    assert "on 569 rows x 30 features" in out.stdout
    assert "no problems found" in out.stdout


def test_doctor_names_unscaled_inputs_and_saturation(work):
    out = ok("doctor", work / "breast_cancer.csv", "--target", "diagnosis", "--scale", "none",
             "--activation", "tanh")
    assert "1. unscaled-inputs (error)" in out.stdout
    assert "column 'worst area' has values" in out.stdout  # the largest, by name
    assert "saturated-units" in out.stdout


def test_doctor_examines_a_trained_model_file(trained):
    _, model_path, _ = trained
    out = ok("doctor", model_path.parent / "breast_cancer.csv", "--model", model_path)
    assert "fitted model:" in out.stdout and "gradient check" in out.stdout


# ------------------------------------------------------ demo, bench, config
def test_demo_trains_on_the_bundled_data():
    lines = ok("demo", "--backend", "numba").stdout.splitlines()
    # it says what it prepares before anything else, then each kernel as it is ready
    assert lines[0].startswith("fastmlp: preparing the numba kernels of the demo's models")
    head = next(i for i, line in enumerate(lines) if line.startswith("data set"))
    assert lines[head - 1].startswith("fastmlp: kernels ready in")
    assert [line.split(":")[0] for line in lines[1:head - 1]] == ["  digits",
                                                                  "  breast-cancer"]
    assert lines[head].split() == ["data", "set", "backend", "test", "acc", "loss", "epochs",
                                   "ms/epoch"]
    rows = {line.split()[0]: line.split() for line in lines[head + 1:]}
    assert set(rows) == {"digits", "breast-cancer"}
    assert all(row[1] == "numba" and float(row[2]) > 0.9 for row in rows.values())


def test_demo_draws_the_readme_picture(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    import matplotlib.image

    picture = tmp_path / "learning-curves.png"
    out = ok("demo", "--plot", picture, "--backend", "numba")
    assert out.stdout.startswith(f"wrote {picture}")
    assert matplotlib.image.imread(picture).shape[:2] == (400, 640)


def test_bench_times_fastmlp_and_says_which_peers_are_missing():
    import importlib.util

    text = ok("bench", "--repeats", "1").stdout
    for name, module in (("scikit-learn", "sklearn"), ("PyTorch", "torch")):
        line = next(l for l in text.splitlines() if l.startswith(name))
        installed = importlib.util.find_spec(module) is not None
        assert ("not installed" in line) is (not installed), line
    for backend in ("numba", "numpy"):
        line = next(l for l in text.splitlines() if l.startswith(f"fastmlp ({backend})"))
        assert float(line.split()[2]) > 0


def test_config_shows_the_setup():
    text = ok("config").stdout
    assert text.startswith(f"fastmlp {fastmlp.__version__}")
    assert "backend:" in text and "cores:" in text


def test_start_up_imports_nothing_heavy(trained):
    _, model_path, _ = trained
    code = ("import sys, contextlib, io\n"
            "from fastmlp.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    status = main(['info', {str(model_path)!r}])\n"
            "heavy = ['numba', 'sklearn', 'matplotlib', 'tqdm', 'pandas', 'pyarrow', 'torch']\n"
            "print(status, sorted(m for m in heavy if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "0 []", out.stderr


# --------------------------------------------------------------- bad input
def write(path, text):
    path.write_text(text)
    return path


BAD_TABLES = {
    # name: (file contents, extra arguments, words the error must contain)
    "missing target": ("a,b,y\n1,2,0\n3,4,1\n", ["--target", "label"],
                       ["no column 'label'", "a, b, y"]),
    "typo in a numeric column": ("a,b,y\n1,2,0\n2,x7,1\n3,4,0\n", ["--target", "y"],
                                 ["column 'b' is not numeric", "row 2", "'x7'"]),
    "NaN cell, --impute none": ("a,b,y\n1,2,0\n3,NaN,1\n4,5,0\n",
                                ["--target", "y", "--impute", "none"],
                                ["empty cell in row 2, column 'b'"]),
    "empty cell, --impute none": ("a,b,y\n1,2,0\n3,4,1\n,5,0\n",
                                  ["--target", "y", "--impute", "none"],
                                  ["empty cell in row 3, column 'a'"]),
    "empty text cell, --impute none": ("a,c,y\n1,x,0\n3,,1\n",
                                       ["--target", "y", "--impute", "none"],
                                       ["empty cell in row 2, column 'c'"]),
    "empty target, --impute none": ("a,b,y\n1,2,0\n3,4,\n",
                                    ["--target", "y", "--impute", "none"],
                                    ["empty cell in row 2 of the target column 'y'"]),
    "every target empty": ("a,b,y\n1,2,\n3,4,NA\n", ["--target", "y"],
                           ["every row's target 'y' is empty"]),
    "a column with no values": ("a,b,y\n1,,0\n3,,1\n", ["--target", "y"],
                                ["column 'b' has no values", "--drop"]),
    "infinite cell": ("a,b,y\n1,2,0\n3,inf,1\n", ["--target", "y"],
                      ["infinite value inf in row 2, column 'b'"]),
    "unknown categorical": ("a,b,y\n1,2,0\n3,4,1\n", ["--target", "y", "--categorical", "q"],
                            ["--categorical names columns", "'q'"]),
    "duplicate column": ("a,a,y\n1,2,0\n3,4,1\n", ["--target", "y"],
                         ["the column name 'a' appears twice"]),
    "empty file": ("", ["--target", "y"], ["is empty"]),
    "header only": ("a,b,y\n", ["--target", "y"], ["has a header but no rows"]),
    "ragged row": ("a,b,y\n1,2,0\n3,4\n", ["--target", "y"],
                   ["row 2 (line 3) has 2 cells, the header has 3 columns"]),
    "unknown drop": ("a,b,y\n1,2,0\n3,4,1\n", ["--target", "y", "--drop", "zz"],
                     ["--drop names columns", "'zz'"]),
    "bad option value": ("a,b,y\n1,2,0\n3,4,1\n", ["--target", "y", "--lr", "-1"],
                         ["lr must be"]),
}


@pytest.mark.parametrize("case", BAD_TABLES)
def test_bad_tables_exit_2_with_one_clear_line(case, tmp_path):
    text, args, words = BAD_TABLES[case]
    table = write(tmp_path / "data.csv", text)
    out = run("train", table, *args)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.startswith("fastmlp: error: ")
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    for word in words:
        assert word in out.stderr


def test_missing_files_exit_2(tmp_path, trained):
    _, model_path, _ = trained
    out = run("train", tmp_path / "nope.csv", "--target", "y")
    assert out.returncode == 2 and "DATA file" in out.stderr and "does not exist" in out.stderr
    out = run("predict", tmp_path / "nope.npz", model_path.parent / "breast_cancer.csv")
    assert out.returncode == 2 and "MODEL file" in out.stderr and "does not exist" in out.stderr
    out = run("predict", model_path, tmp_path / "nope.csv")
    assert out.returncode == 2 and "does not exist" in out.stderr


def test_a_file_that_is_not_a_model_exits_2(tmp_path, trained):
    _, model_path, _ = trained
    data = model_path.parent / "breast_cancer.csv"
    for bad in (write(tmp_path / "text.npz", "not a model\n"), tmp_path / "foreign.npz", data):
        if bad.name == "foreign.npz":
            np.savez(bad, weights=np.zeros(3))
        out = run("predict", bad, data)
        assert out.returncode == 2, out.stderr
        assert out.stderr.startswith("fastmlp: error: ") and out.stderr.count("\n") == 1
        assert "not a fastmlp model file" in out.stderr
        assert str(bad) in out.stderr


def test_a_model_file_with_non_finite_weights_exits_2_naming_the_member(tmp_path, trained):
    """NaN weights written consistently (the zip's checksums right): predict and
    info refuse the file instead of blaming the inputs for NaN outputs."""
    _, model_path, _ = trained
    with np.load(model_path, allow_pickle=False) as z:
        members = {k: z[k] for k in z.files}
    members["params"] = np.full_like(members["params"], np.nan)
    edited = tmp_path / "nan.npz"
    np.savez(edited, **members)
    for args in (["predict", edited, model_path.parent / "breast_cancer.csv"], ["info", edited]):
        out = run(*args)
        assert out.returncode == 2, out.stderr
        assert out.stderr.startswith("fastmlp: error: ") and out.stderr.count("\n") == 1
        assert "member 'params'" in out.stderr and "non-finite" in out.stderr
        assert "scale the inputs" not in out.stderr


def test_data_lacking_the_models_columns_exits_2(tmp_path, trained):
    _, model_path, _ = trained
    X, _ = load_breast_cancer()
    few = tmp_path / "few.csv"
    np.savetxt(few, X[:, :28], delimiter=",", header=",".join(BREAST_CANCER_FEATURES[:28]),
               comments="")
    out = run("predict", model_path, few)
    assert out.returncode == 2
    assert ("lacks 2 columns the model needs: 'worst symmetry', 'worst fractal dimension'"
            in out.stderr)


def test_a_non_numeric_column_the_model_needs_exits_2(tmp_path, trained):
    _, model_path, _ = trained
    source = (model_path.parent / "breast_cancer.csv").read_text().splitlines()
    cells = source[5].split(",")
    cells[2] = "large"
    source[5] = ",".join(cells)
    out = run("predict", model_path, write(tmp_path / "bad.csv", "\n".join(source) + "\n"))
    assert out.returncode == 2
    assert "column 'mean perimeter' is not numeric (row 5 holds 'large')" in out.stderr


def test_a_missing_pyarrow_is_named_with_the_install_line(tmp_path):
    """pyarrow comes with the tables extra; an environment without it gets one clear line."""
    table = write(tmp_path / "t.csv", "a,y\n1,0\n2,1\n3,0\n")
    code = ("import sys\n"
            "sys.modules['pyarrow'] = None\n"
            "from fastmlp.cli import main\n"
            f"sys.exit(main(['train', {str(table)!r}, '--target', 'y']))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2
    assert out.stderr == ("fastmlp: error: reading tables needs pyarrow, which is not "
                          "installed here: pip install 'fastmlp[tables]'\n")


def test_plot_without_matplotlib_is_refused_before_training(tmp_path, work):
    code = ("import sys\n"
            "sys.modules['matplotlib'] = None\n"
            "from fastmlp.cli import main\n"
            f"sys.exit(main(['train', {str(work / 'breast_cancer.csv')!r}, '--target', "
            f"'diagnosis', '--plot', {str(tmp_path / 'c.png')!r}]))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2
    assert "pip install 'fastmlp[plot]'" in out.stderr
    assert out.stdout == ""  # nothing was trained
