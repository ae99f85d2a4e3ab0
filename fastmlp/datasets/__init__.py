"""Small real data sets shipped with fastmlp, and helpers to split and scale.

``load_digits()`` and ``load_breast_cancer()`` return ``(X, y)`` as float64
features and int64 labels; SOURCES.md beside this file says where they come
from.
"""

import gzip
import os

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))

#: The 30 features of the breast-cancer table: 10 measurements of the cell
#: nuclei in an image, as the mean, the standard error and the worst value.
BREAST_CANCER_FEATURES = tuple(
    f"{stat} {name}"
    for stat in ("mean", "error", "worst")
    for name in ("radius", "texture", "perimeter", "area", "smoothness", "compactness",
                 "concavity", "concave points", "symmetry", "fractal dimension")
)
BREAST_CANCER_CLASSES = ("malignant", "benign")


def _table(path, skip_header):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        data = np.loadtxt(f, delimiter=",", skiprows=1 if skip_header else 0)
    return np.ascontiguousarray(data[:, :-1]), data[:, -1].astype(np.int64)


def load_digits():
    """8x8 images of handwritten digits: X (1797, 64) pixel counts 0..16, y in 0..9."""
    return _table(os.path.join(_HERE, "digits.csv.gz"), skip_header=False)


def load_breast_cancer():
    """Breast cancer diagnosis: X (569, 30) measurements, y 0 (malignant) or 1 (benign)."""
    return _table(os.path.join(_HERE, "breast_cancer.csv"), skip_header=True)


def split(X, y, test_fraction=0.25, random_state=0):
    """Stratified random split: (X_train, X_test, y_train, y_test)."""
    rng = np.random.default_rng(random_state)
    test = np.zeros(len(y), dtype=bool)
    for label in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == label))
        test[rows[: int(round(test_fraction * len(rows)))]] = True
    return X[~test], X[test], y[~test], y[test]


def standardize(train, *others):
    """Scale every column to mean 0 and standard deviation 1 on ``train``;
    the same shift and scale are applied to ``others``. Constant columns are
    only centred."""
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std[std == 0] = 1.0
    scaled = [(a - mean) / std for a in (train,) + others]
    return scaled[0] if not others else tuple(scaled)
