"""What ``verbose=True`` shows while a model trains.

On a terminal, one tqdm progress bar per ``fit``: epochs done of the most it
may run, the loss and validation score of the last epoch, and epochs per
second. Anywhere else (a file, a pipe, a captured stream) plain lines, one per
epoch::

    epoch 1: loss 0.693147, validation score 0.912281 (0.004 s)

``partial_fit`` runs one epoch per call and always prints plain lines. The
models send their training events (``Engine._report``: 'start', 'prepare',
'prepared', 'epoch', 'stall', 'end') to a ``Progress``; ``options`` changes,
for a block of code, where the display goes and how often plain lines are
printed (the command line sends them to stderr, every tenth of the run).

tqdm is imported only when a bar is shown.
"""

import contextlib
import contextvars
import sys

__all__ = ["Progress", "options"]

_OPTIONS = contextvars.ContextVar("fastmlp_progress_options", default={})


@contextlib.contextmanager
def options(*, stream=None, lines=None, bar=None, slow_prepare=None):
    """Within the block, training progress goes to ``stream`` (default: the
    ``sys.stdout`` of the moment). ``lines``: the most plain epoch lines per
    ``fit`` (None: one per epoch; the first and the last epoch are always
    printed). ``bar``: True or False forces the bar on or off (None: a bar
    when the stream is a terminal). ``slow_prepare``: a number of seconds; the
    first preparation of the compiled kernels is then announced only when it
    took longer (None: always, before and after)."""
    if lines is not None and (isinstance(lines, bool) or not isinstance(lines, int)
                              or lines < 2):
        raise ValueError(f"lines must be None or an integer >= 2, got {lines!r}")
    if slow_prepare is not None and (isinstance(slow_prepare, bool)
                                     or not isinstance(slow_prepare, (int, float))
                                     or not slow_prepare >= 0):
        raise ValueError(f"slow_prepare must be None or a number of seconds >= 0, got "
                         f"{slow_prepare!r}")
    token = _OPTIONS.set({"stream": stream, "lines": lines, "bar": bar,
                          "slow_prepare": slow_prepare})
    try:
        yield
    finally:
        _OPTIONS.reset(token)


class Progress:
    """The display of one training call.

    Parameters
    ----------
    total : int
        The most epochs the call may run.
    incremental : bool
        A ``partial_fit`` call (plain lines, never a bar).
    """

    def __init__(self, total, incremental=False):
        settings = _OPTIONS.get()
        self.stream = settings.get("stream") or sys.stdout
        self.total = int(total)
        bar = settings.get("bar")
        if bar is None:
            isatty = getattr(self.stream, "isatty", None)
            bar = bool(isatty and isatty())
        lines = settings.get("lines")
        self.every = 1 if lines is None else max(1, -(-self.total // (lines - 1)))
        self.bar = None
        if bar and not incremental:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, unit="epoch", desc="fit", file=self.stream,
                            dynamic_ncols=True, leave=True)
        self.slow_prepare = settings.get("slow_prepare")
        self.preparing = None
        self.last_line = None
        self.last_printed = None

    # ----------------------------------------------------------- the events
    def report(self, event, **info):
        """Show one training event (see ``Engine._report`` for the events and
        their fields); 'end' closes the display."""
        handler = getattr(self, "_on_" + event, None)
        if handler is not None:
            handler(**info)

    def _on_prepare(self, backend, dtype, **_):
        self.preparing = (backend, dtype)
        if self.slow_prepare is None:
            self._write(f"fastmlp: preparing the {backend} kernels for {dtype} (compiled on "
                        "first use, then loaded from the disk cache) ...")

    def _on_prepared(self, seconds, **_):
        if self.slow_prepare is None:
            self._write(f"fastmlp: kernels ready in {seconds:.1f} s")
        elif seconds > self.slow_prepare and self.preparing is not None:
            backend, dtype = self.preparing
            self._write(f"fastmlp: the {backend} kernels for {dtype} took {seconds:.1f} s to "
                        "prepare (compiled on first use; the disk cache makes later runs "
                        "fast)")

    def _on_epoch(self, epoch, loss, score, seconds, **_):
        if self.bar is not None:
            text = f"loss {loss:.4f}"
            if score is not None:
                text += f", validation {score:.4f}"
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.update(1)
            return
        line = f"epoch {epoch}: loss {loss:.6f}"
        if score is not None:
            line += f", validation score {score:.6f}"
        line += f" ({seconds:.3f} s)"
        self.last_line = (epoch, line)
        if epoch == 1 or epoch % self.every == 0:
            self._write(line)
            self.last_printed = epoch

    def _on_stall(self, stopping, validation, tol, n_iter_no_change, lr, **_):
        self._flush_last()
        if stopping:
            what = "validation score" if validation else "loss"
            self._write(f"converged: the {what} improved less than tol={tol} for more than "
                        f"{n_iter_no_change} epochs")
        else:
            self._write(f"the loss improved less than tol={tol} for more than "
                        f"{n_iter_no_change} epochs: learning rate lowered to {lr:g}")

    def _on_end(self, **_):
        self._flush_last()
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _flush_last(self):
        """Print the last epoch's line if the thinning skipped it."""
        if self.last_line is not None and self.last_printed != self.last_line[0]:
            self._write(self.last_line[1])
            self.last_printed = self.last_line[0]

    def _write(self, text):
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)
