"""The doctor: every finding re-created on purpose, and none on healthy models.

Each test builds the cause itself (inputs in the hundreds, a learning rate
far too small or too large, biases pushed so far negative that ReLU units
die, weights blown up, a class that is 5 % of the rows, too few epochs) and
checks that the doctor names it with numbers the test can derive on its own,
and that healthy models of the same shape get no finding.
"""

import copy
import warnings

import numpy as np
import pytest

import fastmlp
from fastmlp import MLP, Diagnosis, Finding, diagnose
from fastmlp.datasets import load_breast_cancer, load_digits, standardize
from fastmlp.doctor import CODES


# ------------------------------------------------------------------ data
def pulsar_like(n=400, seed=0):
    """8 features in the hundreds (means 50..400, spreads 10..100), 2 classes
    from a linear rule on the standardized features: the first old question."""
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, 8))
    y = (Z @ rng.standard_normal(8) + 0.3 * rng.standard_normal(n) > 0).astype(np.int64)
    return Z * rng.uniform(10, 100, 8) + rng.uniform(50, 400, 8), y


def ionosphere_like(n=351, seed=1):
    """351 x 34 standardized features, 2 classes: the second old question's shape."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 34))
    y = (X @ rng.standard_normal(34) / 6 + 0.3 * rng.standard_normal(n) > 0).astype(np.int64)
    return X, y


def cancer():
    X, y = load_breast_cancer()
    return standardize(X), y


def digits(n=800):
    X, y = load_digits()
    return standardize(X[:n]), y[:n]


def fit(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastmlp.ConvergenceWarning)
        return model.fit(X, y)


# --------------------------------------------------------------- healthy
@pytest.mark.parametrize("fitted", [False, True], ids=["probe", "fitted"])
def test_standardized_digits_are_healthy(fitted):
    X, y = digits()
    model = MLP((32,), validation=0.1, random_state=0)
    if fitted:
        fit(model, X, y)
    report = diagnose(model, X, y)
    assert report.findings == ()
    assert report.healthy
    assert report.probe is (not fitted)
    assert report.gradients.ok
    assert report.score > 0.9
    assert "no problems found" in str(report)


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_standardized_breast_cancer_is_healthy_for_every_activation(activation):
    X, y = cancer()
    assert diagnose(MLP((16, 16), activation, random_state=0), X, y).codes == ()
    trained = fit(MLP((16,), activation, validation=0.2, random_state=0), X, y)
    assert diagnose(trained, X, y).codes == ()


# ---------------------------------------------------------- the old questions
def test_first_old_question_unscaled_inputs_saturate_a_tiny_tanh_layer():
    """8 features in the hundreds -> (3,) tanh -> 2 classes, full batch."""
    X, y = pulsar_like()
    model = MLP((3,), "tanh", batch_size=len(y), random_state=0)
    report = diagnose(model, X, y)
    assert {"unscaled-inputs", "saturated-units", "loss-frozen"} <= set(report.codes)
    unscaled = report["unscaled-inputs"]
    rms = np.sqrt(np.mean(X ** 2, axis=0))
    assert unscaled.evidence["rms"] == pytest.approx(rms.max())
    assert unscaled.evidence["column"] == int(np.argmax(rms))
    assert f"column {int(np.argmax(rms))} has values of typical magnitude" in unscaled.message
    assert unscaled.evidence["columns_over"] == 8
    assert report["saturated-units"].evidence["units"] == 3
    assert report["loss-frozen"].evidence["constant_prediction"] == pytest.approx(
        -np.sum(np.bincount(y) / len(y) * np.log(np.bincount(y) / len(y))))
    # the same network on standardized features: none of those causes
    healthy = diagnose(model, standardize(X), y)
    assert not {"unscaled-inputs", "saturated-units", "loss-frozen"} & set(healthy.codes)


def test_second_old_question_loss_frozen_by_a_tiny_learning_rate():
    """34 -> (20, 20) sigmoid -> 2, batch 1, lr 1e-7: the loss does not move."""
    X, y = ionosphere_like()
    report = diagnose(MLP((20, 20), "sigmoid", lr=1e-7, batch_size=1, random_state=0), X, y)
    assert "loss-frozen" in report
    frozen = report["loss-frozen"]
    curve_change = frozen.evidence["change"]
    assert curve_change < 0.02
    assert "lr=1e-07" in frozen.message and "ten times more" in frozen.message
    assert "one-class" in report  # nothing learned: one class everywhere
    assert report.epochs == 30  # the probe's length: 30 epochs of 351 steps
    healthy = diagnose(MLP((20, 20), "sigmoid", solver="sgd", lr=0.01, batch_size=1,
                           random_state=0), X, y)
    assert healthy.codes == ()


def test_second_old_question_a_large_learning_rate_saturates_and_freezes():
    X, y = ionosphere_like()
    report = diagnose(MLP((20, 20), "sigmoid", lr=0.1, batch_size=1, random_state=0), X, y)
    assert {"saturated-units", "loss-frozen"} <= set(report.codes)
    frozen = report["loss-frozen"]
    assert "saturated-units" in frozen.message  # the cause is named, not a bigger lr
    assert frozen.evidence["second_half_median"] >= 0.98 * frozen.evidence["constant_prediction"]


# ------------------------------------------------------- one test per code
def test_unscaled_inputs_tiny_features():
    X, y = cancer()
    report = diagnose(MLP((16,), random_state=0), X * 1e-4, y)
    assert "unscaled-inputs" in report
    assert report["unscaled-inputs"].evidence["rms"] == pytest.approx(
        np.sqrt(np.mean((X * 1e-4) ** 2, axis=0)).max())
    assert "tiny" in report["unscaled-inputs"].message


def test_unscaled_inputs_names_the_column():
    X, y = cancer()
    X = X.copy()
    X[:, 3] = X[:, 3] * 200 + 1000
    names = [f"f{j}" for j in range(X.shape[1])]
    report = diagnose(MLP((16,), random_state=0), X, y, feature_names=names)
    assert report["unscaled-inputs"].evidence["column"] == "f3"
    assert report["unscaled-inputs"].evidence["columns_over"] == 1
    assert "column 'f3' has values" in str(report)


def test_class_imbalance():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((400, 5))
    y = np.r_[np.zeros(380, np.int64), np.ones(20, np.int64)]
    X[y == 1] += 1.5
    report = diagnose(MLP((8,), random_state=0), X, y)
    assert "class-imbalance" in report
    ev = report["class-imbalance"].evidence
    assert (ev["largest_class"], ev["largest_count"], ev["smallest_class"],
            ev["smallest_count"]) == (0, 380, 1, 20)
    assert ev["ratio"] == pytest.approx(19.0)
    balanced = np.r_[np.zeros(200, np.int64), np.ones(200, np.int64)]
    assert "class-imbalance" not in diagnose(MLP((8,), random_state=0), X, balanced)


def test_dead_units_after_their_biases_are_pushed_far_negative():
    X, y = cancer()
    model = fit(MLP((16,), random_state=0), X, y)
    assert "dead-units" not in diagnose(model, X, y)
    # |x @ w| is a few units at most for standardized x: a bias of -1000 keeps
    # these 8 units at 0 on every row
    model.intercepts_[0][:8] = -1e3
    report = diagnose(model, X, y)
    assert "dead-units" in report
    assert report["dead-units"].evidence == {"layer": 1, "dead_units": 8, "units": 16,
                                             "share": 0.5}


def test_saturated_units_of_a_fitted_sigmoid_network():
    X, y = cancer()
    model = fit(MLP((10,), "sigmoid", validation=0.2, random_state=0), X, y)
    assert "saturated-units" not in diagnose(model, X, y)
    model.coefs_[0] = model.coefs_[0] * 100  # pre-activations 100 times larger
    report = diagnose(model, X, y)
    assert "saturated-units" in report
    assert report["saturated-units"].evidence["layer"] == 1


def test_vanishing_gradients_through_a_deep_sigmoid_stack():
    """Six sigmoid layers (slope at most 1/4 each) with Glorot weights: the
    gradient reaching the first layer is thousands of times smaller."""
    X, y = ionosphere_like()
    deep = MLP((16,) * 6, "sigmoid", solver="sgd", lr=1e-6, random_state=0)
    report = diagnose(deep, X, y)
    assert "vanishing-gradients" in report
    ev = report["vanishing-gradients"].evidence
    assert ev["ratio"] == pytest.approx(ev["first_layer"] / ev["output_layer"])
    assert ev["ratio"] < 1e-3
    assert len(ev["per_layer"]) == 7
    relu = diagnose(MLP((16,) * 6, "relu", solver="sgd", lr=1e-6, random_state=0), X, y)
    assert "vanishing-gradients" not in relu


def test_exploding_gradients_when_the_weights_are_blown_up():
    X, y = cancer()
    model = fit(MLP((32, 32, 32), random_state=0, validation=0.2), X, y)
    assert "exploding-gradients" not in diagnose(model, X, y)
    model.coefs_ = [W * 10 for W in model.coefs_]  # each ReLU layer now amplifies tenfold
    report = diagnose(model, X, y)
    assert "exploding-gradients" in report
    assert report["exploding-gradients"].evidence["ratio"] > 100


def test_a_divergence_error_in_the_probe_is_evidence_not_a_crash():
    """Features in the thousands, identity units and plain SGD at lr 0.1: the
    probe overflows (DivergenceError); the doctor reports it."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((400, 5)) * 1e3
    y = (X[:, 0] > 0).astype(np.int64)
    model = MLP((16,), "identity", solver="sgd", lr=0.1, random_state=0)
    with pytest.raises(fastmlp.DivergenceError):
        copy.deepcopy(model).fit(X, y)
    report = diagnose(model, X, y)
    assert report.diverged and "diverged" in report.diverged
    assert {"unscaled-inputs", "exploding-gradients", "loss-diverging"} <= set(report.codes)
    assert report["exploding-gradients"].evidence["diverged"] is True
    assert "overflowed" in str(report)


