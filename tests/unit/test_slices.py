"""Slice metrics: which rows each slice holds, how slices are labelled, and comparing two models slice by slice."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mlops_ray.evaluate.slices import MISSING, SliceResult, slice_metrics, slice_regressions, worst_slice

N = 40


def sample_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "region": ["north", "south", "east", None] * (N // 4),
            "amount": np.arange(N, dtype=np.float64) * 1.5,  # 40 distinct values
            "tier": [1, 2] * (N // 2),  # two distinct numbers
            "member": [True, False, False, False] * (N // 4),
        }
    )


def count_rows(positions: np.ndarray) -> float:
    return float(len(positions))


def by_value(results: list[SliceResult], column: str) -> dict[str, SliceResult]:
    return {r.value: r for r in results if r.column == column}


def test_categorical_column_gives_a_slice_per_value_and_one_for_missing() -> None:
    slices = by_value(slice_metrics(sample_frame(), ["region"], count_rows), "region")
    assert list(slices) == ["east", "north", "south", MISSING]
    assert all(s.rows == N // 4 for s in slices.values())


def test_score_receives_the_positions_of_the_slice_rows() -> None:
    seen: list[np.ndarray] = []

    def record(positions: np.ndarray) -> float:
        seen.append(positions)
        return 0.0

    slice_metrics(sample_frame(), ["region"], record)  # east, north, south, missing
    np.testing.assert_array_equal(seen[2], np.arange(1, N, 4))
    np.testing.assert_array_equal(seen[3], np.arange(3, N, 4))


def test_many_valued_numeric_column_gives_quantile_bins_closed_on_the_left_the_last_on_both_sides() -> None:
    results = slice_metrics(sample_frame(), ["amount"], count_rows, bins=4)
    assert [r.value for r in results] == ["[0, 14.62)", "[14.62, 29.25)", "[29.25, 43.88)", "[43.88, 58.5]"]
    assert sum(r.rows for r in results) == N
    assert [r.rows for r in results] == [10, 10, 10, 10]


def test_bin_labels_keep_four_significant_digits() -> None:
    frame = pd.DataFrame({"x": np.linspace(0.123456, 3.456789, 9)})
    labels = [r.value for r in slice_metrics(frame, ["x"], count_rows, bins=2)]
    assert labels == ["[0.1235, 1.79)", "[1.79, 3.457]"]


def test_close_bin_edges_get_more_digits_rather_than_equal_labels() -> None:
    frame = pd.DataFrame({"timestamp": 1.7e9 + np.arange(20.0)})
    labels = [r.value for r in slice_metrics(frame, ["timestamp"], count_rows, bins=4)]
    assert len(set(labels)) == 4
    assert labels[0].startswith("[1700000000, ")


def test_numeric_missing_values_are_their_own_slice_and_rows_still_add_up() -> None:
    frame = pd.DataFrame({"amount": [np.nan, *np.arange(19.0)]})
    results = slice_metrics(frame, ["amount"], count_rows, bins=4)
    assert results[-1].value == MISSING and results[-1].rows == 1
    assert sum(r.rows for r in results) == 20


def test_low_cardinality_numeric_and_bool_columns_give_a_slice_per_value() -> None:
    results = slice_metrics(sample_frame(), ["tier", "member"], count_rows, bins=4)
    assert {r.value: r.rows for r in results if r.column == "tier"} == {"1": 20, "2": 20}
    assert {r.value: r.rows for r in results if r.column == "member"} == {"False": 30, "True": 10}


def test_metric_is_the_score_of_the_slice() -> None:
    frame = sample_frame()
    hits = (np.arange(N) % 4 == 0).astype(np.float64)  # right on every "north" row only
    slices = by_value(slice_metrics(frame, ["region"], lambda p: float(hits[p].mean())), "region")
    assert slices["north"].metric == 1.0
    assert slices["south"].metric == 0.0


def test_slices_under_min_rows_are_listed_unscored() -> None:
    frame = pd.DataFrame({"kind": ["big"] * 9 + ["small"]})
    scored: list[int] = []

    def score(positions: np.ndarray) -> float:
        scored.append(len(positions))
        return 0.5

    slices = by_value(slice_metrics(frame, ["kind"], score, min_rows=5), "kind")
    assert slices["big"].metric == 0.5
    assert slices["small"].rows == 1 and math.isnan(slices["small"].metric)
    assert scored == [9]


def test_unknown_column_error_names_it_and_lists_the_available_ones() -> None:
    with pytest.raises(ValueError, match=r"'colour'.*region, amount, tier, member"):
        slice_metrics(sample_frame(), ["region", "colour"], count_rows)


def test_worst_slice_follows_the_metric_direction_and_skips_nan() -> None:
    results = [
        SliceResult("c", "a", 10, 0.9),
        SliceResult("c", "b", 10, 0.6),
        SliceResult("c", "x", 1, math.nan),
        SliceResult("c", "d", 10, 0.7),
    ]
    assert worst_slice(results, direction=1) == results[1]
    assert worst_slice(results, direction=-1) == results[0]


def test_worst_slice_is_none_without_a_finite_metric() -> None:
    assert worst_slice([SliceResult("c", "a", 0, math.nan)], direction=1) is None


def test_slice_regressions_pair_slices_and_give_positive_drops_where_the_challenger_is_worse() -> None:
    champion = [SliceResult("c", "a", 10, 0.9), SliceResult("c", "b", 10, 0.5), SliceResult("d", "a", 10, 0.7)]
    challenger = [SliceResult("d", "a", 10, 0.7), SliceResult("c", "b", 10, 0.6), SliceResult("c", "a", 10, 0.8)]
    pairs = slice_regressions(challenger, champion, direction=1)
    assert [(new.column, new.value, old.column, old.value) for new, old, _ in pairs] == [
        ("c", "a", "c", "a"),
        ("d", "a", "d", "a"),
        ("c", "b", "c", "b"),
    ]
    assert [drop for _, _, drop in pairs] == pytest.approx([0.1, 0.0, -0.1])


def test_slice_regressions_flip_sign_for_lower_is_better_metrics() -> None:
    champion = [SliceResult("c", "a", 10, 0.3)]
    challenger = [SliceResult("c", "a", 10, 0.5)]  # higher loss: worse
    [(_, _, drop)] = slice_regressions(challenger, champion, direction=-1)
    assert drop == pytest.approx(0.2)


def test_slice_regressions_skip_nan_and_unmatched_slices() -> None:
    champion = [SliceResult("c", "a", 10, math.nan), SliceResult("c", "b", 10, 0.5)]
    challenger = [SliceResult("c", "a", 10, 0.5), SliceResult("c", "b", 10, math.nan), SliceResult("c", "z", 3, 0.1)]
    assert slice_regressions(challenger, champion, direction=1) == []


def test_direction_other_than_plus_or_minus_one_is_rejected() -> None:
    with pytest.raises(ValueError, match="direction"):
        worst_slice([SliceResult("c", "a", 10, 0.5)], direction=0)
