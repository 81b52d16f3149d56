"""``mlops-ray run``: the quickstart chain, stage after stage, and nothing else.

data -> train -> evaluate (the logged artifact) -> register @alias -> serve -> one
real HTTP prediction. Each stage is a library call; this module only orders them,
times them, and hands the result to the reporter.
"""

from __future__ import annotations

import hashlib
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd

from mlops_ray import __version__
from mlops_ray.config import Config, dump_config
from mlops_ray.data import PreparedData, prepare_data
from mlops_ray.data.validation import write_quarantine
from mlops_ray.errors import ConfigError
from mlops_ray.evaluate import score_test_split
from mlops_ray.registry import RegisteredModel, log_dataset_input, log_packaged_model, register_model
from mlops_ray.reporting import StageReporter
from mlops_ray.runtime import connect_tracking, ray_session
from mlops_ray.serve import deploy_model, wait_for_stop_signal
from mlops_ray.serve.contract import records_from_frame
from mlops_ray.train import train_model


@dataclass(frozen=True)
class PipelineResult:
    run_id: str
    model: RegisteredModel
    test_metrics: dict[str, float]
    endpoint_url: str
    prediction: dict
    prediction_text: str
    stage_seconds: dict[str, float]
    tracking_ui: str
    ray_dashboard: str | None


def run(config: Config, reporter: StageReporter | None = None, keep_serving: bool = False) -> PipelineResult:
    """Run the whole chain; with ``keep_serving`` serve until SIGINT/SIGTERM, then shut down."""
    if config.tune is not None:
        raise ConfigError("sweeps are not part of `mlops-ray run` yet; remove the section", where="tune")
    reporter = reporter or StageReporter()
    config_text = dump_config(config)
    with ExitStack() as stack:
        with reporter.stage("connect", "connecting to MLflow and Ray") as stage:
            tracking = connect_tracking(config.tracking)
            ray_info = stack.enter_context(ray_session(config.ray))
            stage.detail = f"MLflow {tracking.uri}; Ray {'embedded' if ray_info.embedded else ray_info.address}"
        return _stages(
            config, config_text, reporter, tracking.uri, tracking.ui_hint, ray_info.dashboard_url, keep_serving
        )


def _stages(
    config: Config,
    config_text: str,
    reporter: StageReporter,
    tracking_uri: str,
    tracking_ui: str,
    dashboard: str | None,
    keep_serving: bool,
) -> PipelineResult:
    with reporter.stage("data", f"reading {config.data.source}, splitting, fitting preprocessing") as stage:
        data = prepare_data(config.data)
        counts = ", ".join(f"{k} {v}" for k, v in data.row_counts.items())
        stage.detail = (
            f"{data.task}, {data.fingerprint.rows} rows -> {counts} ({data.split_method} split); "
            f"fingerprint {data.fingerprint.digest[:12]}"
        )
    for warning in data.warnings:
        reporter.warn(warning)
    metric_names = config.evaluate.metrics_for(data.task)
    with mlflow.start_run(run_name=f"{config.registry.model_name}-train") as active:
        run_id = active.info.run_id
        mlflow.log_params(_flatten(config.model_dump(mode="json")))
        mlflow.log_text(config_text, "config.yaml")
        log_dataset_input(data)
        if data.warnings:
            mlflow.set_tag("data.warnings", "; ".join(data.warnings))
        _record_validation(data, config.data.quarantine_dir, run_id, reporter)
        with reporter.stage(
            "train", f"{config.train.num_workers} Ray Train workers, {config.train.epochs} epochs"
        ) as stage:
            trained = train_model(config, data, tracking_uri, run_id)
            stage.detail = (
                f"best epoch {int(trained.best_metrics['epoch'])}, val_loss {trained.best_metrics['val_loss']:.4f}"
            )
        with reporter.stage("evaluate", "logging the packaged model and scoring the test split") as stage:
            model_uri = log_packaged_model(trained, data)
            test_metrics = score_test_split(
                model_uri, tracking_uri, data.test, data.features, data.target, metric_names
            )
            mlflow.log_metrics(test_metrics)
            stage.detail = ", ".join(f"{k.removeprefix('test_')} {v:.3f}" for k, v in list(test_metrics.items())[:3])
        with reporter.stage("register", f"registering {config.registry.model_name}") as stage:
            tags = {
                "data.source": data.source_uri,
                "data.fingerprint": data.fingerprint.digest,
                **({"data.schema_sha256": data.contract.digest()} if data.contract else {}),
                "config.sha256": hashlib.sha256(config_text.encode()).hexdigest(),
                "mlops_ray.version": __version__,
            }
            model = register_model(model_uri, config.registry.model_name, config.registry.alias, tags)
            stage.detail = f"{model.name} version {model.version} @{model.alias}"
    with reporter.stage("serve", f"deploying {model.uri} on Ray Serve") as stage:
        endpoint = deploy_model(model.name, model.alias, tracking_uri, config.serve)
        stage.detail = f"{endpoint.url} (model version {endpoint.model_version})"
    try:
        with reporter.stage("predict", "sending one test row over HTTP") as stage:
            row = data.test_rows(1)
            response = endpoint.predict(records_from_frame(row, list(data.features)))
            text = _describe_answer(response["predictions"][0], row[data.label].iloc[0], data)
            stage.detail = text
        result = PipelineResult(
            run_id, model, test_metrics, endpoint.url, response, text, dict(reporter.seconds), tracking_ui, dashboard
        )
        reporter.summary(result)
        if keep_serving:
            reporter.console.print(f"Serving {model.uri} at {endpoint.url}/predict — press Ctrl-C to stop.")
            stopped_by = wait_for_stop_signal()
            reporter.console.print(f"{stopped_by} received: stopping the endpoint.")
    finally:
        endpoint.shutdown()
    return result


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


def _describe_answer(answer: dict, truth: object, data: PreparedData) -> str:
    if data.task == "regression":
        return f"{answer['prediction']:.4g} (true: {float(truth):.4g})"  # type: ignore[arg-type]
    label = answer["predicted_class"]
    true_name = data.class_names[int(data.target.encode(pd.Series([truth]))[0])]
    return f"{label} (p={answer['probabilities'][label]:.3f}; true: {true_name})"


def _flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
