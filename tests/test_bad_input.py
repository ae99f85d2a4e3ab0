"""Bad input is refused with a clear message, by every method and both backends;
odd but valid input is accepted and converted without surprise.

The matrix ``CASES`` x methods x backends checks the exception type and message
of every refusal, and that a refused call leaves the model as it was: a failed
``fit`` or ``partial_fit`` of a fitted model keeps its weights and optimiser
state, a failed call on a fresh model leaves it unfitted.
"""

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pytest
import scipy.sparse
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fastmlp import MLP, ConvergenceWarning, DivergenceError, NotFittedError, checks

BACKENDS = ["numba", "numpy"]
#: fit runs on a fresh and on a fitted model (the same code path: training starts
#: over); partial_fit continues a fitted model, partial_fit_first starts a fresh one.
METHODS = ["fit", "partial_fit", "partial_fit_first", "predict", "predict_proba", "score"]
ALL = tuple(METHODS)
WITH_Y = ("fit", "partial_fit", "partial_fit_first", "score")
TRAINING = ("fit", "partial_fit", "partial_fit_first")

_rng = np.random.default_rng(7)
N, D = 40, 4
X = _rng.standard_normal((N, D))
Y_CLS = np.arange(N) % 3
Y_REG = X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1
Y_REG2 = np.c_[Y_REG, X[:, 0] * X[:, 1]]
SMALL = dict(hidden=(5,), epochs=2, batch_size=16, random_state=0)


def quiet_fit(model, X_, y_):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X_, y_)


def fitted(backend, task="classification", **kw):
    y = {"classification": Y_CLS, "regression": Y_REG, "regression2d": Y_REG2}[task]
    return quiet_fit(MLP(backend=backend, **{**SMALL, **kw}), X, y)


def with_value(value, row, col, dtype=float):
    Xb = X.astype(dtype).copy()
    Xb[row, col] = value
    return Xb


# ------------------------------------------------------------------- the matrix
@dataclass(frozen=True)
class Case:
    id: str
    X: object  # callable () -> X, so that every test gets its own copy
    y: object = None  # callable () -> y; None: the model's ordinary targets
    exc: type = ValueError
    match: str = ""
    methods: tuple = ALL
    task: str = "classification"
    params: dict = field(default_factory=dict)  # bad hyper-parameters
    classes: object = None  # for partial_fit_first

    def targets(self):
        if self.y is not None:
            return self.y()
        return {"classification": Y_CLS, "regression": Y_REG, "regression2d": Y_REG2}[self.task]


def _object_X(value, row, col):
    Xo = X.astype(object)
    Xo[row, col] = value
    return Xo


