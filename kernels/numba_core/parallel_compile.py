"""Compiling several functions at once, in helper processes.

numba compiles one function at a time in a process. The first call of a
training kernel needs several that do not depend on one another: the kernel
itself and the passes it takes by address (``block_gradient._prepare``), whose
types are all known beforehand. ``compile_all`` hands those that numba's disk
cache does not hold yet to helper processes, compiles its own share
meanwhile, waits for the helpers and loads what they compiled from the cache.
A helper that fails costs nothing but time: what it did not compile is
compiled here, so the result never depends on the helpers.

Helpers are used only where they can help: numba caches the functions on disk,
this process may use two cores or more, and ``sys.executable`` is a Python
interpreter that can be started again (not a frozen application, nor a
program that embeds Python). ``FASTMLP_COMPILE_PROCESSES``
caps the processes that compile at once, this one included (1: this one
alone); by default the cores this process may use: one more process than
cores made a first fit slower on two cores (its processes took turns on
them and compiled for longer in all).
"""

import importlib
import os
import pickle
import subprocess
import sys
import tempfile
import warnings

from ..config import COMPILE_COST

#: The environment variable that caps the processes compiling at once.
VARIABLE = "FASTMLP_COMPILE_PROCESSES"
#: Seconds a helper may take before it is stopped and its share compiled here.
TIMEOUT = 600
#: Compile cost (in ``COMPILE_COST``'s unit, seconds) of starting a helper:
#: Python, numba and this package imported (0.9-1.3 s measured).
START_COST = 1.0

#: What a helper runs: it takes this process's ``sys.path``, then the jobs.
_HELPER = ("import pickle, sys; sys.path[:] = pickle.load(sys.stdin.buffer); "
           f"from {__name__} import _compile_here; "
           "_compile_here(pickle.load(sys.stdin.buffer))")


def processes():
    """The most processes that compile at once, this one included."""
    value = os.environ.get(VARIABLE, "").strip()
    if value:
        try:
            count = int(value)
        except ValueError:
            count = 0
        if count < 1:
            raise ValueError(f"{VARIABLE} must be a whole number >= 1 (1: compile in this "
                             f"process only), not {value!r}")
        return count
    from fastmlp.threads import default_threads

    return default_threads()


def compile_all(jobs):
    """Compile each ``(dispatcher, argument types)`` of ``jobs`` (or load it
    from numba's cache), the ones the cache lacks side by side in helper
    processes where that helps. Every job is compiled here when it returns."""
    jobs = [(d, args) for d, args in jobs if args not in d.overloads]
    limit = processes() if _can_start() else 1
    # the cache is asked only where helpers may start (numba reads it again to load)
    away = [job for job in jobs if _cache_lacks(*job) and _name_of(job[0])] if limit > 1 else []
    count = min(limit, len(away))
    helpers = []
    if count > 1:
        shares = _shares(away, count)
        here = {id(job) for job in shares[0]}
        try:
            helpers = [_start(share) for share in shares[1:]]
            for job in jobs:  # this process's share while the helpers compile theirs
                if id(job) in here or job not in away:
                    job[0].compile(job[1])
            for helper in helpers:
                _finish(helper)
        finally:
            for helper in helpers:
                _stop(helper)
    for d, args in jobs:  # loads what the helpers compiled, compiles what they did not
        d.compile(args)
        if args not in d.overloads:
            _compile_fresh(d, args)


def _compile_fresh(dispatcher, args):
    """Compile ``dispatcher`` for ``args`` without numba's cache: the cache gave
    a function for other types (two processes that added entries to one
    function's cache index at the same moment can leave an entry naming the
    other's data; numba does not check)."""
    from numba.core.compiler_lock import global_compiler_lock

    with global_compiler_lock:
        dispatcher._cache.disable()
        try:
            dispatcher.compile(args)
        finally:
            dispatcher._cache.enable()


