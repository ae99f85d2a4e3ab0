"""The integer codes the kernels use for activations, outputs and solvers.

Defined here once: the public API turns names into these codes, both cores
compare against them, and model files store the names. The numba core freezes
the values into its compiled code; ``numba_core.ensure_fresh`` rebuilds the
cached kernels when a value here changes.
"""

IDENTITY, SIGMOID, TANH, RELU = 0, 1, 2, 3
#: Hidden-layer activations by name.
ACTIVATIONS = {"identity": IDENTITY, "sigmoid": SIGMOID, "tanh": TANH, "relu": RELU}

SOFTMAX, SQUARED, LOGISTIC, POISSON = 0, 1, 2, 3
#: Output layers by name, each with its loss (the pair whose output delta is P - Y):
#: softmax + cross-entropy against integer labels; identity + half the squared
#: error; logistic (sigmoid) + binary cross-entropy per output against 0/1
#: targets; exp + Poisson deviance (y log(y / p) - y + p) against counts.
OUTPUTS = {"softmax": SOFTMAX, "squared": SQUARED, "logistic": LOGISTIC, "poisson": POISSON}

SGD, ADAM = 0, 1
#: Stochastic solvers by name.
SOLVERS = {"sgd": SGD, "adam": ADAM}
