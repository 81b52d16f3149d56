"""Network builders chosen by ``model.name``; the served model rebuilds from the same spec."""

from mlops_ray.models.builder import ModelSpec, build_model, min_train_rows

__all__ = ["ModelSpec", "build_model", "min_train_rows"]
