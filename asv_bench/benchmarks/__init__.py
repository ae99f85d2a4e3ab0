"""asv benchmarks of fastmlp, one topic per module (pandas-style).

kernels   every public kernel x backend x dtype over small/medium/large shapes
training  one epoch of six workloads: fastmlp (numba, numpy), scikit-learn, PyTorch, JAX;
          fastmlp-numba at 1 thread and at every core; the drop-in's end-to-end fit;
          L-BFGS iterations of the drop-in and scikit-learn, at 1 thread and every core
floor     the GEMM-only floor of the same epochs (the kernels' own BLAS route)
predict   predict latency of a fitted model
memory    peak memory of a short fit
startup   import time and first-fit time in a fresh process (warm and cold numba cache)

Shared helpers live here: the workloads, synthetic data, and the "peer"
systems (scikit-learn, torch) that are optional. A peer that is not installed
makes ``setup`` raise ``NotImplementedError``, which asv records as a skip.

Nothing heavy is imported at module level: asv imports this package to
discover the benchmarks (and may fork from that process), so numba, torch and
scikit-learn load only inside ``setup``.

Note for readers of the timings: the asv_runner in use re-runs ``setup``
before every timed sample; every expensive ``setup`` below therefore keeps
what it built in a per-process cache (``cached``) so the re-run is free and
each benchmark process warms up (and compiles) exactly once.
"""

import numpy as np

#: The training workloads: rows x features -> hidden -> classes, activation, batch
#: (None = the whole data set per batch). "seed-" workloads have the shapes of the
#: UCI ionosphere and HTRU2 pulsar sets; the data are synthetic.
WORKLOADS = {
    "seed-ionosphere": dict(n=351, d=34, hidden=(20, 20), activation="sigmoid", k=2, batch=1),
    "seed-pulsar": dict(n=14318, d=8, hidden=(3,), activation="tanh", k=2, batch=None),
    "digits": dict(n=1797, d=64, hidden=(100,), activation="relu", k=10, batch=200),
    "mid": dict(n=20000, d=100, hidden=(256,), activation="relu", k=10, batch=256),
    "mnist-shape": dict(n=60000, d=784, hidden=(256, 128), activation="relu", k=10, batch=128),
    "wide": dict(n=16384, d=2048, hidden=(2048, 2048), activation="relu", k=10, batch=1024),
}
SMALL_WORKLOADS = ["seed-ionosphere", "seed-pulsar", "digits", "mid"]
LARGE_WORKLOADS = ["mnist-shape", "wide"]

SYSTEMS = ["fastmlp-numba", "fastmlp-numpy", "sklearn", "torch", "jax"]
BACKENDS = ["numba", "numpy"]
DTYPES = ["float32", "float64"]

#: Hyper-parameters shared by every system: plain momentum SGD, L2 like sklearn's alpha.
LR, MOMENTUM, L2 = 0.01, 0.9, 1e-4

_SKLEARN_ACTIVATION = {"sigmoid": "logistic", "tanh": "tanh", "relu": "relu",
                       "identity": "identity"}

_CACHE = {}


def cached(key, build):
    """``build()`` once per benchmark process (asv re-runs setup per sample)."""
    if key not in _CACHE:
        _CACHE[key] = build()
    return _CACHE[key]


def batch_size(workload):
    w = WORKLOADS[workload]
    return w["batch"] or w["n"]


def make_data(workload, dtype, n=None, seed=0):
    """Synthetic, learnable data of a workload's shape: X ~ N(0, 1) in ``dtype``
    (C-contiguous, so no input check has to convert it) and int64 labels from a
    random linear teacher plus noise."""
    w = WORKLOADS[workload]
    n = w["n"] if n is None else n
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, w["d"]), dtype=np.dtype(dtype).type)
    teacher = rng.standard_normal((w["d"], w["k"])).astype(X.dtype) / np.sqrt(w["d"])
    logits = X @ teacher + 0.3 * rng.standard_normal((n, w["k"])).astype(X.dtype)
    y = np.argmax(logits, axis=1).astype(np.int64)
    y[: w["k"]] = np.arange(w["k"])  # every class present
    return X, y


