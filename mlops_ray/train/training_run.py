"""One training run: data -> train -> log the packaged model -> score the test split, in one MLflow run.

``mlops-ray train`` runs it; so do ``mlops-ray run`` (which then registers and
serves) and ``mlops-ray reproduce``. With ``resume`` it reopens the latest unfinished
training run of the model and its Ray Train run, whose checkpoints hold the epoch counter, optimizer and
schedule, so training continues where it stopped and logs into the same MLflow run.
A failure past ``train.max_failures`` (or Ctrl-C) leaves that run FAILED, never
RUNNING.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mlflow

from mlops_ray.config import Config, dump_config
from mlops_ray.data import PreparedData
from mlops_ray.data.prepare import prepare_stage
from mlops_ray.errors import TrainingError
from mlops_ray.evaluate import score_test_split
from mlops_ray.models.record import TrainResult
from mlops_ray.registry import RegisteredModel, log_packaged_model, register_model
from mlops_ray.registry.lineage import version_tags
from mlops_ray.registry.runs import log_run_inputs, unfinished_run
from mlops_ray.reporting import StageReporter
from mlops_ray.train.trainer import check_model, check_selection_metric, run_name, storage_uri, train_model


@dataclass(frozen=True)
class TrainingOutcome:
    run_id: str
    model_uri: str  # the logged (not yet registered) packaged model
    test_metrics: dict[str, float]
    data: PreparedData
    trained: TrainResult
    resumed: bool


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
    check_model(config, data)
    with mlflow.start_run(run_id=resume_id, run_name=None if resume_id else f"{config.registry.model_name}-train"):
        run_id = mlflow.active_run().info.run_id  # type: ignore[union-attr]
        if resume_id is None:
            log_run_inputs(config, config_text, data, run_id, reporter, stage="train")
        workers = config.train.workers_for(data.row_counts["train"])
        where = f"{workers} Ray Train worker(s)" if workers else "in this process (Ray Train local mode)"
        doing = f"{where}, {config.train.epochs} epochs"
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


def find_resumable_run(config: Config) -> str:
    """The latest training run of this model in the experiment, if it did not finish and left checkpoints."""
    run = unfinished_run(config, "train", "training run", "train a new model")
    checkpoints = Path(storage_uri(config.train.storage_path)) / run_name(run.info.run_id)
    if "://" not in str(checkpoints) and not any(p.is_dir() for p in checkpoints.glob("checkpoint_*")):
        raise TrainingError(
            f"run {run.info.run_id} ({run.info.status}) stopped before its first checkpoint; nothing to continue from",
            where=str(checkpoints),
            hint="Run without --resume.",
        )
    return run.info.run_id
