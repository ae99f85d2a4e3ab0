"""ONNX export (``fastmlp.onnx``), checked by running the graphs in onnxruntime.

The model's own ``predict_proba``/``predict`` is the oracle: onnxruntime's
probabilities must agree within 1e-5 (float32) or 1e-10 relative (float64),
labels exactly. onnx, skl2onnx and onnxruntime are imported unconditionally:
``.ci/run`` installs them through the ``test`` extra, and a missing one fails
the suite instead of skipping these tests.
"""

import os
import subprocess
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import skl2onnx
from sklearn.neural_network import MLPClassifier as SklearnClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import fastmlp
import fastmlp.onnx
from fastmlp import MLP, NotFittedError
from fastmlp.onnx import Graph, add_network, check_opset, describe, outputs_info, to_onnx
from fastmlp.sklearn import MLPClassifier, MLPRegressor

ACTIVATIONS = ("relu", "tanh", "sigmoid", "identity")
SK_ACTIVATIONS = {"relu": "relu", "tanh": "tanh", "sigmoid": "logistic",
                  "identity": "identity"}
DTYPES = ("float32", "float64")


def session(model):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def run(model, **inputs):
    """{output name: value} of the ONNX model for these inputs."""
    sess = session(model)
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, inputs)))


def assert_agrees(actual, expected, dtype):
    """float32: within 1e-5; float64: within 1e-10 relative."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    assert actual.dtype == np.dtype(dtype)
    if np.dtype(dtype) == np.float32:
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)
    else:
        np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-300)


def data(n=120, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    return X, rng


def quiet(fit, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few epochs: convergence warnings
        return fit(*args, **kwargs)


# ------------------------------------------------------------- fastmlp.MLP
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("labels", [np.array([3, 7]), np.array(["cat", "dog", "emu"]),
                                    np.array([-2, 0, 5, 9])])
def test_mlp_classifier_matches_predict_proba(labels, activation, dtype):
    X, rng = data()
    y = labels[(np.abs(X[:, 0] * 2 + X[:, 1]) * len(labels) / 3).astype(int) % len(labels)]
    model = quiet(MLP((7, 4), activation, epochs=30, dtype=dtype, random_state=0).fit, X, y)
    proto = to_onnx(model)
    Xd = X.astype(dtype)
    out = run(proto, X=Xd)
    assert list(out) == ["label", "probabilities"]
    assert_agrees(out["probabilities"], model.predict_proba(Xd), dtype)
    np.testing.assert_array_equal(out["label"], model.predict(Xd))
    assert out["label"].dtype.kind == ("i" if labels.dtype.kind == "i" else "O")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("n_outputs", [1, 3])
def test_mlp_regressor_matches_predict(n_outputs, activation, dtype):
    X, rng = data()
    Y = X[:, :n_outputs] * 3 + np.sin(X[:, 1:2])
    y = Y[:, 0] if n_outputs == 1 else Y
    model = quiet(MLP((6,), activation, epochs=30, dtype=dtype, random_state=1).fit, X, y)
    Xd = X.astype(dtype)
    out = run(to_onnx(model), X=Xd)
    assert list(out) == ["variable"]
    assert_agrees(out["variable"], model.predict(Xd).reshape(len(X), n_outputs), dtype)


@pytest.mark.parametrize("labels", [np.array([False, True]), np.array([0.5, 1.5, 2.5])])
def test_mlp_bool_and_float_labels(labels):
    X, _ = data(seed=2)
    y = labels[(X[:, 0] > 0).astype(int) + (len(labels) > 2) * (X[:, 1] > 0.5)]
    model = quiet(MLP((5,), epochs=20, random_state=0, task="classification").fit, X, y)
    out = run(to_onnx(model), X=X.astype(np.float32))
    assert out["label"].dtype == labels.dtype
    np.testing.assert_array_equal(out["label"], model.predict(X))


def test_graph_declares_input_and_outputs():
    X, _ = data()
    model = quiet(MLP((4,), epochs=5, dtype="float64").fit, X, (X[:, 0] > 0).astype(int))
    proto = to_onnx(model)
    onnx.checker.check_model(proto, full_check=True)
    (x,) = proto.graph.input
    assert x.name == "X"
    assert x.type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    assert [d.dim_param or d.dim_value for d in x.type.tensor_type.shape.dim] == ["N", 5]
    label, proba = proto.graph.output
    assert (label.name, label.type.tensor_type.elem_type) == ("label", onnx.TensorProto.INT64)
    assert [d.dim_param or d.dim_value for d in proba.type.tensor_type.shape.dim] == ["N", 2]
    # one row and many rows
    assert run(proto, X=X[:1])["probabilities"].shape == (1, 2)
    big = np.random.default_rng(3).standard_normal((5000, 5))
    np.testing.assert_array_equal(run(proto, X=big)["label"], model.predict(big))


def test_export_is_a_snapshot_of_the_weights():
    X, _ = data()
    y = (X[:, 0] > 0).astype(int)
    model = quiet(MLP((4,), epochs=5, random_state=0).fit, X, y)
    proto = to_onnx(model)
    before = model.predict_proba(X)
    quiet(model.partial_fit, X, y)
    assert_agrees(run(proto, X=X.astype(np.float32))["probabilities"], before, "float32")


# ---------------------------------------------------------- the drop-ins
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("n_classes", [2, 3])
def test_dropin_classifier_matches_predict_proba(n_classes, activation, dtype):
    X, rng = data(seed=4)
    y = np.array(["no", "yes", "maybe"])[:n_classes][
        (np.abs(X[:, 0] + X[:, 2]) * n_classes / 2.5).astype(int) % n_classes]
    model = quiet(MLPClassifier((8,), SK_ACTIVATIONS[activation], max_iter=30, random_state=0,
                                dtype=dtype).fit, X, y)
    Xd = X.astype(dtype)
    out = run(to_onnx(model), X=Xd)
    assert_agrees(out["probabilities"], model.predict_proba(Xd), dtype)
    np.testing.assert_array_equal(out["label"], model.predict(Xd))


def test_dropin_binary_label_at_the_threshold():
    """The binary drop-in's label is classes_[p > 0.5], as its predict: a row
    whose probability is exactly 0.5 gets the first class."""
    model = quiet(MLPClassifier((2,), max_iter=5, random_state=0, dtype="float64").fit,
                  np.array([[0.0], [1.0], [2.0], [3.0]]), [4, 4, 9, 9])
    model.coefs_ = [np.zeros((1, 2)), np.zeros((2, 1))]
    model.intercepts_ = [np.zeros(2), np.zeros(1)]
    X = np.array([[0.0], [5.0]])
    out = run(to_onnx(model), X=X)
    np.testing.assert_array_equal(out["probabilities"], [[0.5, 0.5], [0.5, 0.5]])
    np.testing.assert_array_equal(out["label"], model.predict(X))
    assert out["label"].tolist() == [4, 4]


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropin_multilabel(dtype):
    X, rng = data(seed=5)
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, X[:, 3] > 1]).astype(int)
    model = quiet(MLPClassifier((9,), "tanh", max_iter=40, random_state=0, dtype=dtype).fit,
                  X, Y)
    Xd = X.astype(dtype)
    out = run(to_onnx(model), X=Xd)
    assert_agrees(out["probabilities"], model.predict_proba(Xd), dtype)
    np.testing.assert_array_equal(out["label"], model.predict(Xd))
    assert out["label"].shape == (len(X), 3) and out["label"].dtype == np.int64


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("n_outputs", [1, 2])
def test_dropin_regressor(n_outputs, activation, dtype):
    X, rng = data(seed=6)
    Y = X[:, :n_outputs] - 2 * X[:, 4:5]
    y = Y[:, 0] if n_outputs == 1 else Y
    model = quiet(MLPRegressor(hidden_layer_sizes=(6, 5), activation=SK_ACTIVATIONS[activation],
                               max_iter=30, random_state=0, dtype=dtype).fit, X, y)
    Xd = X.astype(dtype)
    out = run(to_onnx(model), X=Xd)
    assert_agrees(out["variable"], model.predict(Xd).reshape(len(X), n_outputs), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropin_poisson_regressor(dtype):
    X, rng = data(seed=7)
    y = rng.poisson(np.exp(0.5 * X[:, 0] - 0.3 * X[:, 1]))
    model = quiet(MLPRegressor(loss="poisson", hidden_layer_sizes=(6,), max_iter=40,
                               random_state=0, dtype=dtype).fit, X, y)
    Xd = X.astype(dtype)
    out = run(to_onnx(model), X=Xd)["variable"]
    assert np.all(out > 0)
    assert_agrees(out, model.predict(Xd)[:, None], dtype)


# ------------------------------------------------------------ target_opset
@pytest.mark.parametrize("opset", [13, 15, 17, 21])
def test_target_opset_is_honoured(opset):
    X, _ = data()
    model = quiet(MLPClassifier((4,), max_iter=5, random_state=0).fit, X, X[:, :2] > 0)
    proto = to_onnx(model, target_opset=opset)
    assert {o.domain: o.version for o in proto.opset_import} == {"": opset}
    out = run(proto, X=X)
    np.testing.assert_array_equal(out["label"], model.predict(X))


def test_default_opset():
    X, _ = data()
    proto = to_onnx(quiet(MLP((3,), epochs=2).fit, X, X[:, 0]))
    assert [(o.domain, o.version) for o in proto.opset_import] == [
        ("", min(fastmlp.onnx.DEFAULT_OPSET, onnx.defs.onnx_opset_version()))]


@pytest.mark.parametrize("opset, error, match", [
    (12, ValueError, "target_opset=12 is outside"),
    (10_000, ValueError, "target_opset=10000 is outside"),
    ("21", TypeError, "target_opset must be an int or None, got str"),
    (True, TypeError, "got bool"),
])
def test_bad_target_opset(opset, error, match):
    X, _ = data()
    model = quiet(MLP((3,), epochs=2).fit, X, X[:, 0])
    with pytest.raises(error, match=match):
        to_onnx(model, target_opset=opset)


# ------------------------------------------------------------ refusals
@pytest.mark.parametrize("model", [MLP(), MLPClassifier(), MLPRegressor()],
                         ids=["MLP", "MLPClassifier", "MLPRegressor"])
def test_unfitted_model_is_refused(model):
    with pytest.raises(NotFittedError, match=f"this {type(model).__name__} is not fitted yet"):
        to_onnx(model)


def test_other_objects_are_refused():
    with pytest.raises(TypeError, match="takes a fitted fastmlp.MLP.*got MLPClassifier"):
        to_onnx(SklearnClassifier())
    with pytest.raises(TypeError, match="got str"):
        to_onnx("model.npz")


def test_unrepresentable_labels_are_refused():
    X, _ = data()
    model = quiet(MLP((3,), epochs=2).fit, X, (X[:, 0] > 0).astype(int))
    model.classes_ = np.array([object(), object()], dtype=object)
    with pytest.raises(TypeError, match="class labels of dtype object"):
        to_onnx(model)


def run_fresh(code):
    env = dict(os.environ)
    env.pop("FASTMLP_BACKEND", None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300)


def test_missing_onnx_names_the_extra():
    out = run_fresh("import sys; sys.modules['onnx'] = None\n"
                    "import fastmlp.onnx")
    assert out.returncode != 0
    assert "pip install 'fastmlp[onnx]'" in out.stderr


def test_import_without_skl2onnx_still_exports():
    out = run_fresh("import sys; sys.modules['skl2onnx'] = None\n"
                    "import numpy as np, fastmlp, fastmlp.onnx\n"
                    "X = np.arange(8.0).reshape(4, 2)\n"
                    "m = fastmlp.MLP((2,), epochs=2).fit(X, [0, 1, 0, 1])\n"
                    "print(type(fastmlp.onnx.to_onnx(m)).__name__)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ModelProto"


# ------------------------------------------------- the network building block
def test_add_network_takes_any_input_tensor():
    """A subgraph of one's own (here: a float64 input doubled) feeds the network."""
    X, _ = data()
    model = quiet(MLPClassifier((5,), max_iter=20, random_state=0, dtype="float32").fit,
                  X, (X[:, 0] > X[:, 1]).astype(int) + (X[:, 2] > 1))
    graph = Graph(check_opset(None))
    graph.reserve("raw", "label", "probabilities")
    doubled = graph.node("Mul", ["raw", graph.constant(np.array(2.0), "two")])
    outs = add_network(graph, model, doubled, input_dtype="float64")
    assert outs == {"label": "label", "probabilities": "probabilities"}
    raw = onnx.helper.make_tensor_value_info("raw", onnx.TensorProto.DOUBLE, ["N", 5])
    proto = graph.model([raw], outputs_info(model))
    out = run(proto, raw=X)
    assert_agrees(out["probabilities"], model.predict_proba(2 * X), "float32")
    np.testing.assert_array_equal(out["label"], model.predict(2 * X))