def require(module):
    """Import an optional peer, or skip the benchmark (asv: NotImplementedError)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise NotImplementedError(f"{module} is not installed: {exc}") from None


def fastmlp_backend_or_skip(backend):
    """Skip the numba backend where numba is missing (fastmlp would fall back)."""
    if backend == "numba":
        require("numba")
    return require("fastmlp")


# ------------------------------------------------------------------ systems
class FastmlpEpoch:
    """One epoch = one ``MLP.partial_fit(X, y)`` (input checks included), with the
    model's ``n_threads`` (None: every core)."""

    def __init__(self, workload, dtype, backend, X, y, seed=0, n_threads=None):
        fastmlp = fastmlp_backend_or_skip(backend)
        w = WORKLOADS[workload]
        self.X, self.y = X, y
        self.model = fastmlp.MLP(
            w["hidden"], w["activation"], solver="sgd", lr=LR, momentum=MOMENTUM,
            nesterov=False, batch_size=batch_size(workload), l2=L2, dtype=dtype,
            backend=backend, random_state=seed, n_threads=n_threads)
        # warm-up: compiles (or loads from numba's cache) and initialises the weights;
        # a few batches are enough, the timed call is a full epoch
        rows = min(len(y), 4 * batch_size(workload))
        self.model.partial_fit(X[:rows], y[:rows], classes=np.arange(w["k"]))

    def epoch(self):
        self.model.partial_fit(self.X, self.y)


class FastmlpKernelEpoch:
    """One epoch through the public kernel ``fastmlp.kernels.get(b).train_epoch``
    on arrays that are already checked and converted: the epoch without
    ``partial_fit``'s per-call input validation and label encoding."""

    def __init__(self, workload, dtype, backend, X, y, seed=0):
        fastmlp = fastmlp_backend_or_skip(backend)
        w = WORKLOADS[workload]
        self.k = fastmlp.kernels.get(backend)
        self.sizes = np.array((w["d"],) + w["hidden"] + (w["k"],), dtype=np.int64)
        self.params = init_flat_params(self.sizes, w["activation"], dtype, seed)
        self.grads = np.zeros_like(self.params)
        self.velocity = np.zeros_like(self.params)
        self.batch = batch_size(workload)
        self.work = np.empty(self.k.work_size(self.sizes, self.batch), dtype=dtype)
        self.activation = w["activation"]
        self.X, self.y = X, y
        self.rng = np.random.default_rng(seed)
        self.step = 0
        rows = min(len(y), 4 * self.batch)
        self._run(X[:rows], y[:rows], np.arange(rows))  # warm-up / compile

    def _run(self, X, y, order):
        _, _, self.step, done = self.k.train_epoch(
            X, y, order, self.params, self.grads, self.velocity, self.velocity, self.step,
            self.sizes, self.activation, "softmax", "sgd", LR, MOMENTUM, False, l2=L2,
            batch_size=self.batch, work=self.work)
        if done < len(order):
            raise RuntimeError("benchmark training diverged")

    def epoch(self):
        self._run(self.X, self.y, self.rng.permutation(len(self.y)))


def init_flat_params(sizes, activation, dtype, seed=0):
    """Flat [W0, b0, W1, b1, ...] initialised as ``MLP`` does (Glorot/He)."""
    from fastmlp.network import init_params

    return init_params(sizes, activation, np.random.default_rng(seed), dtype)


class LargeSettings:
    """asv timing settings for benchmarks whose single call takes seconds:
    one call per sample, at most three samples, no warm-up calls."""

    number = 1
    repeat = (1, 3, 30.0)
    rounds = 1
    min_run_count = 1
    warmup_time = 0


class SklearnEpoch:
    """One epoch = one ``MLPClassifier.partial_fit`` (solver='sgd', same batch,
    momentum 0.9, no Nesterov, constant learning rate, alpha = fastmlp's l2)."""

    def __init__(self, workload, dtype, X, y, seed=0):
        require("sklearn")
        import warnings

        from sklearn.neural_network import MLPClassifier

        w = WORKLOADS[workload]
        self.X, self.y = X, y
        self.model = MLPClassifier(
            hidden_layer_sizes=w["hidden"], activation=_SKLEARN_ACTIVATION[w["activation"]],
            solver="sgd", learning_rate="constant", learning_rate_init=LR, momentum=MOMENTUM,
            nesterovs_momentum=False, batch_size=batch_size(workload), alpha=L2,
            shuffle=True, random_state=seed)
        rows = min(len(y), 4 * batch_size(workload))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model.partial_fit(X[:rows], y[:rows], classes=np.arange(w["k"]))

    def epoch(self):
        self.model.partial_fit(self.X, self.y)


