"""Tables as they come: reading CSV and Parquet files, and the preprocessing
that turns their columns into a model's input matrix.

    from fastmlp.tables import read_table, Preprocessing
    table = read_table("customers.csv")                 # CSV (gzipped too) or Parquet
    table, dropped = table.with_target("churn")         # rows with an empty target left out
    pre = Preprocessing.fit(table, target="churn")      # what to encode, fill and scale
    X, y = pre.transform(table), table.labels("churn")  # float64 matrix, labels
    fastmlp.save(model, "m.npz", extra=pre.to_extra())  # kept beside the model
    pre = load_preprocessing("m.npz")                   # and back (None if the file has none)

This is what ``fastmlp train``/``predict``/``doctor`` do, and what the ONNX
export reads. Reading needs pyarrow (``pip install 'fastmlp[tables]'``; imported only
here and only when a table is read: its CSV reader is multi-threaded and
keeps numbers as numbers, where the csv module makes a Python string of every
cell); the ``Preprocessing`` itself, its storage and ``fastmlp info`` need
only NumPy.

Empty cells
-----------
A CSV cell is empty when, with surrounding spaces removed and ignoring case,
it is blank or one of ``NA``, ``N/A``, ``NaN``, ``-NaN``, ``null``, ``None``
(``MISSING``). In a Parquet file a null is empty, and so is a NaN in a
floating-point column. Blank lines of a CSV file are skipped; rows are counted
from 1, the header not counted, in messages.

Column kinds
------------
A feature column is *numeric* when every non-empty cell is a number (integers,
decimals, Parquet numbers), else *categorical*: text columns, boolean columns
and the integer columns named by ``categorical``. A category is the cell's
text with surrounding spaces removed; a boolean column's cells (Parquet
booleans, or text cells that are all true or false in any case: ``True``,
``FALSE``) are spelled ``false`` and ``true``; integers as written in
decimal. A text column most of whose cells are numbers is refused, naming its
first non-number: a typo, not a category.

Encoding (output features, in the columns' order)
-------------------------------------------------
- numeric: ``(x - mean) / scale``, x being the cell or, for an empty cell, the
  column's training median (``fill``); mean and scale are the training mean
  and standard deviation of the filled column (``scale='standard'``; a constant
  column has scale 1) or 0 and 1 (``scale='none'``). A column that had empty
  cells in training adds an indicator feature right after it: 1.0 where the
  cell is empty, else 0.0. With ``impute='none'`` an empty cell is refused.
- categorical: one 0/1 feature per training category, categories sorted as
  text; an empty cell is the category ``EMPTY`` (the empty string). A category
  not seen in training encodes as all zeros, counted in a warning. More than
  ``max_categories`` distinct values (an ID or free text) is refused.

Stored form
-----------
``Preprocessing.to_extra()`` gives ``{"preprocessing": {...}}`` for
``fastmlp.save(..., extra=...)``: plain JSON, version 2::

    {"version": 2, "target": "churn", "scale": "standard", "impute": "median",
     "columns": [{"name": "age", "kind": "numeric", "fill": 41.0,
                  "indicator": false, "mean": 41.3, "scale": 12.1},
                 {"name": "city", "kind": "categorical",
                  "categories": ["", "berlin", "paris"]}]}

Version 1 (earlier command lines: numeric columns only, no empty cells, the
scaling in the members ``extra.scale_mean``/``extra.scale_std``) is read as
the same thing with ``impute='none'``. A newer version is refused with a
message that asks for a newer fastmlp.
"""

import itertools
import os
import warnings

import numpy as np

__all__ = ["TableError", "Table", "Column", "Preprocessing", "read_table", "load_preprocessing",
           "MISSING", "EMPTY", "BOOLEAN", "MAX_CATEGORIES", "PREPROCESSING", "VERSION"]

#: Cells that mean "no value" in a CSV file (compared stripped, case-insensitively).
MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "-nan"})
#: How an empty cell of a categorical column is spelled among its categories.
EMPTY = ""
#: The most distinct values a categorical column may have (by default).
MAX_CATEGORIES = 50
#: The ``extra`` key under which a model file keeps its preprocessing.
PREPROCESSING = "preprocessing"
#: The version of the stored preprocessing this module writes; it reads 1 and 2.
VERSION = 2
#: How the cells of a boolean column are spelled (with EMPTY) among its categories.
BOOLEAN = frozenset({"false", "true", EMPTY})
NUMERIC, CATEGORICAL = "numeric", "categorical"
IMPUTE = ("median", "none")
SCALE = ("standard", "none")
#: A number as text (what float() reads, infinities and NaN aside).
_NUMBER = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
_INTEGER = r"^\s*[+-]?\d+\s*$"


