"""Evaluation plots of a model's test predictions, as matplotlib Figures to save as run artifacts.

A number says how good a model is; these say how it fails: which classes it confuses,
the trade-off its thresholds offer, whether its confidence can be trusted, where its
regression errors grow. Built with the object API (no pyplot), which needs no display
backend on servers and in CI.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from mlops_ray.evaluate.metrics import CALIBRATION_BINS, metric_on_rows


def classification_plots(y_true: np.ndarray, proba: np.ndarray, class_names: Sequence[str]) -> dict[str, Figure]:
    """Confusion matrix, ROC and precision-recall curves, reliability diagram, keyed by artifact file name.

    ``y_true`` holds class indices, ``proba`` class probabilities (rows x classes). A class
    absent from ``y_true`` gets no ROC or PR curve (neither is defined for it).
    """
    return {
        "confusion_matrix.png": _confusion_matrix(y_true, proba.argmax(axis=1), class_names),
        "roc_curve.png": _roc_curves(y_true, proba, class_names),
        "pr_curve.png": _pr_curves(y_true, proba, class_names),
        "calibration.png": _reliability(y_true, proba),
    }


def regression_plots(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Figure]:
    """Residuals against predictions and predictions against truth, keyed by artifact file name."""
    return {
        "residuals.png": _residuals(y_true, y_pred),
        "predicted_vs_true.png": _predicted_vs_true(y_true, y_pred),
    }


def _confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]) -> Figure:
    ticks = range(len(class_names))
    counts = skm.confusion_matrix(y_true, y_pred, labels=list(ticks))
    size = min(4 + 0.5 * len(class_names), 16)
    figure = Figure(figsize=(size, size))
    axes = figure.subplots()
    axes.imshow(counts, cmap="Blues")
    dark = counts.max() / 2
    for (row, column), count in np.ndenumerate(counts):
        axes.text(column, row, str(count), ha="center", va="center", color="white" if count > dark else "black")
    axes.set_xticks(ticks, class_names, rotation=45, ha="right")
    axes.set_yticks(ticks, class_names)
    return _finish(figure, axes, "confusion matrix (test rows)", "predicted class", "true class")


def _one_vs_rest(
    y_true: np.ndarray, proba: np.ndarray, class_names: Sequence[str]
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(class name, is that class, its probability) per curve: the positive class if binary, else every class."""
    classes = [1] if len(class_names) == 2 else range(len(class_names))
    return [(class_names[c], y_true == c, proba[:, c]) for c in classes]


def _roc_curves(y_true: np.ndarray, proba: np.ndarray, class_names: Sequence[str]) -> Figure:
    figure = Figure(figsize=(6, 5))
    axes = figure.subplots()
    for name, positive, score in _one_vs_rest(y_true, proba, class_names):
        if positive.any() and not positive.all():  # a ROC curve needs both positives and negatives
            fpr, tpr, _ = skm.roc_curve(positive, score)
            axes.plot(fpr, tpr, label=f"{name} (AUC = {skm.auc(fpr, tpr):.3f})")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    return _finish(figure, axes, "ROC, one class against the rest", "false positive rate", "true positive rate")


def _pr_curves(y_true: np.ndarray, proba: np.ndarray, class_names: Sequence[str]) -> Figure:
    figure = Figure(figsize=(6, 5))
    axes = figure.subplots()
    for name, positive, score in _one_vs_rest(y_true, proba, class_names):
        if positive.any():  # recall is undefined without positives
            precision, recall, _ = skm.precision_recall_curve(positive, score)
            average = skm.average_precision_score(positive, score)
            axes.plot(recall, precision, drawstyle="steps-post", label=f"{name} (AP = {average:.3f})")
    return _finish(figure, axes, "precision-recall, one class against the rest", "recall", "precision")


def _reliability(y_true: np.ndarray, proba: np.ndarray) -> Figure:
    confidence = np.clip(proba.max(axis=1), 0.0, 1.0)  # float32 rounding can put it a hair above 1
    correct = (proba.argmax(axis=1) == y_true).astype(np.int64)
    accuracy, mean_confidence = calibration_curve(correct, confidence, n_bins=CALIBRATION_BINS)
    error = metric_on_rows("calibration_error", proba, y_true, proba.shape[1])
    figure = Figure(figsize=(6, 5))
    axes = figure.subplots()
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    axes.plot(mean_confidence, accuracy, marker="o", label=f"model (ECE = {error:.3f})")
    return _finish(figure, axes, "reliability diagram", "top-class confidence", "accuracy")


def _residuals(y_true: np.ndarray, y_pred: np.ndarray) -> Figure:
    figure = Figure(figsize=(6, 5))
    axes = figure.subplots()
    axes.scatter(y_pred, y_true - y_pred, s=8, alpha=0.5)
    axes.axhline(0.0, linestyle="--", color="grey")
    return _finish(figure, axes, "residuals against predictions", "predicted", "true - predicted")


def _predicted_vs_true(y_true: np.ndarray, y_pred: np.ndarray) -> Figure:
    figure = Figure(figsize=(6, 5))
    axes = figure.subplots()
    axes.scatter(y_true, y_pred, s=8, alpha=0.5)
    low, high = min(y_true.min(), y_pred.min()), max(y_true.max(), y_pred.max())
    axes.plot([low, high], [low, high], linestyle="--", color="grey", label="predicted = true")
    return _finish(figure, axes, "predictions against truth", "true", "predicted")


def _finish(figure: Figure, axes: Axes, title: str, xlabel: str, ylabel: str) -> Figure:
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize="small")
    figure.tight_layout()
    return figure