def test_describe_reads_the_network():
    X, _ = data()
    model = quiet(MLPRegressor(hidden_layer_sizes=(4, 3), activation="logistic",
                               max_iter=5, dtype="float64").fit, X, X[:, :2])
    spec = describe(model)
    assert (spec.kind, spec.activation, spec.dtype, spec.n_features, spec.n_outputs) == (
        "regression", "sigmoid", np.float64, 5, 2)
    for mine, theirs in zip(spec.coefs + spec.intercepts, model.coefs_ + model.intercepts_):
        np.testing.assert_array_equal(mine, theirs)


# ------------------------------------------------------ skl2onnx pipelines
def pipeline_data(seed=8):
    X, rng = data(seed=seed)
    X = (X * [1, 10, 100, 0.1, 3] + [0, 5, -50, 1, 0]).astype(np.float32)
    return X


def fitted_pipeline(estimator, X, y):
    return quiet(make_pipeline(StandardScaler(), estimator).fit, X, y)


@pytest.mark.parametrize("labels", [np.array([0, 1, 2]), np.array(["b", "a"])])
def test_pipeline_with_zipmap(labels):
    X = pipeline_data()
    y = labels[np.arange(len(X)) % len(labels)]
    y[X[:, 1] > 5] = labels[0]
    pipe = fitted_pipeline(MLPClassifier((6,), max_iter=30, random_state=0), X, y)
    proto = skl2onnx.to_onnx(pipe, X[:1])
    assert [o.name for o in proto.graph.output] == ["output_label", "output_probability"]
    out = run(proto, X=X)
    np.testing.assert_array_equal(out["output_label"], pipe.predict(X))
    as_matrix = np.array([[row[c] for c in pipe.classes_] for row in out["output_probability"]])
    np.testing.assert_allclose(as_matrix, pipe.predict_proba(X), rtol=1e-5, atol=1e-5)


