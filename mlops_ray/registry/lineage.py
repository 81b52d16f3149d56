"""Record where a run's data came from: ``mlflow.log_input`` with our own digest; tags for model versions.

MLflow's own dataset classes would hash the data on the driver; ours is computed
distributed (``data/fingerprint.py``) and handed over with a ``MetaDataset``, along
with the source URI, the column schema and the per-column profile.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version

import mlflow
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.data.dataset_source import DatasetSource
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset
from mlflow.exceptions import MlflowException
from mlflow.types import ColSpec, Schema

from mlops_ray.data import PreparedData
from mlops_ray.data.schema import column_type
from mlops_ray.settings import RAY_JOB_MARKER
from mlops_ray.tags import (
    CONFIG_DIGEST_TAG,
    FINGERPRINT_TAG,
    GIT_COMMIT_TAG,
    GIT_DIRTY_TAG,
    PACKAGE_VERSION_SUFFIX,
    PROFILE_ARTIFACT,
    PYTHON_VERSION_TAG,
    RAY_JOB_TAG,
    SCHEMA_DIGEST_TAG,
    SOURCE_TAG,
)

PACKAGES = ("mlops-ray", "ray", "mlflow", "torch", "scikit-learn", "pyarrow")  # "<name>.version" tags


def version_tags(data: PreparedData, config_text: str) -> dict[str, str]:
    """Tags every registered version carries: which data, schema, config, code and packages, and which job."""
    return {
        SOURCE_TAG: data.source_uri,
        FINGERPRINT_TAG: data.fingerprint.digest,
        **({SCHEMA_DIGEST_TAG: data.contract.digest()} if data.contract else {}),
        CONFIG_DIGEST_TAG: hashlib.sha256(config_text.encode()).hexdigest(),
        **provenance_tags(),
    }


def provenance_tags() -> dict[str, str]:
    """Code and environment facts: package versions, the git commit (when in a repository), the Ray job."""
    tags = {f"{package}{PACKAGE_VERSION_SUFFIX}": _installed(package) for package in PACKAGES}
    tags[PYTHON_VERSION_TAG] = platform.python_version()
    commit = _git("rev-parse", "HEAD")
    if commit:
        tags[GIT_COMMIT_TAG] = commit
        tags[GIT_DIRTY_TAG] = str(bool(_git("status", "--porcelain", "--untracked-files=no"))).lower()
    submission = ray_job_submission_id()
    if submission:
        tags[RAY_JOB_TAG] = submission
    return tags


def ray_job_submission_id() -> str | None:
    """The submission id when this process is a ``ray job submit`` entrypoint (Ray passes it in the job config)."""
    raw = os.environ.get(RAY_JOB_MARKER)
    if not raw:
        return None
    try:
        return json.loads(raw).get("metadata", {}).get("job_submission_id") or None
    except (ValueError, AttributeError):
        return None


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _installed(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


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
    mlflow.log_text(json.dumps(data.profile.to_dict(), indent=2), PROFILE_ARTIFACT)


def _source(uri: str) -> DatasetSource:
    try:
        return resolve_dataset_source(uri)
    except MlflowException:  # sklearn:, synthetic: and other non-file sources
        return CodeDatasetSource(tags={"uri": uri})


_MLFLOW_TYPES = {"boolean": "boolean", "integer": "long", "float": "double"}


def _mlflow_type(arrow_type: object) -> str:
    """MLflow's column type for an Arrow type, through the schema contract's own mapping."""
    return _MLFLOW_TYPES.get(column_type(arrow_type), "string")
