"""``Network``: the learned state of a multilayer perceptron, in one owner.

Layer ``l`` maps ``sizes[l]`` inputs to ``sizes[l + 1]`` outputs. Its weights W
(``sizes[l]`` x ``sizes[l + 1]``, row-major) and then its biases b follow the
previous layer's in one flat vector ``params``, the layout every kernel uses;
``coefs``/``intercepts`` are lists of views into it. The optimiser's state
(SGD's velocity, or Adam's two moments and its step count) lives beside it.

Models hold one ``Network``; the kernels update its arrays in place; ``state``
gives all of it as plain values and arrays and ``from_state`` restores it.
"""

import numpy as np

from .kernels import ACTIVATIONS, OUTPUTS, n_params

#: Solvers that keep state between steps (L-BFGS is run to its end in one call).
STOCHASTIC = ("sgd", "adam")
SOLVERS = STOCHASTIC + ("lbfgs",)


class LayerList(list):
    """The per-layer views of a network's weights or biases (``coefs_``,
    ``intercepts_``). Assigning an item writes into the network (same shape
    required), so ``model.coefs_[0] = W`` takes effect; the list's length is
    fixed."""

    def __init__(self, views, name):
        super().__init__(views)
        self._name = name

    def __setitem__(self, index, value):
        if isinstance(index, slice):
            raise TypeError(f"assign {self._name} one layer at a time, or all of them with "
                            f"model.{self._name} = [...]")
        view = list.__getitem__(self, index)
        value = np.asarray(value)
        if value.shape != view.shape:
            raise ValueError(f"{self._name}[{index}] has shape {view.shape}; the network's "
                             f"layout is fixed, got an array of shape {value.shape} (call fit "
                             "to train a network of another shape)")
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{self._name}[{index}] must hold finite values")
        view[...] = value

    def _fixed(self, *args, **kwargs):
        raise TypeError(f"{self._name} has one entry per layer; its length is fixed")

    append = extend = insert = pop = remove = clear = __delitem__ = __iadd__ = __imul__ = _fixed
    sort = reverse = _fixed

    def __reduce__(self):  # pickles as a plain list of arrays
        return list, (list(self),)


