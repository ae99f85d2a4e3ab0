"""``add_network``: the network part of an ONNX graph, fed by any tensor.

This is the building block of every export: ``to_onnx`` feeds it the graph's
input ``X``; skl2onnx's converter feeds it the output of the pipeline's steps
before it; ``table_graph`` feeds it the features its preprocessing subgraph
computes from one input per raw table column. A new front (another
preprocessing) needs only a tensor [N, n_features] of floats::

    from fastmlp.onnx import Graph, add_network, check_opset, describe
    g = Graph(check_opset(None))
    g.reserve("raw", "label", "probabilities")
    feats = ...  # nodes written with g.node(...) that turn "raw" into [N, n_features]
    outs = add_network(g, describe(model), feats, input_dtype="float32")
    onnx_model = g.model([raw_info], outputs_info(describe(model)))
"""

import numpy as np
from onnx import TensorProto, helper

from .graph import elem_type
from .spec import describe

#: ONNX operators of the hidden activations ('identity' writes no node).
_ACTIVATION_OPS = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid"}


def add_network(graph, model, input_name, *, input_dtype=None, dtype=None, classes=None,
                label="label", probabilities="probabilities", variable="variable"):
    """Write the nodes that compute a fitted network's outputs from the tensor
    ``input_name`` (shape [N, n_features]) into ``graph``.

    Parameters
    ----------
    graph : ``fastmlp.onnx.Graph`` (or anything with its ``name``, ``constant``
        and ``node`` methods)
    model : a fitted ``MLP``/drop-in, or its ``NetworkSpec`` (``describe``)
    input_name : str, the tensor the network reads
    input_dtype : the element type of that tensor (a numpy dtype or its name);
        None: already the computation's dtype. Another type is cast first.
    dtype : float32 or float64, the type the network computes in; None: the
        model's own (its weights are cast to it).
    classes : the label values to write for a classifier (None: the model's
        ``classes_``); the same length as the model's.
    label, probabilities, variable : names of the output tensors: ``label``
        ([N] class labels, [N, n_labels] 0/1 int64 for multilabel) and
        ``probabilities`` ([N, n_classes]) for classifiers, ``variable``
        ([N, n_outputs]) for regressors.

    Returns
    -------
    dict : output name by role ('label', 'probabilities' or 'variable').
    """
    spec = describe(model)
    dtype = np.dtype(spec.dtype if dtype is None else dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"the network computes in float32 or float64, not {dtype}")
    x = input_name
    if input_dtype is not None and np.dtype(input_dtype) != dtype:
        x = graph.node("Cast", [x], to=elem_type(dtype))
    last = len(spec.coefs) - 1
    for l, (W, b) in enumerate(zip(spec.coefs, spec.intercepts)):
        w_name = graph.constant(W.astype(dtype), f"coef{l}")
        b_name = graph.constant(b.astype(dtype), f"intercept{l}")
        x = graph.node("Gemm", [x, w_name, b_name], graph.name(f"layer{l}"))
        if l < last and spec.activation in _ACTIVATION_OPS:
            x = graph.node(_ACTIVATION_OPS[spec.activation], [x], graph.name(f"hidden{l}"))
    if not spec.is_classifier:
        op = "Exp" if spec.kind == "poisson" else "Identity"
        return {"variable": graph.node(op, [x], variable)}
    if spec.kind == "multiclass":
        proba = graph.node("Softmax", [x], probabilities, axis=1)
        index = graph.node("ArgMax", [proba], graph.name("class_index"), axis=1, keepdims=0)
        return {"label": _gather_labels(graph, spec, classes, index, label),
                "probabilities": proba}
    p = graph.node("Sigmoid", [x], graph.name("positive" if spec.kind == "binary" else "proba"))
    above = graph.node("Greater", [p, graph.constant(np.array(0.5, dtype=dtype), "half")],
                       graph.name("above_half"))
    if spec.kind == "multilabel":
        graph.node("Identity", [p], probabilities)
        graph.node("Cast", [above], label, to=TensorProto.INT64)
        return {"label": label, "probabilities": probabilities}
    negative = graph.node("Sub", [graph.constant(np.array(1.0, dtype=dtype), "one"), p],
                          graph.name("negative"))
    graph.node("Concat", [negative, p], probabilities, axis=1)
    index = graph.node("Cast", [above], graph.name("class_index"), to=TensorProto.INT64)
    index = graph.node("Reshape", [index, graph.constant(np.array([-1], dtype=np.int64),
                                                         "flat")], graph.name("class_index"))
    return {"label": _gather_labels(graph, spec, classes, index, label),
            "probabilities": probabilities}


def _gather_labels(graph, spec, classes, index, label):
    values = label_values(spec.classes if classes is None else classes)
    if values.shape != spec.classes.shape:
        raise ValueError(f"{values.shape[0]} class labels for a model with "
                         f"{spec.classes.shape[0]} classes")
    return graph.node("Gather", [graph.constant(values, "classes"), index], label, axis=0)


def label_values(classes):
    """The class labels as an array ONNX can hold: int64 for integers, bool,
    float64 for other numbers, str for strings; TypeError for anything else."""
    classes = np.asarray(classes)
    kind = classes.dtype.kind
    if kind == "b":
        return classes.astype(bool)
    if kind == "i":
        return classes.astype(np.int64)
    if kind == "u":
        if classes.size and classes.max() > np.iinfo(np.int64).max:
            raise ValueError("class labels above 2**63 - 1 do not fit ONNX's int64 labels")
        return classes.astype(np.int64)
    if kind == "f":
        return classes.astype(np.float64)
    if kind in "US" or (kind == "O" and all(isinstance(c, str) for c in classes)):
        return classes.astype(str)
    if kind == "O" and all(isinstance(c, (int, np.integer)) and not isinstance(c, bool)
                           for c in classes):
        return label_values(classes.astype(np.int64))
    raise TypeError(f"class labels of dtype {classes.dtype} ({classes[:3].tolist()}...) have "
                    "no ONNX tensor type; labels must be integers, booleans, floats or strings")


def outputs_info(model, *, dtype=None, batch="N"):
    """The graph outputs (``ValueInfoProto``s) ``add_network`` writes with its
    default names: ``label`` and ``probabilities``, or ``variable``."""
    spec = describe(model)
    dtype = np.dtype(spec.dtype if dtype is None else dtype)
    if not spec.is_classifier:
        return [helper.make_tensor_value_info("variable", elem_type(dtype),
                                              [batch, spec.n_outputs])]
    if spec.kind == "multilabel":
        label = helper.make_tensor_value_info("label", TensorProto.INT64,
                                              [batch, spec.n_outputs])
    else:
        values = label_values(spec.classes)
        label_type = TensorProto.STRING if values.dtype.kind == "U" else elem_type(values.dtype)
        label = helper.make_tensor_value_info("label", label_type, [batch])
    return [label, helper.make_tensor_value_info("probabilities", elem_type(dtype),
                                                 [batch, spec.n_probabilities])]
