"""Evaluation of a packaged model on held-out rows."""

from mlops_ray.evaluate.metrics import classification_metrics

__all__ = ["classification_metrics"]
