"""``mlops-ray run``: the quickstart chain, stage after stage, and nothing else.

data -> train (or, with a ``tune`` section, a sweep whose best trial is registered
@challenger) -> evaluate (the logged artifact) -> register @alias -> serve -> one
real HTTP prediction. Each stage is a library call; this module only orders them,
times them, and hands the result to the reporter.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass

import pandas as pd

from mlops_ray.config import Config, dump_config
from mlops_ray.data import PreparedData
from mlops_ray.registry import RegisteredModel, register_model, set_alias
from mlops_ray.registry.lineage import version_tags
from mlops_ray.reporting import StageReporter
from mlops_ray.runtime import connect_tracking, ray_session
from mlops_ray.serve import deploy_model, wait_for_stop_signal
from mlops_ray.serve.contract import records_from_frame
from mlops_ray.training import train_and_log
from mlops_ray.tune.sweep import sweep_and_register


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
    if config.tune is not None:  # the sweep's best trial replaces the single training run
        swept = sweep_and_register(config, reporter, tracking_uri, config_text)
        data, run_id, test_metrics = swept.data, swept.parent_run_id, swept.test_metrics
        with reporter.stage("alias", f"pointing @{config.registry.alias} at the sweep's best model") as stage:
            model = set_alias(swept.model, config.registry.alias)
            stage.detail = f"{model.name} version {model.version} @{model.alias} (and @{swept.model.alias})"
    else:
        outcome = train_and_log(config, reporter, tracking_uri, config_text)
        data, run_id, test_metrics = outcome.data, outcome.run_id, outcome.test_metrics
        with reporter.stage("register", f"registering {config.registry.model_name}") as stage:
            model = register_model(
                outcome.model_uri, config.registry.model_name, config.registry.alias, version_tags(data, config_text)
            )
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
            run_id,
            model,
            test_metrics,
            endpoint.url,
            response,
            text,
            dict(reporter.seconds),
            tracking_ui,
            dashboard,
        )
        reporter.summary(result)
        if keep_serving:
            reporter.console.print(f"Serving {model.uri} at {endpoint.url}/predict — press Ctrl-C to stop.")
            stopped_by = wait_for_stop_signal()
            reporter.console.print(f"{stopped_by} received: stopping the endpoint.")
    finally:
        endpoint.shutdown()
    return result


def _describe_answer(answer: dict, truth: object, data: PreparedData) -> str:
    if data.task == "regression":
        return f"{answer['prediction']:.4g} (true: {float(truth):.4g})"  # type: ignore[arg-type]
    label = answer["predicted_class"]
    true_name = data.class_names[int(data.target.encode(pd.Series([truth]))[0])]
    return f"{label} (p={answer['probabilities'][label]:.3f}; true: {true_name})"
