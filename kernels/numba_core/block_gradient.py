"""A block's forward and backward pass, and what the training kernels call
by address.

A block's gradient (``_block_gradient``) is its forward pass
(``network._forward_rows``), its loss and output delta
(``_block_loss_softmax``, or ``_block_loss_targets`` for the other outputs),
then its backward pass (``_block_backward``, with the backward steps it
shares with ``loss_gradient``). numba links the machine code of every
compiled callee into each caller and optimises and compiles it there again;
``train_epoch``, ``train_blocks``, ``train_columns`` and
``loss_gradient_blocks`` are therefore Python functions over compiled ones
(``_train_epoch_by``, ...) that pass the three passes (``train_columns``: a
feature-major block's passes, ``train_columns._columns_block_softmax`` or
``_columns_block_targets``) and/or the optimiser's update of a span of
parameters, ``_update_span``, as numba first-class functions
(``_setup.ByAddress``, ``_with_by_address``): the compiled code calls them
through their address, and each is compiled once, into machine code of its
own, for every kernel that calls it. Their types
are known before any is compiled, so a first call compiles them side by side
(``_prepare``, ``parallel_compile``), in shares of about equal size.
"""

import inspect

import numpy as np
from numba import njit, typeof
from numba.core import types
from numba.core.typing.typeof import Purpose

from ..codes import SOFTMAX
from ._setup import BY_ADDRESS, INLINE, JIT, ByAddress
from .activations import _act_backward_sums
from .layout import _block, _first_gradient, _first_rows, _input_block, _weights
from .network import _forward_rows
from .optimisers import _update_span
from .outputs import softmax_rows, target_rows
from .parallel_compile import compile_all
from .products import _read_only, column_sums, gemm_nt, gemm_tn, gemm_tn_scaled
from .train_columns import _columns_block_softmax, _columns_block_targets


@njit(**INLINE)
def _delta(work, wo, sizes, m, l):
    """Layer l's delta block: the two delta buffers alternate from the top."""
    L = sizes.shape[0] - 1
    return _block(work, wo, L + 1 + (L - 1 - l) % 2, m, sizes[l + 1])


@njit(**JIT)
def _layer_gradient(X, order, start, m, sizes, work, wo, l, gW):
    """gW = A^T D for layer l, A its input block (the first layer's from X) and
    D its delta."""
    D = _delta(work, wo, sizes, m, l)
    if l == 0:
        _first_gradient(X, order, start, _input_block(X, work, wo, m, sizes[0]), D, gW)
    else:
        gemm_tn(_read_only(_block(work, wo, l, m, sizes[l])), D, gW)


@njit(**INLINE)
def _first_layer_onto(X, order, start, m, sizes, offs, work, wo, V, lr, momentum):
    """The first layer's weight gradient of m dense rows whose backward pass
    left it out (``_block_backward``, ``first`` False), from their delta and
    input rows in ``work``, straight into the SGD velocity V as V = momentum *
    V - lr * gradient, in BLAS's one call: the gradient is neither written,
    nor zeroed first, nor read back."""
    gemm_tn_scaled(_first_rows(X, order, start, m, _input_block(X, work, wo, m, sizes[0])),
                   _delta(work, wo, sizes, m, 0), _weights(V, sizes, offs, 0)[0], -lr, momentum)


@njit(**JIT)
def _delta_below(params, sizes, offs, act, work, wo, m, l, gb_below):
    """The delta of layer l - 1, (D W^T) * f'(A), from layer l's delta D and its
    current (not yet updated) W; with the column sums of the result (the bias
    gradient of layer l - 1) into ``gb_below`` in the same pass."""
    W, _ = _weights(params, sizes, offs, l)
    nxt = _delta(work, wo, sizes, m, l - 1)
    gemm_nt(_delta(work, wo, sizes, m, l), W, nxt)
    _act_backward_sums(_block(work, wo, l, m, sizes[l]), nxt, act, gb_below)


