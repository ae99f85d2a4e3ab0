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


#: Names of the 64 pixel columns of the digits table, row by row: ``pixel_<row>_<col>``.
DIGITS_FEATURES = tuple(f"pixel_{r}_{c}" for r in range(8) for c in range(8))

#: The tables ``export_csv`` writes: loader, feature names, label column, class names
#: (None: the labels are written as they are).
_EXPORTS = {
    "breast_cancer": (load_breast_cancer, BREAST_CANCER_FEATURES, "diagnosis",
                      BREAST_CANCER_CLASSES),
    "digits": (load_digits, DIGITS_FEATURES, "digit", None),
}


def export_csv(name, path):
    """Write the bundled data set ``name`` ('breast_cancer' or 'digits') to the CSV
    file ``path``: a header with the feature names and the label column
    ('diagnosis' with the class names malignant/benign, or 'digit' 0..9), then
    one row per sample, every number written exactly (shortest round-trip
    form). Returns ``path``. This is the table the command line trains on."""
    import csv

    if name not in _EXPORTS:
        raise ValueError(f"unknown data set {name!r}; valid names: {', '.join(_EXPORTS)}")
    load, features, label, classes = _EXPORTS[name]
    X, y = load()
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(list(features) + [label])
        for row, target in zip(X.tolist(), y.tolist()):
            writer.writerow([_number(v) for v in row]
                            + [classes[target] if classes is not None else target])
    return path


def _number(value):
    """The shortest text that reads back as the float ``value`` ('3' for 3.0)."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text
