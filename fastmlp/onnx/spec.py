"""What an ONNX graph needs to know of a fitted model, read once.

``describe(model)`` turns a fitted ``fastmlp.MLP``, ``fastmlp.sklearn.MLPClassifier``
or ``MLPRegressor`` into a ``NetworkSpec``: the layers' weights and biases, the
hidden activation, the kind of output and the class labels. Everything else
in ``fastmlp.onnx`` works from the spec, never from the model's attributes.
This module needs neither onnx nor scikit-learn.
"""

from dataclasses import dataclass

import numpy as np

from ..errors import NotFittedError

#: The kinds of output a network can end in:
#: 'multiclass': softmax over the classes, label = the most probable class;
#: 'binary': one logistic unit, probabilities (1 - p, p), label = classes[p > 0.5];
#: 'multilabel': one logistic unit per label, label = the 0/1 matrix p > 0.5;
#: 'regression': identity output; 'poisson': exp output.
KINDS = ("multiclass", "binary", "multilabel", "regression", "poisson")

#: fastmlp's names of the hidden activations (scikit-learn's 'logistic' is 'sigmoid').
HIDDEN_ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu")


@dataclass(frozen=True)
class NetworkSpec:
    """A fitted network as plain arrays.

    coefs, intercepts : tuples of arrays, per layer W (n_in x n_out) and b (n_out)
    activation : one of ``HIDDEN_ACTIVATIONS``
    kind : one of ``KINDS``
    classes : 1-D array of the class labels (classifiers), else None
    dtype : numpy dtype of the weights (float32 or float64)
    """

    coefs: tuple
    intercepts: tuple
    activation: str
    kind: str
    classes: object
    dtype: np.dtype

    @property
    def n_features(self):
        return int(self.coefs[0].shape[0])

    @property
    def n_outputs(self):
        """Columns of the network's last layer."""
        return int(self.coefs[-1].shape[1])

    @property
    def is_classifier(self):
        return self.kind in ("multiclass", "binary", "multilabel")

    @property
    def n_probabilities(self):
        """Columns of the probabilities output (classifiers)."""
        return 2 if self.kind == "binary" else self.n_outputs


def describe(model):
    """The ``NetworkSpec`` of a fitted fastmlp model; TypeError for any other
    object, ``fastmlp.NotFittedError`` (a ValueError) for an unfitted model."""
    if isinstance(model, NetworkSpec):
        return model
    from ..engine import Engine

    if not isinstance(model, Engine):
        raise TypeError(f"ONNX export takes a fitted fastmlp.MLP, fastmlp.sklearn.MLPClassifier "
                        f"or MLPRegressor, got {type(model).__name__}")
    net = model.__dict__.get("_net")
    if net is None:
        raise NotFittedError(f"this {type(model).__name__} is not fitted yet, so there is "
                             "nothing to export: call fit (or partial_fit) first")
    coefs, intercepts = net.views()
    coefs = tuple(np.array(w) for w in coefs)  # copies: the graph must not change with the model
    intercepts = tuple(np.array(b) for b in intercepts)
    classes = model.__dict__.get("classes_")
    if net.output == "softmax":
        kind = "multiclass"
    elif net.output == "logistic":
        binarizer = model.__dict__.get("_label_binarizer")
        multilabel = binarizer is not None and str(binarizer.y_type_).startswith("multilabel")
        kind = "multilabel" if multilabel else "binary"
        if kind == "binary" and (classes is None or len(classes) != 2):
            raise ValueError(f"this {type(model).__name__} was fitted on "
                             f"{0 if classes is None else len(classes)} class(es); export needs "
                             "2 or more")
    elif net.output == "poisson":
        kind = "poisson"
    else:
        kind = "regression"
    if kind in ("multiclass", "binary"):
        classes = np.asarray(classes)
        if classes.ndim != 1 or classes.shape[0] != (2 if kind == "binary" else net.sizes[-1]):
            raise ValueError(f"classes_ of shape {classes.shape} does not fit a network with "
                             f"{int(net.sizes[-1])} outputs")
    elif kind == "multilabel":
        classes = np.arange(int(net.sizes[-1]), dtype=np.int64)
    else:
        classes = None
    return NetworkSpec(coefs, intercepts, net.activation, kind, classes, np.dtype(net.dtype))