def test_pipeline_outputs_match_scikit_learns_mlp():
    """The same pipeline with scikit-learn's MLP and with the drop-in converts to
    graphs with the same inputs and outputs, option by option."""
    X = pipeline_data()
    y = np.arange(len(X)) % 3
    ours = fitted_pipeline(MLPClassifier((6,), max_iter=10, random_state=0), X, y)
    theirs = fitted_pipeline(SklearnClassifier((6,), max_iter=10, random_state=0), X, y)
    for options in ({}, {"zipmap": False}, {"zipmap": "columns"},
                    {"zipmap": False, "output_class_labels": True}, {"nocl": True}):
        shapes = []
        for pipe in (ours, theirs):
            est = pipe.steps[-1][1]
            proto = skl2onnx.to_onnx(pipe, X[:1], options={id(est): options} if options
                                     else None)
            shapes.append([(o.name, o.type.WhichOneof("value"),
                            o.type.tensor_type.elem_type) for o in proto.graph.output])
            out = run(proto, X=X)
            if "output_label" in out:
                label = out["output_label"]
            else:
                label = out["label"]
            expected = pipe.predict(X)
            if options.get("nocl"):
                expected = np.searchsorted(pipe.classes_, expected)
            np.testing.assert_array_equal(label, expected)
        assert shapes[0] == shapes[1], options


