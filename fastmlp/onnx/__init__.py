"""ONNX export of fitted fastmlp models (``pip install 'fastmlp[onnx]'``).

- ``to_onnx(model, target_opset=None)``: an ``onnx.ModelProto`` with one input
  ``X`` and outputs ``label`` and ``probabilities`` (classifiers) or
  ``variable`` (regressors), for ``fastmlp.MLP`` and the scikit-learn drop-ins.
- Importing this module registers the drop-ins ``fastmlp.sklearn.MLPClassifier``
  and ``MLPRegressor`` with skl2onnx (where scikit-learn and skl2onnx are
  installed), so ``skl2onnx.to_onnx`` converts a ``Pipeline`` that ends in one,
  with the options of scikit-learn's MLP (``zipmap``, ``nocl``,
  ``output_class_labels``).
- ``add_network(graph, model, input_name)``: the network part of a graph, fed
  by any tensor (the building block of every export); ``Graph`` collects nodes.
- ``table_graph(columns, model)``: a graph with one input per raw table column
  (numeric with NaN for an empty cell, or strings) whose preprocessing
  (imputation, missing-value indicators, standardization, one-hot encoding)
  feeds the network; ``preprocessing_columns(pre)`` describes the columns of
  a ``fastmlp.tables.Preprocessing`` (what ``fastmlp export`` writes).

``import fastmlp`` does not import this module, nor onnx.
"""

try:
    import onnx  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess
    raise ImportError(
        "fastmlp.onnx needs the onnx package (and skl2onnx for pipelines): "
        "pip install 'fastmlp[onnx]'") from exc

from .export import to_onnx
from .graph import DEFAULT_OPSET, MIN_OPSET, Graph, check_opset
from .network import add_network, label_values, outputs_info
from .spec import NetworkSpec, describe
from .table import preprocessing_columns, table_graph
from . import skl2onnx_ops

__all__ = ["to_onnx", "add_network", "table_graph", "preprocessing_columns", "Graph",
           "check_opset", "describe", "NetworkSpec", "outputs_info", "label_values",
           "DEFAULT_OPSET", "MIN_OPSET"]

skl2onnx_ops.register()
