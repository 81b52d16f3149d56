"""Drift statistics of one column, on numbers whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from mlops_ray.config.monitor import DriftThresholds
from mlops_ray.monitor.stats import (
    UNKNOWN,
    CurrentCounts,
    categorical_counts,
    categorical_reference,
    compare,
    numeric_counts,
    numeric_reference,
    psi,
)

THRESHOLDS = DriftThresholds()


def numeric_current(values: np.ndarray, edges: tuple[float, ...]) -> CurrentCounts:
    present = values[~np.isnan(values)]
    return CurrentCounts(numeric_counts(present, edges), int(np.isnan(values).sum()), len(values))


def test_psi_is_zero_for_equal_shares_and_matches_the_formula() -> None:
    assert psi(np.array([10, 20, 70]), np.array([1, 2, 7])) == pytest.approx(0.0)
    reference, current = np.array([0.5, 0.5]), np.array([0.8, 0.2])
    expected = float(np.sum((current - reference) * np.log(current / reference)))
    assert psi(np.array([50, 50]), np.array([80, 20])) == pytest.approx(expected)


def test_quantile_bins_hold_equal_shares_of_the_reference() -> None:
    values = np.random.default_rng(0).normal(size=10_000)
    reference = numeric_reference("x", values, bins=10)
    assert len(reference.edges) == 9 and len(reference.counts) == 10
    assert all(abs(c - 1000) <= 1 for c in reference.counts)


def test_a_sample_of_the_same_distribution_does_not_drift() -> None:
    rng = np.random.default_rng(1)
    reference = numeric_reference("x", rng.normal(size=10_000), bins=10)
    window = rng.normal(size=5000)
    drift = compare(reference, numeric_current(window, reference.edges), window, THRESHOLDS, tests=1)
    assert not drift.drifted, drift.reasons
    assert drift.psi < 0.02 and drift.p_value > 0.01


def test_a_mean_shift_drifts_with_psi_and_the_ks_test_named() -> None:
    rng = np.random.default_rng(2)
    reference = numeric_reference("x", rng.normal(size=10_000), bins=10)
    window = rng.normal(loc=1.0, size=5000)
    drift = compare(reference, numeric_current(window, reference.edges), window, THRESHOLDS, tests=1)
    assert drift.drifted and drift.psi > 0.2
    assert drift.p_value == pytest.approx(stats.ks_2samp(reference.values, window).pvalue)
    assert any(r.startswith("PSI") for r in drift.reasons) and any(r.startswith("ks p-value") for r in drift.reasons)


def test_bonferroni_scales_the_p_value_limit_with_the_features_tested() -> None:
    rng = np.random.default_rng(3)
    reference = numeric_reference("x", rng.normal(size=10_000), bins=10)
    window = rng.normal(loc=0.07, size=5000)  # small shift: p around 1e-3, PSI tiny
    current = numeric_current(window, reference.edges)
    alone = compare(reference, current, window, THRESHOLDS, tests=1)
    among_thirty = compare(reference, current, window, THRESHOLDS, tests=30)
    assert THRESHOLDS.p_value / 30 < alone.p_value < THRESHOLDS.p_value
    assert alone.drifted and not among_thirty.drifted


def test_an_unseen_category_is_counted_and_named() -> None:
    reference = categorical_reference("colour", np.array(["red"] * 60 + ["blue"] * 40, dtype=object))
    assert reference.categories == ("red", "blue") and reference.counts == (60, 40, 0)
    window = ["red"] * 55 + ["blue"] * 35 + ["green"] * 10
    counts = categorical_counts(window, reference.categories)
    assert counts.tolist() == [55, 35, 10]
    drift = compare(reference, CurrentCounts(counts, 0, 100), np.array(window, dtype=object), THRESHOLDS, tests=1)
    assert drift.drifted and drift.unknown_share == pytest.approx(0.10)
    assert drift.bins[-1] == UNKNOWN and drift.test == "chi2"
    assert "10.0% of values unseen in training" in drift.reasons[0]


def test_rising_missing_values_drift_on_their_own() -> None:
    rng = np.random.default_rng(4)
    reference = numeric_reference("x", rng.normal(size=10_000), bins=10)
    window = rng.normal(size=5000)
    window[:1000] = np.nan  # 20 % missing, none in training
    present = window[~np.isnan(window)]
    drift = compare(reference, numeric_current(window, reference.edges), present, THRESHOLDS, tests=1)
    assert drift.drifted and drift.missing_current == pytest.approx(0.2)
    assert drift.reasons == ("missing values 0.0% -> 20.0% (limit +5.0%)",)