@pytest.mark.parametrize("n_classes", [2, 4])
def test_pipeline_without_zipmap(n_classes):
    X = pipeline_data(seed=9)
    y = np.arange(len(X)) % n_classes
    y[X[:, 0] > 0.5] = 1
    pipe = fitted_pipeline(MLPClassifier((6,), "tanh", max_iter=30, random_state=0), X, y)
    proto = skl2onnx.to_onnx(pipe, X[:1], options={MLPClassifier: {"zipmap": False}})
    out = run(proto, X=X)
    assert list(out) == ["label", "probabilities"]
    np.testing.assert_array_equal(out["label"], pipe.predict(X))
    assert_agrees(out["probabilities"], pipe.predict_proba(X), "float32")


def test_pipeline_multilabel():
    X = pipeline_data(seed=10)
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] > 5, X[:, 2] > -50]).astype(int)
    pipe = fitted_pipeline(MLPClassifier((6,), max_iter=30, random_state=0), X, Y)
    out = run(skl2onnx.to_onnx(pipe, X[:1], options={MLPClassifier: {"zipmap": False}}), X=X)
    np.testing.assert_array_equal(out["label"], pipe.predict(X))
    assert_agrees(out["probabilities"], pipe.predict_proba(X), "float32")


@pytest.mark.parametrize("loss, n_outputs", [("squared_error", 1), ("squared_error", 3),
                                             ("poisson", 1)])
