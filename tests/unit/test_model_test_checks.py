"""The behavioural check functions and their config, on plain frames and score functions with known behaviour."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from mlops_ray.compare.diff import schema_changes
from mlops_ray.config.model_tests import DirectionalCase, InvarianceCase, ModelTestsConfig
from mlops_ray.data.preprocessing import CategoricalColumn, NumericColumn, Preprocessing
from mlops_ray.data.schema import ColumnSchema, DataSchema
from mlops_ray.modeltests.checks import directional, invariance

BASE = pd.DataFrame({"size": np.linspace(20, 200, 50), "city": ["a", "b"] * 25})


def by_size(frame: pd.DataFrame) -> np.ndarray:
    return 2.0 * frame["size"].to_numpy(float)


def by_size_and_city(frame: pd.DataFrame) -> np.ndarray:
    return by_size(frame) + np.where(frame["city"] == "b", 30.0, 0.0)


def test_a_category_swap_passes_a_model_that_ignores_it_and_fails_one_that_does_not() -> None:
    case = InvarianceCase(name="city is irrelevant", column="city", replace_with=("a", "b"), tolerance=1.0)
    ignoring = invariance(case, BASE, by_size, seed=0)
    assert ignoring.passed and ignoring.checked == 100 and ignoring.failed == 0
    using = invariance(case, BASE, by_size_and_city, seed=0)
    assert not using.passed and using.failed == 50  # half the rows change city in each of the two swaps
    assert "50 of 100 rows moved more than 1" in using.detail and len(using.examples) == 3
    assert abs(using.examples[0]["score_after"] - using.examples[0]["score_before"]) == pytest.approx(30.0, abs=1e-6)


def test_relative_noise_is_judged_against_the_tolerance() -> None:
    case = InvarianceCase(name="1% noise", column="size", relative=0.01, tolerance=5.0)
    assert invariance(case, BASE, by_size, seed=0).passed  # at most 2 * 200 * 1% = 4
    steep = invariance(case, BASE, lambda f: 10 * by_size(f), seed=0)
    assert not steep.passed and 0 < steep.failed < 50 and "largest move" in steep.detail


def test_directional_expectations_in_both_directions() -> None:
    up = DirectionalCase(name="bigger costs more", column="size", increase=5, expect="not_lower")
    assert directional(up, BASE, by_size).passed
    falling = directional(up, BASE, lambda f: -by_size(f))
    assert not falling.passed and falling.failed == 50 and "fell on 50 of 50 rows" in falling.detail
    down = DirectionalCase(name="bigger is not riskier", column="size", increase_relative=0.1, expect="not_higher")
    assert not directional(down, BASE, by_size).passed and directional(down, BASE, lambda f: -by_size(f)).passed


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"invariance": [{"name": "x", "column": "c", "relative": 0.1, "absolute": 1}]}, "exactly one of relative"),
        ({"invariance": [{"name": "x", "column": "c"}]}, "exactly one of relative"),
        ({"directional": [{"name": "x", "column": "c", "expect": "not_lower"}]}, "exactly one of increase"),
        ({"directional": [{"name": "x", "column": "c", "increase": 1, "expect": "up"}]}, "not_lower"),
        ({"minimum_functionality": [{"name": "x", "row": {"a": 1}}]}, "expects nothing"),
        ({"minimum_functionality": [{"name": "x", "row": {"a": 1}, "min": 2, "max": 1}]}, "above max"),
        (
            {
                "invariance": [{"name": "same", "column": "c", "relative": 0.1}],
                "directional": [{"name": "same", "column": "c", "increase": 1, "expect": "not_lower"}],
            },
            "repeated: same",
        ),
    ],
)
def test_a_bad_case_is_refused_with_what_is_wrong(section: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ModelTestsConfig.model_validate(section)


def test_schema_changes_name_each_column_and_what_changed() -> None:
    old = DataSchema(
        columns=(
            ColumnSchema(name="size", type="float", min=10, max=500, nullable=False),
            ColumnSchema(name="city", type="string", categories=("a", "b")),
            ColumnSchema(name="gone", type="integer"),
            ColumnSchema(name="price", type="float", role="label", nullable=False),
        )
    )
    new = DataSchema(
        columns=(
            ColumnSchema(name="size", type="float", min=10, max=900, nullable=True),
            ColumnSchema(name="city", type="string", categories=("a", "c")),
            ColumnSchema(name="price", type="float", role="label", nullable=False),
            ColumnSchema(name="floor", type="integer"),
        )
    )
    features = Preprocessing(numeric=(NumericColumn("size", 0.0, 0.0, 1.0),))
    assert schema_changes(old, new, features, features) == [
        "floor: added (integer, feature)",
        "gone: removed (was integer)",
        "size: nullable False -> True",
        "size: range 10 .. 500 -> 10 .. 900",
        "city: categories +c; -b",
    ]
    assert schema_changes(old, old, features, features) == []
    # without contracts: what the preprocessing takes
    with_city = Preprocessing(numeric=features.numeric, categorical=(CategoricalColumn("city", ("a",)),))
    assert schema_changes(None, new, features, with_city) == ["city: added (categorical)"]