class TableError(ValueError):
    """Bad input in a table (or a stored preprocessing that does not fit): the
    message names the file, and the row and column where there is one."""


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.compute  # noqa: F401
    except ImportError:
        raise TableError("reading tables needs pyarrow, which is not installed here: "
                         "pip install 'fastmlp[tables]'") from None
    return pyarrow


def _missing_spellings():
    """Every upper/lower-case spelling of MISSING, for pyarrow's exact matching."""
    out = []
    for word in MISSING:
        out.extend("".join(p) for p in itertools.product(*({c.lower(), c.upper()} for c in word)))
    return sorted(set(out))


# ====================================================================== tables
class Table:
    """The columns of a table by name: ``names`` (file order), ``n_rows`` and
    ``path`` (for messages); ``arrow`` is the pyarrow Table. Columns are
    converted only when asked for: ``numbers``, ``texts``, ``labels``."""

    def __init__(self, arrow, path="table"):
        self.arrow = arrow
        self.path = str(path)
        self.names = [str(n) for n in arrow.column_names]
        self.n_rows = arrow.num_rows
        seen = set()
        for name in self.names:
            if name in seen:
                raise TableError(f"{self.path}: the column name {name!r} appears twice in the "
                                 "header")
            seen.add(name)
        self._index = {name: j for j, name in enumerate(self.names)}
        self._converted = {}  # (name, 'numbers' or 'coded') -> the converted column

    @classmethod
    def from_columns(cls, data, path="table"):
        """A Table from a pyarrow Table, a pandas DataFrame or a dict of name ->
        1-D sequence (numbers with NaN or None for empty cells, or strings)."""
        pa = _pyarrow()
        if isinstance(data, pa.Table):
            return cls(data, path)
        if hasattr(data, "columns") and hasattr(data, "dtypes"):  # a pandas DataFrame
            return cls(pa.Table.from_pandas(data, preserve_index=False), path)
        if isinstance(data, dict):
            columns = {}
            for name, values in data.items():
                values = np.asarray(values)
                if values.ndim != 1:
                    raise TableError(f"column {name!r} must be 1-D, got shape {values.shape}")
                columns[str(name)] = pa.array(values.tolist() if values.dtype.kind == "O"
                                              else values, from_pandas=True)
            return cls(pa.table(columns), path)
        raise TypeError("a table is a pyarrow Table, a pandas DataFrame or a dict of columns, "
                        f"got {type(data).__name__}")

    def require(self, names, what="DATA"):
        """Refuse with the list of ``names`` the table lacks."""
        missing = [n for n in names if n not in self._index]
        if missing:
            shown = ", ".join(repr(n) for n in missing[:8])
            more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
            raise TableError(f"{self.path} lacks {len(missing)} column"
                             f"{'s' if len(missing) > 1 else ''} {what} needs: {shown}{more}")

    def column(self, name):
        self.require([name])
        return self.arrow.column(self._index[name])

    # ------------------------------------------------------------ conversions
    def kind(self, name):
        """'numeric' or 'categorical', by the column's content (module docstring)."""
        pa = _pyarrow()
        kind = self.column(name).type
        if _is_number_type(pa, kind) or pa.types.is_null(kind):
            return NUMERIC
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            return CATEGORICAL  # booleans, dates, ...
        coded = self._coded(name)
        filled = ~coded.empty
        if not filled.any():
            return NUMERIC
        numbers = _matches(pa, coded.vocabulary, _NUMBER)[coded.codes]
        if numbers[filled].all():
            return NUMERIC
        if numbers[filled].mean() >= 0.5:
            i = int(np.argmax(filled & ~numbers))
            raise TableError(f"{self.path}: column {name!r} is not numeric (row {i + 1} holds "
                             f"{coded.text(i)[:40]!r}), though most of its cells are numbers; "
                             "fix that cell, or leave the column out with --drop")
        return CATEGORICAL

    def numbers(self, name):
        """Column ``name`` as float64, NaN for an empty cell; refuses a cell that is
        not a number, or an infinite one, naming its row."""
        return self._text_or_numbers(name)[0]

    def _text_or_numbers(self, name):
        """(float64 values, empty mask) of column ``name``: read-only, converted once."""
        return self._cached(name, "numbers", self._convert_numbers)

    def _cached(self, name, what, convert):
        key = (name, what)
        if key not in self._converted:
            self._converted[key] = convert(name)
        return self._converted[key]

    def _convert_numbers(self, name):
        pa = _pyarrow()
        import pyarrow.compute as pc

        column = self.column(name)
        kind = column.type
        if pa.types.is_null(kind):
            out = np.full(self.n_rows, np.nan)
        elif _is_number_type(pa, kind):
            out = np.asarray(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False),
                             dtype=np.float64)
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
            coded = self._coded(name)
            numbers = _matches(pa, coded.vocabulary, _NUMBER)
            bad = ~(coded.empty | numbers[coded.codes])
            if bad.any():
                i = int(np.argmax(bad))
                raise TableError(f"{self.path}: column {name!r} is not numeric (row {i + 1} "
                                 f"holds {coded.text(i)[:40]!r}); encode it as numbers, or "
                                 "leave it out with --drop")
            values = np.array([float(v) if ok else np.nan
                               for v, ok in zip(coded.vocabulary, numbers)], dtype=np.float64)
            out = values[coded.codes]
        else:
            raise TableError(f"{self.path}: column {name!r} is not numeric (its type is {kind}); "
                             "encode it as numbers, or leave it out with --drop")
        empty = np.isnan(out)
        if np.isinf(out).any():
            i = int(np.argmax(np.isinf(out)))
            raise TableError(f"{self.path}: infinite value {out[i]} in row {i + 1}, column "
                             f"{name!r}")
        out.flags.writeable = empty.flags.writeable = False
        return out, empty

    def texts(self, name):
        """Column ``name`` as a NumPy array of str (object), stripped, ``EMPTY``
        for an empty cell; numbers as their text (integral floats as integers)."""
        coded = self._coded(name)
        return coded.vocabulary[coded.codes]

    def _coded(self, name):
        """Column ``name`` as text, dictionary-encoded (``_Coded``), converted once."""
        return self._cached(name, "coded", self._convert_coded)

    def _convert_coded(self, name):
        pa = _pyarrow()
        import pyarrow.compute as pc

        column = self.column(name)
        kind = column.type
        if pa.types.is_null(kind):
            return _Coded(np.zeros(self.n_rows, dtype=np.int32), [EMPTY])
        if pa.types.is_floating(kind):  # integral values as integers: '3', not '3.0'
            values = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
            distinct, codes = np.unique(values, return_inverse=True)  # NaN last, once
            vocabulary = [EMPTY if np.isnan(v) else str(int(v)) if v.is_integer()
                          else repr(float(v)) for v in distinct]
            return _Coded(codes.astype(np.int32), vocabulary)
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            column = pc.cast(column, pa.string())  # integers, booleans (true/false), dates
        column = pc.utf8_trim_whitespace(column)
        missing = pc.is_in(pc.utf8_lower(column), value_set=pa.array(sorted(MISSING)))
        column = pc.if_else(missing, pa.scalar(None, pa.string()), column)
        encoded = pc.dictionary_encode(column.combine_chunks()
                                       if isinstance(column, pa.ChunkedArray) else column)
        vocabulary = encoded.dictionary.to_pylist() + [EMPTY]
        codes = pc.fill_null(encoded.indices, len(vocabulary) - 1)  # empty: the last code
        codes = np.asarray(codes.to_numpy(zero_copy_only=False), dtype=np.int32)
        lowered = [v.lower() for v in vocabulary]
        if set(lowered) <= BOOLEAN:  # True, TRUE, true: one spelling, as Parquet's
            vocabulary, remap = np.unique(lowered, return_inverse=True)
            codes = remap.astype(np.int32)[codes]
        return _Coded(codes, vocabulary)

    def labels(self, name):
        """Target column ``name``: int64 when every cell is an integer, float64 when
        every cell is a number, else str. Refuses an empty cell (``with_target``
        leaves those rows out) and an infinite number."""
        pa = _pyarrow()
        kind = self.column(name).type
        number = _is_number_type(pa, kind)
        empty = self._empty(name)
        if empty.any():
            i = int(np.argmax(empty))
            raise TableError(f"{self.path}: empty cell in row {i + 1} of the target column "
                             f"{name!r}; remove the rows without a target")
        if pa.types.is_integer(kind) or pa.types.is_boolean(kind):  # booleans as 0 and 1
            return np.asarray(self.column(name).to_numpy(zero_copy_only=False), dtype=np.int64)
        if number:
            return self.numbers(name).copy()
        coded = self._coded(name)
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            if _matches(pa, coded.vocabulary, _INTEGER)[coded.codes].all():
                return np.array(coded.vocabulary[coded.codes], dtype=np.int64)
            if _matches(pa, coded.vocabulary, _NUMBER)[coded.codes].all():
                return self.numbers(name).copy()
        return coded.vocabulary.astype(str)[coded.codes]

    def _empty(self, name):
        """The mask of column ``name``'s empty cells."""
        pa = _pyarrow()
        if _is_number_type(pa, self.column(name).type):
            return self._text_or_numbers(name)[1]
        return self._coded(name).empty

    def with_target(self, name):
        """(the table without the rows whose ``name`` cell is empty, how many
        rows that left out)."""
        self.require([name], "the target")
        empty = self._empty(name)
        if not empty.any():
            return self, 0
        pa = _pyarrow()
        kept = Table(self.arrow.filter(pa.array(~empty)), self.path)
        return kept, int(empty.sum())