CASES = [
    # -- X
    Case("nan_in_X", lambda: with_value(np.nan, 3, 2),
         match=r"^X holds a non-finite value \(nan\) at row 3, column 2; remove or impute"),
    Case("inf_in_X", lambda: with_value(np.inf, 7, 1),
         match=r"^X holds a non-finite value \(inf\) at row 7, column 1"),
    Case("neg_inf_in_X", lambda: with_value(-np.inf, 0, 0),
         match=r"^X holds a non-finite value \(-inf\) at row 0, column 0"),
    Case("nan_in_float32_X", lambda: with_value(np.nan, 39, 3, np.float32),
         match=r"^X holds a non-finite value \(nan\) at row 39, column 3"),
    Case("inf_in_float16_X", lambda: with_value(np.inf, 1, 2, np.float16),
         match=r"^X holds a non-finite value \(inf\) at row 1, column 2"),
    Case("nan_in_object_X", lambda: _object_X(float("nan"), 5, 3),
         match=r"^X holds a missing value \(nan\) at row 5, column 3"),
    Case("none_in_object_X", lambda: _object_X(None, 2, 0),
         match=r"^X holds a missing value \(None\) at row 2, column 0"),
    Case("too_large_for_float32", lambda: with_value(1e39, 4, 0),
         match=r"^X value 1e\+39 at row 4, column 0 is too large for float32"),
    Case("empty_X", lambda: np.empty((0, D)), lambda: Y_CLS[:0],
         match=r"^X is empty: it has 0 samples \(shape \(0, 4\)\)"),
    Case("X_with_0_features", lambda: np.empty((N, 0)),
         match=r"^X has 0 features \(shape \(40, 0\)\)"),
    Case("X_1d", lambda: X[:, 0].copy(),
         match=r"^X must be 2-D \(samples x features\), got 1-D shape \(40,\) "
               r"\(use X.reshape\(-1, 1\) for a single feature\)"),
    Case("X_3d", lambda: X.reshape(N, 2, 2),
         match=r"^X must be 2-D \(samples x features\), got 3-D shape \(40, 2, 2\)$"),
    Case("X_scalar", lambda: 1.5, match=r"^X must be 2-D .*got 0-D shape \(\)"),
    Case("X_None", lambda: None, match=r"^X is None; pass an array-like"),
    Case("ragged_lists", lambda: [[1.0, 2.0, 3.0, 4.0]] * 39 + [[1.0, 2.0]],
         match=r"^X is ragged or not array-like \(setting an array element with a sequence"),
    Case("str_X", lambda: X.astype(str), exc=TypeError,
         match=r"^X has dtype <U\d+; fastmlp needs numeric features$"),
    Case("bytes_X", lambda: X.astype(bytes), exc=TypeError,
         match=r"^X has dtype \|S\d+; fastmlp needs numeric features$"),
    Case("object_str_X", lambda: _object_X("a", 2, 1), exc=TypeError,
         match=r"^X holds a string \('a'\) at row 2, column 1; fastmlp needs numeric features"),
    Case("object_numeric_str_X", lambda: _object_X("1.5", 0, 3), exc=TypeError,
         match=r"^X holds a string \('1.5'\) at row 0, column 3"),
    Case("object_other_X", lambda: _object_X({"a": 1}, 9, 2), exc=TypeError,
         match=r"^X holds a non-numeric value \{'a': 1\} \(type dict\) at row 9, column 2"),
    Case("complex_X", lambda: X + 1j, exc=TypeError,
         match=r"^X holds complex numbers; fastmlp needs real-valued features$"),
    Case("datetime_X", lambda: np.zeros((N, D), dtype="datetime64[s]"), exc=TypeError,
         match=r"^X has dtype datetime64\[s\]; fastmlp needs numeric features$"),
    Case("sparse_nan_X", lambda: scipy.sparse.csr_matrix(with_value(np.nan, 3, 2)),
         match=r"^X holds a non-finite value \(nan\) at row 3, column 2; remove or impute"),
    Case("sparse_complex_X", lambda: scipy.sparse.csr_matrix(X.astype(complex)),
         exc=TypeError, match=r"^X holds complex numbers"),
    Case("sparse_wrong_width", lambda: scipy.sparse.csr_matrix(X[:, :3]),
         methods=("partial_fit", "predict", "predict_proba", "score"),
         match=r"^X has 3 features, but the model was fitted with 4$"),
    Case("masked_X", lambda: np.ma.masked_greater(X, 2.0),
         match=r"^X is a masked array with masked values; fill them first"),
    Case("wrong_number_of_features", lambda: X[:, :3].copy(),
         methods=("partial_fit", "predict", "predict_proba", "score"),
         match=r"^X has 3 features, but the model was fitted with 4$"),
    # -- y
    Case("len_X_ne_len_y", lambda: X, lambda: Y_CLS[:-1], methods=WITH_Y,
         match=r"^X has 40 samples but y has 39$"),
    Case("len_X_ne_len_y_regression", lambda: X, lambda: Y_REG[:-3], methods=WITH_Y,
         task="regression", match=r"^X has 40 samples but y has 37$"),
    Case("nan_in_regression_y", lambda: X, lambda: np.where(np.arange(N) == 5, np.nan, Y_REG),
         methods=WITH_Y, task="regression",
         match=r"^y holds a non-finite target at row 5; remove or impute it first$"),
    Case("inf_in_regression_y", lambda: X, lambda: np.where(np.arange(N) == 0, -np.inf, Y_REG),
         methods=WITH_Y, task="regression", match=r"^y holds a non-finite target at row 0;"),
    Case("inf_in_2d_regression_y", lambda: X,
         lambda: np.where((np.arange(N) == 6)[:, None] & (np.arange(2) == 1), np.inf, Y_REG2),
         methods=WITH_Y, task="regression2d",
         match=r"^y holds a non-finite target at row 6, column 1; remove or impute it first$"),
    Case("str_y_for_regressor", lambda: X, lambda: Y_CLS.astype(str),
         methods=("partial_fit", "score"), task="regression", exc=TypeError,
         match=r"^regression targets must be numeric, got dtype <U\d+$"),
    Case("y_2d_labels", lambda: X, lambda: np.c_[Y_CLS, Y_CLS], methods=WITH_Y,
         match=r"^y must be 1-D, got shape \(40, 2\)$"),
    Case("y_3d_regression", lambda: X, lambda: Y_REG.reshape(N, 1, 1), methods=WITH_Y,
         task="regression", match=r"^y must be 1-D or 2-D, got shape \(40, 1, 1\)$"),
    Case("y_one_class", lambda: X, lambda: np.ones(N, dtype=int),
         methods=("fit", "partial_fit_first"),
         match=r"^classification needs at least 2 classes, y has only \[1\]$"),
    Case("y_missing_label", lambda: X,
         lambda: np.array(["a", "b", None, "c"] * 10, dtype=object), methods=WITH_Y,
         match=r"^y holds a missing label \(None\) at row 2; remove those rows"),
    Case("y_mixed_label_types", lambda: X, lambda: np.array([1, "a"] * 20, dtype=object),
         methods=WITH_Y, exc=TypeError,
         match=r"^y mixes labels that cannot be ordered \(int, str\); use labels of one type$"),
    Case("label_not_in_classes", lambda: X, lambda: np.where(np.arange(N) == 9, 7, Y_CLS),
         methods=("partial_fit",),
         match=r"^y holds labels not in classes_ \[0, 1, 2\]: \[7\]$"),
    Case("label_not_in_given_classes", lambda: X, lambda: Y_CLS,
         methods=("partial_fit_first",), classes=[0, 1],
         match=r"^y holds labels not in classes_ \[0, 1\]: \[2\]$"),
    Case("regression_y_with_too_few_columns", lambda: X, lambda: Y_REG,
         methods=("partial_fit", "score"), task="regression2d",
         match=r"^y has 1 target columns; the model was fitted with 2$"),
    Case("regression_y_with_too_many_columns", lambda: X, lambda: np.c_[Y_REG2, Y_REG],
         methods=("partial_fit", "score"), task="regression2d",
         match=r"^y has 3 target columns; the model was fitted with 2$"),
    # -- hyper-parameters, checked by fit and partial_fit
    *[Case(f"param_{name}={value!r}", lambda: X, params={name: value}, methods=TRAINING,
           match=match)
      for name, value, match in [
          ("lr", -0.1, r"^lr must be a finite number in \(0, inf\), got -0.1$"),
          ("lr", 0.0, r"^lr must be a finite number in \(0, inf\), got 0.0$"),
          ("lr", float("nan"), r"^lr must be a finite number in \(0, inf\), got nan$"),
          ("lr", float("inf"), r"^lr must be a finite number in \(0, inf\), got inf$"),
          ("lr", "0.1", r"^lr must be a finite number in \(0, inf\), got '0.1'$"),
          ("hidden", (0,), r"^every hidden layer width must be an integer >= 1, got 0$"),
          ("hidden", (8, -2), r"^every hidden layer width must be an integer >= 1, got -2$"),
          ("hidden", (4.5,), r"^every hidden layer width must be an integer >= 1, got 4.5$"),
          ("hidden", "10", r"^hidden must be a tuple of layer widths, got '10'$"),
          ("hidden", None, r"^hidden must be a tuple of layer widths, got None$"),
          ("activation", "swish",
           r"^activation must be one of identity, sigmoid, tanh, relu; got 'swish'$"),
          ("activation", ["relu"],
           r"^activation must be one of identity, sigmoid, tanh, relu; got \['relu'\]$"),
          ("solver", "newton", r"^solver must be one of sgd, adam, lbfgs; got 'newton'$"),
          ("dtype", "float16", r"^dtype must be one of float32, float64; got 'float16'$"),
          ("dtype", "int32", r"^dtype must be one of float32, float64; got 'int32'$"),
          ("dtype", "not-a-dtype", r"^dtype must be one of float32, float64; got 'not-a-dtype'$"),
          ("batch_size", 0, r"^batch_size must be an integer >= 1, got 0$"),
          ("batch_size", 2.5, r"^batch_size must be an integer >= 1, got 2.5$"),
          ("epochs", 0, r"^epochs must be an integer >= 1, got 0$"),
          ("patience", 0, r"^patience must be an integer >= 1, got 0$"),
          ("momentum", 1.5, r"^momentum must be a finite number in \[0, 1\], got 1.5$"),
          ("momentum", -0.1, r"^momentum must be a finite number in \[0, 1\], got -0.1$"),
          ("l2", -1e-4, r"^l2 must be a finite number in \[0, inf\), got -0.0001$"),
          ("tol", float("nan"), r"^tol must be a finite number in \[0, inf\), got nan$"),
          ("backend", "cuda", r"^backend must be None or one of numba, numpy; got 'cuda'$"),
          ("task", "clf",
           r"^task must be one of auto, classification, regression; got 'clf'$"),
          ("n_threads", 0, r"^n_threads must be an integer >= 1, got 0$"),
          ("random_state", -1,
           r"^random_state must be None, an integer >= 0 or a numpy Generator; got -1$"),
          ("random_state", 1.5,
           r"^random_state must be None, an integer >= 0 or a numpy Generator; got 1.5$"),
          ("nesterov", "yes", r"^nesterov must be True or False, got 'yes'$"),
          ("shuffle", None, r"^shuffle must be True or False, got None$"),
      ]],
]