@njit(**INLINE)
def _output_blocks(sizes, m, work, wo, G, offs):
    """The m rows' output block (their logits, from ``_forward_rows``), their
    output delta's block and the output bias's gradient in ``G``."""
    L = sizes.shape[0] - 1
    return (_block(work, wo, L, m, sizes[L]), _delta(work, wo, sizes, m, L - 1),
            _weights(G, sizes, offs, L - 1)[1])


@njit(**BY_ADDRESS)
def _block_loss_softmax(y, Y, w, order, start, m, sizes, offs, output, scale, work, wo, G):
    """Loss and output delta of the m rows ``_row(order, start, i)`` whose
    forward pass (``_forward_rows``) is in their scratch ``work`` (laid out by
    ``wo``), under the softmax output: the output layer's delta (times
    ``scale``) into its block of ``work``, its column sums (the output bias's
    gradient) into ``G``. Returns the rows' weighted loss (float64). The
    other outputs have a pass of their own, ``_block_loss_targets``, so that
    a first fit compiles only its own output's loss."""
    out, D, gb = _output_blocks(sizes, m, work, wo, G, offs)
    loss = softmax_rows(out, y, w, order, start, scale, D)
    column_sums(D, gb)
    return loss


@njit(**BY_ADDRESS)
def _block_loss_targets(y, Y, w, order, start, m, sizes, offs, output, scale, work, wo, G):
    """``_block_loss_softmax`` for the outputs with targets (squared,
    logistic, poisson: ``output``)."""
    out, D, gb = _output_blocks(sizes, m, work, wo, G, offs)
    loss = target_rows(out, Y, w, order, start, scale, output, D)
    column_sums(D, gb)
    return loss


@njit(**BY_ADDRESS)
def _block_backward(X, order, start, m, params, sizes, offs, act, work, wo, G, first):
    """Backward pass of the m rows ``_row(order, start, i)`` from the output
    delta that the loss pass left in their scratch ``work``: per layer from
    the top, its weights' gradient and the bias gradient and delta of the
    layer below, into ``G`` (a whole parameter vector); the first layer's
    weight gradient only when ``first`` (``train_epoch`` under SGD computes
    it itself: ``_first_layer_onto``)."""
    L = sizes.shape[0] - 1
    for l in range(L - 1, -1, -1):
        if l > 0 or first:
            _layer_gradient(X, order, start, m, sizes, work, wo, l,
                            _weights(G, sizes, offs, l)[0])
        if l > 0:
            _delta_below(params, sizes, offs, act, work, wo, m, l,
                         _weights(G, sizes, offs, l - 1)[1])


@njit(**INLINE)
def _block_gradient(forward, loss, backward, X, y, Y, w, order, start, m, params, sizes, offs,
                    act, output, scale, work, wo, G, first):
    """Forward, loss and backward of the m rows ``_row(order, start, i)``
    with their own scratch ``work``, by ``forward`` (``_forward_rows``),
    ``loss`` (``_block_loss_softmax`` or ``_block_loss_targets``) and
    ``backward`` (``_block_backward``), called by address; the gradient of
    their loss times ``scale`` into ``G`` (the first layer's weight gradient
    only when ``first``).
    Returns the rows' weighted loss. The scalars are cast to the exact types
    of the passes' signatures (a call by address converts none)."""
    L = sizes.shape[0] - 1
    start, m, act, output = np.int64(start), np.int64(m), np.int64(act), np.int64(output)
    forward(X, order, start, m, params, sizes, offs, act, output, work, wo,
            _block(work, wo, L, m, sizes[L]))
    data = loss(y, Y, w, order, start, m, sizes, offs, output, np.float64(scale), work, wo, G)
    backward(X, order, start, m, params, sizes, offs, act, work, wo, G, np.bool_(first))
    return data


