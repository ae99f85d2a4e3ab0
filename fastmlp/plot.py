"""Learning curves of a trained model, with matplotlib.

    >>> from fastmlp.plot import learning_curves
    >>> ax = learning_curves(model)          # training loss, validation score
    >>> ax.figure.savefig("curves.png")

matplotlib is an optional dependency: ``pip install 'fastmlp[plot]'``.
Nothing here imports it until a plot is drawn, and ``save_learning_curves``
draws without pyplot (no window, no GUI backend), as the command line does.
"""

import numpy as np

__all__ = ["learning_curves", "save_learning_curves"]

_MISSING = ("fastmlp's plots need matplotlib, which is not installed: "
            "pip install 'fastmlp[plot]' (or pip install matplotlib)")


def require_matplotlib():
    """Import matplotlib, or raise ImportError saying how to install it."""
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError(_MISSING) from exc
    return matplotlib


def _curves(model):
    """(loss curve, validation scores or None, score name) of a fitted model."""
    curve = model.__dict__.get("loss_curve_")
    if curve is None:
        if "_net" not in model.__dict__ and "coefs_" not in model.__dict__:
            from .errors import NotFittedError

            raise NotFittedError(f"this {type(model).__name__} is not fitted yet: call fit "
                                 "before plotting its learning curves")
        raise ValueError(f"this {type(model).__name__} has no loss curve: only the sgd and "
                         "adam solvers record one (lbfgs does not)")
    if len(curve) == 0:
        raise ValueError("the loss curve is empty: the model has not trained an epoch")
    scores = model.__dict__.get("validation_scores_")
    net = model.__dict__.get("_net")
    classifier = (net.output in ("softmax", "logistic") if net is not None
                  else hasattr(model, "classes_"))
    return (np.asarray(curve, dtype=np.float64),
            None if not scores else np.asarray(scores, dtype=np.float64),
            "validation accuracy" if classifier else "validation R\u00b2")


def learning_curves(model, ax=None, *, title=None, log_loss=False):
    """Plot a fitted model's training loss per epoch and, when it was trained with
    a validation set, its validation score per epoch on a second y axis (with
    the best epoch marked).

    Parameters
    ----------
    model : fitted ``fastmlp.MLP`` or ``fastmlp.sklearn`` model (sgd or adam)
    ax : matplotlib Axes, optional
        Where to draw (default: a new figure from pyplot).
    title : str, optional
    log_loss : bool
        Logarithmic loss axis.

    Returns
    -------
    The matplotlib Axes of the loss (the validation score's twin axis is
    ``ax.figure.axes[-1]`` when there is one).
    """
    curve, scores, score_name = _curves(model)
    require_matplotlib()
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6.4, 4.0))
    epochs = np.arange(1, curve.shape[0] + 1)
    handles = ax.plot(epochs, curve, color="C0", label="training loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    if log_loss:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    if scores is not None:
        twin = ax.twinx()
        score_epochs = epochs[-scores.shape[0]:] if scores.shape[0] <= epochs.shape[0] else (
            np.arange(1, scores.shape[0] + 1))
        handles += twin.plot(score_epochs, scores, color="C1", label=score_name)
        best = int(np.argmax(scores))
        handles.append(twin.axvline(score_epochs[best], color="C1", linestyle=":",
                                    label=f"best: {scores[best]:.4f} (epoch "
                                          f"{score_epochs[best]})"))
        twin.set_ylabel(score_name)
    ax.legend(handles=handles, loc="center right", frameon=True)
    if title:
        ax.set_title(title)
    return ax


def save_learning_curves(model, path, *, title=None, log_loss=False, dpi=100):
    """Draw ``learning_curves`` of ``model`` into a new figure (without pyplot)
    and save it to ``path`` (the format follows the suffix: .png, .svg, .pdf).
    Returns ``path``."""
    _curves(model)
    require_matplotlib()
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.0), layout="tight")
    learning_curves(model, figure.add_subplot(), title=title, log_loss=log_loss)
    figure.savefig(path, dpi=dpi)
    return path