def _snapshot(model):
    """Everything a refused call must leave as it was."""
    net = model._net
    state = {name: np.array(getattr(net, name), copy=True)
             for name in ("params", "state1", "state2")}
    state.update(step=net.step, n_iter=model.n_iter_, curve=list(model.loss_curve_),
                 coefs=[w.copy() for w in model.coefs_],
                 intercepts=[b.copy() for b in model.intercepts_],
                 rng=model._rng.bit_generator.state,
                 classes=getattr(model, "classes_", None),
                 attributes=sorted(vars(model)))
    return state


def _assert_unchanged(model, before):
    after = _snapshot(model)
    for name in ("params", "state1", "state2"):
        assert after[name].tobytes() == before[name].tobytes(), name
    for a, b in zip(after["coefs"] + after["intercepts"], before["coefs"] + before["intercepts"],
                    strict=True):
        assert a.tobytes() == b.tobytes()
    assert np.shares_memory(model.coefs_[0], model._net.params)  # still views of the weights
    assert (after["step"], after["n_iter"], after["curve"]) == (
        before["step"], before["n_iter"], before["curve"])
    assert after["rng"] == before["rng"]
    assert after["attributes"] == before["attributes"]
    if before["classes"] is None:
        assert after["classes"] is None
    else:
        assert np.array_equal(after["classes"], before["classes"])