def test_pipeline_regressor(loss, n_outputs):
    X = pipeline_data(seed=11)
    Y = np.abs(X[:, :n_outputs] / [1, 10, 100][:n_outputs])
    y = Y[:, 0] if n_outputs == 1 else Y
    pipe = fitted_pipeline(MLPRegressor(loss=loss, hidden_layer_sizes=(6,), max_iter=30,
                                        random_state=0), X, y)
    out = run(skl2onnx.to_onnx(pipe, X[:1]), X=X)
    assert list(out) == ["variable"]
    assert_agrees(out["variable"], pipe.predict(X).reshape(len(X), n_outputs), "float32")


def test_pipeline_in_double():
    X = pipeline_data(seed=12).astype(np.float64)
    y = np.arange(len(X)) % 3
    pipe = fitted_pipeline(MLPClassifier((6,), max_iter=30, random_state=0), X, y)
    proto = skl2onnx.to_onnx(pipe, X[:1], options={MLPClassifier: {"zipmap": False}})
    out = run(proto, X=X)
    assert_agrees(out["probabilities"], pipe.predict_proba(X), "float64")
    np.testing.assert_array_equal(out["label"], pipe.predict(X))


def test_pipeline_target_opset():
    X = pipeline_data()
    pipe = fitted_pipeline(MLPRegressor(hidden_layer_sizes=(4,), max_iter=5), X, X[:, 0])
    proto = skl2onnx.to_onnx(pipe, X[:1], target_opset=15)
    assert {o.domain: o.version for o in proto.opset_import}[""] == 15
    assert_agrees(run(proto, X=X)["variable"][:, 0], pipe.predict(X), "float32")


def test_unfitted_dropin_in_a_pipeline_is_refused():
    X = pipeline_data()
    pipe = make_pipeline(StandardScaler().fit(X), MLPClassifier())
    with pytest.raises(NotFittedError, match="MLPClassifier is not fitted yet"):
        skl2onnx.to_onnx(pipe, X[:1])


# ------------------------------------------------------------ table_graph
def raw_table(n, seed, unseen=False):
    """Raw columns as the table graph takes them: float32 [n, 1] with NaN for
    empty cells, and object (string) [n, 1]."""
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 12, n)
    age[rng.random(n) < 0.2] = np.nan
    income = rng.lognormal(10, 0.5, n)
    cities = ["berlin", "paris", "", "oslo"] + (["rome"] if unseen else [])
    city = rng.choice(cities, n)
    member = rng.choice(["yes", "no"], n)
    score = rng.normal(0, 1, n)
    score[:3] = np.nan
    return {"age": age.astype(np.float32)[:, None], "city": city.astype(object)[:, None],
            "income": income.astype(np.float32)[:, None],
            "member": member.astype(object)[:, None],
            "score": score.astype(np.float32)[:, None]}


COLUMNS = [("numeric", "age", 41.5, True, 40.2, 11.8),
           ("categorical", "city", ["berlin", "oslo", "paris", ""]),
           ("numeric", "income", None, False, 22000.0, 9000.0),
           ("categorical", "member", ["no", "yes"]),
           ("numeric", "score", 0.0, False, None, None)]


def numpy_table(columns, raw, dtype="float32"):
    """The same transform in NumPy, in ``dtype`` as the graph computes."""
    cast = np.dtype(dtype).type
    features = []
    for column in columns:
        if column[0] == "numeric":
            _, name, fill, indicator, mean, scale = column
            x = raw[name][:, 0].astype(dtype)
            missing = np.isnan(x)
            if fill is not None:
                x = np.where(missing, cast(fill), x)
            if mean is not None:
                x = x - cast(mean)
            if scale is not None:
                x = x / cast(scale)
            features.append(x)
            if indicator:
                features.append(missing.astype(dtype))
        else:
            _, name, categories = column
            features.extend((raw[name][:, 0] == c).astype(dtype) for c in categories)
    return np.column_stack(features)


