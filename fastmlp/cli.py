"""The ``fastmlp`` command line (also ``python -m fastmlp``).

    fastmlp train data.csv --target label --hidden 64,32 --out model.npz --plot curves.png
    fastmlp predict model.npz new.csv [--proba] [--out predictions.csv]
    fastmlp info model.npz
    fastmlp export model.npz --onnx model.onnx [--target-opset N]
    fastmlp doctor data.csv --target label [model options] [--model model.npz]
    fastmlp demo [--plot PATH] [--export DIR]
    fastmlp bench
    fastmlp config

DATA is a CSV file with a header (optionally gzipped) or a Parquet file, read
with pyarrow by ``fastmlp.tables``, which also holds the preprocessing:
``train`` uses every column but the target (and those named by ``--drop``) as
a feature; numeric columns are standardized (``--scale standard``, the
default), text and boolean columns (and those named by ``--categorical``)
one-hot encoded, empty numeric cells filled with the training median plus an
indicator column (``--impute median``, the default; rows without a target are
left out). The model file keeps that preprocessing and the target's name (the
class labels are the model's ``classes_``), so ``predict`` takes a raw table,
its columns by name in any order. A model file saved from Python
(``model.save``, or any older fastmlp) has no preprocessing: ``predict`` then
takes DATA's columns in order, and there must be as many as the model has
features.

``export`` writes the model as an ONNX graph (``fastmlp.onnx``, the onnx
extra): with the model file's preprocessing, one input per feature column
(``table_graph``); for a file without one, the plain network with one input
``X`` (``to_onnx``).

Bad input (a missing file or column, a cell that cannot be encoded, a file
that is not a model) ends the command with exit status 2
and one line on stderr; a training run that overflows ends with status 1.
Everything heavy (numba, matplotlib, tqdm, pyarrow, scikit-learn) is imported
only by the commands that use it.
"""

import argparse
import os
import sys

import numpy as np  # imported by the fastmlp package anyway

from .tables import MAX_CATEGORIES, Preprocessing, TableError, read_table

__all__ = ["main", "CommandError"]

#: Exit status of bad input (argparse's status for bad options, too).
BAD_INPUT = 2


class CommandError(Exception):
    """Bad input to a command: the message is printed as one line on stderr and
    the command exits with status 2."""


# ==================================================================== commands
def _training_data(args):
    """(X, y, Preprocessing, rows left out for an empty target) of DATA for
    train and doctor."""
    table = read_table(args.data)
    if args.target not in table.names:
        raise CommandError(f"{args.data} has no column {args.target!r} to use as the target "
                           f"(its columns: {_listing(table.names)})")
    left_out = 0
    if args.impute != "none":
        table, left_out = table.with_target(args.target)
        if table.n_rows == 0:
            raise CommandError(f"{args.data}: every row's target {args.target!r} is empty")
    pre = Preprocessing.fit(table, args.target, drop=args.drop, categorical=args.categorical,
                            max_categories=args.max_categories, impute=args.impute,
                            scale=args.scale)
    y = table.labels(args.target)
    return pre.transform(table, dtype=args.dtype), y, pre, left_out


def _encoding_summary(pre):
    """One line on what was encoded and imputed, or None when nothing was."""
    parts = []
    text = [c for c in pre.columns if c.kind == "categorical"]
    gaps = [c for c in pre.columns if c.indicator]
    if text:
        parts.append(f"one-hot: {', '.join(f'{c.name} ({len(c.categories)})' for c in text)}")
    if gaps:
        parts.append(f"empty cells filled with the median, plus an indicator: "
                     f"{', '.join(c.name for c in gaps)}")
    return "; ".join(parts) or None


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
    X, y, pre, left_out = _training_data(args)
    print(f"fastmlp train: {X.shape[0]} rows, {X.shape[1]} features, target "
          f"{args.target!r}, scaling: {args.scale}", flush=True)
    if left_out:
        print(f"note: {left_out} row{'s' if left_out > 1 else ''} with an empty target "
              f"{args.target!r} left out of training", flush=True)
    summary = _encoding_summary(pre)
    if summary:
        print(f"encoding: {summary}", flush=True)
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
            save(model, args.out, extra=pre.to_extra())
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
    """The model's input matrix from ``table``: its columns by name, encoded as
    in training, or for a file without preprocessing every column in order."""
    dtype = model._net.dtype  # what the kernels take: no second copy
    if pre is not None:
        return pre.transform(table, dtype=dtype)
    if len(table.names) != model.n_features_in_:
        raise CommandError(f"{model_path} keeps no feature names (it was saved without the "
                           f"command line's preprocessing), so the columns of {table.path} are "
                           f"used in order: the model needs {model.n_features_in_}, the file "
                           f"has {len(table.names)}")
    return Preprocessing.passthrough(table.names).transform(table, dtype=dtype)


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
        print("\n".join(pre.describe()))
    print(f"export: fastmlp export {args.model} --onnx FILE writes an ONNX graph "
          + ("of the network (one input X)" if pre is None else
             "with this preprocessing (one input per column)"))