def test_loss_diverging_with_a_learning_rate_that_overshoots():
    X, y = ionosphere_like()
    report = diagnose(MLP((20, 20), "sigmoid", solver="sgd", lr=1.0, batch_size=1,
                          random_state=0), X, y)
    assert "loss-diverging" in report
    ev = report["loss-diverging"].evidence
    assert ev["last"] > 1.5 * ev["lowest"] and ev["last"] > ev["first"]
    assert "not-converged" not in report


def test_one_class_when_the_output_bias_swamps_the_inputs():
    X, y = cancer()
    model = fit(MLP((16,), random_state=0, validation=0.2), X, y)
    assert "one-class" not in diagnose(model, X, y)
    model.intercepts_[-1] = np.array([50.0, 0.0])  # class 0 wins on every row
    report = diagnose(model, X, y)
    assert "one-class" in report
    ev = report["one-class"].evidence
    assert ev["class"] == 0 and ev["predicted_share"] == 1.0
    assert ev["true_share"] == pytest.approx(np.mean(y == 0))


def test_not_converged_fitted_and_probe():
    X, y = cancer()
    short = fit(MLP((16,), epochs=5, random_state=0), X, y)
    report = diagnose(short, X, y)
    assert report.codes == ("not-converged",)
    ev = report["not-converged"].evidence
    assert ev["epochs"] == 5
    assert ev["loss_before"] == short.loss_curve_[0] and ev["loss_last"] == short.loss_curve_[-1]
    assert "epochs (now 5)" in report["not-converged"].message
    assert diagnose(MLP((16,), epochs=5, random_state=0), X, y).codes == ("not-converged",)
    # a probe shorter than the model's epochs cannot judge convergence
    assert "not-converged" not in diagnose(MLP((16,), epochs=500, random_state=0), X, y)
    converged = fit(MLP((16,), epochs=1000, random_state=0), X, y)
    assert converged.n_iter_ < 1000
    assert "not-converged" not in diagnose(converged, X, y)


