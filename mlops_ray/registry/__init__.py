"""MLflow side: the packaged pyfunc model, logging it, registering it, moving aliases.

The names below load on first use (``mlops_ray.lazy``): a Serve replica needs only
``refs``, ``integrity`` and ``packaged_model``, not ``lineage`` / ``model_store``,
which pull in the data layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlops_ray import lazy

if TYPE_CHECKING:
    from mlops_ray.registry.lineage import log_dataset_input
    from mlops_ray.registry.model_store import RegisteredModel, log_packaged_model, register_model

__all__ = ["RegisteredModel", "log_dataset_input", "log_packaged_model", "register_model"]
__getattr__ = lazy.exports(
    __name__,
    {
        "log_dataset_input": "mlops_ray.registry.lineage",
        "RegisteredModel": "mlops_ray.registry.model_store",
        "log_packaged_model": "mlops_ray.registry.model_store",
        "register_model": "mlops_ray.registry.model_store",
    },
)
