"""``check_gradients``: the kernels' gradient against central finite differences.

The network's loss (data loss plus L2 penalty, as training minimises it) is a
function of the flat parameter vector; the kernels' loss-and-gradient call
gives its value and its gradient in one compiled call. This module perturbs
single parameters by +-h, evaluates the loss on both sides and compares

    (loss(theta + h e_i) - loss(theta - h e_i)) / (2 h)

with the kernels' gradient entry i, layer by layer. Everything runs in
float64 on a copy of the parameters (a float32 model is checked at its
weights cast up: central differences in float32 would be noise), on at most
``max_rows`` rows of the data and at most ``per_layer`` parameters of each
layer, so that a check takes milliseconds; the model is not changed.

The relative error of an entry is ``|fd - g| / max(|fd|, |g|, floor)``, where
the floor is the rounding noise of the difference quotient itself,
``NOISE * eps64 * max(|loss|, 1) / h``: an entry whose true gradient is below
what finite differences can resolve (a dead or saturated unit) is compared by
its absolute difference instead of giving a meaningless ratio. No single step
suits every entry (a large step crosses ReLU kinks and feels the curvature of
unscaled inputs, a small one drowns in rounding), so each entry is tried at
h = eps * max(1, |theta_i|) for eps, 10 eps, eps/10 and eps/100 (stopping at
the first that agrees to ``TOLERANCE / 100``) and keeps its smallest error. A
correct gradient agrees at one of them; a wrong one (a missing factor, a
wrong sign, a term left out) differs from the true derivative by the same
amount at every step, and shows an error of order 1e-2 to 1. Below
``TOLERANCE`` (1e-4) the gradient counts as correct; correct gradients give
1e-5 or less, also at saturated units and for losses far above 1.

Besides the check, the result carries the size of the whole analytic
gradient per layer (``LayerCheck.grad_rms``) beside the weights'
(``weight_rms``), which the doctor uses to judge exploding gradients.
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["check_gradients", "GradientCheck", "LayerCheck"]

#: Below this maximal relative error a gradient counts as correct.
TOLERANCE = 1e-4
_EPS64 = np.finfo(np.float64).eps
#: Rounding error of one loss evaluation, in units of eps * max(|loss|, 1): the
#: loss sums thousands of terms, each rounded.
NOISE = 1024.0


@dataclass(frozen=True)
class LayerCheck:
    """The check of one layer of weights (``layer`` 0 maps the inputs to the
    first hidden layer).

    ``checked``: parameters compared (weights and biases together);
    ``max_rel_error`` and ``worst`` (``("W", i, j)`` or ``("b", j)``): the largest
    relative error and where; ``grad_rms``: root mean square of the analytic
    gradient over all the layer's weights (not only the checked ones);
    ``weight_rms``: the same for the weights themselves.
    """

    layer: int
    shape: tuple
    checked: int
    max_rel_error: float
    worst: tuple
    grad_rms: float
    weight_rms: float


@dataclass(frozen=True)
class GradientCheck:
    """What ``check_gradients`` found: one ``LayerCheck`` per layer, the loss at
    the checked parameters, the step ``h`` relative to ``max(1, |theta|)`` and the
    rows used."""

    layers: tuple
    loss: float
    eps: float
    rows: int

    @property
    def max_rel_error(self):
        """The largest relative error over every checked parameter."""
        return max(layer.max_rel_error for layer in self.layers)

    @property
    def ok(self):
        """Whether the kernels' gradient agrees with finite differences
        (``max_rel_error`` below ``TOLERANCE``)."""
        return self.max_rel_error < TOLERANCE

    def __str__(self):
        lines = [f"gradient check on {self.rows} rows (loss {self.loss:.6g}, central "
                 f"differences, h = {self.eps:g} x max(1, |w|)): "
                 f"{'agrees' if self.ok else 'DISAGREES'}, max relative error "
                 f"{self.max_rel_error:.2e}",
                 f"{'layer':>5} {'shape':>11} {'checked':>8} {'max rel err':>12} "
                 f"{'rms grad':>10} {'rms weight':>10}"]
        for c in self.layers:
            shape = f"{c.shape[0]}x{c.shape[1]}"
            lines.append(f"{c.layer:>5} {shape:>11} {c.checked:>8} {c.max_rel_error:>12.2e} "
                         f"{c.grad_rms:>10.3g} {c.weight_rms:>10.3g}")
        return "\n".join(lines)


def check_gradients(model, X, y, *, eps=1e-4, max_rows=256, per_layer=40, random_state=0,
                    kernels=None):
    """Compare the kernels' gradient of a fitted model's training loss on (X, y)
    with central finite differences, layer by layer.

    Parameters
    ----------
    model : fitted ``fastmlp.MLP``, ``fastmlp.sklearn.MLPClassifier`` or ``MLPRegressor``
        Its weights, activation, output layer and L2 penalty define the loss;
        the model is not changed.
    X, y : the data, as the model's ``fit`` takes them (labels are encoded
        with the model's classes).
    eps : float
        Step of the differences, relative: h = eps * max(1, |theta_i|).
    max_rows : int
        Rows used (a random subset when X has more).
    per_layer : int
        Parameters checked per layer (a random subset of its weights and
        biases when it has more); the gradient's magnitude per layer is
        computed from all of them.
    random_state : int or None
        Seed of the row and parameter subsets.
    kernels : None or a kernels object (``fastmlp.kernels.get(name)``)
        Whose loss-and-gradient call to check (default: the model's backend).

    Returns
    -------
    GradientCheck
    """
    from . import kernels as kernel_module
    from .errors import NotFittedError

    net = getattr(model, "__dict__", {}).get("_net")
    if net is None:
        raise NotFittedError(f"check_gradients needs a fitted model; this "
                             f"{type(model).__name__} is not fitted yet: call fit or "
                             "partial_fit first")
    for name, value, low in (("eps", eps, 0.0), ("max_rows", max_rows, 1),
                             ("per_layer", per_layer, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise TypeError(f"{name} must be a number, got {type(value).__name__}")
        if not value > low or (name != "eps" and int(value) != value):
            raise ValueError(f"{name} must be {'> 0' if name == 'eps' else 'an integer >= 1'}"
                             f", got {value!r}")
    if eps >= 1e-2:
        raise ValueError(f"eps must be below 1e-2 for the differences to mean anything, "
                         f"got {eps}")
    kern = kernels if kernels is not None else kernel_module.get(
        getattr(model, "backend_", None))
    Xd, target = model_inputs(model, X, y)
    rng = np.random.default_rng(random_state)
    n = Xd.shape[0]
    if n > max_rows:
        rows = np.sort(rng.choice(n, int(max_rows), replace=False))
        Xd = np.ascontiguousarray(Xd[rows])
        target = np.ascontiguousarray(target[rows])
    sizes = net.sizes
    theta = net.params.astype(np.float64)
    grads = np.zeros_like(theta)
    l2 = float(_l2(model))

    from .kernels import ACTIVATIONS, OUTPUTS

    act, output = ACTIVATIONS[net.activation], OUTPUTS[net.output]
    labels, values = ((target, np.empty((0, 0))) if target.ndim == 1
                      else (np.empty(0, dtype=np.int64), target))
    no_weights = np.empty(0, dtype=np.float64)
    chunk = Xd.shape[0]
    work = np.empty(kernel_module.work_size(sizes, chunk), dtype=np.float64)

    def loss(params, out):
        data, penalty = kern._loss_gradient(Xd, labels, values, no_weights, params, out, sizes,
                                            act, output, l2, chunk, work)
        return data + penalty

    f0 = loss(theta, grads)
    steps = (eps, 10.0 * eps, eps / 10.0, eps / 100.0)
    scratch = np.empty_like(theta)
    layers = []
    off = 0
    for index, (n_in, n_out) in enumerate(zip(sizes[:-1].tolist(), sizes[1:].tolist())):
        count = (n_in + 1) * n_out
        picked = np.arange(count) if count <= per_layer else np.sort(
            rng.choice(count, int(per_layer), replace=False))
        worst, worst_at = 0.0, None
        for local in picked.tolist():
            i = off + local
            err = np.inf
            for step in steps:
                err = min(err, _entry_error(loss, theta, scratch, i, step, grads[i], f0))
                if err <= TOLERANCE / 100.0:
                    break
            if worst_at is None or err > worst:
                worst, worst_at = err, local
        W = theta[off : off + n_in * n_out]
        gW = grads[off : off + n_in * n_out]
        where = (("W", worst_at // n_out, worst_at % n_out) if worst_at < n_in * n_out
                 else ("b", worst_at - n_in * n_out))
        layers.append(LayerCheck(layer=index, shape=(n_in, n_out), checked=int(picked.size),
                                 max_rel_error=float(worst), worst=where,
                                 grad_rms=float(np.sqrt(np.mean(gW * gW))),
                                 weight_rms=float(np.sqrt(np.mean(W * W)))))
        off += count
    return GradientCheck(layers=tuple(layers), loss=float(f0), eps=float(eps),
                         rows=int(Xd.shape[0]))


def _entry_error(loss, theta, scratch, i, eps, gradient, f0):
    """Relative error of ``gradient`` against the central difference of
    ``loss`` in parameter i with step eps * max(1, |theta_i|)."""
    h = eps * max(1.0, abs(theta[i]))
    saved = theta[i]
    theta[i] = saved + h
    up = loss(theta, scratch)
    theta[i] = saved - h
    down = loss(theta, scratch)
    theta[i] = saved
    fd = (up - down) / (2.0 * h)
    floor = NOISE * _EPS64 * max(abs(f0), 1.0) / h
    return abs(fd - gradient) / max(abs(fd), abs(gradient), floor)


def _l2(model):
    """The L2 factor of the model's loss (``l2`` of MLP, ``alpha`` of the
    scikit-learn classes)."""
    value = getattr(model, "l2", None)
    return getattr(model, "alpha", 0.0) if value is None else value


def model_inputs(model, X, y):
    """(X as a C-contiguous float64 array, targets in the output layer's terms:
    int64 class codes for a softmax output, else a float64 2-D array) for a
    fitted model; a ValueError or TypeError names what does not fit."""
    from . import checks

    net = model.__dict__["_net"]
    n_features = int(net.sizes[0])
    if checks.is_sparse(X):
        checks.check_sparse_X(X, np.float64, n_features)  # refuses what it should
        Xd = X.toarray()
    else:
        Xd = checks.check_X(X, np.float64, n_features)
    Xd = np.ascontiguousarray(Xd, dtype=np.float64)
    n = Xd.shape[0]
    binarizer = model.__dict__.get("_label_binarizer")
    if binarizer is not None:  # fastmlp.sklearn.MLPClassifier
        indicator = np.asarray(binarizer.transform(np.asarray(y)), dtype=np.float64)
        if indicator.shape[0] != n:
            raise ValueError(f"y has {indicator.shape[0]} rows, X has {n}")
        if net.output == "softmax":
            return Xd, np.ascontiguousarray(np.argmax(indicator, axis=1), dtype=np.int64)
        return Xd, np.ascontiguousarray(indicator.reshape(n, -1))
    if net.output == "softmax":
        labels = checks.check_y(y, n, True)
        classes = model.classes_
        codes = np.clip(np.searchsorted(classes, labels), 0, len(classes) - 1)
        unknown = classes[codes] != labels
        if np.any(unknown):
            raise ValueError(f"y holds labels not in the model's classes_ "
                             f"{list(classes)}: {np.unique(labels[unknown])[:5].tolist()}")
        return Xd, codes.astype(np.int64)
    Y = checks.check_y(y, n, False)
    Y = np.ascontiguousarray(np.asarray(Y, dtype=np.float64).reshape(n, -1))
    if Y.shape[1] != int(net.sizes[-1]):
        raise ValueError(f"y has {Y.shape[1]} target columns; the model has "
                         f"{int(net.sizes[-1])} outputs")
    return Xd, Y

