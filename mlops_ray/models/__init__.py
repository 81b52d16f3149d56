"""Network builders chosen by ``model.name``; the served model rebuilds from the same spec."""

from mlops_ray.models.builder import ModelSpec, build_model

__all__ = ["ModelSpec", "build_model"]
