"""Log the packaged model to the active MLflow run and register it under an alias.

Logging and registering are separate steps on purpose: the pipeline evaluates the
exact logged artifact first, and only a model that was evaluated is registered.
Requirements are pinned explicitly from the installed versions, because MLflow's
requirement inference would import and probe the model in a subprocess (slow) and
could pick up whatever else the environment holds.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from mlops_ray.data import PreparedData
from mlops_ray.data.reference import log_reference
from mlops_ray.models.record import TrainResult
from mlops_ray.models.user import source_paths
from mlops_ray.registry import pyfunc_entry
from mlops_ray.registry.integrity import digest_tags
from mlops_ray.registry.packaged_model import ARTIFACT_KEY, PackagedModel, write_bundle

REQUIREMENTS = ("mlops-ray", "mlflow", "torch", "pandas", "numpy")


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: str
    alias: str
    run_id: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}@{self.alias}"


def log_packaged_model(trained: TrainResult, data: PreparedData) -> str:
    """Log preprocessing + weights as a pyfunc in the active run, and the monitoring reference; return its URI."""
    example = data.test_rows(5)[list(data.features)]
    with tempfile.TemporaryDirectory() as tmp:
        bundle = write_bundle(
            Path(tmp) / ARTIFACT_KEY, trained.spec, data.preprocessing, data.target, trained.state_dict
        )
        signature = infer_signature(example, _predict_in_memory(bundle, example))
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=pyfunc_entry.__file__,
            artifacts={ARTIFACT_KEY: str(bundle)},
            signature=signature,
            input_example=example,
            pip_requirements=[_pin(p) for p in REQUIREMENTS],
            code_paths=source_paths(trained.spec.name) if trained.spec.is_builder else None,  # your own module
        )
    if data.reference is not None:
        log_reference(data.reference)
    return info.model_uri


def register_model(model_uri: str, name: str, alias: str, tags: dict[str, str]) -> RegisteredModel:
    """Create a new version of ``name`` from ``model_uri``, tag it, and point ``alias`` at it.

    The tags include the sha256 of every stored artifact (``integrity.digest_tags``), which
    each later load of the version checks.
    """
    version_info = mlflow.register_model(model_uri, name, tags={**tags, **digest_tags(model_uri)})
    client = MlflowClient()
    client.set_registered_model_alias(name, alias, version_info.version)
    return RegisteredModel(name, str(version_info.version), alias, version_info.run_id or "")


def _predict_in_memory(bundle: Path, example: pd.DataFrame) -> pd.DataFrame:
    model = PackagedModel()
    model.load_context(mlflow.pyfunc.PythonModelContext(artifacts={ARTIFACT_KEY: str(bundle)}, model_config={}))
    return model.predict(None, example)


def _pin(package: str) -> str:
    return f"{package}=={version(package).split('+')[0]}"
