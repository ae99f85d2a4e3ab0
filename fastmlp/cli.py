"""The ``fastmlp`` command line (also ``python -m fastmlp``).

    fastmlp train data.csv --target label --hidden 64,32 --out model.npz --plot curves.png
    fastmlp predict model.npz new.csv [--proba] [--out predictions.csv]
    fastmlp info model.npz
    fastmlp doctor data.csv --target label [model options] [--model model.npz]
    fastmlp demo [--plot PATH] [--export DIR]
    fastmlp bench
    fastmlp config

DATA is a CSV file with a header (optionally gzipped) or, with pyarrow
installed, a Parquet file. ``train`` uses every column but the target (and
those named by ``--drop``) as a numeric feature, standardizes them (``--scale
standard``, the default) and saves the model together with that preprocessing:
the feature names and order, the scaling, the target's name (the class labels
are the model's ``classes_``). ``predict`` picks the model's features from
DATA by name, applies the same scaling and writes a CSV with a header. A model
file saved from Python (``model.save``, or any older fastmlp) has no
preprocessing: ``predict`` then takes DATA's columns in order, and there must
be as many as the model has features.

Bad input (a missing file, a missing or non-numeric column, an empty or
missing cell, a file that is not a model) ends the command with exit status 2
and one line on stderr; a training run that overflows ends with status 1.
Everything heavy (numba, matplotlib, tqdm, pyarrow, scikit-learn) is imported
only by the commands that use it.
"""

import argparse
import os
import sys

import numpy as np  # imported by the fastmlp package anyway

__all__ = ["main", "CommandError"]

#: Exit status of bad input (argparse's status for bad options, too).
BAD_INPUT = 2
#: The key under which a model file keeps the command line's preprocessing.
PREPROCESSING = "preprocessing"
#: Cells that mean "no value" in a CSV file (compared case-insensitively, stripped).
MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "-nan"})


class CommandError(Exception):
    """Bad input to a command: the message is printed as one line on stderr and
    the command exits with status 2."""


# ====================================================================== tables
class Table:
    """The columns of a DATA file by name: ``names`` in file order and ``rows``.

    A column is read as numbers (``numbers``) or as labels (``labels``) only
    when a command needs it, so that columns a command ignores may hold
    anything."""

    def __init__(self, path, names, rows):
        self.path = path
        self.names = names
        self.rows = rows
        self._index = {name: j for j, name in enumerate(names)}

    def require(self, names, what="DATA"):
        """Refuse with the list of ``names`` that DATA lacks."""
        missing = [n for n in names if n not in self._index]
        if missing:
            shown = ", ".join(repr(n) for n in missing[:8])
            more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
            raise CommandError(f"{self.path} lacks {len(missing)} column"
                               f"{'s' if len(missing) > 1 else ''} {what} needs: {shown}{more}")

    def matrix(self, names):
        """The columns ``names`` as one float64 array (rows x columns)."""
        self.require(names, "the model")
        out = np.empty((self.rows, len(names)), dtype=np.float64)
        for j, name in enumerate(names):
            out[:, j] = self.numbers(name)
        return out


