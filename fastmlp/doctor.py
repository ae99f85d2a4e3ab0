"""``diagnose``: why a multilayer perceptron does not train, in numbers.

    >>> report = fastmlp.diagnose(MLP(hidden=(3,), activation="tanh"), X, y)
    >>> print(report)                  # a short report: cause, evidence, what to change
    >>> report.codes                   # ('unscaled-inputs', 'saturated-units', ...)

The doctor looks at the data, at a trained network (the model itself when it
is fitted; otherwise a copy trained for a few epochs, the *probe*) and at its
loss curve, and names the known causes of failed training it finds. Each
``Finding`` has a code, a severity ('error': training cannot work like this;
'warning': it likely costs accuracy or time), a message (the cause with its
numbers and what to change) and the evidence as a dict of numbers.

The codes and the rules behind them (thresholds are module constants):

``unscaled-inputs``
    Some feature's root mean square (its typical magnitude, mean and spread
    together) exceeds ``LARGE_FEATURE`` (10), or every feature's is below
    ``SMALL_FEATURE`` (0.01). Initial weights are sized for features of
    magnitude 1: features in the hundreds drive the first layer's units far
    into their flat tails (or to huge gradients) from the first step.
``class-imbalance``
    The most frequent class has at least ``IMBALANCE`` (10) times the rows of
    the rarest.
``saturated-units``
    In some sigmoid or tanh layer at least half the units sit in a flat tail
    (slope below 2 % of the largest for tanh, |a| > 0.99; below 4 % for the
    sigmoid, a < 0.01 or a > 0.99) on more than half the rows. Such units
    pass (almost) no gradient.
``dead-units``
    In some ReLU layer at least ``DEAD_SHARE`` (20 %) of the units output 0 on
    every row: they never receive a gradient again.
``vanishing-gradients``
    The gradient of the loss with respect to the first hidden layer's
    pre-activations is more than ``VANISHING`` (1000) times smaller (root mean
    square per row and unit) than at the output layer: the early layers barely
    learn.
``exploding-gradients``
    That ratio exceeds ``EXPLODING`` (100) the other way, or some layer's
    weight gradient is ``STEEP`` (10) times larger than its weights (root mean
    squares), or training overflowed (``DivergenceError``), or the network's
    outputs are not finite at its weights.
``loss-diverging``
    Training overflowed, or the loss ended (mean of the last 3 epochs) above
    its first epoch's value and 1.5 times above its lowest value.
``loss-frozen``
    After at least 5 epochs, the loss (mean of the first 3 and of the last 3
    epochs) changed by less than 2 %; or it hovers or rises (medians of the
    two halves of the run within 5 %, or the second one higher) at or above
    98 % of the loss of a constant prediction (the class frequencies, or the
    mean target): the network learns nothing from the features.
``one-class``
    At least 98 % of the rows are predicted as one class that holds less than
    90 % of them.
``not-converged``
    Training used every epoch it was allowed (``epochs`` of MLP, ``max_iter``
    of the scikit-learn classes) and the stopping rule (``tol``,
    ``patience``) had not fired: the loss was still improving. Not reported
    with a diverging or frozen loss (more epochs would not help), nor for an
    unfitted model whose probe was shorter than its ``epochs``.

The probe of an unfitted model runs ``PROBE_EPOCHS`` (30) epochs, more when
that makes fewer than ``PROBE_STEPS`` (300) optimiser steps (full batches),
never more than the model's own ``epochs``. The statistics use at most
``STAT_ROWS`` (2000) rows.

The doctor also compares the kernels' gradient with finite differences
(``fastmlp.check_gradients``), so a report that names none of these causes
has also ruled out a wrong gradient; the per-layer gradient sizes it reports
come from the same kernels.
"""

import copy
import textwrap
import warnings
from dataclasses import dataclass, field

import numpy as np

__all__ = ["diagnose", "Diagnosis", "Finding", "CODES"]

#: Every finding code, in the order a report lists them (causes before symptoms).
CODES = ("unscaled-inputs", "class-imbalance", "saturated-units", "dead-units",
         "vanishing-gradients", "exploding-gradients", "loss-diverging", "loss-frozen",
         "one-class", "not-converged")
SEVERITIES = ("error", "warning")
#: The codes that name why units pass no gradient (what a frozen loss follows from).
_MECHANISMS = ("unscaled-inputs", "saturated-units", "dead-units", "vanishing-gradients",
               "exploding-gradients")

