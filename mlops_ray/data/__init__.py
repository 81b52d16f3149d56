"""Data layer: load a source into Ray Data, split it, fit preprocessing on train only."""

from mlops_ray.data.prepare import PreparedData, prepare_data
from mlops_ray.data.preprocessing import Preprocessing

__all__ = ["PreparedData", "Preprocessing", "prepare_data"]