class CsvTable(Table):
    """A CSV file with a header, read with the csv module; cells stay text until
    a command asks for a column."""

    def __init__(self, path, text):
        import csv

        reader = csv.reader(text)
        try:
            header = next(reader)
        except StopIteration:
            raise CommandError(f"{path} is empty: a CSV file with a header row is "
                               "needed") from None
        except csv.Error as exc:
            raise CommandError(f"{path} is not a readable CSV file ({exc})") from None
        header = [name.strip() for name in header]
        cells = []
        try:
            for line in reader:
                if not line:  # a blank line
                    continue
                if len(line) != len(header):
                    raise CommandError(
                        f"{path}: row {len(cells) + 1} (line {reader.line_num}) has "
                        f"{len(line)} cells, the header has {len(header)} columns")
                cells.append(line)
        except csv.Error as exc:
            raise CommandError(f"{path}: malformed CSV at line {reader.line_num} "
                               f"({exc})") from None
        _check_header(path, header)
        if not cells:
            raise CommandError(f"{path} has a header but no rows of data")
        super().__init__(path, header, len(cells))
        self._cells = cells

    def _column(self, name):
        j = self._index[name]
        return [row[j] for row in self._cells]

    def numbers(self, name):
        """Column ``name`` as float64; refuses an empty, missing, non-numeric or
        infinite cell, naming its row and the column."""
        values = self._column(name)
        try:
            out = np.array(values, dtype=np.float64)
        except ValueError:
            out = None
        if out is not None and np.isfinite(out).all():
            return out
        for i, text in enumerate(values):  # find the first bad cell and say what it is
            cell = text.strip()
            if cell.lower() in MISSING:
                raise CommandError(f"{self.path}: {_empty(cell)} cell in row {i + 1}, column "
                                   f"{name!r}; fill or remove the rows with missing values")
            try:
                value = float(cell)
            except ValueError:
                raise CommandError(f"{self.path}: column {name!r} is not numeric (row "
                                   f"{i + 1} holds {cell[:40]!r}); encode it as numbers, or "
                                   "leave it out with --drop") from None
            if not np.isfinite(value):
                raise CommandError(f"{self.path}: infinite value {cell!r} in row {i + 1}, "
                                   f"column {name!r}")
        raise AssertionError("unreachable: some cell failed to convert")  # pragma: no cover

    def labels(self, name):
        """Column ``name`` as labels: int64 when every cell is an integer,
        float64 when every cell is a number, else strings. Refuses a missing cell."""
        values = [v.strip() for v in self._column(name)]
        for i, cell in enumerate(values):
            if cell.lower() in MISSING:
                raise CommandError(f"{self.path}: {_empty(cell)} cell in row {i + 1} of the "
                                   f"target column {name!r}; remove the rows without a target")
        for kind in (int, float):
            try:
                numbers = [kind(v) for v in values]
            except ValueError:
                continue
            array = np.array(numbers, dtype=np.int64 if kind is int else np.float64)
            if kind is float and not np.isfinite(array).all():
                i = int(np.argmin(np.isfinite(array)))
                raise CommandError(f"{self.path}: infinite value {values[i]!r} in row {i + 1} "
                                   f"of the target column {name!r}")
            return array
        return np.array(values, dtype=str)


class ParquetTable(Table):
    """A Parquet file, read with pyarrow."""

    def __init__(self, path):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise CommandError(f"{path} is a Parquet file, and reading Parquet needs pyarrow: "
                               "pip install 'fastmlp[parquet]' (or pip install pyarrow)") from None
        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises its own error classes for bad files
            raise CommandError(f"{path} is not a readable Parquet file "
                               f"({_one_line(exc)})") from None
        names = [str(n) for n in table.column_names]
        _check_header(path, names)
        if table.num_rows == 0:
            raise CommandError(f"{path} has columns but no rows of data")
        super().__init__(path, names, table.num_rows)
        self._table = table

    def _column(self, name):
        return self._table.column(self._index[name])

    def _first_null(self, column, name, what):
        import pyarrow.compute as pc

        if column.null_count:
            i = int(pc.index(pc.is_null(column), True).as_py())
            raise CommandError(f"{self.path}: empty cell in row {i + 1}, {what} {name!r}; "
                               "fill or remove the rows with missing values")

    def numbers(self, name):
        import pyarrow as pa

        column = self._column(name)
        kind = column.type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)
                or pa.types.is_boolean(kind) or pa.types.is_decimal(kind)):
            raise CommandError(f"{self.path}: column {name!r} is not numeric (its type is "
                               f"{kind}); encode it as numbers, or leave it out with --drop")
        self._first_null(column, name, "column")
        out = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
        if not np.isfinite(out).all():
            i = int(np.argmin(np.isfinite(out)))
            raise CommandError(f"{self.path}: non-finite value {out[i]} in row {i + 1}, "
                               f"column {name!r}")
        return out

    def labels(self, name):
        import pyarrow as pa

        column = self._column(name)
        self._first_null(column, name, "of the target column")
        kind = column.type
        if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
            return np.asarray(column.to_numpy(zero_copy_only=False)).astype(np.int64)
        if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
            return self.numbers(name)
        return np.array([str(v) for v in column.to_pylist()], dtype=str)


def _empty(cell):
    return "empty" if not cell else f"missing ({cell!r})"


def _check_header(path, names):
    seen = set()
    for name in names:
        if name in seen:
            raise CommandError(f"{path}: the column name {name!r} appears twice in the header")
        seen.add(name)


