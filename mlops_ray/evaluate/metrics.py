"""Test metrics from scikit-learn, computed on the packaged model's output.

Evaluating the pyfunc (raw rows in, class names out) rather than the bare network
checks the preprocessing that ships with the model, not just the weights.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd
from sklearn import metrics as skm


def classification_metrics(
    predictions: pd.DataFrame, y_true: np.ndarray, class_names: tuple[str, ...], names: Iterable[str]
) -> dict[str, float]:
    """``predictions`` is the pyfunc output; ``y_true`` holds class indices."""
    proba = predictions[[f"probability_{c}" for c in class_names]].to_numpy(dtype=np.float64)
    proba /= proba.sum(axis=1, keepdims=True)  # float32 softmax sums miss 1 by ~1e-7, which log_loss warns about
    y_pred = proba.argmax(axis=1)
    labels = list(range(len(class_names)))
    scorers: dict[str, Callable[[], float]] = {
        "accuracy": lambda: skm.accuracy_score(y_true, y_pred),
        "f1_macro": lambda: skm.f1_score(y_true, y_pred, average="macro", labels=labels, zero_division=0),
        "precision_macro": lambda: skm.precision_score(y_true, y_pred, average="macro", labels=labels, zero_division=0),
        "recall_macro": lambda: skm.recall_score(y_true, y_pred, average="macro", labels=labels, zero_division=0),
        "roc_auc": lambda: _roc_auc(y_true, proba, labels),
        "log_loss": lambda: skm.log_loss(y_true, proba, labels=labels),
    }
    return {f"test_{name}": float(scorers[name]()) for name in names}


def _roc_auc(y_true: np.ndarray, proba: np.ndarray, labels: list[int]) -> float:
    if len(np.unique(y_true)) < 2:
        return float("nan")
    if len(labels) == 2:
        return skm.roc_auc_score(y_true, proba[:, 1])
    return skm.roc_auc_score(y_true, proba, multi_class="ovr", labels=labels)


def regression_metrics(predictions: np.ndarray, y_true: np.ndarray, names: Iterable[str]) -> dict[str, float]:
    """``predictions`` and ``y_true`` are numbers in the label's units."""
    scorers: dict[str, Callable[[], float]] = {
        "rmse": lambda: skm.root_mean_squared_error(y_true, predictions),
        "mae": lambda: skm.mean_absolute_error(y_true, predictions),
        "r2": lambda: skm.r2_score(y_true, predictions),
    }
    return {f"test_{name}": float(scorers[name]()) for name in names}
