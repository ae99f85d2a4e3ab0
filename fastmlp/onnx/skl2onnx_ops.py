"""The scikit-learn drop-ins' converters for skl2onnx.

``register()`` (run by ``import fastmlp.onnx``) tells skl2onnx how to convert
``fastmlp.sklearn.MLPClassifier`` and ``MLPRegressor``: an alias, a shape
calculator that types the outputs, and a converter that writes the network
with ``add_network`` into skl2onnx's container. The classifier declares the
options of scikit-learn's MLP (``zipmap``: True, False or 'columns';
``nocl``; ``output_class_labels``) and is parsed by skl2onnx's standard
classifier parser (after a check that it is fitted): outputs
``output_label`` and ``output_probability`` (a list of dicts) by default,
``label`` and ``probabilities`` with ``zipmap=False``. As with scikit-learn's MLP, the network computes in double
where the pipeline's tensor is double, else in float; labels are int64 (also
for bool labels and float labels that are whole numbers) or strings, and a
multilabel model's label is its [N, n_labels] 0/1 matrix. Unlike skl2onnx's
converter for scikit-learn's MLP, a multi-output regressor keeps its
[N, n_outputs] shape and the Poisson regressor converts (exp output).
"""

import numpy as np
from onnx import TensorProto, numpy_helper

from .network import add_network, label_values
from .spec import describe

CLASSIFIER_ALIAS = "FastmlpMLPClassifier"
REGRESSOR_ALIAS = "FastmlpMLPRegressor"
CLASSIFIER_OPTIONS = {"zipmap": [True, False, "columns"], "nocl": [False, True],
                      "output_class_labels": [False, True]}


def register():
    """Register the drop-ins with skl2onnx; False (and nothing done) where
    skl2onnx or scikit-learn is not installed."""
    try:
        from skl2onnx import update_registered_converter

        from ..sklearn import MLPClassifier, MLPRegressor
    except ImportError:
        return False
    update_registered_converter(MLPClassifier, CLASSIFIER_ALIAS, classifier_shapes,
                                convert_classifier, parser=parse_classifier,
                                options=dict(CLASSIFIER_OPTIONS))
    update_registered_converter(MLPRegressor, REGRESSOR_ALIAS, regressor_shapes,
                                convert_regressor)
    return True


def parse_classifier(scope, model, inputs, custom_parsers=None):
    """skl2onnx's standard classifier parser (outputs label and probabilities,
    then the zipmap options), after refusing an unfitted model by name."""
    describe(model)
    from skl2onnx._parse import _parse_sklearn_classifier

    return _parse_sklearn_classifier(scope, model, inputs, custom_parsers=custom_parsers)


class ContainerGraph:
    """``Graph``'s writing methods over skl2onnx's scope and container."""

    def __init__(self, scope, container):
        self._scope = scope
        self._container = container
        self.opset = container.target_opset

    def name(self, hint):
        return self._scope.get_unique_variable_name(hint)

    def constant(self, value, hint):
        name = self.name(hint)
        value = np.asarray(value)
        if value.dtype.kind in "OU":
            self._container.add_initializer(name, TensorProto.STRING, list(value.shape),
                                            [str(v).encode("utf-8") for v in value.ravel()])
        else:
            tensor = numpy_helper.from_array(value, name)
            self._container.add_initializer(name, tensor.data_type, list(value.shape), tensor)
        return name

    def node(self, op_type, inputs, outputs=None, *, domain="", **attributes):
        if outputs is None:
            outputs = [self.name(op_type.lower())]
        elif isinstance(outputs, str):
            outputs = [outputs]
        self._container.add_node(op_type, list(inputs), list(outputs), op_domain=domain,
                                 name=self._scope.get_unique_operator_name(op_type),
                                 **attributes)
        return outputs[0]


def _compute_dtype(variable):
    """double where the tensor fed to the model is double, else float (as
    skl2onnx's converter of scikit-learn's MLP)."""
    from skl2onnx.common.data_types import DoubleTensorType

    return np.float64 if isinstance(variable.type, DoubleTensorType) else np.float32


