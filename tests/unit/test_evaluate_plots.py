"""Evaluation plots: each one is a Figure that renders to PNG, for binary, multiclass and regression models."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.figure import Figure
from sklearn import metrics as skm

from mlops_ray.evaluate.plots import classification_plots, regression_plots

CLASSIFICATION_FILES = {"confusion_matrix.png", "roc_curve.png", "pr_curve.png", "calibration.png"}


def predictions(rows: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, classes, size=rows)
    proba = rng.dirichlet(np.ones(classes), size=rows)
    proba[np.arange(rows), y_true] += 0.3  # better than chance, short of perfect
    return y_true, proba / proba.sum(axis=1, keepdims=True)


def renders(figure: Figure) -> bool:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue().startswith(b"\x89PNG")


def legend_texts(figure: Figure) -> list[str]:
    legend = figure.axes[0].get_legend()
    return [] if legend is None else [text.get_text() for text in legend.get_texts()]


@pytest.mark.parametrize("classes", [2, 3])
def test_classification_plots_are_figures_with_axes_that_render(classes: int) -> None:
    y_true, proba = predictions(80, classes)
    plots = classification_plots(y_true, proba, [f"class{i}" for i in range(classes)])
    assert set(plots) == CLASSIFICATION_FILES
    for name, figure in plots.items():
        assert isinstance(figure, Figure) and figure.axes, name
        assert renders(figure), name


def test_binary_curves_are_for_the_positive_class_with_auc_and_ap_in_the_legend() -> None:
    y_true, proba = predictions(80, 2)
    plots = classification_plots(y_true, proba, ["no", "yes"])
    [roc] = [t for t in legend_texts(plots["roc_curve.png"]) if "AUC" in t]
    [pr] = [t for t in legend_texts(plots["pr_curve.png"]) if "AP" in t]
    assert roc == f"yes (AUC = {skm.roc_auc_score(y_true, proba[:, 1]):.3f})"
    assert pr == f"yes (AP = {skm.average_precision_score(y_true, proba[:, 1]):.3f})"


def test_multiclass_curves_are_one_per_class() -> None:
    y_true, proba = predictions(90, 3)
    plots = classification_plots(y_true, proba, ["a", "b", "c"])
    assert [t.split()[0] for t in legend_texts(plots["roc_curve.png"]) if "AUC" in t] == ["a", "b", "c"]
    assert [t.split()[0] for t in legend_texts(plots["pr_curve.png"]) if "AP" in t] == ["a", "b", "c"]


def test_a_class_missing_from_the_true_labels_gets_no_curve() -> None:
    y_true, proba = predictions(90, 3)
    y_true[y_true == 1] = 0  # nothing of class "b" among the true labels
    plots = classification_plots(y_true, proba, ["a", "b", "c"])
    assert [t.split()[0] for t in legend_texts(plots["roc_curve.png"]) if "AUC" in t] == ["a", "c"]
    assert [t.split()[0] for t in legend_texts(plots["pr_curve.png"]) if "AP" in t] == ["a", "c"]
    assert all(renders(figure) for figure in plots.values())


def test_confusion_matrix_annotates_counts_and_names_the_classes() -> None:
    y_true = np.array([0, 0, 1, 2, 2, 2])
    proba = np.eye(3)[[0, 1, 1, 2, 2, 0]]
    axes = classification_plots(y_true, proba, ["a", "b", "c"])["confusion_matrix.png"].axes[0]
    assert [t.get_text() for t in axes.texts] == ["1", "1", "0", "0", "1", "0", "1", "0", "2"]
    assert [t.get_text() for t in axes.get_xticklabels()] == ["a", "b", "c"]
    assert [t.get_text() for t in axes.get_yticklabels()] == ["a", "b", "c"]


def test_regression_plots_are_figures_with_axes_that_render() -> None:
    rng = np.random.default_rng(0)
    y_true = rng.normal(size=50)
    plots = regression_plots(y_true, y_true + rng.normal(scale=0.1, size=50))
    assert set(plots) == {"residuals.png", "predicted_vs_true.png"}
    for name, figure in plots.items():
        assert isinstance(figure, Figure) and figure.axes, name
        assert renders(figure), name