# ------------------------------------------------------------ the contract
def test_the_callers_unfitted_model_is_untouched():
    X, y = pulsar_like()
    generator = np.random.default_rng(5)
    model = MLP((3,), "tanh", batch_size=len(y), random_state=generator)
    before = dict(model.__dict__)
    state = copy.deepcopy(generator.bit_generator.state)
    diagnose(model, X, y)
    assert model.__dict__.keys() == before.keys()
    assert all(model.__dict__[k] is v for k, v in before.items())
    assert generator.bit_generator.state == state
    assert "_net" not in model.__dict__


def test_the_callers_fitted_model_is_untouched():
    X, y = cancer()
    model = fit(MLP((8,), random_state=0), X, y)
    before = dict(model.__dict__)
    params = model._net.params.copy()
    curve = list(model.loss_curve_)
    diagnose(model, X, y)
    assert model.__dict__.keys() == before.keys()
    assert all(model.__dict__[k] is v for k, v in before.items())
    assert np.array_equal(model._net.params, params)
    assert model.loss_curve_ == curve


def test_the_report_reads_as_cause_evidence_and_fix():
    X, y = pulsar_like()
    report = diagnose(MLP((3,), "tanh", batch_size=len(y), random_state=0), X, y)
    assert isinstance(report, Diagnosis)
    assert all(isinstance(f, Finding) and f.severity in ("error", "warning")
               for f in report.findings)
    text = str(report)
    assert text.startswith("fastmlp doctor: MLP(")
    assert f"on {len(y)} rows x 8 features" in text
    assert "problems found" in text
    for i, finding in enumerate(report.findings, 1):
        assert f"{i}. {finding.code} ({finding.severity})" in text
    assert "Standardize every feature" in text  # what to change
    assert f"{report['unscaled-inputs'].evidence['rms']:.3g}" in text  # the numbers
    assert list(report.codes) == sorted(report.codes, key=CODES.index)
    with pytest.raises(KeyError):
        report["dead-units"]


