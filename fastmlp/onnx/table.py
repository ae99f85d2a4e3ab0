"""``table_graph``: an ONNX graph with one input per raw table column.

Each column is described by a plain tuple, in the table's order:

- ``("numeric", name, fill_value, has_indicator, mean, scale)``: a float32
  input ``name`` of shape [N, 1], NaN for an empty cell. NaN becomes
  ``fill_value`` (None: left as NaN); then the feature is
  ``(x - mean) / scale`` (None for mean or scale: 0 or 1). With
  ``has_indicator`` a second feature follows it: 1 where the cell was NaN,
  else 0.
- ``("categorical", name, categories)``: a string input ``name`` of shape
  [N, 1]; one 0/1 feature per category, in the listed order; a value that is
  not listed (unseen in training) gives all zeros. An empty cell is the
  empty string, a category like any other. Matching is exact (case and
  spaces count).
- ``("categorical", name, categories, aliases)``: the same, where
  ``aliases`` maps other spellings to listed categories (``{"True": "true",
  "NA": ""}``): a cell spelled so counts as that category.

``preprocessing_columns(pre)`` gives the descriptions of a
``fastmlp.tables.Preprocessing`` (what ``fastmlp train`` keeps in a model
file), so that the graph encodes a row as ``pre.transform`` does.

The features are concatenated in that order (a column's value, then its
indicator; a categorical column's categories in order), or picked with
``order``, and feed the network (``add_network``) or, without a model,
become the output ``features``.
"""

from numbers import Real

import numpy as np
from onnx import TensorProto, helper

from .graph import Graph, check_opset, elem_type
from .network import add_network, outputs_info
from .spec import describe

#: Names the graph's outputs take, so no column may have them.
OUTPUT_NAMES = ("label", "probabilities", "variable", "features")


def table_graph(columns, model=None, *, order=None, target_opset=None, name="fastmlp_table"):
    """The ONNX model (``onnx.ModelProto``) that preprocesses raw columns and,
    given a fitted ``model``, runs its network on the result.

    Parameters
    ----------
    columns : sequence of column descriptions (see the module docstring)
    model : a fitted fastmlp model whose ``n_features`` is the number of
        features the columns give, or None for a graph whose one output,
        ``features`` ([N, n_features] float32), is the preprocessed table
    order : None, or a sequence of int: feature ``j`` fed to the network is
        the ``order[j]``-th feature in the columns' order (a permutation)
    target_opset : as for ``to_onnx``

    The preprocessing computes in the model's dtype (float32 without a
    model); outputs are those of ``to_onnx``.
    """
    specs = [_check_column(i, column) for i, column in enumerate(_as_list(columns))]
    names = [spec[1] for spec in specs]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"column names must be unique; repeated: {duplicated}")
    n_features = sum(_width(spec) for spec in specs)
    if order is not None:
        order = _check_order(order, n_features)
    network = None if model is None else describe(model)
    if network is not None and network.n_features != n_features:
        raise ValueError(f"the columns give {n_features} features but the model takes "
                         f"{network.n_features}")
    dtype = np.dtype(np.float32 if network is None else network.dtype)

    graph = Graph(check_opset(target_opset))
    graph.reserve(*names, *OUTPUT_NAMES)
    inputs, pieces = [], []
    for spec in specs:
        if spec[0] == "numeric":
            inputs.append(helper.make_tensor_value_info(spec[1], TensorProto.FLOAT, ["N", 1]))
            pieces.extend(_numeric(graph, spec, dtype))
        else:
            inputs.append(helper.make_tensor_value_info(spec[1], TensorProto.STRING, ["N", 1]))
            pieces.append(_categorical(graph, spec, dtype))
    features = (graph.node("Concat", pieces, graph.name("table"), axis=1) if len(pieces) > 1
                else pieces[0])
    if order is not None:
        features = graph.node("Gather", [features, graph.constant(order, "order")],
                              graph.name("ordered"), axis=1)
    if network is None:
        graph.node("Identity", [features], "features")
        outputs = [helper.make_tensor_value_info("features", elem_type(dtype),
                                                 ["N", n_features])]
    else:
        add_network(graph, network, features)
        outputs = outputs_info(network)
    return graph.model(inputs, outputs, name=name)


