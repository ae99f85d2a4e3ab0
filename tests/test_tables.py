"""fastmlp.tables: reading, encoding and imputing agree with scikit-learn's
OneHotEncoder, SimpleImputer, MissingIndicator and StandardScaler, and the
stored preprocessing comes back as it was."""

import json
import warnings

import numpy as np
import pytest

from customers import CATEGORICAL, CITIES, NUMERIC, customers, frame, reference_encoder, write_csv
from fastmlp.tables import EMPTY, Preprocessing, TableError, load_preprocessing, read_table

pytest.importorskip("sklearn")
pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """(path of a 400-row customer CSV, its header, its rows)."""
    header, rows = customers(400, seed=3)
    path = write_csv(tmp_path_factory.mktemp("tables") / "customers.csv", header, rows)
    return path, header, rows


def features(header, rows, drop=("plan", "churn")):
    keep = [j for j, name in enumerate(header) if name not in drop]
    return [header[j] for j in keep], [[r[j] for j in keep] for r in rows]


def test_the_encoding_is_scikit_learns(table):
    path, header, rows = table
    pre = Preprocessing.fit(read_table(path), "churn", drop=["plan"])
    names, cells = features(header, rows)
    reference = reference_encoder(frame(names, cells))
    X = pre.transform(read_table(path))
    expected = reference.transform(frame(names, cells))
    assert X.shape == expected.shape == (400, 3 + 2 + len(CITIES) + 1 + 2)
    np.testing.assert_allclose(X, expected, rtol=1e-12, atol=1e-12)
    # the layout: per column, in the table's order
    assert [c.name for c in pre.columns] == names
    assert [c.kind for c in pre.columns] == ["numeric"] * 3 + ["categorical"] * 2
    assert [c.indicator for c in pre.columns[:3]] == [True, True, False]  # score has no gaps
    city = pre.columns[3]
    assert city.categories == sorted(CITIES + (EMPTY,))
    assert city.categories == reference.named_transformers_["city"].categories_[0].tolist()
    assert pre.columns[4].categories == ["false", "true"]  # True/False, one spelling
    income = [float(r[1]) for r in rows if r[1]]
    assert pre.columns[1].fill == np.median(income)
    assert pre.feature_names[:3] == ["age", "age:empty", "income"]


def test_new_rows_unseen_categories_and_new_gaps_are_scikit_learns(table, tmp_path):
    """Rows the preprocessing never saw: an unknown city (all zeros, counted in
    a warning), gaps in a column that had none (the median, no indicator)."""
    path, header, rows = table
    pre = Preprocessing.fit(read_table(path), "churn", drop=["plan"])
    names, cells = features(header, rows)
    reference = reference_encoder(frame(names, cells))
    new = [list(r) for r in rows[:30]]
    for i in (2, 5, 7):
        new[i][3] = "tokyo"
    new[9][3] = "lima"
    new[4][2] = ""  # score had no empty cell in training
    new_path = write_csv(tmp_path / "new.csv", header, new)
    with pytest.warns(UserWarning) as record:
        X = pre.transform(read_table(new_path))
    assert len(record) == 1
    assert ("4 rows of column 'city' hold categories not seen in training ('lima', 'tokyo')"
            in str(record[0].message))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn warns about the unknown categories too
        expected = reference.transform(frame(*features(header, new)))
    np.testing.assert_allclose(X, expected, rtol=1e-12, atol=1e-12)
    assert not X[2, 5:5 + len(CITIES) + 1].any()


def test_columns_by_name_in_any_order_and_extra_columns_ignored(table, tmp_path):
    path, header, rows = table
    pre = Preprocessing.fit(read_table(path), "churn", drop=["plan"])
    order = [6, 4, 0, 3, 5, 2, 1]
    shuffled = write_csv(tmp_path / "shuffled.csv", ["note"] + [header[j] for j in order],
                         [[f"n{i}"] + [r[j] for j in order] for i, r in enumerate(rows)])
    np.testing.assert_array_equal(pre.transform(read_table(shuffled)),
                                  pre.transform(read_table(path)))


