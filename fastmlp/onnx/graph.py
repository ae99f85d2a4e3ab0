"""``Graph``: the nodes and initializers of an ONNX graph as it is built.

The graph-building functions of ``fastmlp.onnx`` (``add_network``,
``add_table``) write through four methods, ``name``, ``constant``, ``node``
and the attribute ``opset``, so that the same code can write into a
``Graph`` of its own (``to_onnx``, ``table_graph``) or into skl2onnx's
container (``fastmlp.onnx.skl2onnx_ops``).
"""

from numbers import Integral

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: The opset ``to_onnx`` targets unless told otherwise (capped at what the
#: installed onnx knows): what onnxruntime has run for years.
DEFAULT_OPSET = 21
#: The oldest opset the graphs are written for.
MIN_OPSET = 13
#: The version of the 'ai.onnx.ml' domain used where it is needed (LabelEncoder).
ML_OPSET = 2


def check_opset(target_opset):
    """The main-domain opset to write: ``target_opset`` (an int from
    ``MIN_OPSET`` to the installed onnx's newest) or, for None, the default."""
    newest = onnx.defs.onnx_opset_version()
    if target_opset is None:
        return min(DEFAULT_OPSET, newest)
    if isinstance(target_opset, bool) or not isinstance(target_opset, Integral):
        raise TypeError(f"target_opset must be an int or None, got "
                        f"{type(target_opset).__name__}")
    if not MIN_OPSET <= target_opset <= newest:
        raise ValueError(f"target_opset={target_opset} is outside the opsets fastmlp writes "
                         f"with onnx {onnx.__version__}: {MIN_OPSET} to {newest}")
    return int(target_opset)


def elem_type(dtype):
    """The ONNX element type of a numpy dtype."""
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


class Graph:
    """Nodes and initializers being collected for one ONNX graph, with names
    kept unique.

    Parameters
    ----------
    opset : int
        The main domain's opset the nodes are written for (``check_opset``).
    """

    def __init__(self, opset):
        self.opset = opset
        self.nodes = []
        self.initializers = []
        self.domains = {"": opset}
        self._used = set()

    def reserve(self, *names):
        """Mark names (the graph's inputs and outputs) as taken."""
        self._used.update(names)

    def name(self, hint):
        """A name not used yet in this graph, built from ``hint``."""
        name, i = hint, 1
        while name in self._used:
            name, i = f"{hint}_{i}", i + 1
        self._used.add(name)
        return name

    def constant(self, value, hint):
        """The name of a new initializer holding the array ``value`` (strings
        become an ONNX string tensor)."""
        name = self.name(hint)
        value = np.asarray(value)
        if value.dtype.kind in "OU":
            tensor = helper.make_tensor(name, TensorProto.STRING, value.shape,
                                        [str(v).encode("utf-8") for v in value.ravel()])
        else:
            tensor = numpy_helper.from_array(value, name)
        self.initializers.append(tensor)
        return name

    def node(self, op_type, inputs, outputs=None, *, domain="", **attributes):
        """Append a node; ``outputs``: its output names, or None for one new
        name. Returns the (first) output's name."""
        if outputs is None:
            outputs = [self.name(op_type.lower())]
        elif isinstance(outputs, str):
            outputs = [outputs]
        if domain:
            self.domains.setdefault(domain, ML_OPSET)
        self.nodes.append(helper.make_node(op_type, list(inputs), list(outputs),
                                           name=self.name(f"{op_type}_node"), domain=domain,
                                           **attributes))
        return outputs[0]

    def model(self, inputs, outputs, *, name="fastmlp", doc_string=""):
        """The finished ``onnx.ModelProto`` with these input and output
        ``ValueInfoProto``s, checked by ``onnx.checker``."""
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.initializers)
        opsets = [helper.make_opsetid(domain, version) for domain, version in self.domains.items()]
        model = helper.make_model(graph, opset_imports=opsets, producer_name="fastmlp",
                                  doc_string=doc_string)
        model.ir_version = helper.find_min_ir_version_for(opsets)
        from .. import __version__

        model.producer_version = __version__
        onnx.checker.check_model(model)
        return model