def _call(method, model, case, X_, y_):
    if method == "fit":
        return model.fit(X_, y_)
    if method in ("partial_fit", "partial_fit_first"):
        return model.partial_fit(X_, y_, classes=case.classes)
    if method == "score":
        return model.score(X_, y_)
    return getattr(model, method)(X_)


def _params():
    for case in CASES:
        for method in case.methods:
            if method == "predict_proba" and case.task != "classification":
                continue
            yield pytest.param(case, method, id=f"{case.id}-{method}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case,method", list(_params()))
def test_bad_input_is_refused_and_changes_nothing(case, method, backend):
    X_, y_ = case.X(), case.targets()
    if method in ("fit", "partial_fit", "predict", "predict_proba", "score"):
        model = fitted(backend, case.task)
        before = _snapshot(model)
        model.set_params(**case.params)
        with pytest.raises(case.exc, match=case.match):
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a refusal comes without warnings
                _call(method, model, case, X_, y_)
        _assert_unchanged(model, before)
    if method in ("fit", "partial_fit_first"):
        task = "auto" if case.task == "classification" else "regression"
        model = MLP(**{**SMALL, "backend": backend, "task": task, **case.params})
        with pytest.raises(case.exc, match=case.match):
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                _call(method, model, case, X_, y_)
        learned = sorted(k for k in vars(model) if k.endswith("_") or k.startswith("_"))
        assert learned == [], f"a refused {method} left {learned} on a fresh model"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("method", ["predict", "predict_proba", "score"])
