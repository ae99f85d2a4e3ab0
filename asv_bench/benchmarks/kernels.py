"""Every public kernel of ``fastmlp.kernels`` x backend x dtype x size.

Called through the public API, ``fastmlp.kernels.get(backend).NAME(...)``, with
``out=`` preallocated where the function takes one, so the timings include
the API's argument checks but no allocation of the result.

Sizes (rows m, n_in -> n_out, k classes, a network for the whole-network kernels):

- small:  m=16,   34 -> 20,  k=2,    net 34-20-20-2 sigmoid (seed-ionosphere), epoch 351 rows, batch 1
- medium: m=200,  64 -> 100, k=10,   net 64-100-10 relu (digits),              epoch 1797 rows, batch 200
- large:  m=1024, 784 -> 256, k=1000, net 784-256-128-10 relu (mnist-shape),   epoch 8192 rows, batch 128

``setup`` calls every kernel of its class once, so numba compilation (or the
load from numba's cache) is never timed.
"""

import numpy as np

from . import BACKENDS, DTYPES, cached, fastmlp_backend_or_skip, init_flat_params

SIZES = {
    "small": dict(m=16, n_in=34, n_out=20, k=2, net=(34, 20, 20, 2), activation="sigmoid",
                  rows=351, batch=1),
    "medium": dict(m=200, n_in=64, n_out=100, k=10, net=(64, 100, 10), activation="relu",
                   rows=1797, batch=200),
    "large": dict(m=1024, n_in=784, n_out=256, k=1000, net=(784, 256, 128, 10),
                  activation="relu", rows=8192, batch=128),
}


class _Arrays:
    """Inputs and outputs of every kernel for one (backend, dtype, size)."""

    def __init__(self, backend, dtype, size):
        fastmlp = fastmlp_backend_or_skip(backend)
        s = SIZES[size]
        t = np.dtype(dtype).type
        rng = np.random.default_rng(0)
        self.k = fastmlp.kernels.get(backend)
        m, n_in, n_out, k = s["m"], s["n_in"], s["n_out"], s["k"]
        self.X = rng.standard_normal((m, n_in), dtype=t)
        self.W = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(t)
        self.b = (0.1 * rng.standard_normal(n_out)).astype(t)
        self.H = np.empty((m, n_out), dtype=t)
        # activation outputs in each function's range, and an upstream gradient
        self.A_sig = rng.uniform(0.01, 0.99, (m, n_out)).astype(t)
        self.A_tanh = rng.uniform(-0.99, 0.99, (m, n_out)).astype(t)
        self.A_relu = np.maximum(rng.standard_normal((m, n_out)), 0).astype(t)
        self.dA = rng.standard_normal((m, n_out), dtype=t)
        # logits, labels and targets
        self.Z = (3 * rng.standard_normal((m, k))).astype(t)
        self.Zout = np.empty_like(self.Z)
        self.y = rng.integers(0, k, m).astype(np.int64)
        self.Y = rng.standard_normal((m, k), dtype=t)
        self.Y01 = (rng.random((m, k)) > 0.5).astype(t)
        self.Ycounts = rng.poisson(2.0, (m, k)).astype(t)
        # whole network
        self.sizes = np.array(s["net"], dtype=np.int64)
        self.activation = s["activation"]
        self.params = init_flat_params(self.sizes, self.activation, dtype)
        self.grads = (1e-3 * rng.standard_normal(self.params.shape[0])).astype(t)
        self.s1 = np.zeros_like(self.params)
        self.s2 = np.zeros_like(self.params)
        self.Xnet = rng.standard_normal((m, s["net"][0]), dtype=t)
        self.Pnet = np.empty((m, s["net"][-1]), dtype=t)
        # one epoch
        self.rows, self.batch = s["rows"], s["batch"]
        self.Xep = rng.standard_normal((self.rows, s["net"][0]), dtype=t)
        self.yep = rng.integers(0, s["net"][-1], self.rows).astype(np.int64)
        self.yep[: s["net"][-1]] = np.arange(s["net"][-1])
        self.order = rng.permutation(self.rows).astype(np.int64)
        self.work = np.empty(self.k.work_size(self.sizes, self.batch), dtype=t)
        self.ep_params = self.params.copy()
        self.ep_grads = np.zeros_like(self.params)
        self.ep_vel = np.zeros_like(self.params)