def read_table(path):
    """The ``Table`` of the DATA file ``path``: Parquet (by its magic bytes),
    gzipped CSV (by its magic bytes) or CSV."""
    import gzip
    import io

    if not os.path.exists(path):
        raise CommandError(f"DATA file {path} does not exist")
    if os.path.isdir(path):
        raise CommandError(f"DATA {path} is a directory, not a file")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}") from None
    if not head:
        raise CommandError(f"{path} is empty: a CSV file with a header row is needed")
    if head == b"PAR1":
        return ParquetTable(path)
    if head.startswith(b"PK"):
        raise CommandError(f"{path} is a zip archive (a model file?), not a CSV or Parquet "
                           "table")
    opener = gzip.open if head.startswith(b"\x1f\x8b") else open
    try:
        with opener(path, "rb") as raw:
            data = raw.read()
    except (OSError, EOFError) as exc:
        raise CommandError(f"cannot read {path}: {_one_line(exc)}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CommandError(f"{path} is not a CSV text file (it is not UTF-8 text)") from None
    if not text.strip():
        raise CommandError(f"{path} is empty: a CSV file with a header row is needed")
    return CsvTable(path, io.StringIO(text, newline=""))


# ============================================================= preprocessing
class Preprocessing:
    """What a model file needs to predict from a raw table: the feature columns
    by name and in order, their scaling ('standard': ``(x - mean) / std`` with
    training statistics; 'none') and the target column's name."""

    def __init__(self, features, target, scale, mean=None, std=None):
        self.features = list(features)
        self.target = target
        self.scale = scale
        self.mean = mean
        self.std = std

    @classmethod
    def fit(cls, X, features, target, scale):
        """The preprocessing of the training features X."""
        if scale == "none":
            return cls(features, target, scale)
        mean = X.mean(axis=0)
        std = X.std(axis=0)
        std[std == 0] = 1.0  # a constant column is only centred
        return cls(features, target, scale, mean, std)

    def transform(self, X):
        return X if self.scale == "none" else (X - self.mean) / self.std

    def extra(self):
        """The ``extra`` entries of the model file."""
        out = {PREPROCESSING: {"version": 1, "features": self.features, "target": self.target,
                               "scale": self.scale}}
        if self.scale == "standard":
            out["scale_mean"] = self.mean
            out["scale_std"] = self.std
        return out

    @classmethod
    def from_extra(cls, extra, n_features, path):
        """The preprocessing kept in a model file, None for a file without, or a
        CommandError for one that does not fit the model."""
        info = extra.get(PREPROCESSING)
        if info is None:
            return None
        bad = CommandError(f"{path}: the model file's preprocessing is damaged")
        if not isinstance(info, dict) or info.get("version") != 1:
            raise bad
        features, scale = info.get("features"), info.get("scale")
        if (not isinstance(features, list) or len(features) != n_features
                or not all(isinstance(f, str) for f in features)
                or scale not in ("standard", "none")):
            raise bad
        mean = std = None
        if scale == "standard":
            mean, std = extra.get("scale_mean"), extra.get("scale_std")
            for a in (mean, std):
                if not isinstance(a, np.ndarray) or a.shape != (n_features,):
                    raise bad
            mean, std = mean.astype(np.float64), std.astype(np.float64)
        return cls(features, info.get("target"), scale, mean, std)


# ==================================================================== commands
def _training_data(args):
    """(X, y, feature names, Preprocessing) of DATA for train and doctor."""
    table = read_table(args.data)
    if args.target not in table.names:
        raise CommandError(f"{args.data} has no column {args.target!r} to use as the target "
                           f"(its columns: {_listing(table.names)})")
    drop = set(args.drop)
    unknown = [name for name in args.drop if name not in table.names]
    if unknown:
        raise CommandError(f"--drop names columns {args.data} does not have: "
                           f"{', '.join(repr(n) for n in unknown)}")
    features = [n for n in table.names if n != args.target and n not in drop]
    if not features:
        raise CommandError(f"{args.data} has no feature columns besides the target "
                           f"{args.target!r}")
    for name in features:
        if not name:
            raise CommandError(f"{args.data}: column {table.names.index(name) + 1} has no name in "
                               "the header (an index written by pandas? write the file with "
                               "index=False)")
    X = table.matrix(features)
    y = table.labels(args.target)
    pre = Preprocessing.fit(X, features, args.target, args.scale)
    return pre.transform(X), y, features, pre


def _model(args):
    """The unfitted MLP the options describe; a bad option is refused here,
    before any data is read."""
    from . import MLP, checks

    model = MLP(hidden=args.hidden, activation=args.activation, solver=args.solver, lr=args.lr,
                batch_size=args.batch_size, epochs=args.epochs, l2=args.l2,
                patience=args.patience, validation=args.validation, dtype=args.dtype,
                random_state=args.seed, backend=args.backend, task=args.task, verbose=True)
    checks.check_params(model)
    return model


def cmd_train(args):
    import time

    from . import progress, save

    if args.plot:
        _plot_ready(args.plot)
        if args.solver == "lbfgs":
            raise CommandError("--plot draws the loss per epoch, which only the sgd and adam "
                               "solvers record (not lbfgs)")
    model = _model(args)
    X, y, features, pre = _training_data(args)
    print(f"fastmlp train: {X.shape[0]} rows, {X.shape[1]} features, target "
          f"{args.target!r}, scaling: {args.scale}", flush=True)
    t0 = time.perf_counter()
    with progress.options(stream=sys.stderr, lines=11, slow_prepare=1.0):
        model.fit(X, y)
    seconds = time.perf_counter() - t0
    model.set_params(verbose=False)  # the saved model trains quietly from Python
    classify = "classes_" in model.__dict__
    score_name = "accuracy" if classify else "R^2"
    if classify:
        print(f"task: classification, {len(model.classes_)} classes: "
              f"{_listing([str(c) for c in model.classes_])}")
    else:
        print("task: regression")
    print(f"trained {model.n_iter_} epochs in {seconds:.2f} s; final training loss "
          f"{float(model.loss_):.6g}")
    scores = model.__dict__.get("validation_scores_")
    if scores:
        trained_rows = model.t_ // model.n_iter_
        print(f"validation {score_name}: {model.best_validation_score_:.4f} (best epoch, on "
              f"the {X.shape[0] - trained_rows} rows held out from training)")
    print(f"{score_name} on all {X.shape[0]} rows of {args.data}: {model.score(X, y):.4f}")
    if args.out:
        try:
            save(model, args.out, extra=pre.extra())
        except OSError as exc:
            raise CommandError(f"cannot write the model file {args.out}: "
                               f"{exc.strerror or exc}") from None
        print(f"model written to {args.out}")
    else:
        print("(no --out given: the model was not saved)")
    if args.plot:
        _plot(model, args.plot, f"{os.path.basename(args.data)}: target {args.target!r}")
        print(f"learning curves written to {args.plot}")


def _load_model(path):
    """(model, Preprocessing or None) from a model file."""
    from . import load
    from .io import ModelFileError

    if not os.path.exists(path):
        raise CommandError(f"MODEL file {path} does not exist")
    if os.path.isdir(path):
        raise CommandError(f"MODEL {path} is a directory, not a file")
    try:
        model, extra = load(path, extra=True)
    except ModelFileError as exc:  # its message names the file and the problem
        raise CommandError(_one_line(exc)) from None
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
    return model, Preprocessing.from_extra(extra, model.n_features_in_, path)


def _features_of(table, model, pre, model_path):
    """The model's input matrix from ``table``: its features by name (with the
    scaling), or for a file without preprocessing every column in order."""
    if pre is not None:
        return pre.transform(table.matrix(pre.features))
    if len(table.names) != model.n_features_in_:
        raise CommandError(f"{model_path} keeps no feature names (it was saved without the "
                           f"command line's preprocessing), so the columns of {table.path} are "
                           f"used in order: the model needs {model.n_features_in_}, the file "
                           f"has {len(table.names)}")
    return table.matrix(table.names)


def cmd_predict(args):
    import csv

    model, pre = _load_model(args.model)
    table = read_table(args.data)
    X = _features_of(table, model, pre, args.model)
    classify = "classes_" in model.__dict__
    target = (pre.target if pre is not None and pre.target else "prediction")
    if args.proba:
        if not classify:
            raise CommandError(f"--proba needs a classifier; {args.model} is a regression model")
        values = model.predict_proba(X)
        header = [str(c) for c in model.classes_]
        rows = values.astype(str)
    else:
        values = model.predict(X)
        if values.ndim == 1:
            header, rows = [target], np.asarray(values).astype(str).reshape(-1, 1)
        else:
            header = [f"{target}_{j}" for j in range(values.shape[1])]
            rows = values.astype(str)
    out = open(args.out, "w", newline="", encoding="utf-8") if args.out else sys.stdout
    try:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows.tolist())
    finally:
        if args.out:
            out.close()
    if args.out:
        print(f"{len(rows)} predictions written to {args.out}", file=sys.stderr)