def cmd_export(args):
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise CommandError("exporting to ONNX needs the onnx package, which is not installed "
                           "here: pip install 'fastmlp[onnx]'") from None
    from .onnx import preprocessing_columns, table_graph, to_onnx

    model, pre = _load_model(args.model)
    name = os.path.splitext(os.path.basename(args.model))[0] or "fastmlp"
    try:
        if pre is None:
            proto = to_onnx(model, target_opset=args.target_opset, name=name)
        else:
            proto = table_graph(preprocessing_columns(pre), model,
                                target_opset=args.target_opset, name=name)
    except (TypeError, ValueError) as exc:
        raise CommandError(f"cannot export {args.model}: {_one_line(exc)}") from None
    try:
        with open(args.onnx, "wb") as f:
            f.write(proto.SerializeToString())
    except OSError as exc:
        raise CommandError(f"cannot write the ONNX file {args.onnx}: "
                           f"{exc.strerror or exc}") from None
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    print(f"ONNX graph of {args.model} written to {args.onnx} (opset {opset})")
    if pre is None:
        print(f"input: X, float{32 if model._net.dtype == np.float32 else 64} "
              f"[N, {model.n_features_in_}], the features in the model's order "
              "(no preprocessing kept)")
    else:
        numeric = [c.name for c in pre.columns if c.kind != "categorical"]
        text = [c.name for c in pre.columns if c.kind == "categorical"]
        parts = []
        if numeric:
            parts.append(f"float32 (NaN for an empty cell): {_listing(numeric)}")
        if text:
            parts.append(f"string: {_listing(text)}")
        print(f"inputs: {len(pre.columns)}, one per column, each [N, 1]; {'; '.join(parts)}")
    print(f"outputs: {', '.join(o.name for o in proto.graph.output)}")


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
        if pre.impute != "none":
            table, _ = table.with_target(pre.target)
        X = _features_of(table, model, pre, args.model)
        y = table.labels(pre.target)
    else:
        model = _model(args)
        model.verbose = False
        X, y, pre, _ = _training_data(args)
    print(diagnose(model, X, y, feature_names=pre.feature_names,
                   probe_epochs=args.probe_epochs))


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


def _positive(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


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
                        help="standard: every numeric feature to mean 0, std 1 (default)")
    parser.add_argument("--impute", choices=("median", "none"), default="median",
                        help="median: fill an empty numeric cell with the column's median and "
                             "add a 0/1 indicator column, and leave out rows without a target "
                             "(default); none: refuse empty cells")
    parser.add_argument("--categorical", type=_names, default=[], metavar="COL,...",
                        help="integer columns to one-hot encode as categories (text and "
                             "boolean columns always are)")
    parser.add_argument("--max-categories", type=_positive, default=MAX_CATEGORIES,
                        metavar="N", help="refuse a text column with more distinct values "
                                          f"(an ID; default {MAX_CATEGORIES})")
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

    export = commands.add_parser(
        "export", help="write a saved model as an ONNX graph",
        description="Write MODEL as an ONNX graph (pip install 'fastmlp[onnx]'). A model "
                    "file written by fastmlp train gives a graph with its preprocessing: one "
                    "input per feature column, named as the column, shape [N, 1], float32 "
                    "for numeric columns (NaN for an empty cell) and string for text "
                    "columns; outputs label and probabilities (classifiers) or variable "
                    "(regressors). A model saved from Python gives the network alone, with "
                    "one input X.")
    export.add_argument("model", metavar="MODEL")
    export.add_argument("--onnx", required=True, metavar="OUT.onnx",
                        help="the ONNX file to write")
    export.add_argument("--target-opset", type=_positive, default=None, metavar="N",
                        help="the ONNX opset to write (13 or newer; default 21, or the "
                             "installed onnx's newest if older)")
    export.set_defaults(run=cmd_export)

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
    except (CommandError, TableError) as exc:
        return _fail(_one_line(exc))
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
