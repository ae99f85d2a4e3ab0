"""The network's parameters: one flat vector and its per-layer views.

Layer ``l`` maps ``sizes[l]`` inputs to ``sizes[l + 1]`` outputs; its weights W
(``sizes[l]`` x ``sizes[l + 1]``, row-major) and then its biases b follow the
previous layer's in one flat array, the layout every kernel uses.
"""

import numpy as np

from .kernels import n_params


def views(params, sizes):
    """(weights, biases): lists of views of each layer's W and b in ``params``."""
    coefs, intercepts = [], []
    off = 0
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        n_in, n_out = int(n_in), int(n_out)
        coefs.append(params[off : off + n_in * n_out].reshape(n_in, n_out))
        off += n_in * n_out
        intercepts.append(params[off : off + n_out])
        off += n_out
    return coefs, intercepts


def init_params(sizes, activation, rng, dtype):
    """Initial parameters, drawn in float64 from ``rng`` and then cast.

    Hidden layers use He-uniform bounds sqrt(6 / fan_in) for ReLU and
    Glorot-uniform bounds sqrt(6 / (fan_in + fan_out)) otherwise (sqrt(2 / ...)
    for sigmoid, whose slope at 0 is 1/4); the output layer is Glorot-uniform.
    Biases start at 0.
    """
    params = np.zeros(n_params(sizes), dtype=np.float64)
    coefs, _ = views(params, sizes)
    last = len(coefs) - 1
    for l, W in enumerate(coefs):
        fan_in, fan_out = W.shape
        if l < last and activation == "relu":
            bound = np.sqrt(6.0 / fan_in)
        elif l < last and activation == "sigmoid":
            bound = np.sqrt(2.0 / (fan_in + fan_out))
        else:
            bound = np.sqrt(6.0 / (fan_in + fan_out))
        W[...] = rng.uniform(-bound, bound, size=W.shape)
    return params.astype(dtype)