def _input_dtype(variable):
    from skl2onnx.common.data_types import (DoubleTensorType, FloatTensorType,
                                            Int64TensorType, BooleanTensorType)

    types = {DoubleTensorType: np.float64, FloatTensorType: np.float32,
             Int64TensorType: np.int64, BooleanTensorType: np.bool_}
    for cls, dtype in types.items():
        if isinstance(variable.type, cls):
            return dtype
    raise TypeError(f"fastmlp's MLP cannot read a tensor of type {variable.type}; "
                    "feed it float, double, int64 or bool")


def _labels(scope, model, spec):
    """The label values the converter writes: the class indices with
    ``nocl=True``, else the classes as int64 (integers, bools and whole-number
    floats) or strings."""
    if scope.get_options(model, dict(nocl=False))["nocl"]:
        if spec.kind == "multilabel":
            raise RuntimeError("option nocl=True does not apply to a multilabel classifier")
        return np.arange(spec.classes.shape[0], dtype=np.int64)
    values = label_values(spec.classes)
    if values.dtype.kind == "b":
        return values.astype(np.int64)
    if values.dtype.kind == "f":
        if not np.all(values == np.round(values)):
            raise RuntimeError(f"class labels {values.tolist()} are floats that are not whole "
                               "numbers; skl2onnx's labels are integers or strings")
        return values.astype(np.int64)
    return values


def _check_io(operator, n_outputs):
    if len(operator.inputs) != 1:
        raise RuntimeError(f"{type(operator.raw_operator).__name__} takes one input tensor, "
                           f"got {len(operator.inputs)}")
    if len(operator.outputs) != n_outputs:
        raise RuntimeError(f"{type(operator.raw_operator).__name__} has {n_outputs} "
                           f"outputs, got {len(operator.outputs)}")


def classifier_shapes(operator):
    """Types and shapes of the classifier's outputs: label [N] (int64 or
    string; [N, n_labels] int64 for multilabel) and probabilities
    [N, n_classes] (float or double as the input)."""
    from skl2onnx.common.data_types import (DoubleTensorType, FloatTensorType,
                                            Int64TensorType, StringTensorType)

    _check_io(operator, 2)
    _input_dtype(operator.inputs[0])
    spec = describe(operator.raw_operator)
    n = operator.inputs[0].get_first_dimension()
    if spec.kind == "multilabel":
        label = Int64TensorType(shape=[n, spec.n_outputs])
    else:
        labels = _labels(operator.scope_inst, operator.raw_operator, spec)
        label = (StringTensorType if labels.dtype.kind == "U" else Int64TensorType)(shape=[n])
    proba = (DoubleTensorType if _compute_dtype(operator.inputs[0]) == np.float64
             else FloatTensorType)(shape=[n, spec.n_probabilities])
    operator.outputs[0].type = label
    operator.outputs[1].type = proba


def regressor_shapes(operator):
    """Type and shape of the regressor's output: [N, n_outputs], float or
    double as the input."""
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    _check_io(operator, 1)
    _input_dtype(operator.inputs[0])
    spec = describe(operator.raw_operator)
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = (DoubleTensorType if _compute_dtype(operator.inputs[0])
                                == np.float64 else FloatTensorType)(shape=[n, spec.n_outputs])


def convert_classifier(scope, operator, container):
    """Write the classifier's network: label, probabilities."""
    model = operator.raw_operator
    spec = describe(model)
    classes = None if spec.kind == "multilabel" else _labels(scope, model, spec)
    add_network(ContainerGraph(scope, container), spec, operator.inputs[0].full_name,
                input_dtype=_input_dtype(operator.inputs[0]),
                dtype=_compute_dtype(operator.inputs[0]), classes=classes,
                label=operator.outputs[0].full_name,
                probabilities=operator.outputs[1].full_name)


def convert_regressor(scope, operator, container):
    """Write the regressor's network: variable."""
    spec = describe(operator.raw_operator)
    add_network(ContainerGraph(scope, container), spec, operator.inputs[0].full_name,
                input_dtype=_input_dtype(operator.inputs[0]),
                dtype=_compute_dtype(operator.inputs[0]),
                variable=operator.outputs[0].full_name)
