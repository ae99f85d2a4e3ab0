"""Predict latency of a fitted model: 1 row and 1000 rows.

Models are trained for one epoch (``partial_fit``) in ``setup`` on synthetic
data of the workload's shape (the first 5000 rows), then ``predict`` is called
once there to warm up. ``predict`` returns labels: for fastmlp that is input
checks + forward + softmax + argmax; scikit-learn's ``MLPClassifier.predict``
does the same; torch is ``model(torch.from_numpy(X)).argmax(1).numpy()`` under
``torch.no_grad()``. JAX is a peer of the training suites only: its epoch
(``JaxEpoch``) is a compiled function, not a model with a ``predict``.
"""

import warnings

import numpy as np

from . import SYSTEMS, WORKLOADS, cached, make_epoch, make_data

TRAIN_ROWS = 5000


class _Fitted:
    def __init__(self, workload, system):
        X, y = make_data(workload, "float32", n=max(TRAIN_ROWS, 1000))
        self.queries = {1: np.ascontiguousarray(X[:1]), 1000: np.ascontiguousarray(X[:1000])}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run = make_epoch(system, workload, "float32", X[:TRAIN_ROWS], y[:TRAIN_ROWS])
            run.epoch()
        if system == "torch":
            torch = run.torch
            model = run.model.eval()

            def predict(Xq):
                with torch.no_grad():
                    return model(torch.from_numpy(Xq)).argmax(1).numpy()

            self.predict = predict
        else:
            self.predict = run.model.predict
        for Xq in self.queries.values():
            self.predict(Xq)


class Predict:
    params = [["digits", "mnist-shape"], [1, 1000], [s for s in SYSTEMS if s != "jax"]]
    param_names = ["workload", "rows", "system"]
    timeout = 300
    repeat = (10, 200, 5.0)

    def setup(self, workload, rows, system):
        assert workload in WORKLOADS
        self.fitted = cached(("predict", workload, system), lambda: _Fitted(workload, system))
        self.Xq = self.fitted.queries[rows]

    def time_predict(self, workload, rows, system):
        self.fitted.predict(self.Xq)