def test_use_before_fit_raises_not_fitted(backend, method):
    model = MLP(backend=backend)
    args = (X, Y_CLS) if method == "score" else (X,)
    with pytest.raises(NotFittedError, match=r"^this MLP is not fitted yet: call fit or "
                                             r"partial_fit first$"):
        getattr(model, method)(*args)
    assert isinstance(NotFittedError("x"), (ValueError, AttributeError))


@pytest.mark.parametrize("backend", BACKENDS)
def test_predict_proba_of_a_regressor_is_an_attribute_error(backend):
    with pytest.raises(AttributeError, match="predict_proba is for classification"):
        fitted(backend, "regression").predict_proba(X)


@pytest.mark.parametrize("backend", BACKENDS)
def test_partial_fit_with_different_classes_later_is_refused(backend):
    model = fitted(backend)
    with pytest.raises(ValueError, match="classes"):
        model.partial_fit(X, Y_CLS, classes=[0, 1, 2, 3])


@pytest.mark.parametrize("backend", BACKENDS)
def test_checked_values_are_told_apart_by_type_and_content(backend):
    # partial_fit remembers hyper-parameters it has checked: a value equal to an
    # accepted one but of a refused type, and a list of widths changed in place
    # between calls, are still seen
    model = fitted(backend)
    model.set_params(batch_size=1).partial_fit(X, Y_CLS)
    model.set_params(batch_size=True)
    with pytest.raises(ValueError, match=r"^batch_size must be an integer >= 1, got True$"):
        model.partial_fit(X, Y_CLS)
    model.set_params(batch_size=1, momentum=0).partial_fit(X, Y_CLS)
    model.set_params(momentum=False)
    with pytest.raises(ValueError, match=r"^momentum must be a finite number"):
        model.partial_fit(X, Y_CLS)
    widths = [8]
    fresh = MLP(**{**SMALL, "backend": backend, "hidden": widths}).fit(X, Y_CLS)
    widths[0] = 0
    with pytest.raises(ValueError, match=r"^every hidden layer width must be an integer >= 1, "
                                         r"got 0$"):
        fresh.partial_fit(X, Y_CLS)


@pytest.mark.parametrize("backend", BACKENDS)
def test_refused_fit_keeps_a_fitted_model_usable(backend):
    model = fitted(backend)
    before = model.predict_proba(X)
    coefs = [w.copy() for w in model.coefs_]
    for bad_X, bad_y in ((with_value(np.nan, 0, 0), Y_CLS), (X, np.zeros(N, dtype=int)),
                         (np.empty((0, D)), Y_CLS[:0]), (X, Y_CLS[:-1])):
        with pytest.raises(ValueError):
            model.fit(bad_X, bad_y)
    for w, w0 in zip(model.coefs_, coefs, strict=True):
        assert w.tobytes() == w0.tobytes()
    assert model.predict_proba(X).tobytes() == before.tobytes()
    model.partial_fit(X, Y_CLS)  # and it trains on from where it was
    assert model.n_iter_ == 3


# ------------------------------------------------- accepted and converted
def _frame(columns):
    pd = pytest.importorskip("pandas")
    return pd.DataFrame(columns, index=np.random.default_rng(0).permutation(N) * 3)