LARGE_FEATURE = 10.0
SMALL_FEATURE = 0.01
IMBALANCE = 10.0
SATURATED_ROWS = 0.5
SATURATED_UNITS = 0.5
DEAD_SHARE = 0.2
VANISHING = 1e3
EXPLODING = 1e2
STEEP = 10.0
FROZEN_CHANGE = 0.02
PLATEAU_CHANGE = 0.05
BASELINE_SHARE = 0.98
DIVERGING_RISE = 1.5
ONE_CLASS_SHARE = 0.98
ONE_CLASS_TRUE = 0.9
#: Epochs of the probe that an unfitted model is trained for (at most), unless
#: that is fewer than ``PROBE_STEPS`` optimiser steps (full batches).
PROBE_EPOCHS = 30
PROBE_STEPS = 300
#: Rows the activation and gradient statistics are computed on (at most).
STAT_ROWS = 2000
#: Rows and parameters per layer of the gradient check (a sanity check of the
#: kernels here; ``check_gradients`` itself defaults to more).
GRADIENT_ROWS = 128
GRADIENT_ENTRIES = 12


@dataclass(frozen=True)
class Finding:
    """One cause of failed training: ``code`` (one of ``CODES``), ``severity``
    ('error' or 'warning'), ``message`` (the cause with its numbers, then what
    to change) and ``evidence`` (the numbers, by name)."""

    code: str
    severity: str
    message: str
    evidence: dict = field(default_factory=dict)

    def __str__(self):
        return f"{self.code} ({self.severity}): {self.message}"


@dataclass(frozen=True)
class Diagnosis:
    """The doctor's report: the ``findings`` (a tuple of ``Finding``, causes
    first) and what they were judged on.

    ``model``: the model's repr; ``rows``, ``features``: the data's shape;
    ``probe``: whether a copy was trained (the model was unfitted);
    ``epochs``: epochs in the loss curve examined; ``losses``: (first, last)
    loss or None; ``score``: the trained network's accuracy or R^2 on the data;
    ``gradients``: the ``GradientCheck`` (None when training overflowed before
    any weights could be checked); ``diverged``: the ``DivergenceError`` message
    or None; ``overflow``: whether the network's outputs are not finite on these
    rows (then no gradient or prediction statistics are computed).
    """

    findings: tuple
    model: str
    rows: int
    features: int
    probe: bool
    epochs: int
    losses: tuple = None
    score: float = None
    score_name: str = "score"
    gradients: object = None
    diverged: str = None
    overflow: bool = False

    @property
    def codes(self):
        """The codes of the findings, in report order."""
        return tuple(f.code for f in self.findings)

    @property
    def healthy(self):
        """Whether nothing was found."""
        return not self.findings

    def __contains__(self, code):
        return code in self.codes

    def __getitem__(self, code):
        """The finding with this code (KeyError when there is none)."""
        for finding in self.findings:
            if finding.code == code:
                return finding
        raise KeyError(code)

    def __str__(self):
        lines = [f"fastmlp doctor: {self.model} on {self.rows} rows x {self.features} features"]
        if self.probe:
            lines.append(f"probe: a copy of the unfitted model trained for {_epochs(self.epochs)}; "
                         "the model itself was not changed")
        elif self.epochs:
            lines.append(f"fitted model: {_epochs(self.epochs)} in its loss curve")
        if self.losses is not None:
            lines.append(f"loss: {self.losses[0]:.4g} (first epoch) -> {self.losses[1]:.4g} "
                         "(last)")
        if self.diverged:
            lines.append("the probe stopped with a DivergenceError: " + self.diverged.split(". ")[0])
        if self.overflow:
            lines.append("the network's outputs are not finite on these rows: its weights or "
                         "inputs are too large (no gradient or prediction statistics)")
        if self.score is not None:
            lines.append(f"{self.score_name} on these rows: {self.score:.4f}")
        if self.gradients is not None:
            g = self.gradients
            verdict = ("agrees with finite differences" if g.ok
                       else "DISAGREES with finite differences (a bug in fastmlp: please report it)")
            lines.append(f"gradient check: the kernels' gradient {verdict} (max relative error "
                         f"{g.max_rel_error:.1e} on {g.rows} rows)")
        if not self.findings:
            lines.append("")
            lines.append("no problems found")
            return "\n".join(lines)
        lines.append("")
        n = len(self.findings)
        lines.append(f"{n} problem{'s' if n > 1 else ''} found:")
        for i, f in enumerate(self.findings, 1):
            lines.append("")
            lines.append(f"{i}. {f.code} ({f.severity})")
            lines.extend(textwrap.wrap(f.message, width=88, initial_indent="   ",
                                       subsequent_indent="   "))
        return "\n".join(lines)


