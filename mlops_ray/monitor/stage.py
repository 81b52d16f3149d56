"""``mlops-ray monitor``: has the served traffic drifted from what the model learned from, and what to do.

The chain: resolve the model (default ``@champion``) -> load its training reference
(``monitoring/reference.parquet`` in its run) and predict it with the model, so the
predictions have a reference too -> reduce the captured window with Ray Data -> judge
each feature and the predictions -> log a monitoring run (JSON + HTML report, metrics,
tags linking it to the version, and the version tagged back) -> alert or retrain when
something drifted. Exit codes: 0 no drift, 3 drift, 4 too little traffic to judge.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from mlops_ray.config import Config
from mlops_ray.config.monitor import DriftThresholds
from mlops_ray.data.reference import load_reference
from mlops_ray.monitor.actions import post_alert, submit_retraining
from mlops_ray.monitor.report import DriftReport, report_html
from mlops_ray.monitor.stats import (
    ColumnDrift,
    Reference,
    categorical_reference,
    compare,
    numeric_reference,
)
from mlops_ray.monitor.window import PREDICTION, Window, WindowSummary, summarize_window
from mlops_ray.registry.refs import parse_model_ref
from mlops_ray.reporting import StageReporter
from mlops_ray.runtime import connected
from mlops_ray.serve.capture import PREDICTION_PREFIX
from mlops_ray.serve.options import model_or_champion
from mlops_ray.serve.served_model import ServedModel
from mlops_ray.tags import (
    MONITOR_ACTION_TAG,
    MONITOR_DRIFTED_TAG,
    MONITOR_ENOUGH_ROWS_TAG,
    MONITOR_FEATURES_TAG,
    MONITOR_LAST_DRIFTED_TAG,
    MONITOR_LAST_RUN_TAG,
    MONITOR_MODEL_TAG,
    MONITOR_VERSION_TAG,
    RUN_KIND_TAG,
    WINDOW_SINCE_PARAM,
    WINDOW_UNTIL_PARAM,
)

EXIT_DRIFT = 3
METRIC_UNSAFE = re.compile(r"[^\w\-. /]")
EXIT_TOO_FEW_ROWS = 4


@dataclass(frozen=True)
class MonitorOutcome:
    report: DriftReport
    run_id: str
    report_dir: Path
    action: str | None  # what on_drift did, in words

    @property
    def exit_code(self) -> int:
        if not self.report.enough_rows:
            return EXIT_TOO_FEW_ROWS
        return EXIT_DRIFT if self.report.drifted else 0


def run_monitor(
    config: Config,
    reporter: StageReporter,
    config_path: str,
    overrides: list[str],
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> MonitorOutcome:
    settings = config.monitor
    until = until or datetime.now(UTC)
    window = Window(since, until) if since else Window.last(settings.window_hours, until)
    model = model_or_champion(config, model)
    with connected(config, reporter) as (tracking, _):
        with reporter.stage("reference", f"loading {model} and its training reference") as stage:
            client = MlflowClient(tracking.uri)
            served = ServedModel.load(parse_model_ref(model), client, max_rows=1_000_000)
            reference = load_reference(client, served.lineage["run_id"], model)
            references = _references(served, reference, settings.bins)
            stage.detail = f"version {served.version}, {len(reference)} reference rows"
        with reporter.stage("window", f"reading captured traffic {_span(window)}") as stage:
            prediction_column = PREDICTION_PREFIX + ("prediction" if served.task == "regression" else "predicted_class")
            summary = summarize_window(
                config.serve.capture.path, window, references, prediction_column, served.version, settings.sample_rows
            )
            rows = summary.rows if summary else 0
            stage.detail = f"{rows} rows" + (f" ({_versions(summary.versions)})" if summary else "")
        enough = rows >= settings.min_rows
        features: tuple[ColumnDrift, ...] = ()
        prediction = None
        if summary is not None and enough:
            with reporter.stage("drift", "comparing features and predictions with the reference") as stage:
                features, prediction = _judge(references, summary, settings.thresholds)
                drifted = [c.name for c in (*features, *([prediction] if prediction else [])) if c.drifted]
                stage.detail = f"drifted: {', '.join(drifted)}" if drifted else "no drift"
        report = DriftReport(
            served.name,
            served.version,
            window,
            rows,
            summary.versions if summary else {},
            enough,
            settings.min_rows,
            features,
            prediction,
        )
        with reporter.stage("report", "logging the monitoring run") as stage:
            run_id, folder = _log_report(config, client, report)
            stage.detail = f"run {run_id}; {folder / 'report.html'}"
        action = None
        if report.drifted and settings.on_drift != "none":
            with reporter.stage("action", f"on_drift: {settings.on_drift}") as stage:
                if settings.on_drift == "alert":
                    action = post_alert(settings, report.summary())
                else:
                    metadata = {"monitor_run_id": run_id, "model": f"{served.name}/{served.version}"}
                    submission = submit_retraining(settings, config_path, overrides, metadata)
                    action = f"retraining job {submission} submitted (`ray job status {submission}`)"
                client.set_tag(run_id, MONITOR_ACTION_TAG, action)
                stage.detail = action
    _print_summary(reporter, report, action)
    return MonitorOutcome(report, run_id, folder, action)


def _judge(
    references: dict[str, Reference], summary: WindowSummary, thresholds: DriftThresholds
) -> tuple[tuple[ColumnDrift, ...], ColumnDrift | None]:
    """Every feature (Bonferroni over the features), then the predictions when the version answered any row."""
    names = [n for n in references if n != PREDICTION]
    features = tuple(
        compare(references[n], summary.counts[n], _present(summary.sample, n), thresholds, tests=len(names))
        for n in names
    )
    if not summary.counts[PREDICTION].rows:
        return features, None
    prediction = compare(
        references[PREDICTION],
        summary.counts[PREDICTION],
        _present(summary.sample, PREDICTION),
        thresholds,
        tests=1,
        prediction=True,
    )
    return features, prediction


def _references(served: ServedModel, reference: pd.DataFrame, bins: int) -> dict[str, Reference]:
    preprocessing = served.packaged.preprocessing
    references: dict[str, Reference] = {}
    for column in preprocessing.numeric:
        references[column.name] = numeric_reference(column.name, _column(reference, column.name, float), bins)
    for column in preprocessing.categorical:
        references[column.name] = categorical_reference(column.name, _column(reference, column.name, object))
    # the packaged model's own frame (class or number per row), not the per-row answer dicts the endpoint builds
    answers = served.packaged.predict(None, reference[list(served.contract.features)])
    if served.task == "regression":
        references[PREDICTION] = numeric_reference(PREDICTION, answers["prediction"].to_numpy(float), bins)
    else:
        references[PREDICTION] = categorical_reference(PREDICTION, answers["predicted_class"].astype(str).to_numpy())
    return references


def _column(frame: pd.DataFrame, name: str, kind: type) -> np.ndarray:
    if name not in frame:
        return np.asarray([], dtype=kind)
    if kind is float:
        return pd.to_numeric(frame[name], errors="coerce").to_numpy(float)
    return frame[name].astype(object).to_numpy()


def _present(sample: pd.DataFrame, name: str) -> np.ndarray:
    return sample[name].dropna().to_numpy() if name in sample else np.asarray([])


def _log_report(config: Config, client: MlflowClient, report: DriftReport) -> tuple[str, Path]:
    """A monitoring run in the config's experiment, linked to the version both ways; a local copy of the report."""
    stamp = report.window.until.strftime("%Y%m%dT%H%M%SZ")
    folder = Path(config.monitor.report_dir) / f"{report.model_name}-{report.model_version}-{stamp}"
    folder.mkdir(parents=True, exist_ok=True)
    document = report.to_dict()
    (folder / "report.json").write_text(json.dumps(document, indent=2))
    (folder / "report.html").write_text(report_html(report))
    tags = {
        RUN_KIND_TAG: "monitoring",
        MONITOR_MODEL_TAG: report.model_name,
        MONITOR_VERSION_TAG: report.model_version,
        MONITOR_DRIFTED_TAG: str(report.drifted).lower(),
        MONITOR_ENOUGH_ROWS_TAG: str(report.enough_rows).lower(),
        MONITOR_FEATURES_TAG: ",".join(report.drifted_features),
    }
    with mlflow.start_run(run_name=f"monitor-{report.model_name}-{report.model_version}-{stamp}", tags=tags) as run:
        mlflow.log_params(
            {WINDOW_SINCE_PARAM: report.window.since.isoformat(), WINDOW_UNTIL_PARAM: report.window.until.isoformat()}
        )
        metrics = {"rows": float(report.rows), "drifted_features": float(len(report.drifted_features))}
        for column in report.columns:
            key = METRIC_UNSAFE.sub("_", column.name)  # MLflow refuses e.g. parentheses in metric names
            metrics[f"psi.{key}"] = column.psi
            metrics[f"p_value.{key}"] = column.p_value
        mlflow.log_metrics(metrics)
        mlflow.log_artifacts(str(folder), artifact_path="monitoring")  # the folder holds the two report files
    client.set_model_version_tag(report.model_name, report.model_version, MONITOR_LAST_RUN_TAG, run.info.run_id)
    client.set_model_version_tag(
        report.model_name, report.model_version, MONITOR_LAST_DRIFTED_TAG, tags[MONITOR_DRIFTED_TAG]
    )
    return run.info.run_id, folder


def _print_summary(reporter: StageReporter, report: DriftReport, action: str | None) -> None:
    rows = {
        column.name: f"{'DRIFT' if column.drifted else 'ok'}  PSI {column.psi:.3f}  "
        f"{column.test} p {column.p_value:.2g}" + (f"  ({'; '.join(column.reasons)})" if column.reasons else "")
        for column in report.columns
    }
    if not report.enough_rows:
        verdict = f"not enough traffic: {report.rows} rows, {report.min_rows} needed (exit {EXIT_TOO_FEW_ROWS})"
    elif report.drifted:
        verdict = f"DRIFT in {', '.join(report.drifted_features) or 'predictions'} (exit {EXIT_DRIFT})"
    else:
        verdict = "no drift (exit 0)"
    rows["verdict"] = verdict
    if action:
        rows["action"] = action
    reporter.table(f"drift of {report.model_name} version {report.model_version}, {_span(report.window)}", rows)


def _span(window: Window) -> str:
    return f"{window.since:%Y-%m-%d %H:%M} .. {window.until:%Y-%m-%d %H:%M} UTC"


def _versions(versions: dict[str, int]) -> str:
    return ", ".join(f"version {v}: {n}" for v, n in sorted(versions.items()))