class TorchEpoch:
    """One epoch of eager PyTorch: ``nn.Sequential`` + ``optim.SGD`` (momentum
    0.9, weight decay = alpha / batch like sklearn's L2), a manual minibatch loop
    over a shuffled index; ``torch.set_num_threads`` left at its default."""

    def __init__(self, workload, dtype, X, y, seed=0):
        torch = require("torch")
        w = WORKLOADS[workload]
        act = {"sigmoid": torch.nn.Sigmoid, "tanh": torch.nn.Tanh, "relu": torch.nn.ReLU,
               "identity": torch.nn.Identity}[w["activation"]]
        torch.manual_seed(seed)
        tdtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
        layers, prev = [], w["d"]
        for h in w["hidden"]:
            layers += [torch.nn.Linear(prev, h), act()]
            prev = h
        layers.append(torch.nn.Linear(prev, w["k"]))
        self.torch = torch
        self.model = torch.nn.Sequential(*layers).to(tdtype)
        self.batch = batch_size(workload)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=LR, momentum=MOMENTUM,
                                   nesterov=False, weight_decay=L2 / self.batch)
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self.X = torch.from_numpy(X)
        self.y = torch.from_numpy(y)
        rows = min(len(y), 4 * self.batch)
        self._run(self.X[:rows], self.y[:rows])

    def _run(self, X, y):
        torch, model, opt, loss_fn, b = self.torch, self.model, self.opt, self.loss_fn, self.batch
        n = X.shape[0]
        order = torch.randperm(n)
        for start in range(0, n, b):
            idx = order[start:start + b]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(X[idx]), y[idx])
            loss.backward()
            opt.step()

    def epoch(self):
        self._run(self.X, self.y)


class JaxEpoch:
    """One epoch of JAX as its users write it: the whole epoch one ``jax.jit``-compiled
    function, a ``lax.scan`` of the momentum SGD step over the full minibatches (and one
    step for the remainder, as the other systems take it), XLA on the CPU with its
    default threads; loss = mean cross-entropy + 0.5 * alpha * sum(W**2) / batch (like
    scikit-learn's), rows shuffled every epoch (the permutation drawn outside, as
    ``torch.randperm`` is), weights initialised as ``MLP`` does."""

    def __init__(self, workload, dtype, X, y, seed=0):
        jax = require("jax")
        import jax.numpy as jnp

        if dtype == "float64":
            jax.config.update("jax_enable_x64", True)
        w = WORKLOADS[workload]
        act = {"sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh, "relu": jax.nn.relu,
               "identity": lambda v: v}[w["activation"]]
        sizes = np.array((w["d"],) + w["hidden"] + (w["k"],), dtype=np.int64)
        flat = init_flat_params(sizes, w["activation"], dtype, seed)
        params, at = [], 0
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            W = flat[at:at + n_in * n_out].reshape(n_in, n_out)
            b = flat[at + n_in * n_out:at + (n_in + 1) * n_out]
            params.append((jnp.asarray(W), jnp.asarray(b)))
            at += (n_in + 1) * n_out
        b_size = batch_size(workload)

        def loss(params, Xb, yb):
            h = Xb
            for W, b in params[:-1]:
                h = act(h @ W + b)
            W, b = params[-1]
            logp = jax.nn.log_softmax(h @ W + b)
            data = -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1))
            return data + 0.5 * L2 * sum(jnp.sum(W * W) for W, _ in params) / Xb.shape[0]

        grad = jax.grad(loss)

        def step(carry, idx, X, y):
            params, vel = carry
            g = grad(params, X[idx], y[idx])
            vel = jax.tree_util.tree_map(lambda v, d: MOMENTUM * v - LR * d, vel, g)
            return (jax.tree_util.tree_map(jnp.add, params, vel), vel), None

        def epoch(params, vel, X, y, perm):
            full = (perm.shape[0] // b_size) * b_size
            carry = (params, vel)
            if full:
                carry, _ = jax.lax.scan(lambda c, i: step(c, i, X, y), carry,
                                        perm[:full].reshape(-1, b_size))
            if full < perm.shape[0]:
                carry, _ = step(carry, perm[full:], X, y)
            return carry

        self.jax, self.np_rng = jax, np.random.default_rng(seed)
        self.run = jax.jit(epoch)
        self.X, self.y = jnp.asarray(X), jnp.asarray(y)
        self.state = (params, jax.tree_util.tree_map(jnp.zeros_like, params))
        self.epoch()  # compiles (the timed epochs reuse the compiled function)

    def epoch(self):
        perm = self.np_rng.permutation(self.X.shape[0])
        self.state = self.run(*self.state, self.X, self.y, perm)
        self.jax.block_until_ready(self.state)


def make_epoch(system, workload, dtype, X, y, seed=0):
    """The epoch runner of ``system`` (one of SYSTEMS), warmed up."""
    if system.startswith("fastmlp-"):
        return FastmlpEpoch(workload, dtype, system.split("-", 1)[1], X, y, seed)
    if system == "sklearn":
        return SklearnEpoch(workload, dtype, X, y, seed)
    if system == "torch":
        return TorchEpoch(workload, dtype, X, y, seed)
    if system == "jax":
        return JaxEpoch(workload, dtype, X, y, seed)
    raise ValueError(f"unknown system {system!r}")