class _Coded:
    """A column as text, dictionary-encoded: ``codes`` (int32, one per row) index
    ``vocabulary`` (an object array of distinct stripped texts, ``EMPTY`` among
    them for the empty cells, which ``empty`` marks)."""

    def __init__(self, codes, vocabulary):
        self.codes = codes
        self.vocabulary = np.array(vocabulary, dtype=object)
        empty_codes = np.flatnonzero(self.vocabulary == EMPTY)
        self.empty = np.isin(codes, empty_codes)
        self.codes.flags.writeable = self.empty.flags.writeable = False

    def text(self, row):
        return str(self.vocabulary[self.codes[row]])

    def present(self):
        """The distinct texts that occur, EMPTY included if a cell is empty."""
        counts = np.bincount(self.codes, minlength=len(self.vocabulary))
        return set(self.vocabulary[counts > 0].tolist())


def _is_number_type(pa, kind):
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)


def _matches(pa, texts, pattern):
    """Boolean mask of the texts (a sequence of str) that match ``pattern``."""
    import pyarrow.compute as pc

    mask = pc.match_substring_regex(pa.array(list(texts), type=pa.string()), pattern)
    return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)


def read_table(path):
    """The ``Table`` of the file ``path``: Parquet (by its magic bytes), gzipped
    CSV (by its magic bytes) or CSV with a header row. Raises ``TableError``
    naming the problem (``FileNotFoundError``-like cases included)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise TableError(f"DATA file {path} does not exist")
    if os.path.isdir(path):
        raise TableError(f"DATA {path} is a directory, not a file")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise TableError(f"cannot read {path}: {exc.strerror}") from None
    if not head:
        raise TableError(f"{path} is empty: a CSV file with a header row is needed")
    if head.startswith(b"PK"):
        raise TableError(f"{path} is a zip archive (a model file?), not a CSV or Parquet table")
    pa = _pyarrow()
    if head == b"PAR1":
        import pyarrow.parquet as pq

        try:
            arrow = pq.read_table(path)
        except Exception as exc:  # pyarrow raises its own error classes for bad files
            raise TableError(f"{path} is not a readable Parquet file ({_one_line(exc)})") from None
        table = Table(arrow, path)
        if table.n_rows == 0:
            raise TableError(f"{path} has columns but no rows of data")
        return table
    return _read_csv(pa, path, gzipped=head.startswith(b"\x1f\x8b"))


def _read_csv(pa, path, gzipped):
    import pyarrow.csv as csv

    convert = csv.ConvertOptions(null_values=_missing_spellings(), strings_can_be_null=True,
                                 true_values=[], false_values=[])  # booleans stay text
    parse = csv.ParseOptions(newlines_in_values=True)  # quoted notes may span lines
    try:
        source = pa.input_stream(path, compression="gzip" if gzipped else None)
        with source:
            arrow = csv.read_csv(source, parse_options=parse, convert_options=convert)
    except pa.ArrowInvalid as exc:
        raise _csv_error(path, gzipped, exc) from None
    except (OSError, EOFError) as exc:
        raise TableError(f"cannot read {path}: {_one_line(exc)}") from None
    names = [name.strip() for name in arrow.column_names]
    arrow = arrow.rename_columns(names)
    for name, field in zip(names, arrow.schema):
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            raise TableError(f"{path} is not a CSV text file (column {name!r} is not UTF-8 "
                             "text)")
    table = Table(arrow, path)
    if table.n_rows == 0:
        raise TableError(f"{path} has a header but no rows of data")
    return table


def _csv_error(path, gzipped, exc):
    """A TableError for pyarrow's refusal of a CSV file; rows are found with the
    csv module (only on this path)."""
    import csv
    import gzip

    text = _one_line(exc)
    if "UTF8" in text or "UTF-8" in text:
        return TableError(f"{path} is not a CSV text file (it is not UTF-8 text)")
    if "Empty CSV file" in text:
        return TableError(f"{path} is empty: a CSV file with a header row is needed")
    try:
        with (gzip.open if gzipped else open)(path, "rt", newline="",
                                              encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader)
            row = 0
            for line in reader:
                if not line:
                    continue
                row += 1
                if len(line) != len(header):
                    return TableError(f"{path}: row {row} (line {reader.line_num}) has "
                                      f"{len(line)} cells, the header has {len(header)} "
                                      "columns")
    except (UnicodeDecodeError, csv.Error, OSError, EOFError, StopIteration):
        pass
    return TableError(f"{path} is not a readable CSV file ({text})")


def _one_line(exc):
    return " ".join(str(exc).split())


# ============================================================= preprocessing
class Column:
    """How one raw feature column becomes model features.

    Attributes (the stable layout that storage and the ONNX export read):

    - ``name`` (str): the column's name in the table;
    - ``kind`` (str): 'numeric' or 'categorical';
    - numeric columns: ``fill`` (float, the training median put in an empty cell,
      or None: empty cells are refused), ``indicator`` (bool: an added feature,
      1.0 where the cell is empty), ``mean`` and ``scale`` (floats: the feature
      is ``(x - mean) / scale``); ``categories`` is None;
    - categorical columns: ``categories`` (list of str, sorted, in output
      order; ``EMPTY`` ('') is the empty cell, 'false'/'true' a boolean
      column's cells); ``fill``, ``mean``, ``scale`` are None and ``indicator``
      False.

    A raw cell x of a numeric column gives ``((fill if x is empty else x) -
    mean) / scale`` and, if ``indicator``, then ``1.0 if x is empty else 0.0``;
    one of a categorical column gives ``1.0`` in the feature of its category
    (stripped text; ``EMPTY`` if empty), ``0.0`` in the others: all zeros for
    a category not in ``categories``.
    """

    def __init__(self, name, kind, *, fill=None, indicator=False, mean=None, scale=None,
                 categories=None):
        self.name = name
        self.kind = kind
        self.fill = fill
        self.indicator = indicator
        self.mean = mean
        self.scale = scale
        self.categories = categories

    def __repr__(self):
        if self.kind == CATEGORICAL:
            return f"Column({self.name!r}, 'categorical', categories={self.categories!r})"
        return (f"Column({self.name!r}, 'numeric', fill={self.fill!r}, "
                f"indicator={self.indicator!r}, mean={self.mean!r}, scale={self.scale!r})")

    @property
    def feature_names(self):
        """The names of the features this column gives, in order."""
        if self.kind == CATEGORICAL:
            return [f"{self.name}={c}" if c != EMPTY else f"{self.name}=<empty>"
                    for c in self.categories]
        return [self.name] + ([f"{self.name}:empty"] if self.indicator else [])

    def describe(self):
        """One line: the column and its encoding."""
        if self.kind == CATEGORICAL:
            shown = ", ".join(repr(c) for c in self.categories[:8])
            more = f", ... ({len(self.categories)} in all)" if len(self.categories) > 8 else ""
            return f"{self.name}: categorical, one-hot over {shown}{more}"
        fill = ("empty cells refused" if self.fill is None
                else f"empty cells filled with {self.fill:.6g}")
        return (f"{self.name}: numeric, (x - {self.mean:.6g}) / {self.scale:.6g}, {fill}"
                + (", with an empty-cell indicator" if self.indicator else ""))

    def to_json(self):
        if self.kind == CATEGORICAL:
            return {"name": self.name, "kind": self.kind, "categories": list(self.categories)}
        return {"name": self.name, "kind": self.kind, "fill": self.fill,
                "indicator": self.indicator, "mean": self.mean, "scale": self.scale}

    @classmethod
    def from_json(cls, info):
        """A Column from ``to_json``'s form; ValueError if it is not one."""
        if not isinstance(info, dict) or not isinstance(info.get("name"), str):
            raise ValueError("a column without a name")
        name, kind = info["name"], info.get("kind")
        if kind == CATEGORICAL:
            categories = info.get("categories")
            if (not isinstance(categories, list) or not categories
                    or not all(isinstance(c, str) for c in categories)
                    or len(set(categories)) != len(categories)):
                raise ValueError(f"column {name!r} has no valid categories")
            return cls(name, kind, categories=categories)
        if kind != NUMERIC:
            raise ValueError(f"column {name!r} has kind {kind!r}")
        fill, mean, scale = info.get("fill"), info.get("mean"), info.get("scale")
        indicator = info.get("indicator")
        finite = all(isinstance(v, (int, float)) and not isinstance(v, bool)
                     and np.isfinite(v) for v in (mean, scale))
        if (not finite or scale == 0 or not isinstance(indicator, bool)
                or not (fill is None or (isinstance(fill, (int, float)) and np.isfinite(fill)))
                or (indicator and fill is None)):
            raise ValueError(f"column {name!r} has invalid numbers")
        return cls(name, kind, fill=None if fill is None else float(fill), indicator=indicator,
                   mean=float(mean), scale=float(scale))


class Preprocessing:
    """What turns a raw table into a model's input matrix, and back from a
    model file: ``columns`` (``Column`` objects, in the order of the output
    features), ``target`` (the target column's name or None), ``scale``
    ('standard' or 'none') and ``impute`` ('median' or 'none').

    ``feature_names`` lists the output features in order (``n_features`` of
    them); ``transform(table)`` gives the float64 matrix. Build one with
    ``fit``; store it with ``to_extra``, read it with ``from_extra`` or
    ``load_preprocessing``."""

    def __init__(self, columns, target=None, scale="standard", impute="median"):
        self.columns = list(columns)
        self.target = target
        self.scale = scale
        self.impute = impute

    @property
    def feature_names(self):
        return [f for c in self.columns for f in c.feature_names]

    @property
    def n_features(self):
        return sum(len(c.categories) if c.kind == CATEGORICAL else 1 + c.indicator
                   for c in self.columns)

    @property
    def names(self):
        """The raw columns a table must have, in order."""
        return [c.name for c in self.columns]

    def __repr__(self):
        return (f"Preprocessing({len(self.columns)} columns -> {self.n_features} features, "
                f"target={self.target!r}, scale={self.scale!r}, impute={self.impute!r})")

    # ------------------------------------------------------------------ fit
    @classmethod
    def fit(cls, table, target=None, *, drop=(), categorical=(), max_categories=MAX_CATEGORIES,
            impute="median", scale="standard"):
        """The preprocessing of ``table``'s feature columns: every column but
        ``target`` and those in ``drop``, in the table's order. ``categorical``:
        integer (or text) columns to encode as categories. Raises TableError for
        a column it cannot encode, naming it."""
        if impute not in IMPUTE:
            raise ValueError(f"impute must be one of {IMPUTE}, got {impute!r}")
        if scale not in SCALE:
            raise ValueError(f"scale must be one of {SCALE}, got {scale!r}")
        if isinstance(max_categories, bool) or not isinstance(max_categories, int) \
                or max_categories < 1:
            raise ValueError(f"max_categories must be an integer >= 1, got {max_categories!r}")
        drop, categorical = list(drop), list(categorical)
        for option, names in (("--drop", drop), ("--categorical", categorical)):
            unknown = [n for n in names if n not in table.names]
            if unknown:
                raise TableError(f"{option} names columns {table.path} does not have: "
                                 f"{', '.join(repr(n) for n in unknown)}")
        if target is not None and target in categorical:
            raise TableError(f"--categorical names the target column {target!r}")
        features = [n for n in table.names if n != target and n not in drop]
        if not features:
            raise TableError(f"{table.path} has no feature columns besides the target "
                             f"{target!r}")
        for j, name in enumerate(table.names):
            if not name and name in features:
                raise TableError(f"{table.path}: column {j + 1} has no name in the header (an "
                                 "index written by pandas? write the file with index=False)")
        columns = []
        for name in features:
            forced = name in categorical
            if forced or table.kind(name) == CATEGORICAL:
                columns.append(_fit_categorical(table, name, impute, max_categories))
            else:
                columns.append(_fit_numeric(table, name, impute, scale))
        return cls(columns, target, scale, impute)

    # ------------------------------------------------------------ transform
    def transform(self, table, dtype=np.float64):
        """The model's input matrix (``table.n_rows`` x ``n_features``, ``dtype``,
        C-contiguous) from ``table`` (a ``Table``, or what ``Table.from_columns`` takes): its
        columns by name, in any order, others ignored. Warns (UserWarning) with
        the count of categories not seen in training, which encode as zeros."""
        if not isinstance(table, Table):
            table = Table.from_columns(table)
        table.require(self.names, "the model")
        # built column by column in Fortran order (each feature contiguous), then
        # laid out by rows once, as the kernels read it
        out = np.empty((table.n_rows, self.n_features), dtype=dtype, order="F")
        at = 0
        for column in self.columns:
            if column.kind == CATEGORICAL:
                at = _encode_categorical(table, column, out, at)
            else:
                at = _encode_numeric(table, column, out, at)
        return np.ascontiguousarray(out)

    # -------------------------------------------------------------- storage
    def to_extra(self):
        """``{"preprocessing": ...}``: the ``extra`` of ``fastmlp.save`` that keeps it."""
        return {PREPROCESSING: {"version": VERSION, "target": self.target, "scale": self.scale,
                                "impute": self.impute,
                                "columns": [c.to_json() for c in self.columns]}}

    @classmethod
    def from_extra(cls, extra, n_features=None, path="model file"):
        """The preprocessing kept in a model file's ``extra`` (``fastmlp.load(path,
        extra=True)``), None for a file without one. Raises TableError when it is
        damaged, of a newer version, or gives other than ``n_features`` features."""
        info = extra.get(PREPROCESSING)
        if info is None:
            return None
        version = info.get("version") if isinstance(info, dict) else None
        if isinstance(version, int) and not isinstance(version, bool) and version > VERSION:
            raise TableError(f"{path}: the model file's preprocessing has version {version}; "
                             f"this fastmlp reads versions 1 to {VERSION}: upgrade fastmlp")
        try:
            if version == 1:
                pre = cls._from_version_1(info, extra)
            elif version == VERSION:
                pre = cls._from_version_2(info)
            else:
                raise ValueError(f"version {version!r}")
            if n_features is not None and pre.n_features != n_features:
                raise ValueError(f"it gives {pre.n_features} features, the model takes "
                                 f"{n_features}")
        except ValueError as exc:
            raise TableError(f"{path}: the model file's preprocessing is damaged ({exc})") \
                from None
        return pre

    @classmethod
    def _from_version_2(cls, info):
        scale, impute, target = info.get("scale"), info.get("impute"), info.get("target")
        columns = info.get("columns")
        if scale not in SCALE or impute not in IMPUTE or not isinstance(columns, list) \
                or not columns or not (target is None or isinstance(target, str)):
            raise ValueError("its entries are not valid")
        columns = [Column.from_json(c) for c in columns]
        if len({c.name for c in columns}) != len(columns):
            raise ValueError("a column appears twice")
        return cls(columns, target, scale, impute)

    @classmethod
    def _from_version_1(cls, info, extra):
        features, scale = info.get("features"), info.get("scale")
        if (not isinstance(features, list) or not features
                or not all(isinstance(f, str) for f in features) or scale not in SCALE):
            raise ValueError("its entries are not valid")
        n = len(features)
        mean, std = np.zeros(n), np.ones(n)
        if scale == "standard":
            mean, std = extra.get("scale_mean"), extra.get("scale_std")
            for a in (mean, std):
                if not isinstance(a, np.ndarray) or a.shape != (n,) or a.dtype.kind != "f" \
                        or not np.isfinite(a).all():
                    raise ValueError("its scaling is not valid")
        columns = [Column(name, NUMERIC, fill=None, indicator=False, mean=float(m),
                          scale=float(s)) for name, m, s in zip(features, mean, std)]
        return cls(columns, info.get("target"), scale, "none")

    def describe(self):
        """Lines for ``fastmlp info``: the settings, then one line per column."""
        lines = [f"preprocessing: scaling {self.scale}, empty cells: "
                 f"{'median and indicator' if self.impute == 'median' else 'refused'}; "
                 f"target column {self.target!r}",
                 f"columns ({len(self.columns)}) -> {self.n_features} features:"]
        return lines + [f"  {c.describe()}" for c in self.columns]

    @classmethod
    def passthrough(cls, names):
        """Every column in order, as numbers, unscaled, empty cells refused: how
        ``predict`` reads a table for a model file kept without preprocessing."""
        return cls([Column(n, NUMERIC, mean=0.0, scale=1.0) for n in names], None, "none",
                   "none")


def load_preprocessing(path):
    """The ``Preprocessing`` kept in the model file ``path`` (None if it has none)."""
    from . import load

    model, extra = load(path, extra=True)
    return Preprocessing.from_extra(extra, model.n_features_in_, path)


# ------------------------------------------------------------ the encodings
def _fit_numeric(table, name, impute, scale):
    values, empty = table._text_or_numbers(name)
    if empty.all():
        raise TableError(f"{table.path}: column {name!r} has no values (every cell is empty); "
                         "leave it out with --drop")
    gaps = bool(empty.any())
    if gaps and impute == "none":
        i = int(np.argmax(empty))
        raise TableError(f"{table.path}: empty cell in row {i + 1}, column {name!r}; fill or "
                         "remove the rows with missing values (or leave out --impute none)")
    fill = float(np.median(values[~empty])) if impute == "median" else None
    if gaps:
        values = np.where(empty, fill, values)
    mean, std = 0.0, 1.0
    if scale == "standard":
        mean, std = float(values.mean()), float(values.std())
        std = std if std > 0 else 1.0  # a constant column is only centred
    return Column(name, NUMERIC, fill=fill, indicator=gaps, mean=mean, scale=std)


def _fit_categorical(table, name, impute, max_categories):
    coded = table._coded(name)
    if coded.empty.any() and impute == "none":
        i = int(np.argmax(coded.empty))
        raise TableError(f"{table.path}: empty cell in row {i + 1}, column {name!r}; fill or "
                         "remove the rows with missing values (or leave out --impute none)")
    categories = sorted(coded.present())
    if len(categories) > max_categories:
        raise TableError(f"{table.path}: column {name!r} has {len(categories)} distinct values, "
                         f"more than --max-categories {max_categories}: an ID or free text, not "
                         f"a category; leave it out with --drop {name} (or raise "
                         "--max-categories)")
    return Column(name, CATEGORICAL, categories=categories)


def _encode_numeric(table, column, out, at):
    values, empty = table._text_or_numbers(column.name)
    if empty.any():
        if column.fill is None:
            i = int(np.argmax(empty))
            raise TableError(f"{table.path}: empty cell in row {i + 1}, column {column.name!r}; "
                             "fill or remove the rows with missing values (the model was "
                             "trained without empty cells)")
        values = np.where(empty, column.fill, values)
    out[:, at] = (values - column.mean) / column.scale  # in float64, then out's dtype
    at += 1
    if column.indicator:
        out[:, at] = empty
        at += 1
    return at


def _encode_categorical(table, column, out, at):
    coded = table._coded(column.name)
    index = {c: j for j, c in enumerate(column.categories)}
    lookup = np.array([index.get(v, -1) for v in coded.vocabulary.tolist()], dtype=np.int64)
    codes = lookup[coded.codes]
    block = out[:, at:at + len(column.categories)]
    block[...] = 0.0
    seen = codes >= 0
    block[np.flatnonzero(seen), codes[seen]] = 1.0
    unseen = int((~seen).sum())
    if unseen:
        examples = sorted(set(coded.vocabulary[coded.codes[~seen]].tolist()))
        shown = ", ".join(repr(e) for e in examples[:3]) + (", ..." if len(examples) > 3 else "")
        warnings.warn(f"{table.path}: {unseen} row{'s' if unseen > 1 else ''} of column "
                      f"{column.name!r} hold{'s' if unseen == 1 else ''} categories not seen in "
                      f"training ({shown}); they are encoded as all zeros", UserWarning)
    return at + len(column.categories)