def test_scikit_learn_drop_ins():
    sklearn = pytest.importorskip("sklearn")
    from fastmlp.sklearn import MLPClassifier, MLPRegressor

    X, y = pulsar_like()
    report = diagnose(MLPClassifier((3,), activation="tanh", batch_size=len(y),
                                    random_state=0), X, y)
    assert {"unscaled-inputs", "saturated-units"} <= set(report.codes)
    Xc, yc = cancer()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sklearn.exceptions.ConvergenceWarning)
        healthy = MLPClassifier((16,), early_stopping=True, random_state=0).fit(Xc, yc)
    assert diagnose(healthy, Xc, yc).codes == ()
    short = MLPClassifier((16,), max_iter=5, random_state=0)
    found = diagnose(short, Xc, yc)
    assert found.codes == ("not-converged",)
    assert "max_iter (now 5)" in found["not-converged"].message
    rng = np.random.default_rng(0)
    Xr = rng.standard_normal((300, 4))
    yr = Xr[:, 0] - 2 * Xr[:, 1] + 0.1 * rng.standard_normal(300)
    assert "unscaled-inputs" in diagnose(MLPRegressor(hidden_layer_sizes=(16,),
                                                      random_state=0), Xr * 500, yr)


def test_regression_models():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 4))
    y = X[:, 0] - 2 * X[:, 1] + 0.1 * rng.standard_normal(300)
    assert diagnose(MLP((16,), validation=0.1, random_state=0), X, y).codes == ()
    frozen = diagnose(MLP((16,), lr=1e-7, random_state=0), X, y)
    assert "loss-frozen" in frozen
    assert frozen["loss-frozen"].evidence["constant_prediction"] == pytest.approx(
        0.5 * np.var(y))


def test_bad_input_is_refused_clearly():
    X, y = cancer()
    with pytest.raises(TypeError, match="fastmlp.MLP"):
        diagnose(object(), X, y)
    with pytest.raises(ValueError, match="probe_epochs"):
        diagnose(MLP(), X, y, probe_epochs=0)
    with pytest.raises(ValueError, match="feature_names has 2 names"):
        diagnose(MLP(), X, y, feature_names=["a", "b"])
    bad = X.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="row 3, column 4"):
        diagnose(MLP(), bad, y)
    with pytest.raises(ValueError, match="samples"):
        diagnose(MLP(), X, y[:-1])
    with pytest.raises(ValueError, match="lr must be"):
        diagnose(MLP(lr=-1.0), X, y)
    fitted = fit(MLP((4,), epochs=3, random_state=0), X, y)
    with pytest.raises(ValueError, match="X has 29 features, but the model was fitted with 30"):
        diagnose(fitted, X[:, :29], y)
    with pytest.raises(ValueError, match="labels not in"):
        diagnose(fitted, X, y + 5)
