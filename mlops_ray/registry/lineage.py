"""Record where a run's data came from: ``mlflow.log_input`` with our own digest; tags for model versions.

MLflow's own dataset classes would hash the data on the driver; ours is computed
distributed (``data/fingerprint.py``) and handed over with a ``MetaDataset``, along
with the source URI, the column schema and the per-column profile.
"""

from __future__ import annotations

import hashlib
import json

import mlflow
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.data.dataset_source import DatasetSource
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset
from mlflow.exceptions import MlflowException
from mlflow.types import ColSpec, Schema

from mlops_ray import __version__
from mlops_ray.data import PreparedData
from mlops_ray.data.schema import column_type


def version_tags(data: PreparedData, config_text: str) -> dict[str, str]:
    """Tags every registered version carries: which data, which schema, which config, which mlops-ray."""
    return {
        "data.source": data.source_uri,
        "data.fingerprint": data.fingerprint.digest,
        **({"data.schema_sha256": data.contract.digest()} if data.contract else {}),
        "config.sha256": hashlib.sha256(config_text.encode()).hexdigest(),
        "mlops_ray.version": __version__,
    }


class _ProfiledDataset(MetaDataset):
    """A MetaDataset that also carries the column profile MLflow shows with the input."""

    def __init__(self, profile: dict, **kwargs: object):
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._profile = profile

    @property
    def profile(self) -> dict:
        return self._profile

    def to_dict(self) -> dict[str, str]:
        # MetaDataset.to_dict leaves the profile out; MLflow reads the entity from this dict.
        return {**super().to_dict(), "profile": json.dumps(self._profile)}


def log_dataset_input(data: PreparedData) -> None:
    """Attach the source dataset (digest, URI, schema, profile) to the active run."""
    dataset = _ProfiledDataset(
        profile=data.profile.to_dict(),
        source=_source(data.source_uri),
        name=data.source_uri.rsplit("/", 1)[-1],
        digest=data.fingerprint.digest,
        schema=Schema([ColSpec(_mlflow_type(t), n) for n, t in zip(data.schema.names, data.schema.types, strict=True)]),
    )
    tags = {"rows": str(data.fingerprint.rows), **{f"rows.{k}": str(v) for k, v in data.row_counts.items()}}
    mlflow.log_input(dataset, context="training", tags=tags)
    mlflow.log_text(json.dumps(data.profile.to_dict(), indent=2), "data/profile.json")


def _source(uri: str) -> DatasetSource:
    try:
        return resolve_dataset_source(uri)
    except MlflowException:  # sklearn:, synthetic: and other non-file sources
        return CodeDatasetSource(tags={"uri": uri})


_MLFLOW_TYPES = {"boolean": "boolean", "integer": "long", "float": "double"}


def _mlflow_type(arrow_type: object) -> str:
    """MLflow's column type for an Arrow type, through the schema contract's own mapping."""
    return _MLFLOW_TYPES.get(column_type(arrow_type), "string")