class Network:
    """Layer widths, activation, output layer, parameters and optimiser state.

    Parameters
    ----------
    sizes : sequence of int
        ``(n_features, *hidden, n_outputs)``.
    activation : str
        Hidden activation, a key of ``fastmlp.kernels.ACTIVATIONS``.
    output : str
        Output layer and loss, a key of ``fastmlp.kernels.OUTPUTS``.
    params : 1-D float32 or float64 array
        The flat parameters (taken, not copied); their dtype is the network's.
    solver : {'sgd', 'adam', 'lbfgs'}
        Sets which optimiser state exists.
    """

    def __init__(self, sizes, activation, output, params, solver):
        self.sizes = np.array(sizes, dtype=np.int64)
        if activation not in ACTIVATIONS or output not in OUTPUTS or solver not in SOLVERS:
            raise ValueError(f"invalid network: activation {activation!r}, output {output!r}, "
                             f"solver {solver!r}")
        self.activation = activation
        self.output = output
        if params.ndim != 1 or params.shape[0] != n_params(self.sizes):
            raise ValueError(f"params has shape {params.shape}; layers {self.sizes.tolist()} "
                             f"need {n_params(self.sizes)} entries")
        self.params = params
        self.grads = np.zeros_like(params)
        self.reset_optimizer(solver)

    @property
    def dtype(self):
        return self.params.dtype

    @property
    def n_layers(self):
        """Layers of weights (hidden layers + 1)."""
        return self.sizes.shape[0] - 1

    def reset_optimizer(self, solver):
        """Fresh optimiser state for ``solver`` (zero moments, step 0)."""
        self.solver = solver
        self.step = 0
        if solver == "lbfgs":
            self.state1 = self.state2 = None
        else:
            self.state1 = np.zeros_like(self.params)
            self.state2 = np.zeros_like(self.params) if solver == "adam" else self.state1

    def views(self, params=None):
        """(weights, biases): lists of views of each layer's W and b in
        ``params`` (default: this network's parameters)."""
        params = self.params if params is None else params
        coefs, intercepts = [], []
        off = 0
        for n_in, n_out in zip(self.sizes[:-1].tolist(), self.sizes[1:].tolist()):
            coefs.append(params[off : off + n_in * n_out].reshape(n_in, n_out))
            off += n_in * n_out
            intercepts.append(params[off : off + n_out])
            off += n_out
        return coefs, intercepts

    @property
    def coefs(self):
        return LayerList(self.views()[0], "coefs_")

    @property
    def intercepts(self):
        return LayerList(self.views()[1], "intercepts_")

    def assign(self, coefs=None, intercepts=None):
        """Write whole lists of layer weights and/or biases into the parameters."""
        for name, values, current in (("coefs_", coefs, self.coefs),
                                      ("intercepts_", intercepts, self.intercepts)):
            if values is None:
                continue
            values = list(values)
            if len(values) != len(current):
                raise ValueError(f"{name} must hold {len(current)} arrays (one per layer), "
                                 f"got {len(values)}")
            for i, value in enumerate(values):
                current[i] = value

    def copy(self):
        """An independent copy (parameters and optimiser state)."""
        meta, arrays = self.state()
        return Network.from_state(meta, {k: v.copy() for k, v in arrays.items()})

    # ------------------------------------------------------------- state
    def state(self):
        """(meta, arrays): the network as JSON-ready values and named arrays."""
        meta = {"activation": self.activation, "output": self.output, "solver": self.solver,
                "step": int(self.step), "dtype": self.dtype.name}
        arrays = {"sizes": self.sizes, "params": self.params}
        if self.state1 is not None:
            arrays["state1"] = self.state1
        if self.solver == "adam":
            arrays["state2"] = self.state2
        return meta, arrays

    @classmethod
    def from_state(cls, meta, arrays):
        """The network ``state`` gave; raises ValueError naming what does not fit."""
        dtype = meta.get("dtype")
        if dtype not in ("float32", "float64"):
            raise ValueError(f"network dtype {dtype!r}")
        sizes = np.asarray(arrays["sizes"])
        if (sizes.ndim != 1 or sizes.size < 2 or sizes.dtype.kind not in "iu"
                or not np.all(sizes >= 1)):
            raise ValueError(f"layer sizes {sizes.tolist()}")
        solver = meta.get("solver")
        if solver not in SOLVERS:
            raise ValueError(f"solver {solver!r}")

        def flat(name):
            arr = np.asarray(arrays[name])
            if arr.ndim != 1 or arr.dtype.kind != "f" or arr.dtype.itemsize != np.dtype(dtype).itemsize:
                raise ValueError(f"{name} has dtype {arr.dtype} and shape {arr.shape}, "
                                 f"expected {dtype} 1-D")
            if arr.size != n_params(sizes):
                raise ValueError(f"{name} has {arr.size} values; layers {sizes.tolist()} "
                                 f"have {n_params(sizes)}")
            return np.array(arr, dtype=dtype, order="C")  # writable, native byte order

        net = cls(sizes, meta.get("activation"), meta.get("output"), flat("params"), solver)
        step = meta.get("step")
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise ValueError(f"optimiser step {step!r}")
        net.step = step
        expected = {"sgd": ("state1",), "adam": ("state1", "state2"), "lbfgs": ()}[solver]
        present = tuple(name for name in ("state1", "state2") if name in arrays)
        if present != expected:
            raise ValueError(f"solver {solver} keeps {list(expected)}, found {list(present)}")
        if solver != "lbfgs":
            net.state1 = flat("state1")
            net.state2 = flat("state2") if solver == "adam" else net.state1
        return net


def init_params(sizes, activation, rng, dtype):
    """fastmlp's initial parameters, drawn in float64 from the Generator ``rng``
    and then cast.

    Hidden layers use He-uniform bounds sqrt(6 / fan_in) for ReLU and
    Glorot-uniform bounds sqrt(6 / (fan_in + fan_out)) otherwise (sqrt(2 / ...)
    for sigmoid, whose slope at 0 is 1/4); the output layer is Glorot-uniform.
    Biases start at 0.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    params = np.zeros(n_params(sizes), dtype=np.float64)
    off = 0
    last = len(sizes) - 2
    for l, (fan_in, fan_out) in enumerate(zip(sizes[:-1].tolist(), sizes[1:].tolist())):
        if l < last and activation == "relu":
            bound = np.sqrt(6.0 / fan_in)
        elif l < last and activation == "sigmoid":
            bound = np.sqrt(2.0 / (fan_in + fan_out))
        else:
            bound = np.sqrt(6.0 / (fan_in + fan_out))
        params[off : off + fan_in * fan_out] = rng.uniform(-bound, bound, fan_in * fan_out)
        off += (fan_in + 1) * fan_out
    return params.astype(dtype)