@njit(**INLINE)
def _span_update(update, params, grads, state1, state2, offs, c0, c1, solver, lr, momentum,
                 nesterov, beta1, beta2, eps, rate, decay, keep):
    """The optimiser's step on the entries c0..c1-1 by ``update``
    (``_update_span``, called by address), the scalars cast to the exact
    types of its signature (a call by address converts none)."""
    return update(params, grads, state1, state2, offs, np.int64(c0), np.int64(c1),
                  np.int64(solver), np.float64(lr), np.float64(momentum), np.bool_(nesterov),
                  np.float64(beta1), np.float64(beta2), np.float64(eps), np.float64(rate),
                  np.float64(decay), np.bool_(keep))


#: The type of the row order a kernel without ``order`` makes (rows in their own order).
_OWN_ORDER = typeof(np.empty(0, dtype=np.int64))
_INDEX = types.Array(types.int64, 1, "C")
#: ``_forward_rows``, the loss pass and ``_block_backward`` by address, three
#: per signature and kind of output (softmax or not) met.
_BLOCK_PASSES = {}
#: A feature-major block's passes by address, one per signature and kind of
#: output met.
_COLUMNS_BLOCKS = {}
#: ``_update_span`` by address, one per parameter type.
_UPDATE_SPANS = {}


#: numpy's flag bits that numba's type of an array depends on: C and Fortran
#: order, aligned, writeable.
_TYPE_FLAGS = 0x1 | 0x2 | 0x100 | 0x400


def _type_key(a):
    """What numba's type of ``a``, an array or a tuple of arrays, depends on
    (dtype, dimensions, layout, flags): cheaper to find than the type."""
    if isinstance(a, tuple):
        return tuple(_type_key(b) for b in a)
    return a.dtype, a.ndim, a.flags.num & _TYPE_FLAGS


def _for_types(found, args, make, *extra):
    """What ``make`` makes from the numba types of ``args`` (arrays, tuples of
    arrays, or None: the kernel's own row order) and the values ``extra``,
    kept in ``found`` by what those types depend on and those values."""
    key = tuple(None if a is None else _type_key(a) for a in args) + extra
    made = found.get(key)
    if made is None:
        made = found[key] = make(*(_OWN_ORDER if a is None else typeof(a) for a in args),
                                 *extra)
    return made


def _block_passes_for(X, y, Y, w, order, params, sizes, output):
    """``_forward_rows``, the loss pass of ``output`` and ``_block_backward``
    for the types of these arguments (and of the scratch the kernels slice
    for them), by address (bound before their first call: ``_prepare``);
    ``order`` None: the kernel's own row order."""
    return _for_types(_BLOCK_PASSES, (X, y, Y, w, order, params, sizes), _block_passes,
                      bool(output == SOFTMAX))


def _block_passes(X_t, y_t, Y_t, w_t, order_t, params_t, sizes_t, softmax):
    """The three passes for arguments of these numba types (unbound), the
    loss pass of the softmax output or of the others. Both loss passes have
    one signature: a kernel is compiled once for either."""
    vector = types.Array(params_t.dtype, 1, "C")
    i = types.int64
    forward = ByAddress(_forward_rows, (X_t, order_t, i, i, params_t, sizes_t, _INDEX, i, i,
                                        vector, _INDEX, types.Array(params_t.dtype, 2, "C")),
                        types.none)
    loss = ByAddress(_block_loss_softmax if softmax else _block_loss_targets,
                     (y_t, Y_t, w_t, order_t, i, i, sizes_t, _INDEX, i, types.float64, vector,
                      _INDEX, vector), types.float64)
    backward = ByAddress(_block_backward, (X_t, order_t, i, i, params_t, sizes_t, _INDEX, i,
                                           vector, _INDEX, vector, types.boolean), types.none)
    return forward, loss, backward


def _columns_block_for(X, y, Y, w, order, params, sizes, output):
    """A feature-major block's passes for ``output``
    (``train_columns._columns_block_softmax`` or ``_columns_block_targets``)
    and the types of these arguments (and of the row slices and scratch the
    kernels pass it), by address (bound before its first call:
    ``_prepare``)."""
    return _for_types(_COLUMNS_BLOCKS, (X, y, Y, w, order, params, sizes), _columns_passes,
                      bool(output == SOFTMAX))


