"""``mlops-ray run``: the quickstart chain, stage after stage, and nothing else.

data -> train (or, with a ``tune`` section, a sweep) -> register the new model
@challenger -> the promotion gate against @champion (which moves only on a pass) ->
serve @champion -> one real HTTP prediction. Each stage is a library call; this module only orders them,
times them, and hands the result to the reporter.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from mlflow.tracking import MlflowClient

from mlops_ray.config import Config, dump_config
from mlops_ray.data import PreparedData
from mlops_ray.errors import PromotionError
from mlops_ray.promote.stage import PromotionOutcome, gate_and_promote
from mlops_ray.registry import RegisteredModel
from mlops_ray.reporting import StageReporter
from mlops_ray.runtime import connected
from mlops_ray.serve import deploy_model, start_serve, wait_for_stop_signal
from mlops_ray.serve.contract import records_from_frame
from mlops_ray.train.training_run import register_challenger, train_and_log
from mlops_ray.tune.sweep import sweep_and_register


@dataclass(frozen=True)
class PipelineResult:
    run_id: str
    challenger: RegisteredModel  # the model this run trained, gated against the champion
    promotion: PromotionOutcome
    model: RegisteredModel  # the champion that was served: the challenger if the gate promoted it
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
    with connected(config, reporter) as (tracking, ray_info):
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
    # Serve's controller and proxy start in a thread while the model trains; a taken port fails here, first.
    serve_start = start_serve(config, in_background=True)
    try:
        data, run_id, test_metrics, challenger, promotion, model = _champion(
            config, config_text, reporter, tracking_uri
        )
        with reporter.stage("serve", f"deploying {model.uri} on Ray Serve") as stage:
            endpoint = deploy_model(config, tracking_uri, f"{model.name}@{model.alias}", serve_start=serve_start)
            stage.detail = f"{endpoint.url} (model version {endpoint.model_version})"
    except BaseException:
        serve_start.undo()
        raise
    try:
        with reporter.stage("predict", "sending one test row over HTTP") as stage:
            row = data.test_rows(1)
            response = endpoint.predict(records_from_frame(row, list(data.features)))
            text = _describe_answer(response["predictions"][0], row[data.label].iloc[0], data)
            stage.detail = text
        result = PipelineResult(
            run_id,
            challenger,
            promotion,
            model,
            test_metrics,
            endpoint.url,
            response,
            text,
            dict(reporter.seconds),
            tracking_ui,
            dashboard,
        )
        reporter.table("mlops-ray run", _summary_rows(result), after_total=_where_to_look(result))
        if keep_serving:
            reporter.console.print(f"Serving {model.uri} at {endpoint.url}/predict — press Ctrl-C to stop.")
            stopped_by = wait_for_stop_signal()
            reporter.console.print(f"{stopped_by} received: stopping the endpoint.")
    finally:
        if left_running := endpoint.shutdown():
            reporter.console.print(left_running, highlight=False)
    return result


def _champion(
    config: Config, config_text: str, reporter: StageReporter, tracking_uri: str
) -> tuple[PreparedData, str, dict[str, float], RegisteredModel, PromotionOutcome, RegisteredModel]:
    """Train (or sweep), register, gate: the stages up to the model the endpoint will serve."""
    if config.tune is not None:  # the sweep's best trial replaces the single training run
        swept = sweep_and_register(config, reporter, tracking_uri, config_text)
        data, run_id, test_metrics, challenger = swept.data, swept.parent_run_id, swept.test_metrics, swept.model
    else:
        outcome = train_and_log(config, reporter, tracking_uri, config_text)
        data, run_id, test_metrics = outcome.data, outcome.run_id, outcome.test_metrics
        challenger = register_challenger(config, reporter, outcome, config_text)
    candidate = MlflowClient().get_model_version(challenger.name, challenger.version)
    promotion = gate_and_promote(config, reporter, tracking_uri, data, candidate, show_metrics=False)
    if promotion.champion_version is None:
        raise PromotionError(
            f"the gate rejected {challenger.name} version {challenger.version} and there is no "
            f"@{config.registry.alias} to serve instead",
            where="gate.thresholds",
            hint="See the failed checks above; loosen the thresholds or train a better model.",
        )
    champion = MlflowClient().get_model_version(challenger.name, promotion.champion_version)
    model = RegisteredModel(champion.name, str(champion.version), config.registry.alias, champion.run_id or "")
    return data, run_id, test_metrics, challenger, promotion, model


def _describe_answer(answer: dict, truth: object, data: PreparedData) -> str:
    if data.task == "regression":
        return f"{answer['prediction']:.4g} (true: {float(truth):.4g})"  # type: ignore[arg-type]
    label = answer["predicted_class"]
    true_name = data.class_names[int(data.target.encode(pd.Series([truth]))[0])]
    return f"{label} (p={answer['probabilities'][label]:.3f}; true: {true_name})"


def _summary_rows(result: PipelineResult) -> dict[str, str]:
    rows = {
        "MLflow run": result.run_id,
        "new model": f"{result.challenger.name} version {result.challenger.version}",
        # the new model's metrics, whether or not it is served
        **{f"  {name}": f"{value:.4f}" for name, value in result.test_metrics.items()},
    }
    decision = result.promotion.decision
    rows["gate"] = decision.summary() if decision else "already the champion"
    rows["served"] = f"{result.model.name} version {result.model.version} @{result.model.alias}"
    rows["endpoint"] = f"{result.endpoint_url}/predict"
    rows["prediction"] = result.prediction_text
    return rows


def _where_to_look(result: PipelineResult) -> dict[str, str]:
    return {"MLflow UI": result.tracking_ui, "Ray dashboard": result.ray_dashboard or "not started"}