def _cache_lacks(dispatcher, args):
    """Whether numba's disk cache can hold but does not hold the function for
    ``args`` (False where it cannot tell: the function then compiles here)."""
    try:
        cache = dispatcher._cache
        key = cache._index_key(args, dispatcher.targetctx.codegen())
        return key not in cache._cache_file._load_index()
    except Exception:  # no disk cache, or a numba whose cache this does not know
        return False


def _name_of(dispatcher):
    """The name by which ``dispatcher``'s module holds it (None if none does)."""
    module = sys.modules.get(dispatcher.py_func.__module__)
    for name, value in vars(module or object).items():
        if value is dispatcher:
            return name
    return None


def _can_start():
    """Whether ``sys.executable`` is a Python that can run a helper (not a
    frozen application, nor a program embedding Python under its own name)."""
    name = os.path.basename(sys.executable or "").lower()
    return name.startswith("python") and not getattr(sys, "frozen", False)


def _shares(jobs, count):
    """``jobs`` in ``count`` shares of about equal cost, the first this
    process's (which starts at once, the helpers after ``START_COST``):
    longest first, each to the least loaded share."""
    loads = [0.0] + [START_COST] * (count - 1)
    shares = [[] for _ in range(count)]
    for job in sorted(jobs, key=_cost, reverse=True):
        k = loads.index(min(loads))
        shares[k].append(job)
        loads[k] += _cost(job)
    return [share for k, share in enumerate(shares) if share or k == 0]


def _cost(job):
    return COMPILE_COST.get(job[0].py_func.__name__, 1.0)


class _Helper:
    def __init__(self, process, errors, names):
        self.process, self.errors, self.names = process, errors, names


def _start(share):
    """A helper process compiling ``share`` into numba's cache (None if it
    could not start)."""
    import numba

    jobs = [(d.py_func.__module__, _name_of(d), args) for d, args in share]
    env = dict(os.environ, **{VARIABLE: "1"})
    if numba.config.CACHE_DIR:  # set from Python, not only from the environment
        env["NUMBA_CACHE_DIR"] = numba.config.CACHE_DIR
    errors = tempfile.TemporaryFile()
    try:
        process = subprocess.Popen([sys.executable, "-c", _HELPER], stdin=subprocess.PIPE,
                                   stdout=subprocess.DEVNULL, stderr=errors, env=env)
    except OSError:
        errors.close()
        return None
    try:
        process.stdin.write(pickle.dumps(sys.path))
        process.stdin.write(pickle.dumps(jobs))
        process.stdin.close()
    except OSError:  # it stopped already; its share is compiled here
        pass
    return _Helper(process, errors, [name for _, name, _ in jobs])


def _finish(helper):
    """Wait for ``helper``; warn if it failed (its share is then compiled here)."""
    if helper is None:
        return
    try:
        code = helper.process.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        code = "timed out"
    if code != 0:
        helper.errors.seek(0)
        tail = helper.errors.read().decode(errors="replace").strip().splitlines()[-1:]
        warnings.warn(f"fastmlp: a helper process compiling {', '.join(helper.names)} failed "
                      f"({code}{': ' + tail[0] if tail else ''}); compiled in this process "
                      f"instead (set {VARIABLE}=1 to compile here only)", RuntimeWarning,
                      stacklevel=2)


def _stop(helper):
    if helper is None:
        return
    if helper.process.poll() is None:
        helper.process.kill()
        helper.process.wait()
    helper.errors.close()


def _compile_here(jobs):
    """A helper's work: compile each ``(module, name, argument types)``. Only
    these are written to the cache (the functions they call are compiled
    into them and left out): two processes adding different entries to one
    function's cache index at once could lose one or mismatch it."""
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith(__package__ + "."):
            for value in vars(module).values():
                cache = getattr(value, "_cache", None)
                if cache is not None and hasattr(cache, "save_overload"):
                    cache.save_overload = _save_nothing
    for module, name, args in jobs:
        dispatcher = getattr(importlib.import_module(module), name)
        vars(dispatcher._cache).pop("save_overload", None)  # the class's own again
        dispatcher.compile(args)


def _save_nothing(sig, data):
    pass