def _columns_passes(X_t, y_t, Y_t, w_t, order_t, params_t, sizes_t, softmax):
    """The block's passes for arguments of these numba types (unbound), under
    the softmax output or the others (one signature for both)."""
    vector = types.Array(params_t.dtype, 1, "C")
    i = types.int64
    return ByAddress(_columns_block_softmax if softmax else _columns_block_targets,
                     (X_t, y_t, Y_t, w_t, order_t, i, order_t, params_t, sizes_t, _INDEX,
                      types.Array(types.uint64, 1, "C"), i, i, i, types.float64, vector,
                      vector), types.float64)


def _update_span_for(params):
    """``_update_span`` for parameters (and gradients and optimiser state,
    which the API checks share their type) of ``params``' dtype, by address
    (bound before its first call: ``_prepare``)."""
    return _for_types(_UPDATE_SPANS, (params,), _update_span_of)


def _update_span_of(params_t):
    """The update for parameters of this numba type (unbound)."""
    v = types.Array(params_t.dtype, 1, "C")
    i, f, b = types.int64, types.float64, types.boolean
    return ByAddress(_update_span, (v, v, v, v, _INDEX, i, i, i, f, f, b, f, f, f, f, f, b),
                     types.Tuple((types.boolean, types.float64)))


def _prepare(compiled, args, passes):
    """Compile (or load from the cache) ``compiled`` for ``args`` and the
    functions it takes by address, ``passes``, and bind these. The types of
    all are known beforehand, so a cold start compiles them side by side
    (``parallel_compile``)."""
    kinds = tuple(typeof(a, Purpose.argument) for a in args)
    kinds += tuple(p._numba_type_ for p in passes)
    compile_all([(p.dispatcher, p.args) for p in passes if p.address is None]
                + [(compiled, kinds)])
    for p in passes:
        p.bind()


#: The names of the parameters by which a compiled kernel takes functions by
#: address (its last ones).
_BY_ADDRESS = ("forward", "loss", "backward", "columns", "update")


def _with_by_address(compiled, name=None):
    """The public kernel ``name`` (default: ``compiled``'s name) over
    ``compiled``, a training kernel whose last arguments are a block's
    forward, loss and backward passes, or a feature-major block's, and/or the
    update of a span of parameters (``_BY_ADDRESS``): it takes the other
    arguments and passes ``_forward_rows``, the loss pass of its output and
    ``_block_backward``, or a feature-major block's pass for its output,
    and/or ``_update_span`` by address for their types (and the output's
    kind: softmax or not). Called by address, each (with all it calls) is
    compiled once, into its own machine code, instead of again into every
    kernel that calls it, their parallel passes and numba's wrappers of the
    passes' loops."""
    parameters = list(inspect.signature(compiled.py_func).parameters.values())
    names = [p.name for p in parameters]
    taken = [n for n in names if n in _BY_ADDRESS]
    parameters = parameters[: len(parameters) - len(taken)]
    at = {n: names.index(n) for n in ("params", "sizes", "output") if n in names}
    own_order = "order" not in names
    passes, columns, update = ("backward" in taken, "columns" in taken, "update" in taken)

    def kernel(*args):
        params = args[at["params"]]
        found = ()
        if passes:
            X, y, Y, w = args[:4]
            order = None if own_order else args[4]
            found = _block_passes_for(X, y, Y, w, order, params, args[at["sizes"]],
                                      args[at["output"]])
        if columns:
            found = (_columns_block_for(*args[:5], params, args[at["sizes"]],
                                        args[at["output"]]),)
        if update:
            found += (_update_span_for(params),)
        for p in found:
            if p.address is None:
                _prepare(compiled, args, found)
                break
        return compiled(*args, *found)

    kernel.__name__ = kernel.__qualname__ = name or compiled.py_func.__name__
    kernel.compiled = compiled  # whose signatures say what has been compiled
    kernel.__doc__ = compiled.py_func.__doc__
    kernel.__signature__ = inspect.Signature(parameters)
    return kernel
