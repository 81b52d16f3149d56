"""Data layer: load a source into Ray Data, split it, fit preprocessing on train only.

The names below load on first use (PEP 562): a Serve replica needs only
``mlops_ray.data.schema`` and ``preprocessing``, and importing ``prepare`` would
pull Ray Data and scikit-learn into every replica start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_ray.data.prepare import PreparedData, prepare_data
    from mlops_ray.data.preprocessing import Preprocessing

_HOMES = {
    "PreparedData": "mlops_ray.data.prepare",
    "prepare_data": "mlops_ray.data.prepare",
    "Preprocessing": "mlops_ray.data.preprocessing",
}
__all__ = ["PreparedData", "Preprocessing", "prepare_data"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