def test_scale_none_and_impute_none(table, tmp_path):
    path, header, rows = table
    plain = Preprocessing.fit(read_table(path), "churn", drop=["plan"], scale="none")
    X = plain.transform(read_table(path))
    ages = np.array([float(r[0]) if r[0] else np.nan for r in rows])
    fill = np.nanmedian(ages)
    np.testing.assert_array_equal(X[:, 0], np.where(np.isnan(ages), fill, ages))
    np.testing.assert_array_equal(X[:, 1], np.isnan(ages))
    with pytest.raises(TableError, match=r"empty cell in row \d+, column 'age'"):
        Preprocessing.fit(read_table(path), "churn", drop=["plan"], impute="none")
    full = write_csv(tmp_path / "full.csv", ["a", "t", "y"], [["1", "x", "0"], ["2", "z", "1"]])
    strict = Preprocessing.fit(read_table(full), "y", impute="none")
    gap = write_csv(tmp_path / "gap.csv", ["a", "t"], [["3", "x"], ["", "z"]])
    with pytest.raises(TableError, match="empty cell in row 2, column 'a'"):
        strict.transform(read_table(gap))


def test_integer_columns_become_categories_when_asked(table):
    path, _, rows = table
    pre = Preprocessing.fit(read_table(path), "churn", categorical=["plan"])
    plan = pre.columns[-1]
    assert plan.name == "plan" and plan.kind == "categorical"
    assert plan.categories == ["1", "2", "3"]
    X = pre.transform(read_table(path))
    np.testing.assert_array_equal(X[:, -3:], np.array([[r[5] == c for c in "123"]
                                                       for r in rows], dtype=float))
    as_number = Preprocessing.fit(read_table(path), "churn")
    assert as_number.columns[-1].kind == "numeric"


def test_an_id_column_is_refused_by_name(table, tmp_path):
    path, header, rows = table
    ids = write_csv(tmp_path / "ids.csv", ["customer"] + header,
                    [[f"c{i:05d}"] + r for i, r in enumerate(rows)])
    with pytest.raises(TableError) as info:
        Preprocessing.fit(read_table(ids), "churn")
    assert ("column 'customer' has 400 distinct values, more than --max-categories 50"
            in str(info.value))
    assert "--drop customer" in str(info.value)
    assert Preprocessing.fit(read_table(ids), "churn", max_categories=400).n_features == \
        Preprocessing.fit(read_table(path), "churn").n_features + 400


def test_the_stored_form_is_json_and_comes_back_the_same(table, tmp_path):
    import fastmlp

    path, _, _ = table
    t = read_table(path)
    t, _ = t.with_target("churn")
    pre = Preprocessing.fit(t, "churn")
    extra = json.loads(json.dumps(pre.to_extra()))  # plain JSON, nothing else
    again = Preprocessing.from_extra(extra, pre.n_features)
    assert again.feature_names == pre.feature_names
    np.testing.assert_array_equal(again.transform(t), pre.transform(t))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastmlp.ConvergenceWarning)
        model = fastmlp.MLP((4,), epochs=2).fit(pre.transform(t), t.labels("churn"))
    model_path = fastmlp.save(model, tmp_path / "m.npz", extra=pre.to_extra())
    loaded = load_preprocessing(model_path)
    np.testing.assert_array_equal(loaded.transform(t), pre.transform(t))
    assert load_preprocessing(fastmlp.save(model, tmp_path / "bare.npz")) is None
    damaged = json.loads(json.dumps(pre.to_extra()))
    damaged["preprocessing"]["columns"][0]["scale"] = 0
    with pytest.raises(TableError, match="preprocessing is damaged"):
        Preprocessing.from_extra(damaged)
    newer = {"preprocessing": {"version": 3}}
    with pytest.raises(TableError, match="upgrade fastmlp"):
        Preprocessing.from_extra(newer)
    with pytest.raises(TableError, match="gives 15 features, the model takes 5"):
        Preprocessing.from_extra(extra, 5)


def test_tables_from_python_objects(table):
    """A DataFrame or a dict of columns: the same matrix as the file."""
    path, header, rows = table
    pre = Preprocessing.fit(read_table(path), "churn", drop=["plan"])
    df = frame(header, rows)
    from_file = pre.transform(read_table(path))
    np.testing.assert_array_equal(pre.transform(df), from_file)
    columns = {name: df[name].to_numpy() for name in NUMERIC + CATEGORICAL}
    np.testing.assert_array_equal(pre.transform(columns), from_file)
    with pytest.raises(TableError, match="lacks 1 column the model needs: 'city'"):
        pre.transform({k: v for k, v in columns.items() if k != "city"})
    with pytest.raises(TypeError, match="a dict of columns"):
        pre.transform(np.zeros((3, 5)))