def test_table_graph_matches_numpy():
    raw = raw_table(300, seed=0, unseen=True)
    out = run(fastmlp.onnx.table_graph(COLUMNS), **raw)["features"]
    expected = numpy_table(COLUMNS, raw)
    assert out.shape == (300, 1 + 1 + 4 + 1 + 2 + 1) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=0)
    unseen = raw["city"][:, 0] == "rome"
    assert unseen.any() and np.all(out[unseen, 2:6] == 0)
    assert np.isnan(out[:3, 9]).sum() == 0  # score's NaN filled with 0
    assert np.all(np.isnan(out[:, 6]) == np.isnan(raw["income"][:, 0]))


def test_table_graph_matches_scikit_learns_transformers():
    """Statistics fitted by SimpleImputer, StandardScaler and OneHotEncoder
    describe the columns; the graph then transforms new rows as they do."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import MissingIndicator, SimpleImputer
    from sklearn.preprocessing import OneHotEncoder

    import pandas as pd

    def frame(raw):
        return pd.DataFrame({k: v[:, 0] for k, v in raw.items()})

    train, test = raw_table(400, seed=1), raw_table(200, seed=2, unseen=True)
    age = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    transformer = ColumnTransformer([
        ("age", age, ["age"]), ("age_missing", MissingIndicator(features="all"), ["age"]),
        ("city", encoder, ["city"]), ("income", StandardScaler(), ["income"])]).fit(frame(train))
    fitted = transformer.named_transformers_
    imputer, scaler = fitted["age"].steps[0][1], fitted["age"].steps[1][1]
    encoder, income = fitted["city"], fitted["income"]
    columns = [("numeric", "age", imputer.statistics_[0], True, scaler.mean_[0],
                scaler.scale_[0]),
               ("categorical", "city", list(encoder.categories_[0])),
               ("numeric", "income", None, False, income.mean_[0], income.scale_[0])]
    graph = fastmlp.onnx.table_graph(columns)
    out = run(graph, **{k: test[k] for k in ("age", "city", "income")})["features"]
    np.testing.assert_allclose(out, transformer.transform(frame(test)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_table_graph_feeds_the_network(dtype):
    train, test = raw_table(300, seed=3), raw_table(150, seed=4, unseen=True)
    X = numpy_table(COLUMNS, train).astype(np.float64)
    y = np.where((train["city"][:, 0] == "paris") | (X[:, 0] > 0.5), "churn", "stay")
    model = quiet(MLP((8,), "tanh", epochs=40, dtype=dtype, random_state=0).fit, X, y)
    proto = fastmlp.onnx.table_graph(COLUMNS, model)
    assert [i.name for i in proto.graph.input] == ["age", "city", "income", "member", "score"]
    out = run(proto, **test)
    X_test = numpy_table(COLUMNS, test, dtype)  # a float64 model preprocesses in float64
    np.testing.assert_array_equal(out["label"], model.predict(X_test))
    assert_agrees(out["probabilities"], model.predict_proba(X_test), dtype)


def test_table_graph_order_and_regressor():
    train = raw_table(200, seed=5)
    X = numpy_table(COLUMNS, train)
    order = np.random.default_rng(0).permutation(X.shape[1])
    model = quiet(MLPRegressor(hidden_layer_sizes=(5,), max_iter=30, random_state=0,
                               dtype="float32").fit, X[:, order], X[:, 0] * 2)
    out = run(fastmlp.onnx.table_graph(COLUMNS, model, order=order, target_opset=15), **train)
    assert_agrees(out["variable"][:, 0], model.predict(X[:, order]), "float32")


@pytest.mark.parametrize("columns, order, error, match", [
    ([], None, ValueError, "columns is empty"),
    ("age", None, TypeError, "columns must be a sequence"),
    ([("numeric", "age", 1.0, True, 0.0)], None, ValueError, "has 5 fields; a numeric column"),
    ([("text", "age", ["a"])], None, ValueError, "kind 'text'"),
    ([("numeric", "", 1.0, True, 0.0, 1.0)], None, TypeError, "non-empty string"),
    ([("numeric", "a", 1.0, "yes", 0.0, 1.0)], None, TypeError, "has_indicator must be"),
    ([("numeric", "a", float("nan"), True, 0.0, 1.0)], None, ValueError,
     "'a''s fill_value must be finite"),
    ([("numeric", "a", None, False, 0.0, 0.0)], None, ValueError, "scale is 0"),
    ([("numeric", "a", None, False, "0", 1.0)], None, TypeError, "mean must be a number"),
    ([("categorical", "c", [])], None, ValueError, "lists no categories"),
    ([("categorical", "c", ["x", 1])], None, TypeError, "not strings: \\[1\\]"),
    ([("categorical", "c", ["x", "x"])], None, ValueError, "category twice: \\['x'\\]"),
    ([("categorical", "label", ["x"])], None, ValueError, "name of a graph output"),
    ([("categorical", "c", ["x"]), ("numeric", "c", None, False, None, None)], None,
     ValueError, "repeated: \\['c'\\]"),
    ([("categorical", "c", ["x", "y"])], [0, 0], ValueError, "once, got \\[0, 0\\]"),
    ([("categorical", "c", ["x"], ["X"])], None, TypeError, "aliases must be a dict"),
    ([("categorical", "c", ["x"], {1: "x"})], None, TypeError, "spellings must be strings"),
    ([("categorical", "c", ["x"], {"X": "y"})], None, ValueError, "does not list: 'y'"),
    ([("categorical", "c", ["x", "y"], {"x": "y"})], None, ValueError,
     "respell listed categories: \\['x'\\]"),
    ([("categorical", "c", ["x", "y"])], [0.0, 1.0], TypeError, "order must be"),
])
def test_table_graph_refuses_bad_descriptions(columns, order, error, match):
    with pytest.raises(error, match=match):
        fastmlp.onnx.table_graph(columns, order=order)


def test_table_graph_checks_the_model_width():
    X, _ = data()
    model = quiet(MLP((3,), epochs=2).fit, X, X[:, 0])
    with pytest.raises(ValueError, match="the columns give 9 features but the model takes 5"):
        fastmlp.onnx.table_graph(COLUMNS[:2] + COLUMNS[3:], model)


def test_table_graph_aliases_spell_categories():
    columns = [("categorical", "c", ["", "false", "true"], {"True": "true", "NA": ""})]
    cells = np.array(["true", "True", "TRUE", "", "NA", "na", "false"], dtype=object)
    out = run(fastmlp.onnx.table_graph(columns), c=cells[:, None])["features"]
    np.testing.assert_array_equal(out, [[0, 0, 1], [0, 0, 1], [0, 0, 0], [1, 0, 0],
                                        [1, 0, 0], [0, 0, 0], [0, 1, 0]])


def test_preprocessing_columns_encode_as_transform():
    """A Preprocessing fitted on a table with gaps, a boolean and a text column
    (and one with scale='none', impute='none'): the graph's features on the
    cells, spelled as a file may spell them, are those of transform."""
    pytest.importorskip("pyarrow")
    from fastmlp.tables import Preprocessing, Table

    rng = np.random.default_rng(0)
    n = 200
    age = rng.normal(40, 12, n)
    age[::7] = np.nan
    city = rng.choice(["berlin", "paris", "NA", "oslo", "N/A", "null"], n).astype(object)
    flag = rng.choice(["True", "false", "TRUE", "False"], n).astype(object)
    score = rng.normal(0, 1, n)
    table = Table.from_columns({"age": age, "city": city, "flag": flag, "score": score,
                                "y": rng.integers(0, 2, n)})
    pre = Preprocessing.fit(table, "y")
    columns = fastmlp.onnx.preprocessing_columns(pre)
    assert columns[0][:4] == ("numeric", "age", pre.columns[0].fill, True)
    assert columns[1][:3] == ("categorical", "city", ["", "berlin", "oslo", "paris"])
    assert columns[2][2] == ["false", "true"] and columns[2][3]["TRUE"] == "true"
    feeds = {"age": age.astype(np.float32)[:, None], "city": city[:, None],
             "flag": flag[:, None], "score": score.astype(np.float32)[:, None]}
    out = run(fastmlp.onnx.table_graph(columns), **feeds)["features"]
    np.testing.assert_allclose(out, pre.transform(table), rtol=1e-6, atol=1e-6)

    plain = Preprocessing.fit(table, "y", drop=["age", "city"], scale="none", impute="none")
    columns = fastmlp.onnx.preprocessing_columns(plain)
    assert columns[1] == ("numeric", "score", None, False, None, None)  # no nodes
    out = run(fastmlp.onnx.table_graph(columns), **{k: feeds[k] for k in plain.names})
    np.testing.assert_allclose(out["features"], plain.transform(table), rtol=1e-6, atol=1e-6)
