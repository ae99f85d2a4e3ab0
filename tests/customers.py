"""A generated customer table (numbers, text, booleans, empty cells) and the
scikit-learn preprocessing that fastmlp.tables must agree with, for the tests
of the tables module and of the command line.

``customers(n, seed)`` draws a churn table: numeric ``age`` (5 % empty),
``income`` (15 % empty, and an empty income raises the odds of churn, so the
indicator carries signal), ``score``; text ``city`` (5 % empty); ``member``
(True/False); integer ``plan`` (1, 2, 3); target ``churn`` (yes/no).
``reference_encoder(columns)`` is the same preprocessing written with
scikit-learn's own parts, per column in order: SimpleImputer(median) then
StandardScaler, plus MissingIndicator where the training column had gaps, for
numbers; OneHotEncoder(handle_unknown='ignore') for categories, the empty
cell being the text ''.
"""

import csv

import numpy as np

CITIES = ("berlin", "paris", "rome", "madrid", "oslo", "vienna")
HEADER = ("age", "income", "score", "city", "member", "plan", "churn")
NUMERIC = ("age", "income", "score")
CATEGORICAL = ("city", "member")


def customers(n, seed, noise=1.0):
    """(header, rows): rows of text cells as a CSV file holds them ('' = empty)."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(18, 80, n).round()
    income = rng.lognormal(10.8, 0.4, n).round(2)
    score = rng.normal(0, 1, n).round(4)
    city = rng.choice(CITIES, n)
    member = rng.random(n) < 0.4
    plan = rng.integers(1, 4, n)
    effect = dict(zip(CITIES, (1.5, -1.0, 0.5, -0.5, 2.0, -2.0)))
    income_gap = rng.random(n) < 0.15
    logit = (0.06 * (age - 50) - 1.2 * (np.log(income) - 10.8) / 0.4 + 1.5 * score
             + np.array([effect[c] for c in city]) - 1.5 * member + 2.0 * income_gap
             + 0.5 * (plan == 3))
    churn = np.where(logit + rng.logistic(0, noise, n) > 0, "yes", "no")
    city_gap = rng.random(n) < 0.05
    age_gap = rng.random(n) < 0.05
    rows = [["" if age_gap[i] else f"{age[i]:.0f}", "" if income_gap[i] else f"{income[i]:.2f}",
             f"{score[i]:.4f}", "" if city_gap[i] else city[i],
             "True" if member[i] else "False", str(plan[i]), churn[i]] for i in range(n)]
    return list(HEADER), rows


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def frame(header, rows):
    """The rows as a pandas DataFrame: numbers as float (NaN for empty), the
    rest as str ('' for empty)."""
    import pandas as pd

    columns = {}
    for j, name in enumerate(header):
        cells = [r[j] for r in rows]
        if name in NUMERIC:
            columns[name] = np.array([float(c) if c else np.nan for c in cells])
        else:
            columns[name] = np.array(cells, dtype=object)
    return pd.DataFrame(columns)


def reference_encoder(train, numeric=NUMERIC, categorical=CATEGORICAL):
    """scikit-learn's ColumnTransformer over the columns of the DataFrame
    ``train`` (the features only), in its column order, fitted on it."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import MissingIndicator, SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    parts = []
    for name in train.columns:
        if name in numeric:
            parts.append((name, make_pipeline(SimpleImputer(strategy="median"),
                                              StandardScaler()), [name]))
            if train[name].isna().any():
                parts.append((name + ":empty", MissingIndicator(), [name]))
        elif name in categorical:
            parts.append((name, OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                          [name]))
    return ColumnTransformer(parts, sparse_threshold=0).fit(train)
