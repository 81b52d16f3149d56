"""Drift of one column: the training reference against the captured window.

Each column gets two views. PSI (population stability index) over bins fixed by the
reference — quantile bins for numbers, the training categories plus one bucket for
anything unseen for strings — measures how much the distribution moved. A test says
whether the move is more than chance: two-sample Kolmogorov-Smirnov for numbers,
chi-squared on the 2 x K table of counts for categories (``scipy.stats``). The PSI
counts come from every row of the window (summed per block by Ray Data); the tests see
a uniform sample of it. Missing values are left out of both and judged on their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from mlops_ray.config.monitor import DriftThresholds

EPSILON = 1e-4  # floor of a bin's share in PSI: an empty bin would make the logarithm infinite
UNKNOWN = "(unseen in training)"


@dataclass(frozen=True)
class NumericReference:
    name: str
    edges: tuple[float, ...]  # interior bin edges: reference quantiles, deduplicated
    counts: tuple[int, ...]  # reference rows per bin (len(edges) + 1)
    missing_share: float
    values: np.ndarray  # the reference's non-missing values, for the KS test and plots


@dataclass(frozen=True)
class CategoricalReference:
    name: str
    categories: tuple[str, ...]  # as seen in training, most frequent first
    counts: tuple[int, ...]  # reference rows per category, then 0 for the unseen bucket
    missing_share: float


Reference = NumericReference | CategoricalReference


@dataclass(frozen=True)
class CurrentCounts:
    """What the window holds for one column, summed over every block."""

    counts: np.ndarray  # per bin / per category (+ the unseen bucket)
    missing: int
    rows: int  # present and missing


@dataclass(frozen=True)
class ColumnDrift:
    name: str
    kind: Literal["numeric", "categorical"]
    rows: int
    psi: float
    test: Literal["ks", "chi2"]
    statistic: float
    p_value: float
    missing_reference: float
    missing_current: float
    unknown_share: float | None
    drifted: bool
    reasons: tuple[str, ...]
    bins: tuple[str, ...]  # bin or category labels, for the report's plots
    reference_share: tuple[float, ...]
    current_share: tuple[float, ...]


def numeric_reference(name: str, values: np.ndarray, bins: int) -> NumericReference:
    values = np.asarray(values, dtype=float)
    present = values[~np.isnan(values)]
    if present.size == 0:
        edges: tuple[float, ...] = ()
    else:
        edges = tuple(float(e) for e in np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1])))
    return NumericReference(
        name,
        edges,
        tuple(int(c) for c in numeric_counts(present, edges)),
        missing_share=float(1 - present.size / max(values.size, 1)),
        values=present,
    )


def categorical_reference(name: str, values: np.ndarray) -> CategoricalReference:
    present = [v for v in values if v is not None and v == v]  # v == v drops NaN
    labels, counts = np.unique(np.asarray([str(v) for v in present], dtype=object), return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return CategoricalReference(
        name,
        tuple(str(labels[i]) for i in order),
        (*(int(counts[i]) for i in order), 0),
        missing_share=float(1 - len(present) / max(len(values), 1)),
    )


def numeric_counts(present: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    """Rows per bin; bin ``i`` holds values in ``(edges[i-1], edges[i]]``."""
    return np.bincount(np.searchsorted(np.asarray(edges), present, side="left"), minlength=len(edges) + 1)


def categorical_counts(present: Sequence[str] | np.ndarray | pd.Series, categories: tuple[str, ...]) -> np.ndarray:
    """Rows per training category, then the rows whose value training never saw (vectorised: no Python loop)."""
    codes = np.asarray(pd.Categorical(np.asarray(present, dtype=object), categories=list(categories)).codes)
    return np.bincount(np.where(codes < 0, len(categories), codes), minlength=len(categories) + 1)


def psi(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    reference = np.maximum(np.asarray(reference_counts, float) / max(np.sum(reference_counts), 1), EPSILON)
    current = np.maximum(np.asarray(current_counts, float) / max(np.sum(current_counts), 1), EPSILON)
    return float(np.sum((current - reference) * np.log(current / reference)))


def compare(
    reference: Reference,
    current: CurrentCounts,
    sample: np.ndarray,
    thresholds: DriftThresholds,
    tests: int,
    prediction: bool = False,
) -> ColumnDrift:
    """Judge one column. ``sample`` holds the sampled window's non-missing values; ``tests`` the Bonferroni count."""
    psi_limit = thresholds.prediction_psi if prediction else thresholds.psi
    alpha = (thresholds.prediction_p_value if prediction else thresholds.p_value) / max(tests, 1)
    present = int(current.counts.sum())
    missing_current = current.missing / max(current.rows, 1)
    drift = psi(np.asarray(reference.counts), current.counts)
    reasons = []
    unknown: float | None = None
    if isinstance(reference, NumericReference):
        kind: Literal["numeric", "categorical"] = "numeric"
        test: Literal["ks", "chi2"] = "ks"
        if sample.size and reference.values.size:
            result = stats.ks_2samp(reference.values, sample.astype(float))
            statistic, p_value = float(result.statistic), float(result.pvalue)
        else:
            statistic, p_value = 0.0, 1.0
        labels = _bin_labels(reference.edges)
    else:
        kind, test = "categorical", "chi2"
        sample_counts = categorical_counts(sample.astype(str), reference.categories)
        statistic, p_value = _chi_squared(np.asarray(reference.counts), sample_counts)
        unknown = float(current.counts[-1] / present) if present else 0.0
        labels = (*reference.categories, UNKNOWN)
        if unknown > thresholds.unknown_share:
            reasons.append(f"{unknown:.1%} of values unseen in training (limit {thresholds.unknown_share:.1%})")
    if present and drift >= psi_limit:
        reasons.append(f"PSI {drift:.3f} >= {psi_limit:g}")
    if present and p_value < alpha:
        reasons.append(f"{test} p-value {p_value:.2g} < {alpha:.2g}")
    if missing_current - reference.missing_share > thresholds.missing_increase:
        reasons.append(
            f"missing values {reference.missing_share:.1%} -> {missing_current:.1%} "
            f"(limit +{thresholds.missing_increase:.1%})"
        )
    return ColumnDrift(
        name=reference.name,
        kind=kind,
        rows=current.rows,
        psi=drift,
        test=test,
        statistic=statistic,
        p_value=p_value,
        missing_reference=reference.missing_share,
        missing_current=missing_current,
        unknown_share=unknown,
        drifted=bool(reasons),
        reasons=tuple(reasons),
        bins=labels,
        reference_share=_shares(reference.counts),
        current_share=_shares(current.counts),
    )


def _chi_squared(reference_counts: np.ndarray, sample_counts: np.ndarray) -> tuple[float, float]:
    table = np.vstack([reference_counts, sample_counts])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or sample_counts.sum() == 0:
        return 0.0, 1.0
    result = stats.chi2_contingency(table)
    return float(result.statistic), float(result.pvalue)


def _shares(counts: tuple[int, ...] | np.ndarray) -> tuple[float, ...]:
    total = max(float(np.sum(counts)), 1.0)
    return tuple(float(c) / total for c in counts)


def _bin_labels(edges: tuple[float, ...]) -> tuple[str, ...]:
    bounds = ["-inf", *(f"{e:.4g}" for e in edges), "inf"]
    return tuple(f"({low}, {high}]" for low, high in pairwise(bounds))
