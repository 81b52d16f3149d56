"""Test metrics, computed on the packaged model's output, with one definition of each metric.

Evaluating the pyfunc (raw rows in, class names out) rather than the bare network
checks the preprocessing that ships with the model, not just the weights. The same
scorers serve the whole test split, its slices and bootstrap resamples, so a metric
means the same thing wherever it is reported; on rows where a metric is undefined
(no rows, one class for ROC AUC, a constant label for R²) it is nan, not an error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd
from scipy.stats import binned_statistic
from sklearn import metrics as skm

CALIBRATION_BINS = 10

# (y_true class indices, probabilities rows x classes, all class indices) -> metric
ClassificationScorer = Callable[[np.ndarray, np.ndarray, list[int]], float]
# (y_true, predictions) -> metric
RegressionScorer = Callable[[np.ndarray, np.ndarray], float]


def _accuracy(y_true: np.ndarray, proba: np.ndarray, labels: list[int]) -> float:
    # skm.accuracy_score's input checks cost ~1 ms a call, too slow for 1000 bootstrap resamples; same value
    return float(np.mean(proba.argmax(axis=1) == y_true))


def _per_class(y_true: np.ndarray, proba: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class precision and recall over the classes that occur (as truth or prediction) in these rows.

    Macro averages over *all* classes would let a slice holding one class score
    at most 1/k even when every row is right (each absent class counts as zero).
    Counted with ``np.bincount`` rather than scikit-learn: the same numbers as
    ``precision_recall_fscore_support(..., zero_division=0)``, at a fraction of its
    per-call cost, which matters for 1000 bootstrap resamples in the gate.
    """
    y_pred = proba.argmax(axis=1)
    hits = np.bincount(y_true[y_pred == y_true], minlength=n_classes)
    predicted = np.bincount(y_pred, minlength=n_classes)
    actual = np.bincount(y_true, minlength=n_classes)
    present = (predicted + actual) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, hits / predicted, 0.0)
        recall = np.where(actual > 0, hits / actual, 0.0)
    return precision[present], recall[present]


def _f1(y_true: np.ndarray, proba: np.ndarray, labels: list[int]) -> float:
    precision, recall = _per_class(y_true, proba, len(labels))
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return float(f1.mean())


def _precision(y_true: np.ndarray, proba: np.ndarray, labels: list[int]) -> float:
    return float(_per_class(y_true, proba, len(labels))[0].mean())


def _recall(y_true: np.ndarray, proba: np.ndarray, labels: list[int]) -> float:
    return float(_per_class(y_true, proba, len(labels))[1].mean())


def _roc_auc(y_true: np.ndarray, proba: np.ndarray, labels: list[int]) -> float:
    """One-vs-rest macro AUC; undefined (nan) unless every class is present in ``y_true``."""
    if len(np.unique(y_true)) < len(labels):
        return float("nan")
    if len(labels) == 2:
        return skm.roc_auc_score(y_true, proba[:, 1])
    return skm.roc_auc_score(y_true, proba, multi_class="ovr", labels=labels)


def _log_loss(y_true: np.ndarray, proba: np.ndarray, labels: list[int]) -> float:
    return skm.log_loss(y_true, proba, labels=labels)


def _calibration_error(y_true: np.ndarray, proba: np.ndarray, labels: list[int]) -> float:
    """Expected calibration error: equal-width bins of top-class confidence, row-weighted |accuracy - confidence|.

    A bin's weighted gap, (rows in bin / n) * |mean(correct) - mean(confidence)|, is
    |sum(correct - confidence)| / n over the bin, so one binned sum gives every bin's gap.
    """
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y_true
    gaps, _, _ = binned_statistic(
        confidence, correct - confidence, statistic="sum", bins=CALIBRATION_BINS, range=(0.0, 1.0)
    )
    return float(np.abs(gaps).sum() / len(y_true))


def _r2(y_true: np.ndarray, predictions: np.ndarray) -> float:
    """Undefined (nan) on fewer than two rows or a constant label, where scikit-learn would report 0 or 1."""
    if len(y_true) < 2 or np.ptp(y_true) == 0:
        return float("nan")
    return skm.r2_score(y_true, predictions)


_CLASSIFICATION: dict[str, ClassificationScorer] = {
    "accuracy": _accuracy,
    "f1_macro": _f1,
    "precision_macro": _precision,
    "recall_macro": _recall,
    "roc_auc": _roc_auc,
    "log_loss": _log_loss,
    "calibration_error": _calibration_error,
}
_REGRESSION: dict[str, RegressionScorer] = {
    "rmse": skm.root_mean_squared_error,
    "mae": skm.mean_absolute_error,
    "r2": _r2,
}
_HIGHER_IS_BETTER = frozenset({"accuracy", "f1_macro", "precision_macro", "recall_macro", "roc_auc", "r2"})


def metric_direction(name: str) -> int:
    """+1 where a higher value is better (accuracy, r2, ...), -1 where lower is (log_loss, rmse, ...)."""
    _check_known(name)
    return 1 if name in _HIGHER_IS_BETTER else -1


def metric_on_rows(name: str, proba_or_pred: np.ndarray, y_true: np.ndarray, n_classes: int | None) -> float:
    """One metric on some rows (a slice, a bootstrap resample); nan where the metric is undefined on them.

    Classification: ``proba_or_pred`` holds class probabilities (rows x classes, each row
    normalised here) and ``y_true`` class indices; ``n_classes`` is the number of classes
    (None: the probabilities' columns). Regression: predictions and labels as numbers,
    ``n_classes`` None.
    """
    _check_known(name)
    if len(y_true) == 0:
        return float("nan")
    if name in _REGRESSION:
        return float(_REGRESSION[name](y_true, proba_or_pred))
    proba = proba_or_pred.astype(np.float64)
    proba /= proba.sum(axis=1, keepdims=True)  # float32 softmax sums miss 1 by ~1e-7, which log_loss warns about
    labels = list(range(proba.shape[1] if n_classes is None else n_classes))
    return float(_CLASSIFICATION[name](y_true, proba, labels))


def class_probabilities(predictions: pd.DataFrame, class_names: tuple[str, ...]) -> np.ndarray:
    """The pyfunc output's ``probability_<class>`` columns as a rows x classes float64 array, in class order."""
    return predictions[[f"probability_{c}" for c in class_names]].to_numpy(dtype=np.float64)


def classification_metrics(
    predictions: pd.DataFrame, y_true: np.ndarray, class_names: tuple[str, ...], names: Iterable[str]
) -> dict[str, float]:
    """``predictions`` is the pyfunc output; ``y_true`` holds class indices."""
    proba = class_probabilities(predictions, class_names)
    return {f"test_{name}": metric_on_rows(name, proba, y_true, len(class_names)) for name in names}


def regression_metrics(predictions: np.ndarray, y_true: np.ndarray, names: Iterable[str]) -> dict[str, float]:
    """``predictions`` and ``y_true`` are numbers in the label's units."""
    return {f"test_{name}": metric_on_rows(name, predictions, y_true, None) for name in names}


def _check_known(name: str) -> None:
    if name not in _CLASSIFICATION and name not in _REGRESSION:
        known = ", ".join([*_CLASSIFICATION, *_REGRESSION])
        raise ValueError(f"unknown metric {name!r}; known metrics: {known}")