def test_empty_cells_are_what_the_reader_always_took_for_empty(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("a,t,y\n1,x,0\n  NA ,NULL,1\n3, n/a ,0\nnan,None,1\n-NaN,,0\n6,y,1\n")
    t = read_table(path)
    np.testing.assert_array_equal(np.isnan(t.numbers("a")), [0, 1, 0, 1, 1, 0])
    assert t.texts("t").tolist() == ["x", "", "", "", "", "y"]


def test_text_columns_mostly_numbers_are_a_typo(tmp_path):
    path = write_csv(tmp_path / "typo.csv", ["a", "y"],
                     [["1.5", "0"], ["2", "1"], ["3,5", "0"], ["4", "1"]])
    with pytest.raises(TableError, match=r"column 'a' is not numeric \(row 3 holds '3,5'\)"):
        Preprocessing.fit(read_table(path), "y")


def test_parquet_booleans_and_nulls(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": [1.0, None, 3.0, float("nan")], "b": [True, False, None, True],
                             "y": ["p", "q", "p", "q"]}), path)
    pre = Preprocessing.fit(read_table(path), "y")
    assert pre.columns[0].indicator and pre.columns[0].fill == 2.0
    assert pre.columns[1].categories == ["", "false", "true"]
    X = pre.transform(read_table(path))
    np.testing.assert_array_equal(X[:, 1], [0, 1, 0, 1])  # the indicator
    np.testing.assert_array_equal(X[:, 2:], [[0, 0, 1], [0, 1, 0], [1, 0, 0], [0, 0, 1]])


def test_a_file_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("a,b,y\n1,café,0\n3,4,1\n".encode("latin-1"))
    with pytest.raises(TableError, match="is not a CSV text file .column 'b' is not UTF-8"):
        read_table(path)


def test_boolean_targets_are_0_and_1_and_empty_ones_are_left_out(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": [1.0, 2.0, 3.0], "y": [True, None, False]}), path)
    kept, left_out = read_table(path).with_target("y")
    assert left_out == 1 and kept.labels("y").tolist() == [1, 0]
    with pytest.raises(TableError, match="empty cell in row 2 of the target column 'y'"):
        read_table(path).labels("y")


def test_boolean_text_is_spelled_one_way(tmp_path):
    """True/TRUE/true in a CSV file and a Parquet boolean are the same category."""
    path = write_csv(tmp_path / "b.csv", ["flag", "y"],
                     [["True", "0"], ["FALSE", "1"], [" true ", "0"], ["", "1"], ["false", "0"]])
    pre = Preprocessing.fit(read_table(path), "y")
    assert pre.columns[0].categories == ["", "false", "true"]
    np.testing.assert_array_equal(pre.transform(read_table(path)),
                                  [[0, 0, 1], [0, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0]])
    mixed = write_csv(tmp_path / "m.csv", ["flag", "y"], [["True", "0"], ["maybe", "1"]])
    assert Preprocessing.fit(read_table(mixed), "y").columns[0].categories == ["True", "maybe"]


def test_quoted_cells_may_span_lines_across_the_readers_blocks(tmp_path):
    """A notes column with line breaks inside quotes, in a file large enough to
    be parsed in several blocks: every row and cell where the file puts it."""
    rows = [[str(i), f"note {i}\nsecond line, with a comma" if i % 3 == 0 else f"note {i}",
             str(i % 2)] for i in range(60000)]
    path = write_csv(tmp_path / "notes.csv", ["a", "note", "y"], rows)
    assert path.stat().st_size > 1 << 20
    t = read_table(path)
    assert t.n_rows == 60000
    np.testing.assert_array_equal(t.numbers("a"), np.arange(60000))
    assert t.texts("note")[3] == "note 3\nsecond line, with a comma"
    assert t.texts("note")[59997] == "note 59997\nsecond line, with a comma"