def preprocessing_columns(preprocessing):
    """The column descriptions (for ``table_graph``) of a
    ``fastmlp.tables.Preprocessing``, in its order.

    Numeric columns keep their fill value (None where empty cells were refused
    in training: NaN then passes through to the outputs), indicator, mean and
    scale (mean 0 and scale 1, from ``scale='none'``, write no node).
    Categorical columns keep their categories, and take as aliases the other
    spellings ``transform`` reads as one of them, cell by cell: for a boolean
    column (categories ``false``/``true``) any case (``True``, ``FALSE``);
    where the empty cell is a category, every case of ``NA``, ``N/A``,
    ``NaN``, ``-NaN``, ``null`` and ``None``. Surrounding spaces are not
    removed by the graph.
    """
    from ..tables import BOOLEAN, CATEGORICAL, EMPTY, _missing_spellings

    out = []
    for column in preprocessing.columns:
        if column.kind != CATEGORICAL:
            mean = None if column.mean == 0.0 else column.mean
            scale = None if column.scale == 1.0 else column.scale
            out.append(("numeric", column.name, column.fill, bool(column.indicator), mean,
                        scale))
            continue
        categories = list(column.categories)
        aliases = {}
        if set(categories) <= BOOLEAN:
            for word in categories:
                if word != EMPTY:
                    aliases.update((s, word) for s in _spellings(word))
        if EMPTY in categories:
            aliases.update((s, EMPTY) for s in _missing_spellings())
        listed = set(categories)
        out.append(("categorical", column.name, categories,
                    {k: v for k, v in aliases.items() if k not in listed}))
    return out


def _spellings(word):
    """Every upper/lower-case spelling of ``word``."""
    spellings = [""]
    for c in word:
        spellings = [s + v for s in spellings for v in dict.fromkeys((c.lower(), c.upper()))]
    return spellings


def _numeric(graph, spec, dtype):
    """The nodes of one numeric column: its feature, and its indicator if asked."""
    _, name, fill, indicator, mean, scale = spec
    x = name if dtype == np.float32 else graph.node("Cast", [name], graph.name(f"{name}_cast"),
                                                    to=elem_type(dtype))
    missing = None
    if fill is not None or indicator:
        missing = graph.node("IsNaN", [x], graph.name(f"{name}_missing"))
    if fill is not None:
        x = graph.node("Where", [missing, graph.constant(np.array(fill, dtype=dtype),
                                                         f"{name}_fill"), x],
                       graph.name(f"{name}_filled"))
    if mean is not None:
        x = graph.node("Sub", [x, graph.constant(np.array(mean, dtype=dtype), f"{name}_mean")],
                       graph.name(f"{name}_centred"))
    if scale is not None:
        x = graph.node("Div", [x, graph.constant(np.array(scale, dtype=dtype),
                                                 f"{name}_scale")],
                       graph.name(f"{name}_scaled"))
    if not indicator:
        return [x]
    return [x, graph.node("Cast", [missing], graph.name(f"{name}_indicator"),
                          to=elem_type(dtype))]


def _categorical(graph, spec, dtype):
    """One-hot columns of a string column: index of the category (-1 unseen),
    compared with 0..k-1."""
    _, name, categories, aliases = spec
    position = {c: j for j, c in enumerate(categories)}
    keys = list(categories) + list(aliases)
    values = list(range(len(categories))) + [position[c] for c in aliases.values()]
    index = graph.node("LabelEncoder", [name], graph.name(f"{name}_index"),
                       domain="ai.onnx.ml", keys_strings=keys, values_int64s=values,
                       default_int64=-1)
    hot = graph.node("Equal", [index, graph.constant(np.arange(len(categories), dtype=np.int64),
                                                     f"{name}_codes")],
                     graph.name(f"{name}_hot"))
    return graph.node("Cast", [hot], graph.name(f"{name}_onehot"), to=elem_type(dtype))


def _width(spec):
    if spec[0] == "numeric":
        return 2 if spec[3] else 1
    return len(spec[2])


def _as_list(columns):
    if isinstance(columns, (str, bytes)) or not hasattr(columns, "__iter__"):
        raise TypeError(f"columns must be a sequence of column descriptions, got "
                        f"{type(columns).__name__}")
    columns = list(columns)
    if not columns:
        raise ValueError("columns is empty: describe at least one column")
    return columns