def cmd_info(args):
    model, pre = _load_model(args.model)
    net = model._net
    print(f"model file: {args.model}")
    print(repr(model))
    if net.output == "softmax":
        print(f"task: classification, {len(model.classes_)} classes: "
              f"{_listing([str(c) for c in model.classes_])}")
    else:
        print(f"task: regression, {int(net.sizes[-1])} output(s)")
    sizes = " -> ".join(str(int(s)) for s in net.sizes)
    print(f"layers: {sizes} ({net.activation} hidden units, {net.output} output), "
          f"{model.n_params_:,} parameters, {net.dtype.name}")
    line = f"trained: {model.n_iter_} epochs ({net.solver}, {model.backend_} backend)"
    if "loss_" in model.__dict__:
        line += f", final training loss {float(model.loss_):.6g}"
    if model.__dict__.get("best_validation_score_") is not None:
        line += f", best validation score {model.best_validation_score_:.4f}"
    print(line)
    if pre is None:
        print("preprocessing: none kept (predict takes DATA's columns in order)")
    else:
        print(f"preprocessing: scaling {pre.scale}; target column {pre.target!r}")
        print(f"features ({len(pre.features)}): {_listing(pre.features, 12)}")


def cmd_doctor(args):
    from . import diagnose

    if args.model:
        model, pre = _load_model(args.model)
        if pre is None:
            raise CommandError(f"{args.model} keeps no preprocessing; doctor --model needs a "
                               "model file written by fastmlp train")
        table = read_table(args.data)
        if pre.target not in table.names:
            raise CommandError(f"{args.data} has no column {pre.target!r} (the model's target)")
        X = _features_of(table, model, pre, args.model)
        y = table.labels(pre.target)
        features = pre.features
    else:
        model = _model(args)
        model.verbose = False
        X, y, features, _ = _training_data(args)
    print(diagnose(model, X, y, feature_names=features, probe_epochs=args.probe_epochs))


