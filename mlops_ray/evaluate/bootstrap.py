"""A paired bootstrap confidence interval for the difference between two models on the same test rows.

A challenger that beats the champion by 0.4 points on 500 rows may only have drawn
easier rows' luck. Resampling the test rows, and scoring both models on each
resample's same rows, gives an interval for the difference: pairing cancels the
variation both models share (hard rows are hard for both), so the interval is much
narrower than two separate intervals would suggest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    estimate: float  # the difference on all the rows
    low: float
    high: float
    confidence: float  # e.g. 0.95 for a 95% interval
    samples: int  # resamples the bounds come from (those where the difference was defined)


def paired_bootstrap(
    delta: Callable[[np.ndarray], float],
    n_rows: int,
    samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile interval of ``delta(positions)`` over resamples of the rows, drawn with replacement.

    ``delta`` scores both models on the same row positions and returns challenger minus
    champion. Resamples where it is nan (the metric undefined on them) are dropped.
    """
    if n_rows < 1 or samples < 1 or not 0 < confidence < 1:
        raise ValueError(
            f"paired_bootstrap needs n_rows >= 1, samples >= 1 and 0 < confidence < 1; "
            f"got n_rows={n_rows}, samples={samples}, confidence={confidence}"
        )
    rng = np.random.default_rng(seed)
    # one resample at a time: a (samples x n_rows) index matrix would take gigabytes on a large test split
    values = np.array([delta(rng.integers(0, n_rows, size=n_rows)) for _ in range(samples)], dtype=np.float64)
    defined = values[~np.isnan(values)]
    if defined.size == 0:
        raise ValueError(f"the difference was undefined (nan) on all {samples} bootstrap resamples of {n_rows} rows")
    tail = (1 - confidence) / 2
    low, high = np.quantile(defined, [tail, 1 - tail])
    return Interval(float(delta(np.arange(n_rows))), float(low), float(high), confidence, int(defined.size))