def _check_column(i, column):
    """The column description, checked, with numbers as floats."""
    where = f"column {i}"
    if not isinstance(column, (tuple, list)) or not column:
        raise TypeError(f"{where} must be a tuple ('numeric', ...) or ('categorical', ...), "
                        f"got {column!r}")
    kind = column[0]
    if kind not in ("numeric", "categorical"):
        raise ValueError(f"{where} is of kind {kind!r}; kinds are 'numeric' and 'categorical'")
    expected = (6,) if kind == "numeric" else (3, 4)
    if len(column) not in expected:
        fields = ("('numeric', name, fill_value, has_indicator, mean, scale)"
                  if kind == "numeric" else "('categorical', name, [categories]) or "
                                            "('categorical', name, [categories], {aliases})")
        raise ValueError(f"{where} has {len(column)} fields; a {kind} column is {fields}")
    name = column[1]
    if not isinstance(name, str) or not name:
        raise TypeError(f"{where}'s name must be a non-empty string, got {name!r}")
    where = f"column {name!r}"
    if name in OUTPUT_NAMES:
        raise ValueError(f"{where} has the name of a graph output (outputs are "
                         f"{', '.join(OUTPUT_NAMES)}); rename the column")
    if kind == "categorical":
        categories = column[2]
        if isinstance(categories, (str, bytes)) or not hasattr(categories, "__iter__"):
            raise TypeError(f"{where}'s categories must be a list of strings, got "
                            f"{type(categories).__name__}")
        categories = list(categories)
        if not categories:
            raise ValueError(f"{where} lists no categories")
        bad = [c for c in categories if not isinstance(c, str)]
        if bad:
            raise TypeError(f"{where}'s categories must be strings; not strings: {bad[:5]}")
        if len(set(categories)) != len(categories):
            raise ValueError(f"{where} lists a category twice: "
                             f"{sorted({c for c in categories if categories.count(c) > 1})}")
        return ("categorical", name, tuple(categories),
                _check_aliases(where, column[3] if len(column) == 4 else {}, categories))
    _, _, fill, indicator, mean, scale = column
    if not isinstance(indicator, (bool, np.bool_)):
        raise TypeError(f"{where}'s has_indicator must be True or False, got {indicator!r}")
    values = []
    for field, value in (("fill_value", fill), ("mean", mean), ("scale", scale)):
        if value is not None:
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
                raise TypeError(f"{where}'s {field} must be a number or None, got {value!r}")
            if not np.isfinite(value):
                raise ValueError(f"{where}'s {field} must be finite, got {value!r}")
            value = float(value)
        values.append(value)
    if values[2] == 0.0:
        raise ValueError(f"{where}'s scale is 0; a constant column is scaled by 1")
    return ("numeric", name, values[0], bool(indicator), values[1], values[2])


def _check_aliases(where, aliases, categories):
    """The aliases as a dict {spelling: category}, checked."""
    if not hasattr(aliases, "items"):
        raise TypeError(f"{where}'s aliases must be a dict {{spelling: category}}, got "
                        f"{type(aliases).__name__}")
    aliases = dict(aliases)
    bad = [k for k in aliases if not isinstance(k, str)]
    if bad:
        raise TypeError(f"{where}'s alias spellings must be strings; not strings: {bad[:5]}")
    listed = set(categories)
    unknown = sorted({repr(c) for c in aliases.values() if not isinstance(c, str)
                      or c not in listed})
    if unknown:
        raise ValueError(f"{where}'s aliases name categories it does not list: "
                         f"{', '.join(unknown[:5])}")
    clash = sorted(k for k in aliases if k in listed)
    if clash:
        raise ValueError(f"{where}'s aliases respell listed categories: {clash[:5]}")
    return aliases


def _check_order(order, n_features):
    arr = np.asarray(order)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise TypeError(f"order must be a sequence of feature positions (ints), got {order!r}")
    if sorted(arr.tolist()) != list(range(n_features)):
        raise ValueError(f"order must list each of the {n_features} features' positions "
                         f"0..{n_features - 1} once, got {arr.tolist()}")
    return arr.astype(np.int64)
