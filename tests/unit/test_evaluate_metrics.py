"""Test metrics: calibration error, which way each metric points, one metric on some rows (nan, not errors)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from mlops_ray.config import CLASSIFICATION_METRICS, REGRESSION_METRICS
from mlops_ray.evaluate.metrics import (
    classification_metrics,
    metric_direction,
    metric_on_rows,
    regression_metrics,
)

CLASSES = ("a", "b", "c")


def pyfunc_output(proba: np.ndarray, class_names: tuple[str, ...]) -> pd.DataFrame:
    frame = pd.DataFrame(proba.astype(np.float32), columns=[f"probability_{c}" for c in class_names])
    frame["prediction"] = [class_names[i] for i in proba.argmax(axis=1)]
    return frame


def random_case(rows: int = 60, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(classes), size=rows), rng.integers(0, classes, size=rows)


def test_calibration_error_is_zero_for_confident_correct_predictions() -> None:
    y_true = np.array([0, 1, 2, 1])
    proba = np.eye(3)[y_true]
    assert metric_on_rows("calibration_error", proba, y_true, 3) == 0.0


def test_calibration_error_weights_each_bins_gap_by_its_rows() -> None:
    # bin [0.9, 1]: confidence 0.95, accuracy 1/2 -> gap 0.45 on 2 of 4 rows
    # bin [0.7, 0.8): confidence 0.75, accuracy 2/2 -> gap 0.25 on 2 of 4 rows
    proba = np.array([[0.05, 0.95], [0.05, 0.95], [0.25, 0.75], [0.75, 0.25]])
    y_true = np.array([1, 0, 1, 0])
    expected = 0.5 * 0.45 + 0.5 * 0.25
    assert metric_on_rows("calibration_error", proba, y_true, 2) == pytest.approx(expected)


def test_classification_metrics_reports_calibration_error_from_the_pyfunc_output() -> None:
    proba = np.array([[0.05, 0.95], [0.05, 0.95], [0.25, 0.75], [0.75, 0.25]])
    scores = classification_metrics(
        pyfunc_output(proba, ("no", "yes")), np.array([1, 0, 1, 0]), ("no", "yes"), ["calibration_error"]
    )
    assert scores == {"test_calibration_error": pytest.approx(0.35, abs=1e-6)}


@pytest.mark.parametrize("name", ["accuracy", "f1_macro", "precision_macro", "recall_macro", "roc_auc", "r2"])
def test_metric_direction_is_plus_one_where_higher_is_better(name: str) -> None:
    assert metric_direction(name) == 1


@pytest.mark.parametrize("name", ["log_loss", "calibration_error", "rmse", "mae"])
def test_metric_direction_is_minus_one_where_lower_is_better(name: str) -> None:
    assert metric_direction(name) == -1


def test_every_configurable_metric_has_a_direction() -> None:
    assert {metric_direction(name) for name in CLASSIFICATION_METRICS + REGRESSION_METRICS} == {1, -1}


def test_unknown_metric_name_is_named_in_the_error() -> None:
    with pytest.raises(ValueError, match="'balanced_accuracy'"):
        metric_direction("balanced_accuracy")
    with pytest.raises(ValueError, match="'balanced_accuracy'"):
        metric_on_rows("balanced_accuracy", np.eye(2), np.array([0, 1]), 2)


def test_roc_auc_is_nan_when_one_class_is_present() -> None:
    proba, _ = random_case(rows=10, classes=2)
    assert math.isnan(metric_on_rows("roc_auc", proba, np.zeros(10, dtype=np.int64), 2))


def test_multiclass_roc_auc_is_nan_when_a_class_is_absent() -> None:
    proba, _ = random_case(rows=10, classes=3)
    assert math.isnan(metric_on_rows("roc_auc", proba, np.array([0, 1] * 5), 3))


def test_r2_is_nan_on_fewer_than_two_rows_or_a_constant_label() -> None:
    assert math.isnan(metric_on_rows("r2", np.array([1.5]), np.array([2.0]), None))
    assert math.isnan(metric_on_rows("r2", np.array([1.0, 3.0]), np.array([2.0, 2.0]), None))


@pytest.mark.parametrize("name", CLASSIFICATION_METRICS)
def test_every_classification_metric_is_nan_on_no_rows(name: str) -> None:
    assert math.isnan(metric_on_rows(name, np.empty((0, 3)), np.empty(0, dtype=np.int64), 3))


def test_metric_on_rows_agrees_with_scikit_learn_on_a_subset() -> None:
    proba, y_true = random_case()
    rows = np.arange(0, 60, 3)
    sub_proba, sub_true = proba[rows], y_true[rows]
    labels = [0, 1, 2]
    assert metric_on_rows("accuracy", sub_proba, sub_true, 3) == pytest.approx(
        skm.accuracy_score(sub_true, sub_proba.argmax(axis=1))
    )
    assert metric_on_rows("log_loss", sub_proba, sub_true, 3) == pytest.approx(
        skm.log_loss(sub_true, sub_proba, labels=labels)
    )
    assert metric_on_rows("f1_macro", sub_proba, sub_true, 3) == pytest.approx(
        skm.f1_score(sub_true, sub_proba.argmax(axis=1), average="macro", labels=labels, zero_division=0)
    )


def test_metric_on_rows_normalises_probability_rows_for_log_loss() -> None:
    proba, y_true = random_case()
    assert metric_on_rows("log_loss", proba * 3.0, y_true, 3) == pytest.approx(
        metric_on_rows("log_loss", proba, y_true, 3)
    )


def test_classification_metrics_equal_metric_on_rows_over_all_rows() -> None:
    proba, y_true = random_case()
    scores = classification_metrics(pyfunc_output(proba, CLASSES), y_true, CLASSES, CLASSIFICATION_METRICS)
    assert set(scores) == {f"test_{name}" for name in CLASSIFICATION_METRICS}
    for name in CLASSIFICATION_METRICS:
        expected = metric_on_rows(name, proba.astype(np.float32), y_true, 3)
        assert scores[f"test_{name}"] == pytest.approx(expected), name


def test_regression_metrics_known_values() -> None:
    y_true = np.array([1.0, 2.0, 3.0, 4.0])
    predictions = np.array([1.0, 2.0, 3.0, 6.0])
    scores = regression_metrics(predictions, y_true, ["rmse", "mae", "r2"])
    assert scores == {
        "test_rmse": pytest.approx(1.0),  # sqrt(4 / 4)
        "test_mae": pytest.approx(0.5),
        "test_r2": pytest.approx(1 - 4 / 5),  # residual SS 4, total SS 5
    }


@pytest.mark.parametrize(("classes", "rows"), [(2, 1), (2, 200), (3, 7), (5, 500)])
@pytest.mark.parametrize(
    ("name", "scorer"),
    [("f1_macro", skm.f1_score), ("precision_macro", skm.precision_score), ("recall_macro", skm.recall_score)],
)
def test_macro_metrics_equal_scikit_learn_over_the_classes_that_occur(
    name: str, scorer: object, classes: int, rows: int
) -> None:
    rng = np.random.default_rng(classes * rows)
    y_true, proba = rng.integers(0, classes, rows), rng.random((rows, classes))
    y_pred = proba.argmax(axis=1)
    expected = scorer(y_true, y_pred, average="macro", labels=np.union1d(y_true, y_pred), zero_division=0)  # type: ignore[operator]
    assert metric_on_rows(name, proba, y_true, classes) == pytest.approx(expected, abs=1e-12)


def test_a_slice_of_one_class_predicted_perfectly_has_macro_f1_of_one() -> None:
    proba = np.array([[0.9, 0.1, 0.0], [0.8, 0.1, 0.1]])
    assert metric_on_rows("f1_macro", proba, np.array([0, 0]), 3) == 1.0
