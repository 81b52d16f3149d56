"""The preprocessing that ships inside the model: math, missing values, unknown categories, JSON."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlops_ray.data.preprocessing import CategoricalColumn, NumericColumn, Preprocessing

PREP = Preprocessing(
    numeric=(NumericColumn("a", fill=1.0, mean=1.0, std=2.0), NumericColumn("b", fill=10.0, mean=10.0, std=5.0)),
    categorical=(CategoricalColumn("c", ("red", "blue")),),
)


def test_numeric_standardised_with_stored_stats_and_extra_columns_ignored() -> None:
    frame = pd.DataFrame({"b": [10.0, 20.0], "a": [3.0, 1.0], "c": ["red", "blue"], "extra": [0, 0]})
    out = PREP.transform(frame)
    assert out.dtype == np.float32 and out.shape == (2, PREP.width) == (2, 5)
    np.testing.assert_allclose(out[:, :2], [[1.0, 0.0], [0.0, 2.0]])
    np.testing.assert_allclose(out[:, 2:], [[1, 0, 0], [0, 1, 0]])


def test_missing_numbers_take_the_fill_and_unknown_or_missing_categories_the_last_bucket() -> None:
    frame = pd.DataFrame({"a": [None, 5.0], "b": [np.nan, 10.0], "c": ["green", None]}, dtype=object)
    out = PREP.transform(frame)
    np.testing.assert_allclose(out[:, :2], [[0.0, 0.0], [2.0, 0.0]])
    np.testing.assert_allclose(out[:, 2:], [[0, 0, 1], [0, 0, 1]])


def test_ordinal_encoding_is_one_column_of_codes() -> None:
    ordinal = Preprocessing(PREP.numeric, PREP.categorical, "ordinal")
    out = ordinal.transform(pd.DataFrame({"a": [1.0] * 3, "b": [1.0] * 3, "c": ["blue", "red", "pink"]}))
    assert ordinal.width == 3
    np.testing.assert_allclose(out[:, 2], [1, 0, 2])


def test_constant_column_is_not_divided_by_zero() -> None:
    prep = Preprocessing((NumericColumn("a", 4.0, 4.0, 0.0),))
    np.testing.assert_allclose(prep.transform(pd.DataFrame({"a": [4.0, 5.0]})), [[0.0], [1.0]])


def test_json_round_trip() -> None:
    assert Preprocessing.from_json(PREP.to_json()) == PREP
    assert PREP.features == ("a", "b", "c")
