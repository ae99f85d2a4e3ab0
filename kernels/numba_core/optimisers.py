"""Optimisers: SGD and Adam steps over a span of the parameters, in one pass.
"""

import numpy as np
from numba import njit

from ..codes import ADAM
from ._setup import BY_ADDRESS, ENTRY, JIT, REDUCE
from .bits import _abs_key, _inf_key


@njit(**REDUCE)
def sgd_step(params, grads, velocity, lr, momentum, nesterov, decay, i0, i1, keep):
    """One SGD step on entries i0..i1-1, in one pass, in the arrays' precision:
    g = grads + decay * params (the L2 term; stored back into ``grads`` when
    ``keep``), velocity = momentum * velocity - lr * g, params += velocity
    (Nesterov: params += momentum * velocity - lr * g). Returns (whether every
    new value is finite in the dtype, sum of the new params**2)."""
    dt = params.dtype.type
    lr_, mom, dec = dt(lr), dt(momentum), dt(decay)
    c1, c2 = (mom, lr_) if nesterov else (dt(1.0), dt(0.0))
    key = _abs_key(dt(0.0))
    sq = 0.0
    params, grads, velocity = params[i0:i1], grads[i0:i1], velocity[i0:i1]
    for i in range(params.shape[0]):
        g = grads[i] + dec * params[i]
        v = mom * velocity[i] - lr_ * g
        p = params[i] + (c1 * v - c2 * g)
        if keep:
            grads[i] = g
        velocity[i] = v
        params[i] = p
        key = max(key, max(_abs_key(v), _abs_key(p)))
        sq += np.float64(p) * np.float64(p)
    return key < _inf_key(params), sq


@njit(**REDUCE)
def sgd_step_onto(params, velocity, lr, decay, i0, i1):
    """The rest of an SGD step (no Nesterov) on entries i0..i1-1 whose velocity
    BLAS has already made momentum * velocity - lr * grads, grads without the
    L2 term (``block_gradient._first_layer_onto``): velocity -= lr * (decay *
    params), params += velocity, in one pass. Returns what ``sgd_step``
    does."""
    dt = params.dtype.type
    lr_, dec = dt(lr), dt(decay)
    key = _abs_key(dt(0.0))
    sq = 0.0
    params, velocity = params[i0:i1], velocity[i0:i1]
    for i in range(params.shape[0]):
        v = velocity[i] - lr_ * (dec * params[i])
        p = params[i] + v
        velocity[i] = v
        params[i] = p
        key = max(key, max(_abs_key(v), _abs_key(p)))
        sq += np.float64(p) * np.float64(p)
    return key < _inf_key(params), sq


@njit(**JIT)
def adam_rate(lr, beta1, beta2, step):
    """Adam's step size for update number ``step`` (>= 1), both bias
    corrections folded in."""
    return lr * np.sqrt(1.0 - beta2**step) / (1.0 - beta1**step)


@njit(**REDUCE)
def adam_step(params, grads, m1, m2, rate, beta1, beta2, eps, decay, i0, i1):
    """One Adam step on entries i0..i1-1 (``rate`` from ``adam_rate``), in one
    pass, the L2 term added to ``grads`` first; returns what ``sgd_step`` does.
    Computed in float64 and rounded when stored: a float32 square of a large
    gradient would overflow where the stored moment does not."""
    dt = params.dtype.type
    key = _abs_key(dt(0.0))
    sq = 0.0
    params, grads, m1, m2 = params[i0:i1], grads[i0:i1], m1[i0:i1], m2[i0:i1]
    for i in range(params.shape[0]):
        g = grads[i] + decay * params[i]
        grads[i] = g
        a = beta1 * m1[i] + (1.0 - beta1) * g
        b = beta2 * m2[i] + (1.0 - beta2) * (g * g)
        p = params[i] - rate * a / (np.sqrt(b) + eps)
        m1[i] = a
        m2[i] = b
        params[i] = p
        stored = dt(p)
        key = max(key, max(_abs_key(dt(a)), max(_abs_key(dt(b)), _abs_key(stored))))
        sq += np.float64(stored) * np.float64(stored)
    return key < _inf_key(params), sq


@njit(**ENTRY)
def sgd_update(params, grads, velocity, lr, momentum, nesterov):
    sgd_step(params, grads, velocity, lr, momentum, nesterov, 0.0, np.int64(0), params.shape[0],
             np.bool_(False))


@njit(**ENTRY)
def adam_update(params, grads, m1, m2, step, lr, beta1, beta2, eps):
    adam_step(params, grads, m1, m2, adam_rate(lr, beta1, beta2, step), beta1, beta2, eps,
              0.0, 0, params.shape[0])


@njit(**BY_ADDRESS)
def _update_span(params, grads, state1, state2, offs, c0, c1, solver, lr, momentum,
                 nesterov, beta1, beta2, eps, rate, decay, keep):
    """One optimiser step on the entries c0..c1-1 of the parameter vector,
    whichever layers' weights and biases they hold (each layer's W =
    params[offs[2l]:offs[2l+1]] with the L2 term ``decay * W``, its b without;
    SGD stores the gradient with its L2 term only when ``keep``): the step of
    every epoch kernel, on the whole vector or, in a parallel pass, on spans
    of it. Returns (all new values finite, sum of the new weights**2 among
    them, added up layer by layer from the first)."""
    ok = True
    sq = 0.0
    for l in range((offs.shape[0] - 1) // 2):
        for part in range(2):  # the weights (with the L2 term), then the biases
            i0 = max(c0, offs[2 * l + part])
            i1 = min(c1, offs[2 * l + part + 1])
            if i0 >= i1:
                continue
            d = decay if part == 0 else 0.0
            if solver == ADAM:
                good, s = adam_step(params, grads, state1, state2, rate, beta1, beta2, eps, d,
                                    i0, i1)
            else:
                good, s = sgd_step(params, grads, state1, lr, momentum, nesterov, d, i0, i1,
                                   keep)
            ok = ok and good
            if part == 0:
                sq += s
    return ok, sq
