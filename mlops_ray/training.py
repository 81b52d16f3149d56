"""``mlops-ray train``: data -> train -> log the packaged model -> score the test split, in one MLflow run.

The same function is the first half of ``mlops-ray run`` (which then registers and
serves). With ``resume`` it reopens the latest unfinished training run of the
model and its Ray Train run, whose checkpoints hold the epoch counter, optimizer and
schedule, so training continues where it stopped and logs into the same MLflow run.
A failure past ``train.max_failures`` (or Ctrl-C) leaves that run FAILED, never
RUNNING.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mlflow
import torch
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from mlops_ray.config import Config, dump_config
from mlops_ray.data import PreparedData, prepare_data
from mlops_ray.data.validation import write_quarantine
from mlops_ray.errors import TrainingError
from mlops_ray.evaluate import score_test_split
from mlops_ray.registry import RegisteredModel, log_dataset_input, log_packaged_model, register_model
from mlops_ray.registry.lineage import FINGERPRINT_TAG, provenance_tags, version_tags
from mlops_ray.reporting import StageReporter
from mlops_ray.runtime import connected
from mlops_ray.train import TrainResult, train_model
from mlops_ray.train.trainer import check_selection_metric, run_name, storage_uri

STAGE_TAG = "mlops_ray.stage"
MODEL_TAG = "mlops_ray.model_name"


@dataclass(frozen=True)
class TrainingOutcome:
    run_id: str
    model_uri: str  # the logged (not yet registered) packaged model
    test_metrics: dict[str, float]
    data: PreparedData
    trained: TrainResult
    resumed: bool


def run_training(
    config: Config, reporter: StageReporter, resume: bool = False, register: bool = False
) -> TrainingOutcome:
    """``mlops-ray train``: connect, ``train_and_log``, with ``register`` a new version @challenger; a summary."""
    config_text = dump_config(config)
    with connected(config, reporter) as (tracking, _):
        outcome = train_and_log(config, reporter, tracking.uri, config_text, resume=resume)
        registered = register_challenger(config, reporter, outcome, config_text) if register else None
    best = outcome.trained.best_metrics
    model = f"{registered.name} version {registered.version} @{registered.alias}" if registered else None
    rows = {
        "MLflow run": outcome.run_id + (" (resumed)" if outcome.resumed else ""),
        "model": model or f"{outcome.model_uri} (logged, not registered)",
        "best epoch": f"{int(best['epoch'])} of {outcome.trained.epochs_run} run",
        **{name: f"{value:.4f}" for name, value in outcome.test_metrics.items()},
        "checkpoint": outcome.trained.checkpoint_path,
        "MLflow UI": tracking.ui_hint,
    }
    reporter.table("mlops-ray train", rows)
    return outcome


def register_challenger(
    config: Config, reporter: StageReporter, outcome: TrainingOutcome, config_text: str
) -> RegisteredModel:
    """A new version of ``registry.model_name`` from the logged model, with lineage tags, @``challenger_alias``."""
    alias = config.registry.challenger_alias
    with reporter.stage("register", f"registering {config.registry.model_name} @{alias}") as stage:
        registered = register_model(
            outcome.model_uri, config.registry.model_name, alias, version_tags(outcome.data, config_text)
        )
        stage.detail = f"{registered.name} version {registered.version} @{alias}"
    return registered


def train_and_log(
    config: Config, reporter: StageReporter, tracking_uri: str, config_text: str | None = None, resume: bool = False
) -> TrainingOutcome:
    config_text = config_text or dump_config(config)
    resume_id = find_resumable_run(config) if resume else None
    data = prepare_stage(config, reporter)
    metric_names = config.evaluate.metrics_for(data.task)
    check_selection_metric(config.train, data.task)
    with mlflow.start_run(run_id=resume_id, run_name=None if resume_id else f"{config.registry.model_name}-train"):
        run_id = mlflow.active_run().info.run_id  # type: ignore[union-attr]
        if resume_id is None:
            log_run_inputs(config, config_text, data, run_id, reporter, stage="train")
        doing = f"{config.train.num_workers} Ray Train worker(s), {config.train.epochs} epochs"
        with reporter.stage("train", ("resuming: " if resume_id else "") + doing) as stage:
            trained = train_model(config, data, tracking_uri, run_id)
            best = trained.best_metrics
            metric = config.train.checkpoint.metric
            stage.detail = f"{trained.epochs_run} epochs; best epoch {int(best['epoch'])}, {metric} {best[metric]:.4f}"
        with reporter.stage("evaluate", "logging the packaged model and scoring the test split") as stage:
            model_uri = log_packaged_model(trained, data)
            test_metrics = score_test_split(
                model_uri, tracking_uri, data.test, data.features, data.target, metric_names
            )
            mlflow.log_metrics(test_metrics)
            stage.detail = ", ".join(f"{k.removeprefix('test_')} {v:.3f}" for k, v in list(test_metrics.items())[:3])
    return TrainingOutcome(run_id, model_uri, test_metrics, data, trained, resume_id is not None)


def prepare_stage(config: Config, reporter: StageReporter) -> PreparedData:
    """The data stage of every command that trains: read, validate, split, fit preprocessing; warn."""
    with reporter.stage("data", f"reading {config.data.source}, splitting, fitting preprocessing") as stage:
        data = prepare_data(config.data)
        counts = ", ".join(f"{k} {v}" for k, v in data.row_counts.items())
        stage.detail = (
            f"{data.task}, {data.fingerprint.rows} rows -> {counts} ({data.split_method} split); "
            f"fingerprint {data.fingerprint.digest[:12]}"
        )
    for warning in data.warnings:
        reporter.warn(warning)
    return data


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


def find_resumable_run(config: Config) -> str:
    """The latest training run of this model in the experiment, if it did not finish and left checkpoints."""
    run = latest_run(config, "train")
    where = f"experiment '{config.tracking.experiment}', model '{config.registry.model_name}'"
    if run is None:
        raise TrainingError("there is no training run to resume", where=where, hint="Run without --resume.")
    if run.info.status == "FINISHED":
        raise TrainingError(
            f"the latest training run {run.info.run_id} finished; there is nothing to resume",
            where=where,
            hint="Run without --resume to train a new model.",
        )
    checkpoints = Path(storage_uri(config.train.storage_path)) / run_name(run.info.run_id)
    if "://" not in str(checkpoints) and not any(p.is_dir() for p in checkpoints.glob("checkpoint_*")):
        raise TrainingError(
            f"run {run.info.run_id} ({run.info.status}) stopped before its first checkpoint; nothing to continue from",
            where=str(checkpoints),
            hint="Run without --resume.",
        )
    return run.info.run_id


def log_run_inputs(
    config: Config, config_text: str, data: PreparedData, run_id: str, reporter: StageReporter, stage: str
) -> None:
    """What every training or sweep run records first: tags, the config, the dataset and its validation."""
    mlflow.set_tags(
        {
            STAGE_TAG: stage,
            MODEL_TAG: config.registry.model_name,
            FINGERPRINT_TAG: data.fingerprint.digest,
            **_system_facts(config),
        }
    )
    mlflow.log_params(flatten(config.model_dump(mode="json", exclude={"tune"})))
    mlflow.log_text(config_text, "config.yaml")
    log_dataset_input(data)
    if data.warnings:
        mlflow.set_tag("data.warnings", "; ".join(data.warnings))
    _record_validation(data, config.data.quarantine_dir, run_id, reporter)


def _system_facts(config: Config) -> dict[str, str]:
    device = "cpu"
    if config.train.use_gpu and torch.cuda.is_available():
        device = torch.cuda.get_device_name(0)
    elif config.train.use_gpu:
        device = "gpu (on the workers)"
    return {
        **provenance_tags(),
        "train.workers": str(config.train.num_workers),
        "train.device": device,
    }


def _record_validation(data: PreparedData, quarantine_dir: str, run_id: str, reporter: StageReporter) -> None:
    """Log the schema check to the run; write dropped rows to the run's quarantine folder."""
    if data.contract is None or data.validation is None:
        return
    mlflow.set_tag("data.schema_sha256", data.contract.digest())
    mlflow.log_dict(data.contract.to_dict(), "data/schema.json")
    mlflow.log_dict(data.validation.to_dict(), "data/validation.json")
    mlflow.log_metrics({f"data.{k}": v for k, v in data.validation.counts().items()})
    if data.rejected is None:
        return
    path = write_quarantine(data.rejected, Path(quarantine_dir) / run_id)
    mlflow.set_tag("data.quarantine", str(path))
    reporter.warn(f"{data.validation.invalid_rows} row(s) broke the schema and were dropped; written to {path}")


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
