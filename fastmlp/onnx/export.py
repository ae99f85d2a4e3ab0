"""``to_onnx``: a fitted model as a stand-alone ONNX model."""

from onnx import helper

from .graph import Graph, check_opset, elem_type
from .network import add_network, outputs_info
from .spec import describe


def to_onnx(model, *, target_opset=None, name="fastmlp", doc_string=""):
    """The ONNX model (``onnx.ModelProto``) of a fitted ``fastmlp.MLP``,
    ``fastmlp.sklearn.MLPClassifier`` or ``MLPRegressor``.

    One input ``X``: [N, n_features], float32 or float64 as the model's dtype.
    Classifiers output ``label`` (the class labels, in the type of
    ``classes_``: int64, string, bool or double; for a multilabel drop-in the
    [N, n_labels] 0/1 int64 matrix ``predict`` gives) and ``probabilities``
    ([N, n_classes], as ``predict_proba``); regressors output ``variable``
    ([N, n_outputs], as ``predict`` reshaped to 2-D). The graph computes in the
    model's dtype.

    Parameters
    ----------
    model : the fitted model (``fastmlp.NotFittedError`` if it is not fitted)
    target_opset : None (``fastmlp.onnx.DEFAULT_OPSET``, capped at the
        installed onnx's newest) or an int from ``MIN_OPSET`` on
    name, doc_string : the graph's name and the model's description
    """
    spec = describe(model)
    graph = Graph(check_opset(target_opset))
    graph.reserve("X", "label", "probabilities", "variable")
    add_network(graph, spec, "X")
    inputs = [helper.make_tensor_value_info("X", elem_type(spec.dtype), ["N", spec.n_features])]
    return graph.model(inputs, outputs_info(spec), name=name, doc_string=doc_string)