class _KernelBench:
    params = [BACKENDS, DTYPES, list(SIZES)]
    param_names = ["backend", "dtype", "size"]
    timeout = 300
    rounds = 1
    repeat = (3, 10, 5.0)

    def setup(self, backend, dtype, size):
        key = (type(self).__name__, backend, dtype, size)

        def build():
            a = _Arrays(backend, dtype, size)
            self.a = a
            for name in dir(self):  # warm-up: every kernel of this class, once
                if name.startswith("time_"):
                    getattr(self, name)(backend, dtype, size)
            return a

        self.a = cached(key, build)


class Linear(_KernelBench):
    """``out = f(X @ W + b)``: (m, n_in) @ (n_in, n_out)."""

    def time_linear(self, *p):
        a = self.a
        a.k.linear(a.X, a.W, a.b, out=a.H)

    def time_linear_sigmoid(self, *p):
        a = self.a
        a.k.linear_sigmoid(a.X, a.W, a.b, out=a.H)

    def time_linear_tanh(self, *p):
        a = self.a
        a.k.linear_tanh(a.X, a.W, a.b, out=a.H)

    def time_linear_relu(self, *p):
        a = self.a
        a.k.linear_relu(a.X, a.W, a.b, out=a.H)


class ActivationBackward(_KernelBench):
    """``out = dA * f'(.)`` from the activation output, (m, n_out)."""

    def time_sigmoid_backward(self, *p):
        a = self.a
        a.k.sigmoid_backward(a.A_sig, a.dA, out=a.H)

    def time_tanh_backward(self, *p):
        a = self.a
        a.k.tanh_backward(a.A_tanh, a.dA, out=a.H)

    def time_relu_backward(self, *p):
        a = self.a
        a.k.relu_backward(a.A_relu, a.dA, out=a.H)


class Softmax(_KernelBench):
    """Row-wise softmax and log-softmax of (m, k) logits."""

    def time_softmax(self, *p):
        a = self.a
        a.k.softmax(a.Z, out=a.Zout)

    def time_log_softmax(self, *p):
        a = self.a
        a.k.log_softmax(a.Z, out=a.Zout)


class Losses(_KernelBench):
    """Cross-entropy and squared error and their gradients, (m, k)."""

    def time_cross_entropy(self, *p):
        a = self.a
        a.k.cross_entropy(a.Z, a.y)

    def time_cross_entropy_backward(self, *p):
        a = self.a
        a.k.cross_entropy_backward(a.Z, a.y, out=a.Zout)

    def time_squared_error(self, *p):
        a = self.a
        a.k.squared_error(a.Z, a.Y)

    def time_squared_error_backward(self, *p):
        a = self.a
        a.k.squared_error_backward(a.Z, a.Y, out=a.Zout)

    def time_binary_cross_entropy(self, *p):
        a = self.a
        a.k.binary_cross_entropy(a.Z, a.Y01)

    def time_binary_cross_entropy_backward(self, *p):
        a = self.a
        a.k.binary_cross_entropy_backward(a.Z, a.Y01, out=a.Zout)

    def time_poisson_deviance(self, *p):
        a = self.a
        a.k.poisson_deviance(a.Z, a.Ycounts)

    def time_poisson_deviance_backward(self, *p):
        a = self.a
        a.k.poisson_deviance_backward(a.Z, a.Ycounts, out=a.Zout)


class Optimizers(_KernelBench):
    """In-place SGD and Adam steps on the flat parameters of the size's network."""

    def time_sgd_update(self, *p):
        a = self.a
        a.k.sgd_update(a.params, a.grads, a.s1, 1e-3, 0.9, False)

    def time_adam_update(self, *p):
        a = self.a
        a.k.adam_update(a.params, a.grads, a.s1, a.s2, 10, 1e-3)


class Forward(_KernelBench):
    """The whole network's softmax output for m rows."""

    def time_forward(self, *p):
        a = self.a
        a.k.forward(a.Xnet, a.params, a.sizes, a.activation, "softmax", out=a.Pnet)


class TrainEpoch(_KernelBench):
    """One epoch of momentum SGD over ``rows`` rows in minibatches of ``batch``."""

    def time_train_epoch(self, *p):
        a = self.a
        a.k.train_epoch(a.Xep, a.yep, a.order, a.ep_params, a.ep_grads, a.ep_vel, a.ep_vel, 0,
                        a.sizes, a.activation, "softmax", "sgd", 1e-3, 0.9, False, l2=1e-4,
                        batch_size=a.batch, work=a.work)


class LossGradient(_KernelBench):
    """The full-data loss and gradient (what L-BFGS calls) over ``rows`` rows."""

    def time_loss_gradient(self, *p):
        a = self.a
        a.k.loss_gradient(a.Xep, a.yep, a.ep_params, a.ep_grads, a.sizes, a.activation,
                          "softmax", l2=1e-4, chunk=a.batch, work=a.work)
