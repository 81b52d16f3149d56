"""Data layer: load a source into Ray Data, split it, fit preprocessing on train only.

The names below load on first use (``mlops_ray.lazy``): a Serve replica needs only
``schema`` and ``preprocessing``, not ``prepare`` and its sources (scikit-learn).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlops_ray import lazy

if TYPE_CHECKING:
    from mlops_ray.data.prepare import PreparedData, prepare_data
    from mlops_ray.data.preprocessing import Preprocessing

__all__ = ["PreparedData", "Preprocessing", "prepare_data"]
__getattr__ = lazy.exports(
    __name__,
    {
        "PreparedData": "mlops_ray.data.prepare",
        "prepare_data": "mlops_ray.data.prepare",
        "Preprocessing": "mlops_ray.data.preprocessing",
    },
)
