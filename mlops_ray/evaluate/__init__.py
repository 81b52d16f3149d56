"""Evaluation of a packaged model on held-out rows."""

from mlops_ray.evaluate.metrics import classification_metrics, regression_metrics
from mlops_ray.evaluate.scoring import score_test_split

__all__ = ["classification_metrics", "regression_metrics", "score_test_split"]