def _variants():
    """(id, X as given, the equivalent float64 C-contiguous array)."""
    ints = np.random.default_rng(1).integers(-5, 6, size=(N, D))
    big = np.random.default_rng(2).standard_normal((2 * N, 3 * D))
    f16 = X.astype(np.float16)
    return {
        "int64": (lambda: ints, lambda: ints.astype(np.float64)),
        "int8": (lambda: ints.astype(np.int8), lambda: ints.astype(np.float64)),
        "uint8": (lambda: (ints + 5).astype(np.uint8), lambda: (ints + 5).astype(np.float64)),
        "bool": (lambda: X > 0, lambda: (X > 0).astype(np.float64)),
        "float16": (lambda: f16, lambda: f16.astype(np.float64)),
        "float32": (lambda: X.astype(np.float32), lambda: X.astype(np.float32).astype(float)),
        "fortran": (lambda: np.asfortranarray(X), lambda: X),
        "strided_view": (lambda: big[::2, ::3], lambda: np.ascontiguousarray(big[::2, ::3])),
        "reversed_rows": (lambda: X[::-1], lambda: np.ascontiguousarray(X[::-1])),
        "read_only": (lambda: _read_only(X), lambda: X),
        "list_of_lists": (lambda: X.tolist(), lambda: X),
        "tuple_of_tuples": (lambda: tuple(map(tuple, X)), lambda: X),
        "object_numbers": (lambda: X.astype(object), lambda: X),
        "dataframe": (lambda: _frame({f"f{j}": X[:, j] for j in range(D)}), lambda: X),
        "dataframe_mixed_dtypes": (
            lambda: _frame({"i": ints[:, 0], "f": X[:, 1], "b": X[:, 2] > 0,
                            "f32": X[:, 3].astype(np.float32)}),
            lambda: np.c_[ints[:, 0], X[:, 1], X[:, 2] > 0, X[:, 3].astype(np.float32)]),
        "dataframe_nullable": (
            lambda: _frame({f"f{j}": X[:, j] for j in range(D)}).astype("Float64"),
            lambda: X),
    }


def _read_only(a):
    a = a.copy()
    a.setflags(write=False)
    return a


VARIANTS = _variants()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_equivalent_X_gives_the_same_model_and_predictions(variant, backend, dtype):
    given_X, plain_X = (make() for make in VARIANTS[variant])
    assert plain_X.dtype == np.float64
    a = quiet_fit(MLP(backend=backend, dtype=dtype, **SMALL), given_X, Y_CLS)
    b = quiet_fit(MLP(backend=backend, dtype=dtype, **SMALL), np.ascontiguousarray(plain_X),
                  Y_CLS)
    for wa, wb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_, strict=True):
        assert wa.dtype == np.dtype(dtype) and wa.tobytes() == wb.tobytes()
    pa = a.predict_proba(given_X)
    assert pa.tobytes() == b.predict_proba(plain_X).tobytes()
    assert (a.predict(given_X) == b.predict(plain_X)).all()
    assert a.score(given_X, Y_CLS) == b.score(plain_X, Y_CLS)


def _series(values, **kw):
    pd = pytest.importorskip("pandas")
    return pd.Series(values, index=np.arange(N)[::-1] + 100, **kw)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("variant", ["list", "tuple", "column_vector", "series",
                                     "categorical_series", "string_series", "int32"])
def test_equivalent_labels_give_the_same_model(variant, backend):
    names = np.array(["ant", "bee", "cow"])
    given = {
        "list": lambda: Y_CLS.tolist(),
        "tuple": lambda: tuple(Y_CLS.tolist()),
        "column_vector": lambda: Y_CLS.reshape(-1, 1),
        "series": lambda: _series(Y_CLS),
        "categorical_series": lambda: _series(names[Y_CLS], dtype="category"),
        "string_series": lambda: _series(names[Y_CLS]),
        "int32": lambda: Y_CLS.astype(np.int32),
    }[variant]()
    plain = names[Y_CLS] if "_series" in variant else Y_CLS
    a = quiet_fit(MLP(backend=backend, **SMALL), X, given)
    b = quiet_fit(MLP(backend=backend, **SMALL), X, plain)
    assert a._net.params.tobytes() == b._net.params.tobytes()
    assert a.classes_.tolist() == b.classes_.tolist()
    assert a.predict(X).tolist() == b.predict(X).tolist()
    assert a.score(X, given) == b.score(X, plain)


@pytest.mark.parametrize("backend", BACKENDS)
def test_partial_fit_needs_a_stochastic_solver(backend):
    model = MLP(backend=backend, solver="lbfgs", **SMALL)
    with pytest.raises(ValueError, match=r"^partial_fit needs a stochastic solver \(sgd or "
                                         r"adam\), not solver='lbfgs'$"):
        model.partial_fit(X, Y_CLS)
    assert vars(model) == vars(MLP(backend=backend, solver="lbfgs", **SMALL))


