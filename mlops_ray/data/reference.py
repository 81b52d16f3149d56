"""The training reference that monitoring compares traffic with, kept in the run that logged the model.

Why a sample of the training split, stored with the run: the captured traffic must be
compared with what *this* version learned from, and the source may have changed or
moved since (a table that grows, a file rewritten). A uniform sample of at most
``REFERENCE_ROWS`` raw training rows (features only, as requests carry them) is
enough for quantile bins and the KS test, and small (a few hundred kB of Parquet).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
import pandas as pd
import ray.data
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mlops_ray.errors import ModelRefError
from mlops_ray.tags import REFERENCE_ARTIFACT

REFERENCE_ROWS = 10_000


def sample_reference(train: ray.data.Dataset, rows: int, features: tuple[str, ...], seed: int) -> pd.DataFrame:
    """A uniform sample of at most ``REFERENCE_ROWS`` training rows, drawn by Ray Data where the rows are."""
    fraction = min(1.0, 1.2 * REFERENCE_ROWS / max(rows, 1))
    sampled = train if fraction >= 1.0 else train.random_sample(fraction, seed=seed)
    return sampled.select_columns(list(features)).limit(REFERENCE_ROWS).to_pandas()


def log_reference(reference: pd.DataFrame) -> None:
    """Into the active run, next to the model it describes."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(REFERENCE_ARTIFACT).name
        reference.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path=str(Path(REFERENCE_ARTIFACT).parent))


def load_reference(client: MlflowClient, run_id: str, model: str) -> pd.DataFrame:
    try:
        with tempfile.TemporaryDirectory() as tmp:
            local = client.download_artifacts(run_id, REFERENCE_ARTIFACT, tmp)
            return pd.read_parquet(local)
    except (MlflowException, OSError):
        raise ModelRefError(
            f"{model} has no monitoring reference ({REFERENCE_ARTIFACT} in run {run_id})",
            where=model,
            hint="Versions logged before monitoring existed have none; train it again (`mlops-ray run`).",
        ) from None
