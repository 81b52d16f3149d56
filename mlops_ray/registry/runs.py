"""Training and sweep runs in MLflow: finding them again, and what every one records first.

``mlops-ray train`` and ``mlops-ray tune`` both open a run, log the same inputs into
it (tags, the resolved config, the dataset and its validation), and on ``--resume``
look for the newest unfinished run of their stage; that shared part lives here so
neither stage imports the other.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import torch
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from mlops_ray.config import Config
from mlops_ray.data import PreparedData
from mlops_ray.data.validation import write_quarantine
from mlops_ray.errors import TrainingError
from mlops_ray.registry.lineage import log_dataset_input, provenance_tags
from mlops_ray.reporting import StageReporter
from mlops_ray.tags import (
    CONFIG_ARTIFACT,
    DATA_WARNINGS_TAG,
    FINGERPRINT_TAG,
    MODEL_TAG,
    QUARANTINE_TAG,
    SCHEMA_ARTIFACT,
    SCHEMA_DIGEST_TAG,
    STAGE_TAG,
    TRAIN_DEVICE_TAG,
    TRAIN_WORKERS_TAG,
    VALIDATION_ARTIFACT,
)


def latest_run(config: Config, stage: str) -> Run | None:
    """The newest run of ``stage`` ('train' or 'tune') for this model in the config's experiment."""
    client = MlflowClient()
    experiment = client.get_experiment_by_name(config.tracking.experiment)
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{STAGE_TAG}` = '{stage}' and tags.`{MODEL_TAG}` = '{config.registry.model_name}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def unfinished_run(config: Config, stage: str, noun: str, instead: str) -> Run:
    """The newest run of ``stage`` for ``--resume``: it must exist and must not have finished.

    ``noun`` names it in the error ('training run', 'sweep'); ``instead`` says what a run
    without ``--resume`` would do ('train a new model'). What else a resume needs (checkpoints,
    Tune's saved state) is the caller's to check.
    """
    run = latest_run(config, stage)
    where = run_scope(config)
    if run is None:
        raise TrainingError(f"there is no {noun} to resume", where=where, hint="Run without --resume.")
    if run.info.status == "FINISHED":
        raise TrainingError(
            f"the latest {noun} {run.info.run_id} finished; there is nothing to resume",
            where=where,
            hint=f"Run without --resume to {instead}.",
        )
    return run


def run_scope(config: Config) -> str:
    """Where a stage's runs are looked for, as an error names it."""
    return f"experiment '{config.tracking.experiment}', model '{config.registry.model_name}'"


def log_run_inputs(
    config: Config, config_text: str, data: PreparedData, run_id: str, reporter: StageReporter, stage: str
) -> None:
    """What every training or sweep run records first: tags, the config, the dataset and its validation."""
    mlflow.set_tags(
        {
            STAGE_TAG: stage,
            MODEL_TAG: config.registry.model_name,
            FINGERPRINT_TAG: data.fingerprint.digest,
            **_system_facts(config, data.row_counts["train"]),
        }
    )
    mlflow.log_params(flatten(config.model_dump(mode="json", exclude={"tune"})))
    mlflow.log_text(config_text, CONFIG_ARTIFACT)
    log_dataset_input(data)
    if data.warnings:
        mlflow.set_tag(DATA_WARNINGS_TAG, "; ".join(data.warnings))
    _record_validation(data, config.data.quarantine_dir, run_id, reporter)


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    """Nested config sections as MLflow params: ``{"train": {"lr": 0.1}}`` -> ``{"train.lr": 0.1}``."""
    flat: dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _system_facts(config: Config, train_rows: int) -> dict[str, str]:
    device = "cpu"
    if config.train.use_gpu and torch.cuda.is_available():
        device = torch.cuda.get_device_name(0)
    elif config.train.use_gpu:
        device = "gpu (on the workers)"
    return {
        **provenance_tags(),
        TRAIN_WORKERS_TAG: str(config.train.workers_for(train_rows)),  # 0: local mode
        TRAIN_DEVICE_TAG: device,
    }


def _record_validation(data: PreparedData, quarantine_dir: str, run_id: str, reporter: StageReporter) -> None:
    """Log the schema check to the run; write dropped rows to the run's quarantine folder."""
    if data.contract is None or data.validation is None:
        return
    mlflow.set_tag(SCHEMA_DIGEST_TAG, data.contract.digest())
    mlflow.log_dict(data.contract.to_dict(), SCHEMA_ARTIFACT)
    mlflow.log_dict(data.validation.to_dict(), VALIDATION_ARTIFACT)
    mlflow.log_metrics({f"data.{k}": v for k, v in data.validation.counts().items()})
    if data.rejected is None:
        return
    path = write_quarantine(data.rejected, Path(quarantine_dir) / run_id)
    mlflow.set_tag(QUARANTINE_TAG, str(path))
    reporter.warn(f"{data.validation.invalid_rows} row(s) broke the schema and were dropped; written to {path}")
