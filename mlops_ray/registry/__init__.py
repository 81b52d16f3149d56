"""MLflow side: the packaged pyfunc model, logging it, registering it, moving aliases.

The names below load on first use (PEP 562): a Serve replica needs only ``refs``,
``integrity`` and ``packaged_model``, and ``lineage`` / ``model_store`` would pull the
data layer, Ray Data and scikit-learn into every replica start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_ray.registry.lineage import log_dataset_input
    from mlops_ray.registry.model_store import RegisteredModel, log_packaged_model, register_model

_HOMES = {
    "log_dataset_input": "mlops_ray.registry.lineage",
    "RegisteredModel": "mlops_ray.registry.model_store",
    "log_packaged_model": "mlops_ray.registry.model_store",
    "register_model": "mlops_ray.registry.model_store",
}
__all__ = ["RegisteredModel", "log_dataset_input", "log_packaged_model", "register_model"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
