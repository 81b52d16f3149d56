"""Paired bootstrap intervals for a challenger-minus-champion difference, on accuracy from per-row predictions."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from mlops_ray.evaluate.bootstrap import Interval, paired_bootstrap
from mlops_ray.evaluate.metrics import metric_on_rows

ROWS = 200


def labels_and_probabilities(right: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three-class probabilities whose top class is the true one on about ``right`` of the rows."""
    rng = np.random.default_rng(seed)
    y_true = np.random.default_rng(99).integers(0, 3, size=ROWS)
    hit = rng.random(ROWS) < right
    top = np.where(hit, y_true, (y_true + 1) % 3)
    return y_true, np.where(np.arange(3) == top[:, None], 0.8, 0.1)


def accuracy_delta(challenger: np.ndarray, champion: np.ndarray, y_true: np.ndarray) -> Callable[[np.ndarray], float]:
    def delta(rows: np.ndarray) -> float:
        return metric_on_rows("accuracy", challenger[rows], y_true[rows], 3) - metric_on_rows(
            "accuracy", champion[rows], y_true[rows], 3
        )

    return delta


def test_identical_models_give_zero_and_an_interval_around_it() -> None:
    y_true, proba = labels_and_probabilities(0.7, seed=1)
    interval = paired_bootstrap(accuracy_delta(proba, proba, y_true), ROWS, samples=200)
    assert interval == Interval(0.0, 0.0, 0.0, 0.95, 200)


def test_a_clearly_better_challenger_has_an_interval_above_zero() -> None:
    y_true, better = labels_and_probabilities(0.9, seed=1)
    _, worse = labels_and_probabilities(0.6, seed=2)
    interval = paired_bootstrap(accuracy_delta(better, worse, y_true), ROWS)
    assert interval.estimate == pytest.approx(
        metric_on_rows("accuracy", better, y_true, 3) - metric_on_rows("accuracy", worse, y_true, 3)
    )
    assert 0 < interval.low < interval.estimate < interval.high
    assert interval.samples == 1000


def test_similar_models_have_an_interval_that_straddles_zero() -> None:
    y_true, one = labels_and_probabilities(0.7, seed=1)
    _, other = labels_and_probabilities(0.7, seed=2)
    interval = paired_bootstrap(accuracy_delta(one, other, y_true), ROWS)
    assert interval.low < 0 < interval.high


def test_a_wider_confidence_gives_a_wider_interval() -> None:
    y_true, better = labels_and_probabilities(0.8, seed=1)
    _, worse = labels_and_probabilities(0.7, seed=2)
    narrow = paired_bootstrap(accuracy_delta(better, worse, y_true), ROWS, confidence=0.5)
    wide = paired_bootstrap(accuracy_delta(better, worse, y_true), ROWS, confidence=0.99)
    assert wide.low < narrow.low < narrow.high < wide.high


def test_same_seed_gives_the_same_interval_and_another_seed_another() -> None:
    y_true, better = labels_and_probabilities(0.8, seed=1)
    _, worse = labels_and_probabilities(0.7, seed=2)
    delta = accuracy_delta(better, worse, y_true)
    assert paired_bootstrap(delta, ROWS, samples=300, seed=7) == paired_bootstrap(delta, ROWS, samples=300, seed=7)
    assert paired_bootstrap(delta, ROWS, samples=300, seed=7) != paired_bootstrap(delta, ROWS, samples=300, seed=8)


def test_nan_resamples_are_dropped_from_the_bounds() -> None:
    values = np.arange(ROWS, dtype=np.float64)

    def delta(rows: np.ndarray) -> float:
        return math.nan if rows[0] % 2 else float(values[rows].mean())  # undefined on about half the resamples

    interval = paired_bootstrap(delta, ROWS, samples=400)
    assert 100 < interval.samples < 300
    assert math.isfinite(interval.low) and math.isfinite(interval.high)


def test_a_difference_undefined_on_every_resample_raises() -> None:
    with pytest.raises(ValueError, match="nan"):
        paired_bootstrap(lambda rows: math.nan, ROWS, samples=50)


@pytest.mark.parametrize(("n_rows", "samples", "confidence"), [(0, 10, 0.9), (10, 0, 0.9), (10, 10, 1.0)])
def test_arguments_out_of_range_are_rejected(n_rows: int, samples: int, confidence: float) -> None:
    with pytest.raises(ValueError, match="paired_bootstrap needs"):
        paired_bootstrap(lambda rows: 0.0, n_rows, samples=samples, confidence=confidence)