@pytest.mark.parametrize("backend", BACKENDS)
def test_sparse_X_gives_the_dense_model(backend):
    """The same model up to float32 rounding: a sparse product sums in another order
    than BLAS does."""
    dense = fitted(backend)
    for fmt in (scipy.sparse.csr_matrix, scipy.sparse.csc_matrix, scipy.sparse.coo_matrix):
        model = quiet_fit(MLP(backend=backend, **SMALL), fmt(X), Y_CLS)
        np.testing.assert_allclose(model._net.params, dense._net.params, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(model.predict_proba(fmt(X)), dense.predict_proba(X),
                                   rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("backend", BACKENDS)
def test_regression_targets_as_series_and_lists(backend):
    a = quiet_fit(MLP(backend=backend, **SMALL), X, _series(Y_REG))
    b = quiet_fit(MLP(backend=backend, **SMALL), X, Y_REG.tolist())
    c = quiet_fit(MLP(backend=backend, **SMALL), X, Y_REG)
    assert a._net.params.tobytes() == b._net.params.tobytes() == c._net.params.tobytes()
    assert a.predict(X).shape == (N,)


@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_size_larger_than_the_data_is_the_whole_data(backend):
    a = quiet_fit(MLP(backend=backend, **{**SMALL, "batch_size": 10_000}), X, Y_CLS)
    b = quiet_fit(MLP(backend=backend, **{**SMALL, "batch_size": N}), X, Y_CLS)
    assert a._net.params.tobytes() == b._net.params.tobytes()
    assert a.predict_proba(X).tobytes() == b.predict_proba(X).tobytes()


@pytest.mark.parametrize("backend", BACKENDS)
def test_dtype_spellings_are_accepted(backend):
    ref = fitted(backend, dtype="float64")
    for spelling in (np.float64, np.dtype("float64"), "f8", "double"):
        model = fitted(backend, dtype=spelling)
        assert model._net.params.dtype == np.float64
        assert model._net.params.tobytes() == ref._net.params.tobytes()


# -------------------------------------------------------------- properties
@st.composite
def _finite_problem(draw, max_rows=30, max_features=6, bound=1e3):
    n = draw(st.integers(2, max_rows))
    d = draw(st.integers(1, max_features))
    values = st.floats(-bound, bound, allow_nan=False, allow_infinity=False, width=64)
    X_ = draw(hnp.arrays(np.float64, (n, d), elements=values))
    k = draw(st.integers(2, min(n, 4)))
    y_ = np.arange(n) % k
    y_ = y_[draw(st.permutations(range(n)))]
    return X_, y_


@given(problem=_finite_problem(), backend=st.sampled_from(BACKENDS),
       dtype=st.sampled_from(["float32", "float64"]), solver=st.sampled_from(["adam", "sgd"]))
def test_random_finite_data_fits_and_gives_probabilities(problem, backend, dtype, solver):
    X_, y_ = problem
    model = quiet_fit(MLP((4,), backend=backend, dtype=dtype, solver=solver, epochs=3,
                          batch_size=8, random_state=0), X_, y_)
    proba = model.predict_proba(X_)
    assert proba.shape == (len(X_), len(np.unique(y_)))
    assert np.isfinite(proba).all() and (proba >= 0).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5 if dtype == "float32" else 1e-12)
    assert set(model.predict(X_)) <= set(y_)


@given(problem=_finite_problem(), data=st.data(), backend=st.sampled_from(BACKENDS),
       bad=st.sampled_from([np.nan, np.inf, -np.inf]))
def test_a_non_finite_value_is_named_by_its_place(problem, data, backend, bad):
    X_, y_ = problem
    n, d = X_.shape
    places = data.draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, d - 1)),
                                min_size=1, max_size=3))
    X_bad = X_.copy()
    for r, c in places:
        X_bad[r, c] = bad
    r, c = min(places)  # the first in row-major order is reported
    with pytest.raises(ValueError, match=rf"^X holds a non-finite value \({bad}\) "
                                         rf"at row {r}, column {c};"):
        MLP((3,), backend=backend, epochs=1).fit(X_bad, y_)


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_non_finite_value_in_the_models_own_dtype_is_named(backend, dtype, method):
    # an X already in the model's dtype and layout skips the conversion: the
    # prediction kernel finds the bad row and the message is the same
    model = fitted(backend, dtype=dtype)
    for value, row, col in [(np.nan, 7, 2), (np.inf, 0, 0), (-np.inf, N - 1, D - 1)]:
        X_bad = with_value(value, row, col, dtype)
        args = (X_bad, Y_CLS) if method == "score" else (X_bad,)
        with pytest.raises(ValueError, match=rf"^X holds a non-finite value \({value}\) "
                                             rf"at row {row}, column {col};"):
            getattr(model, method)(*args)


