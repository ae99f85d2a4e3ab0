"""verbose=True: plain lines off a terminal, a tqdm bar on one."""

import io
import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

import fastmlp
from fastmlp import MLP
from fastmlp.progress import Progress, options

LINE = re.compile(r"^epoch (\d+): loss (\d+\.\d{6})(?:, validation score (\d+\.\d{6}))? "
                  r"\((\d+\.\d{3}) s\)$")


def data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    return X, (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.int64)


def fit(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastmlp.ConvergenceWarning)
        return model.fit(X, y)


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self):
        return True


def epoch_lines(text):
    return [LINE.match(line) for line in text.splitlines() if line.startswith("epoch ")]


def test_quiet_by_default(capsys):
    X, y = data()
    fit(MLP((4,), epochs=3), X, y)
    assert capsys.readouterr().out == ""


def test_plain_lines_carry_every_epochs_loss_and_validation_score(capsys):
    X, y = data()
    model = fit(MLP((4,), epochs=6, validation=0.2, tol=0.0, patience=100, verbose=True,
                    random_state=0), X, y)
    matches = epoch_lines(capsys.readouterr().out)
    assert all(matches)
    assert [int(m.group(1)) for m in matches] == [1, 2, 3, 4, 5, 6]
    assert [float(m.group(2)) for m in matches] == pytest.approx(model.loss_curve_, abs=5e-7)
    assert [float(m.group(3)) for m in matches] == pytest.approx(model.validation_scores_,
                                                                  abs=5e-7)
    assert "_progress" not in model.__dict__


def test_the_stopping_rule_is_announced(capsys):
    X, y = data()
    model = fit(MLP((4,), epochs=500, tol=10.0, patience=2, verbose=True), X, y)
    out = capsys.readouterr().out
    assert model.n_iter_ == 4  # every epoch counts as no improvement: stop after 3 > 2
    assert out.count("epoch ") == 4
    assert out.rstrip().endswith("converged: the loss improved less than tol=10.0 for more "
                                 "than 2 epochs")


def test_partial_fit_prints_one_line_per_call_even_on_a_terminal():
    X, y = data()
    model = MLP((4,), verbose=True, random_state=0)
    stream = Terminal()
    with options(stream=stream):
        for _ in range(3):
            model.partial_fit(X, y, classes=[0, 1])
    matches = epoch_lines(stream.getvalue())
    assert [int(m.group(1)) for m in matches] == [1, 2, 3]
    assert "\r" not in stream.getvalue()


def test_a_terminal_gets_a_bar_with_epochs_loss_validation_and_rate():
    X, y = data()
    stream = Terminal()
    with options(stream=stream):
        model = fit(MLP((4,), epochs=7, validation=0.2, tol=0.0, patience=100, verbose=True,
                        random_state=0), X, y)
    text = stream.getvalue()
    final = text.split("\r")[-1]
    assert "fit" in final and "7/7" in final
    assert f"loss {model.loss_curve_[-1]:.4f}" in final
    assert f"validation {model.validation_scores_[-1]:.4f}" in final
    assert "epoch/s" in text or "s/epoch" in text
    assert not epoch_lines(text)


def test_a_real_terminal_shows_the_bar():
    """The default stream is stdout: on a pseudo-terminal the bar appears."""
    pty = pytest.importorskip("pty")
    code = ("import warnings, numpy as np, fastmlp\n"
            "warnings.simplefilter('ignore')\n"
            "X = np.random.default_rng(0).standard_normal((100, 3))\n"
            "fastmlp.MLP((3,), epochs=5, tol=0.0, patience=100, verbose=True, "
            "backend='numpy').fit(X, X[:, 0] > 0)\n")
    import fcntl
    import struct
    import termios

    main, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=follower, stderr=follower,
                            stdin=subprocess.DEVNULL, close_fds=True)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    assert proc.wait(timeout=60) == 0
    text = b"".join(chunks).decode()
    assert "5/5" in text and "\r" in text and "loss" in text
    assert not epoch_lines(text.replace("\r", "\n"))


def test_thinned_lines_keep_the_first_every_tenth_and_the_last():
    X, y = data()
    stream = io.StringIO()
    with options(stream=stream, lines=6):
        model = fit(MLP((4,), epochs=53, tol=0.0, patience=1000, verbose=True), X, y)
    shown = [int(m.group(1)) for m in epoch_lines(stream.getvalue())]
    # ceil(53 / 5) = 11: epochs 1, 11, 22, 33, 44, and the last one, 53
    assert shown == [1, 11, 22, 33, 44, 53]
    assert model.n_iter_ == 53


def test_thinned_lines_print_the_last_epoch_before_the_stop_message():
    X, y = data()
    stream = io.StringIO()
    with options(stream=stream, lines=3):
        model = fit(MLP((4,), epochs=100, tol=10.0, patience=4, verbose=True), X, y)
    lines = stream.getvalue().splitlines()
    assert model.n_iter_ == 6
    assert lines[-2].startswith("epoch 6: loss")
    assert lines[-1].startswith("converged:")


def test_kernel_preparation_lines():
    stream = io.StringIO()
    with options(stream=stream):
        display = Progress(3)
        display.report("prepare", backend="numba", dtype="float32")
        display.report("prepared", seconds=2.25)
        display.report("end", stopped=False)
    assert stream.getvalue().splitlines() == [
        "fastmlp: preparing the numba kernels for float32 (compiled on first use, then "
        "loaded from the disk cache) ...",
        "fastmlp: kernels ready in 2.2 s"]


def test_the_display_is_dropped_when_training_fails():
    X = np.random.default_rng(0).standard_normal((50, 3)) * 1e3
    model = MLP((4,), "identity", solver="sgd", lr=10.0, verbose=True, random_state=0)
    stream = io.StringIO()
    with options(stream=stream), pytest.raises(fastmlp.DivergenceError):
        model.fit(X, (X[:, 0] > 0).astype(int))
    assert "_progress" not in model.__dict__


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="lines"):
        with options(lines=1):
            pass
    with pytest.raises(ValueError, match="lines"):
        with options(lines=True):
            pass


def test_a_quick_preparation_can_go_unmentioned():
    stream = io.StringIO()
    with options(stream=stream, slow_prepare=1.0):
        for seconds in (0.2, 3.5):
            display = Progress(3)
            display.report("prepare", backend="numba", dtype="float64")
            display.report("prepared", seconds=seconds)
            display.report("end", stopped=False)
    assert stream.getvalue().splitlines() == [
        "fastmlp: the numba kernels for float64 took 3.5 s to prepare (compiled on first use; "
        "the disk cache makes later runs fast)"]
    with pytest.raises(ValueError, match="slow_prepare"):
        with options(slow_prepare=-1):
            pass