def _epochs(n):
    return f"{n} epoch" if n == 1 else f"{n} epochs"


# ------------------------------------------------------------------ subjects
class _Subject:
    """What the doctor needs from a model, for ``fastmlp.MLP`` and the
    ``fastmlp.sklearn`` classes: hyper-parameters under their own names, a
    probe, the task."""

    def __init__(self, model):
        from .engine import Engine
        from .model import MLP

        self.model = model
        self.sklearn = not isinstance(model, MLP)
        if not isinstance(model, Engine) or (self.sklearn
                                             and not hasattr(model, "hidden_layer_sizes")):
            raise TypeError("diagnose takes a fastmlp.MLP or a fastmlp.sklearn MLPClassifier "
                            f"or MLPRegressor, got {type(model).__name__}")
        self.fitted = "_net" in model.__dict__

    # hyper-parameters, by their meaning
    def _get(self, mlp_name, sklearn_name):
        return getattr(self.model, sklearn_name if self.sklearn else mlp_name)

    @property
    def lr(self):
        return self._get("lr", "learning_rate_init")

    @property
    def epochs(self):
        return self._get("epochs", "max_iter")

    @property
    def tol(self):
        return self.model.tol

    @property
    def patience(self):
        return self._get("patience", "n_iter_no_change")

    def name(self, meaning):
        """The model's name for a hyper-parameter ('lr', 'epochs', 'batch_size', 'l2')."""
        if not self.sklearn:
            return meaning
        return {"lr": "learning_rate_init", "epochs": "max_iter", "l2": "alpha",
                "patience": "n_iter_no_change"}.get(meaning, meaning)

    def task(self, y):
        if self.sklearn:
            return "classification" if hasattr(self.model, "predict_proba") else "regression"
        if self.fitted:
            return "classification" if self.model._net.output == "softmax" else "regression"
        from . import checks

        if self.model.task != "auto":
            return self.model.task
        return "classification" if checks.is_classification(y) else "regression"

    def check_params(self):
        """Refuse invalid hyper-parameters with the model's own message."""
        if self.sklearn:
            self.model._validate_params()
        else:
            from . import checks

            checks.check_params(self.model)

    def probe_length(self, rows, epochs):
        """Epochs of the probe: ``epochs``, or more where an epoch has few steps
        (full batches) so that the probe makes ``PROBE_STEPS`` steps, and never
        more than the model's own ``epochs``."""
        batch = self.model.batch_size
        if self.sklearn and batch == "auto":
            batch = 200
        steps_per_epoch = -(-rows // max(1, min(int(batch), rows)))
        wanted = max(epochs, -(-PROBE_STEPS // steps_per_epoch))
        return int(min(int(self.epochs), wanted))

    def probe(self, X, y, epochs):
        """A copy of the model trained for ``epochs`` (at most its own); returns
        (the copy, the DivergenceError's message or None)."""
        from .errors import ConvergenceWarning, DivergenceError

        if self.sklearn:
            from sklearn.base import clone
            from sklearn.exceptions import ConvergenceWarning as SklearnConvergence

            copy_ = clone(self.model)
            copy_.set_params(max_iter=epochs, verbose=False)
            quiet = (ConvergenceWarning, SklearnConvergence)
        else:
            copy_ = type(self.model)(**copy.deepcopy(self.model.get_params()))
            copy_.set_params(epochs=epochs, verbose=False)
            quiet = (ConvergenceWarning,)
        diverged = None
        with warnings.catch_warnings():
            for category in quiet:
                warnings.simplefilter("ignore", category)
            try:
                copy_.fit(X, y)
            except DivergenceError as exc:
                if "_net" not in copy_.__dict__:
                    raise
                diverged = str(exc)
        return copy_, diverged


# --------------------------------------------------------------------- entry
def diagnose(model, X, y, *, feature_names=None, probe_epochs=PROBE_EPOCHS, random_state=0):
    """Find out why ``model`` does not train well on (X, y).

    Parameters
    ----------
    model : ``fastmlp.MLP`` or ``fastmlp.sklearn.MLPClassifier`` / ``MLPRegressor``
        Fitted: its weights and loss curve are examined as they are. Unfitted:
        a copy (same hyper-parameters) is trained for at most ``probe_epochs``
        epochs and examined. The model itself is never changed.
    X, y : the training data, as ``fit`` takes them.
    feature_names : sequence of str, optional
        Names of X's columns for the report (default: a DataFrame's columns,
        else the column numbers).
    probe_epochs : int
        Most epochs of the probe.
    random_state : int
        Seed of the row subsets the statistics use.

    Returns
    -------
    Diagnosis
        ``str(diagnosis)`` is the report; ``diagnosis.findings`` the causes.
    """
    from . import checks
    from .gradcheck import check_gradients

    subject = _Subject(model)
    if (isinstance(probe_epochs, bool) or not isinstance(probe_epochs, (int, np.integer))
            or probe_epochs < 1):
        raise ValueError(f"probe_epochs must be an integer >= 1, got {probe_epochs!r}")
    if feature_names is None and hasattr(X, "columns"):
        feature_names = [str(c) for c in X.columns]
    if checks.is_sparse(X):
        checks.check_sparse_X(X, np.float64)  # refuses what fit refuses
        Xd = np.ascontiguousarray(X.toarray(), dtype=np.float64)
    else:
        Xd = checks.check_X(X, np.float64)
    if feature_names is not None and len(feature_names) != Xd.shape[1]:
        raise ValueError(f"feature_names has {len(feature_names)} names for "
                         f"{Xd.shape[1]} columns of X")
    names = ([f"column {name!r}" for name in feature_names] if feature_names is not None
             else [f"column {j}" for j in range(Xd.shape[1])])
    if subject.fitted:
        n_features = int(model._net.sizes[0])
        if Xd.shape[1] != n_features:
            raise ValueError(f"X has {Xd.shape[1]} features, but the model was fitted with "
                             f"{n_features}")
    else:
        subject.check_params()
    task = subject.task(y)
    labels = checks.check_y(y, Xd.shape[0], task == "classification")

    findings = []
    findings += _unscaled(Xd, names, list(feature_names) if feature_names is not None
                          else list(range(Xd.shape[1])))
    if task == "classification":
        findings += _imbalance(labels)

    diverged = None
    if subject.fitted:
        trained = model
        epochs_allowed = subject.epochs
    else:
        epochs_allowed = subject.probe_length(Xd.shape[0], int(probe_epochs))
        trained, diverged = subject.probe(X, y, epochs_allowed)
    curve = np.asarray(trained.__dict__.get("loss_curve_") or [], dtype=np.float64)

    rng = np.random.default_rng(random_state)
    rows = (np.arange(Xd.shape[0]) if Xd.shape[0] <= STAT_ROWS
            else np.sort(rng.choice(Xd.shape[0], STAT_ROWS, replace=False)))
    net = trained._net
    X_stat = np.ascontiguousarray(Xd[rows])
    y_stat = labels[rows]
    activations = _hidden_activations(trained, X_stat)
    if net.activation in ("sigmoid", "tanh"):
        findings += _saturated(activations, net.activation)
    if net.activation == "relu":
        findings += _dead(activations)

    overflow = not _outputs_finite(trained, Xd)
    gradients = signals = None
    if not overflow:
        gradients = check_gradients(trained, X_stat, y_stat, max_rows=GRADIENT_ROWS,
                                    per_layer=GRADIENT_ENTRIES, random_state=random_state)
        signals = _signals(trained, X_stat, y_stat, activations)
    findings += _gradient_findings(subject, signals, gradients, diverged, overflow)
    findings += _curve_findings(subject, trained, curve, labels, task, diverged,
                                judge_convergence=subject.fitted or epochs_allowed ==
                                subject.epochs, others=[f.code for f in findings])
    score = None
    if not overflow:
        if task == "classification":
            predicted = np.asarray(trained.predict(Xd))
            findings += _one_class(predicted, labels)
            score = float(np.mean(predicted == labels))
        else:
            score = float(trained.score(Xd, y))

    order = {code: i for i, code in enumerate(CODES)}
    findings.sort(key=lambda f: order[f.code])
    return Diagnosis(findings=tuple(findings), model=repr(model), rows=int(Xd.shape[0]),
                     features=int(Xd.shape[1]), probe=not subject.fitted,
                     epochs=int(curve.shape[0]),
                     losses=(float(curve[0]), float(curve[-1])) if curve.size else None,
                     score=score,
                     score_name="accuracy" if task == "classification" else "R^2",
                     gradients=gradients, diverged=diverged, overflow=overflow)


# -------------------------------------------------------------- the network
def _hidden_activations(trained, X):
    """The output of every hidden layer for the rows X (float64), computed by
    the model's kernels."""
    from . import kernels

    net = trained._net
    kern = kernels.get(trained.__dict__.get("backend_"))
    layer = {"identity": kern.linear, "sigmoid": kern.linear_sigmoid,
             "tanh": kern.linear_tanh, "relu": kern.linear_relu}[net.activation]
    coefs, intercepts = net.views(net.params.astype(np.float64))
    out = []
    A = X
    for W, b in zip(coefs[:-1], intercepts[:-1]):
        A = layer(A, np.ascontiguousarray(W), np.ascontiguousarray(b))
        out.append(A)
    return out


def _outputs_finite(trained, X):
    """Whether the network's outputs for every row of X are finite."""
    from . import kernels

    net = trained._net
    kern = kernels.get(trained.__dict__.get("backend_"))
    with np.errstate(all="ignore"):
        _, _, bad = kern.predict(np.ascontiguousarray(X, dtype=net.dtype), net.params,
                                 net.sizes, net.activation, net.output)
    return bad < 0


def _signals(trained, X, y, activations):
    """Root mean square, per row and unit, of the loss's gradient with respect
    to each layer's pre-activations (first hidden layer first, output layer
    last), by back-propagation through the model's kernels."""
    from . import kernels
    from .gradcheck import model_inputs

    net = trained._net
    kern = kernels.get(trained.__dict__.get("backend_"))
    _, target = model_inputs(trained, X, y)
    coefs, intercepts = net.views(net.params.astype(np.float64))
    A_last = activations[-1] if activations else X
    Z = kern.linear(A_last, np.ascontiguousarray(coefs[-1]), np.ascontiguousarray(intercepts[-1]))
    n = X.shape[0]
    output = net.output
    if output == "softmax":
        dZ = kern.cross_entropy_backward(Z, target) * n
    elif output == "squared":
        dZ = Z - target
    elif output == "logistic":
        dZ = 1.0 / (1.0 + np.exp(-Z)) - target
    else:  # poisson: the log-rate's gradient
        dZ = np.exp(np.minimum(Z, 700.0)) - target
    sizes = [float(np.sqrt(np.mean(dZ * dZ)))]
    backward = {"sigmoid": kern.sigmoid_backward, "tanh": kern.tanh_backward,
                "relu": kern.relu_backward}.get(net.activation)
    for l in range(len(coefs) - 1, 0, -1):
        dA = np.ascontiguousarray(dZ @ coefs[l].T)
        dZ = dA if backward is None else backward(activations[l - 1], dA)
        sizes.append(float(np.sqrt(np.mean(dZ * dZ))))
    return sizes[::-1]


# ------------------------------------------------------------------ findings
def _unscaled(X, names, columns):
    """``names``: how the report calls each column; ``columns``: the column's
    name or number for the evidence."""
    rms = np.sqrt(np.mean(X * X, axis=0))
    j = int(np.argmax(rms))
    mean, std = float(X[:, j].mean()), float(X[:, j].std())
    evidence = {"column": columns[j], "rms": float(rms[j]), "mean": mean, "std": std,
                "columns_over": int(np.sum(rms > LARGE_FEATURE)),
                "smallest_rms": float(rms.min())}
    fix = ("Standardize every feature to mean 0 and standard deviation 1 before training "
           "(fastmlp.datasets.standardize, scikit-learn's StandardScaler, or `fastmlp train "
           "--scale standard`), and apply the same shift and scale when predicting.")
    if rms[j] > LARGE_FEATURE:
        over = evidence["columns_over"]
        return [Finding(
            "unscaled-inputs", "error" if rms[j] > 10 * LARGE_FEATURE else "warning",
            f"The features are not scaled: {names[j]} has values of typical magnitude "
            f"{rms[j]:.3g} (mean {mean:.3g}, standard deviation {std:.3g}), and {over} of "
            f"{X.shape[1]} columns exceed {LARGE_FEATURE:g}; the smallest column's magnitude "
            f"is {rms.min():.3g}. The initial weights are sized for features of magnitude "
            f"1, so inputs this large push hidden units into their flat tails (or give huge "
            f"gradients) from the first step. {fix}", evidence)]
    if rms[j] < SMALL_FEATURE:
        return [Finding(
            "unscaled-inputs", "warning",
            f"Every feature is tiny: the largest typical magnitude is {rms[j]:.3g} "
            f"({names[j]}), so the first layer sees almost no signal and learns slowly. "
            f"{fix}", evidence)]
    return []


def _imbalance(labels):
    values, counts = np.unique(labels, return_counts=True)
    big, small = int(np.argmax(counts)), int(np.argmin(counts))
    ratio = counts[big] / counts[small]
    if ratio < IMBALANCE:
        return []
    n = counts.sum()
    return [Finding(
        "class-imbalance", "warning",
        f"The classes are imbalanced: {_plain(values[big])!r} has {counts[big]} rows "
        f"({counts[big] / n:.1%}) and {_plain(values[small])!r} only {counts[small]} "
        f"({counts[small] / n:.1%}), {ratio:.0f} times fewer. The loss is dominated by "
        f"the large class, and predicting it everywhere already scores "
        f"{counts[big] / n:.1%} accuracy. Weight the rows (fit(X, y, sample_weight=w) "
        f"with w inversely proportional to the class's frequency, or class_weight="
        f"'balanced' in fastmlp.sklearn.MLPClassifier) and judge the model by balanced "
        f"accuracy or per-class recall.",
        {"largest_class": _plain(values[big]), "largest_count": int(counts[big]),
         "smallest_class": _plain(values[small]), "smallest_count": int(counts[small]),
         "ratio": float(ratio)})]


def _saturated(activations, activation):
    worst = None
    for index, A in enumerate(activations):
        if activation == "tanh":
            tails = np.abs(A) > 0.99
        else:
            tails = (A < 0.01) | (A > 0.99)
        per_unit = tails.mean(axis=0)
        share = float(np.mean(per_unit > SATURATED_ROWS))
        if worst is None or share > worst[1]:
            worst = (index, share, int(np.sum(per_unit > SATURATED_ROWS)), A.shape[1],
                     float(tails.mean()))
    if worst is None or worst[1] < SATURATED_UNITS:
        return []
    index, share, count, width, pairs = worst
    return [Finding(
        "saturated-units", "error" if share == 1.0 else "warning",
        f"{count} of the {width} {activation} units of hidden layer {index + 1} sit in "
        f"their flat tails (slope near 0) on most rows; {pairs:.0%} of all its "
        f"(row, unit) values are in the tails. A saturated unit passes almost no "
        f"gradient, so the layers below it stop learning. Scale the inputs, lower the "
        f"learning rate, or use activation='relu'.",
        {"layer": index + 1, "saturated_units": count, "units": width,
         "share_of_values": pairs})]


def _dead(activations):
    worst = None
    for index, A in enumerate(activations):
        dead = ~np.any(A > 0, axis=0)
        share = float(dead.mean())
        if worst is None or share > worst[1]:
            worst = (index, share, int(dead.sum()), A.shape[1])
    if worst is None or worst[1] < DEAD_SHARE:
        return []
    index, share, count, width = worst
    return [Finding(
        "dead-units", "error" if share == 1.0 else "warning",
        f"{count} of the {width} ReLU units of hidden layer {index + 1} ({share:.0%}) output "
        f"0 on every row: they are dead and will never receive a gradient again. This "
        f"follows a too large learning rate or unscaled inputs, which push a unit's bias and "
        f"weights far negative. Lower the learning rate, scale the inputs, or use "
        f"activation='tanh'.",
        {"layer": index + 1, "dead_units": count, "units": width, "share": share})]


def _gradient_findings(subject, signals, gradients, diverged, overflow):
    findings = []
    if signals is None:
        signals, ratio, evidence = [], np.nan, {}
    else:
        ratio = signals[0] / signals[-1] if signals[-1] > 0 else np.inf
        evidence = {"first_layer": signals[0], "output_layer": signals[-1],
                    "ratio": float(ratio), "per_layer": [float(s) for s in signals]}
    if len(signals) > 1 and ratio < 1.0 / VANISHING:
        shrink = (f"shrinks {1 / ratio:.3g} times" if ratio > 0 else "vanishes completely")
        findings.append(Finding(
            "vanishing-gradients", "error" if ratio < 1.0 / VANISHING ** 2 else "warning",
            f"The gradient {shrink} on its way back from the output layer "
            f"({signals[-1]:.3g}) to the first hidden layer ({signals[0]:.3g}, root mean "
            f"square per row and unit), so the first layers barely learn. Saturated sigmoid "
            f"or tanh units (or dead ReLU units) are the usual cause: scale the inputs, use "
            f"fewer layers or activation='relu'.", evidence))
    steep, steepness = None, 0.0
    if gradients is not None:
        steep = max(gradients.layers, key=lambda c: c.grad_rms / max(c.weight_rms, 1e-300))
        steepness = steep.grad_rms / max(steep.weight_rms, 1e-300)
    reasons = []
    if len(signals) > 1 and ratio > EXPLODING:
        reasons.append(f"the gradient grows {ratio:.3g} times on its way back from the "
                       f"output layer ({signals[-1]:.3g}) to the first hidden layer "
                       f"({signals[0]:.3g})")
    if steepness > STEEP:
        reasons.append(f"layer {steep.layer + 1}'s weight gradient ({steep.grad_rms:.3g}, "
                       f"root mean square) is {steepness:.3g} times its weights "
                       f"({steep.weight_rms:.3g})")
    if diverged:
        reasons.append("training overflowed (a loss or weight stopped being finite)")
    elif overflow:
        reasons.append("the network's outputs overflow at its current weights")
    if reasons:
        findings.append(Finding(
            "exploding-gradients",
            "error" if diverged or overflow or steepness > 10 * STEEP else "warning",
            f"The gradients are too large: {'; '.join(reasons)}. A step of "
            f"{subject.name('lr')}={subject.lr:g} along such a gradient overshoots. Scale the "
            f"inputs and lower {subject.name('lr')} (e.g. to {subject.lr / 10:g}); with many "
            f"layers, smaller initial weights help too.",
            dict(evidence, steepest_layer=None if steep is None else steep.layer + 1,
                 gradient_to_weight=float(steepness), diverged=bool(diverged),
                 overflow=bool(overflow))))
    return findings


def _curve_findings(subject, trained, curve, labels, task, diverged, judge_convergence,
                    others=()):
    findings = []
    lr_name = subject.name("lr")
    if diverged:
        findings.append(Finding(
            "loss-diverging", "error",
            f"Training stopped with a DivergenceError ({diverged.split('. ')[0]}). Lower "
            f"{lr_name} (now "
            f"{subject.lr:g}), e.g. tenfold, and scale the inputs.",
            {"epochs": int(curve.shape[0]), "diverged": True}))
        return findings
    if curve.shape[0] < 3:
        return findings
    first, last3, lowest = float(curve[0]), float(np.mean(curve[-3:])), float(curve.min())
    if last3 > first and last3 > DIVERGING_RISE * lowest:
        findings.append(Finding(
            "loss-diverging", "error",
            f"The loss went up: {first:.4g} after the first epoch, {lowest:.4g} at its "
            f"lowest, {last3:.4g} over the last 3 epochs. The steps overshoot: lower "
            f"{lr_name} (now {subject.lr:g}), e.g. tenfold.",
            {"first": first, "lowest": lowest, "last": last3, "epochs": int(curve.shape[0])}))
        return findings  # raising the epochs would not help: no not-converged
    if curve.shape[0] >= 5:
        start = float(np.mean(curve[:3]))
        change = abs(start - last3) / max(abs(start), 1e-300)
        half = curve.shape[0] // 2
        early, late = float(np.median(curve[:half])), float(np.median(curve[half:]))
        plateau = abs(early - late) / max(abs(early), 1e-300)
        baseline = _constant_loss(trained, labels, task)
        stuck = (baseline is not None and last3 >= BASELINE_SHARE * baseline
                 and (plateau < PLATEAU_CHANGE or late >= early))
        if change < FROZEN_CHANGE or stuck:
            if change < FROZEN_CHANGE:
                what = (f"the loss stayed at {last3:.4g} (it changed by {change:.1%} from "
                        f"the first 3 epochs to the last 3 of {curve.shape[0]})")
            else:
                what = (f"the loss hovers at {late:.4g} (median of the second half of the "
                        f"{curve.shape[0]} epochs; {early:.4g} in the first half)")
            if baseline is not None:
                constant = "class frequencies" if task == "classification" else "mean target"
                what += f"; a constant prediction (the {constant}) scores {baseline:.4g}"
            causes = [code for code in others if code in _MECHANISMS]
            if causes:
                advice = (f"The findings above explain it ({', '.join(causes)}): fix those "
                          "first.")
            else:
                advice = (f"Either the steps are too small ({lr_name}={subject.lr:g}: try ten "
                          f"times more) or the features carry no information about the "
                          "target.")
            findings.append(Finding(
                "loss-frozen", "error", f"Training makes no progress: {what}. {advice}",
                {"start": start, "last": last3, "change": float(change),
                 "first_half_median": early, "second_half_median": late,
                 "constant_prediction": baseline, "epochs": int(curve.shape[0])}))
            return findings
    if judge_convergence and curve.shape[0] >= int(subject.epochs):
        if not _stopping_rule_fired(subject, trained, curve):
            k = min(10, curve.shape[0] - 1)
            findings.append(Finding(
                "not-converged", "warning",
                f"Training ran out of epochs while the loss was still improving: it fell "
                f"from {curve[-1 - k]:.4g} to {curve[-1]:.4g} over the last {k} of "
                f"{curve.shape[0]} epochs, and the stopping rule (less than "
                f"tol={subject.tol:g} better for {subject.name('patience')}="
                f"{subject.patience} epochs) had not fired. Raise "
                f"{subject.name('epochs')} (now {subject.epochs}) or {lr_name} (now "
                f"{subject.lr:g}).",
                {"epochs": int(curve.shape[0]), "loss_before": float(curve[-1 - k]),
                 "loss_last": float(curve[-1]), "window": int(k)}))
    return findings


def _stopping_rule_fired(subject, trained, curve):
    """Whether the stopping rule (``tol``, ``patience``) would have ended
    training by the last epoch: more than ``patience`` epochs in a row that
    improved the best loss (or validation score) by less than ``tol``."""
    scores = trained.__dict__.get("validation_scores_")
    tol, patience = float(subject.tol), int(subject.patience)
    if scores:
        values, better = np.asarray(scores, dtype=np.float64), lambda v, best: v >= best + tol
        best = -np.inf
    else:
        values, better = curve, lambda v, best: v <= best - tol
        best = np.inf
    count = 0
    for v in values:
        if better(v, best):
            count = 0
        else:
            count += 1
        best = max(best, v) if scores else min(best, v)
        if count > patience:
            return True
    return False


def _constant_loss(trained, labels, task):
    """The training loss of the best constant prediction on these labels (as
    the model's loss curve measures it), or None where it is not defined."""
    output = trained._net.output
    if task == "classification":
        _, counts = np.unique(labels, return_counts=True)
        p = counts / counts.sum()
        entropy = float(-np.sum(p * np.log(p)))
        if output == "softmax":
            return entropy
        if output == "logistic" and len(counts) == 2:
            return entropy
        return None
    if output != "squared":
        return None
    Y = np.asarray(labels, dtype=np.float64).reshape(labels.shape[0], -1)
    total = 0.5 * float(np.sum(Y.var(axis=0)))
    # the scikit-learn regressor averages the squared error over the outputs
    return total / Y.shape[1] if hasattr(trained, "hidden_layer_sizes") else total


def _one_class(predicted, labels):
    values, counts = np.unique(np.asarray(predicted), return_counts=True)
    top = int(np.argmax(counts))
    share = counts[top] / counts.sum()
    true_share = float(np.mean(labels == values[top]))
    if share < ONE_CLASS_SHARE or true_share >= ONE_CLASS_TRUE:
        return []
    n = counts.sum()
    return [Finding(
        "one-class", "error",
        f"The predictions collapse onto one class: {_plain(values[top])!r} for {counts[top]} of "
        f"{n} rows ({share:.1%}), while only {true_share:.1%} of the rows have that label. "
        f"The network ignores its inputs; the other findings say why (and if the classes "
        f"are imbalanced, weight the rows).",
        {"class": _plain(values[top]), "predicted_share": float(share),
         "true_share": true_share})]


def _plain(value):
    """A NumPy scalar as a plain Python value (for the evidence)."""
    return value.item() if hasattr(value, "item") else value
