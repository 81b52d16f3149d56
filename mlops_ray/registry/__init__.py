"""MLflow side: the packaged pyfunc model, logging it, registering it, moving aliases."""

from mlops_ray.registry.lineage import log_dataset_input
from mlops_ray.registry.model_store import RegisteredModel, log_packaged_model, register_model

__all__ = ["RegisteredModel", "log_dataset_input", "log_packaged_model", "register_model"]