@pytest.mark.parametrize("backend", BACKENDS)
def test_labels_counted_from_zero_and_others_encode_alike(backend):
    # integer labels 0..k-1 are their own class codes; any other labels are looked up
    shifted = quiet_fit(MLP(backend=backend, **SMALL), X, Y_CLS + 5)
    plain = fitted(backend)
    np.testing.assert_array_equal(shifted.classes_, [5, 6, 7])
    np.testing.assert_array_equal(shifted.coefs_[0], plain.coefs_[0])
    np.testing.assert_array_equal(shifted.predict(X), plain.predict(X) + 5)
    for model, bad in [(plain, 3), (plain, -1), (shifted, 4)]:
        y_bad = (Y_CLS if model is plain else Y_CLS + 5).copy()
        y_bad[11] = bad
        with pytest.raises(ValueError, match=rf"y holds labels not in classes_ .*\[{bad}\]"):
            model.partial_fit(X, y_bad)


# ------------------------------------------------------------- huge inputs
def _finite_or_refused(call):
    """Run call(); it must return finite numbers or raise ValueError/DivergenceError."""
    try:
        out = call()
    except (ValueError, DivergenceError) as exc:
        assert str(exc)
        return None
    out = np.asarray(out, dtype=np.float64)
    assert np.isfinite(out).all(), "non-finite output returned instead of an error"
    return out


# the NumPy backend lets NumPy's overflow warnings through before the clean error
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning",
                            "ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("scale", [1e30, 1e38, 1e300])
@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_huge_inputs_never_give_nan(backend, dtype, task, scale):
    y = Y_CLS if task == "classification" else Y_REG
    Xh = X * scale
    # trained on huge inputs: a clean model, or an error; the model never predicts NaN
    model = MLP(backend=backend, dtype=dtype, **SMALL)
    _finite_or_refused(lambda: quiet_fit(model, Xh, y).n_iter_)
    if hasattr(model, "_params"):
        assert np.isfinite(model._params).all()  # DivergenceError keeps finite weights
        for X_ in (Xh, X):
            _finite_or_refused(lambda: model.predict(X_).astype(float) if task != "classification"
                               else model.predict_proba(X_))
    # an ordinary model asked about huge inputs
    model = fitted(backend, task, dtype=dtype)
    if task == "classification":
        proba = _finite_or_refused(lambda: model.predict_proba(Xh))
        if proba is not None:
            np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    else:
        _finite_or_refused(lambda: model.predict(Xh))
    assert math.isfinite(model.score(X, y))


@pytest.mark.parametrize("dtype, big", [(np.float32, 3e38), (np.float64, 1e300)],
                         ids=["float32", "float64"])
def test_finite_values_whose_squares_overflow_are_accepted_unchanged(dtype, big):
    X = np.array([[big, -big, 1.0], [0.0, big / 7, -2.5]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning escapes the check
        out = checks.check_X(X, dtype)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, X)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype, big", [(np.float32, 1e30), (np.float64, 1e200)],
                         ids=["float32", "float64"])
def test_a_non_finite_value_among_huge_ones_is_named(dtype, big, bad):
    X = np.full((4, 3), big, dtype=dtype)  # the sum of squares overflows too
    X[2, 1] = bad
    with pytest.raises(ValueError, match=r"non-finite value \((nan|-?inf)\) at row 2, column 1"):
        checks.check_X(X, dtype)
