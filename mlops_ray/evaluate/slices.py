"""A metric on slices of the test rows (one per value or quantile bin of a column), to find where a model is weak.

A model can beat the champion overall and still be worse on a segment that matters
(a region, a customer tier, the largest amounts); the overall number hides that. Slices
come from the test rows' own columns, so champion and challenger are scored on exactly
the same rows and their slices pair up by (column, value).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

MISSING = "(missing)"


@dataclass(frozen=True)
class SliceResult:
    column: str
    value: str  # the category, or a quantile bin such as "[0.12, 3.4)"; MISSING for missing values
    rows: int
    metric: float  # nan where the slice has fewer than min_rows rows or the metric is undefined on it


def slice_metrics(
    frame: pd.DataFrame,
    columns: Sequence[str],
    score: Callable[[np.ndarray], float],
    bins: int = 4,
    min_rows: int = 1,
) -> list[SliceResult]:
    """``score(positions)`` on each slice of each column; ``frame`` has one row per test row, in test-row order.

    Categorical, string and bool columns, and numeric ones with at most ``bins`` distinct
    values, give a slice per value; other numeric columns give quantile bins. Slices with
    fewer than ``min_rows`` rows are listed with a nan metric, unscored.
    """
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"slice column(s) {', '.join(map(repr, missing))} not among the test rows' columns: "
            f"{', '.join(map(str, frame.columns))}"
        )
    results = []
    for column, label, positions in slice_positions(frame, columns, bins):
        rows = len(positions)
        metric = float(score(positions)) if rows >= min_rows else math.nan
        results.append(SliceResult(column, label, rows, metric))
    return results


def slice_positions(frame: pd.DataFrame, columns: Sequence[str], bins: int = 4) -> list[tuple[str, str, np.ndarray]]:
    """(column, slice label, row positions) for every slice of every column, in value order."""
    found = []
    for column in columns:
        codes, labels = _slice_codes(frame[column], bins)
        for code, positions in sorted(pd.Series(codes).groupby(codes).indices.items()):
            found.append((column, labels[code], positions))
    return found


def worst_slice(results: Sequence[SliceResult], direction: int) -> SliceResult | None:
    """The slice with the worst finite metric (``direction`` +1: higher is better, -1: lower is); None if none."""
    _check_direction(direction)
    scored = [r for r in results if math.isfinite(r.metric)]
    return min(scored, key=lambda r: direction * r.metric, default=None)


def slice_regressions(
    challenger: Sequence[SliceResult], champion: Sequence[SliceResult], direction: int
) -> list[tuple[SliceResult, SliceResult, float]]:
    """(challenger slice, champion slice, drop) for each slice both scored, largest drop first.

    The drop is in the metric's units and positive where the challenger is worse, whichever
    way the metric points; slices missing on either side or with a nan metric are left out.
    """
    _check_direction(direction)
    by_key = {(r.column, r.value): r for r in champion}
    pairs = []
    for new in challenger:
        old = by_key.get((new.column, new.value))
        if old is not None and not math.isnan(new.metric) and not math.isnan(old.metric):
            pairs.append((new, old, direction * (old.metric - new.metric)))
    return sorted(pairs, key=lambda pair: pair[2], reverse=True)


def _slice_codes(series: pd.Series, bins: int) -> tuple[np.ndarray, list[str]]:
    """Each row's slice as an index into the labels, in value order; missing values last, as MISSING."""
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    if numeric and series.nunique() > bins:
        codes, labels = _quantile_codes(series, bins)
    else:
        codes, values = pd.factorize(series, sort=True)
        labels = [str(v) for v in values]
    return np.where(codes < 0, len(labels), codes), [*labels, MISSING]


def _quantile_codes(series: pd.Series, bins: int) -> tuple[np.ndarray, list[str]]:
    """Quantile bins closed on the left, the last one on both sides: "[a, b)", ..., "[y, z]"."""
    _, edges = pd.qcut(series, bins, retbins=True, duplicates="drop")
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    codes = np.searchsorted(edges[1:-1], values, side="right")
    codes[np.isnan(values)] = -1
    labels = [f"[{low}, {high})" for low, high in itertools.pairwise(_edge_texts(edges))]
    labels[-1] = f"{labels[-1][:-1]}]"  # the last bin holds the maximum
    return codes, labels


def _edge_texts(edges: np.ndarray) -> list[str]:
    """4 significant digits, or as many more as keep distinct edges distinct (timestamps, large ids)."""
    for digits in range(4, 17):
        texts = [f"{edge:.{digits}g}" for edge in edges]
        if len(set(texts)) == len(texts):
            return texts
    return [repr(float(edge)) for edge in edges]


def _check_direction(direction: int) -> None:
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 (higher is better) or -1 (lower is better), not {direction!r}")