def cmd_demo(args):
    from . import demo

    demo.main_args(args)


def cmd_bench(args):
    from . import demo

    demo.bench(repeats=args.repeats)


def cmd_config(args):
    from . import show_config

    show_config()


# ================================================================ the parser
def _hidden(text):
    text = text.strip()
    if not text:
        return ()
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected layer widths like 64,32, got {text!r}")
    if any(w < 1 for w in widths):
        raise argparse.ArgumentTypeError(f"layer widths must be >= 1, got {text!r}")
    return widths


def _names(text):
    return [part.strip() for part in text.split(",") if part.strip()]


def _model_options(parser, target_required=True):
    parser.add_argument("data", metavar="DATA", help="CSV (optionally gzipped) or Parquet file")
    parser.add_argument("--target", required=target_required, metavar="COL",
                        help="the column to predict")
    parser.add_argument("--drop", type=_names, default=[], metavar="COL,...",
                        help="columns that are not features (ids, notes)")
    parser.add_argument("--task", choices=("auto", "classification", "regression"),
                        default="auto", help="auto: text and integer targets are classes, "
                                             "decimal numbers are values")
    parser.add_argument("--hidden", type=_hidden, default=(100,), metavar="64,32",
                        help="hidden layer widths (default 100)")
    parser.add_argument("--activation", choices=("relu", "tanh", "sigmoid", "identity"),
                        default="relu")
    parser.add_argument("--solver", choices=("adam", "sgd", "lbfgs"), default="adam")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 1e-3)")
    parser.add_argument("--epochs", type=int, default=200, help="most epochs (default 200)")
    parser.add_argument("--batch-size", type=int, default=200, help="rows per step (default 200)")
    parser.add_argument("--l2", type=float, default=1e-4, help="L2 penalty (default 1e-4)")
    parser.add_argument("--patience", type=int, default=10,
                        help="epochs without improvement before stopping (default 10)")
    parser.add_argument("--scale", choices=("standard", "none"), default="standard",
                        help="standard: every feature to mean 0, std 1 (default)")
    parser.add_argument("--validation", type=float, default=0.1,
                        help="fraction held out for early stopping (default 0.1; 0: none)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--backend", choices=("numba", "numpy"), default=None,
                        help="kernels (default: FASTMLP_BACKEND, else numba)")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fastmlp", description="Train multilayer perceptrons on tables, predict with "
                                    "them, and find out why training fails.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"fastmlp {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = commands.add_parser("train", help="train a model on a table and save it",
                                description="Train an MLP on DATA and save it with its "
                                            "preprocessing.")
    _model_options(train)
    train.add_argument("--out", metavar="MODEL", help="model file to write (e.g. model.npz)")
    train.add_argument("--plot", metavar="PATH",
                       help="save the learning curves there (.png, .svg, .pdf; needs matplotlib)")
    train.set_defaults(run=cmd_train)

    predict = commands.add_parser("predict", help="predict with a saved model",
                                  description="Write the model's predictions for the rows of "
                                              "DATA as CSV.")
    predict.add_argument("model", metavar="MODEL")
    predict.add_argument("data", metavar="DATA")
    predict.add_argument("--proba", action="store_true",
                         help="class probabilities, one column per class")
    predict.add_argument("--out", metavar="FILE", help="CSV file to write (default: stdout)")
    predict.set_defaults(run=cmd_predict)

    info = commands.add_parser("info", help="describe a saved model")
    info.add_argument("model", metavar="MODEL")
    info.set_defaults(run=cmd_info)

    doctor = commands.add_parser("doctor", help="find out why a model does not train",
                                 description="Train a short probe of the model the options "
                                             "describe (or examine --model) and report "
                                             "the causes of failed training it finds.")
    _model_options(doctor, target_required=False)
    doctor.add_argument("--model", metavar="MODEL",
                        help="examine this trained model (written by fastmlp train) instead")
    doctor.add_argument("--probe-epochs", type=int, default=30,
                        help="most epochs of the probe (default 30)")
    doctor.set_defaults(run=cmd_doctor)

    from .demo import add_arguments

    demo = commands.add_parser("demo", help="train on the bundled data sets",
                               description="Train on the bundled data sets; or draw learning "
                                           "curves (--plot); or export them as CSV (--export).")
    add_arguments(demo)
    demo.set_defaults(run=cmd_demo)

    bench = commands.add_parser("bench", help="time an epoch beside scikit-learn and PyTorch")
    bench.add_argument("--repeats", type=int, default=3, help="timed epochs per system")
    bench.set_defaults(run=cmd_bench)

    config = commands.add_parser("config", help="show backend, threads, BLAS and cache")
    config.set_defaults(run=cmd_config)
    return parser


# ==================================================================== running
def main(argv=None):
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); returns
    the exit status."""
    import warnings

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return BAD_INPUT
    if args.command == "doctor" and not args.model and args.target is None:
        parser.error("doctor needs --target COL (or --model MODEL)")
    shown = warnings.showwarning

    def one_line_warning(message, category, filename, lineno, file=None, line=None):
        print(f"fastmlp: warning: {_one_line(message)}", file=sys.stderr)

    warnings.showwarning = one_line_warning
    try:
        args.run(args)
    except CommandError as exc:
        return _fail(str(exc))
    except BrokenPipeError:  # the reader of stdout went away (| head)
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("fastmlp: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from .errors import DivergenceError

        if isinstance(exc, DivergenceError):
            print(f"fastmlp: training failed: {_one_line(exc)} (fastmlp doctor names the "
                  "cause)", file=sys.stderr)
            return 1
        if isinstance(exc, (ValueError, ImportError)):
            # the library refused an option or the data (ValueError is its way of
            # saying so), or an optional dependency is missing: bad input
            return _fail(_one_line(exc))
        raise
    finally:
        warnings.showwarning = shown
    return 0


def _fail(message):
    print(f"fastmlp: error: {message}", file=sys.stderr)
    return BAD_INPUT


def _one_line(exc):
    return " ".join(str(exc).split())


def _listing(names, most=10):
    shown = ", ".join(names[:most])
    return shown + (f", ... ({len(names)} in all)" if len(names) > most else "")


def _plot_ready(path):
    """Refuse --plot before training when matplotlib is missing."""
    from .plot import require_matplotlib

    try:
        require_matplotlib()
    except ImportError as exc:
        raise CommandError(f"--plot {path}: {exc}") from None


def _plot(model, path, title):
    from .plot import save_learning_curves

    try:
        save_learning_curves(model, path, title=title)
    except ValueError as exc:  # no loss curve (lbfgs), or an unknown image format
        raise CommandError(f"--plot {path}: {_one_line(exc)}") from None
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from None
