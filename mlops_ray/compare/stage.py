"""``mlops-ray report``: compare a version with another (default: the champion), for a pull request or a person.

Both versions are scored on the same test rows in one pass (``evaluate_versions``,
as the gate does), every metric and slice gets a paired-bootstrap interval of the
difference, the behavioural tests run on both, and the versions' lineage and schema
contracts are set side by side. The report is written as Markdown (with its plots
next to it) or as one self-contained HTML page, and logged to MLflow as a
``comparison`` run with both files.
"""

from __future__ import annotations

import io
import re
import tempfile
from pathlib import Path
from typing import Literal

import mlflow
import numpy as np
from matplotlib.figure import Figure
from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient
from rich.console import Console

from mlops_ray.compare.diff import schema_changes
from mlops_ray.compare.report import (
    COMMENT_LIMIT,
    ComparisonReport,
    MetricRow,
    SliceRow,
    VersionFacts,
    headline,
    metric_delta_figure,
    render_html,
    render_markdown,
)
from mlops_ray.config import Config
from mlops_ray.data import PreparedData
from mlops_ray.data.prepare import prepare_stage
from mlops_ray.errors import ModelRefError
from mlops_ray.evaluate.bootstrap import Interval, paired_bootstrap
from mlops_ray.evaluate.metrics import metric_direction
from mlops_ray.evaluate.plots import classification_plots, regression_plots
from mlops_ray.evaluate.scoring import ScoredRows
from mlops_ray.evaluate.slices import slice_positions
from mlops_ray.evaluate.versions import evaluate_versions, metric_names, warn_if_other_data
from mlops_ray.modeltests.results import behavioural_results
from mlops_ray.registry.refs import ModelRef, alias_version, resolve_model_ref
from mlops_ray.reporting import StageReporter
from mlops_ray.runtime import connected
from mlops_ray.serve.served_model import ServedModel, logged_schema
from mlops_ray.tags import MODEL_TAG, REPORT_AGAINST_TAG, REPORT_DIR, RUN_KIND_TAG, STAGE_TAG, VERSION_TAG

Format = Literal["markdown", "html"]
_BARE_ALIAS = re.compile(r"^[A-Za-z][\w-]*$")


def run_report(
    config: Config, reporter: StageReporter, model_ref: str, against: str, fmt: Format, output: Path
) -> ComparisonReport:
    with connected(config, reporter) as (tracking, _):
        client = MlflowClient(tracking.uri)
        candidate = resolve_model_ref(model_ref, client)
        other = resolve_against(client, candidate, against)
        data = prepare_stage(config, reporter)
        warn_if_other_data(candidate, data, reporter)
        versions = {"candidate": candidate} | ({"against": other} if other else {})
        subject = f"version {candidate.version}" + (f" and version {other.version}" if other else "")
        with reporter.stage("compare", f"scoring {subject} on the test split") as stage:
            report = build_report(config, client, data, tracking.uri, versions, against)
            stage.detail = headline(report).replace("**", "")
        with reporter.stage("report", f"writing {output}") as stage:
            run_id = write_report(report, fmt, output)
            stage.detail = f"{output} ({output.stat().st_size} bytes); MLflow run {run_id}"
    return report


def resolve_against(client: MlflowClient, candidate: ModelVersion, against: str) -> ModelVersion | None:
    """``champion`` (an alias of the same model), ``7`` (its version 7), or a full ``name@alias`` / ``name/7``.

    A missing alias of the same model gives None (the first model has no champion yet);
    the candidate itself is refused, since comparing a version with itself says nothing.
    """
    text = against.strip()
    if text.isdigit():
        ref = ModelRef(candidate.name, version=text)
    elif _BARE_ALIAS.match(text):
        if alias_version(client, candidate.name, text) is None:
            return None
        ref = ModelRef(candidate.name, alias=text)
    else:
        ref = None
    other = resolve_model_ref(ref or text, client)
    if other.name == candidate.name and str(other.version) == str(candidate.version):
        raise ModelRefError(
            f"is {candidate.name} version {candidate.version} itself; a report compares two different versions",
            where=f"--against {against}",
        )
    return other


def build_report(
    config: Config,
    client: MlflowClient,
    data: PreparedData,
    tracking_uri: str,
    versions: dict[str, ModelVersion],
    against: str,
) -> ComparisonReport:
    evaluated = evaluate_versions(config, data, tracking_uri, versions)
    scored, compared = evaluated.scored, "against" in versions
    gate = config.gate
    headline = gate.metric_for(data.task)
    metrics = []
    for name in metric_names(config, data.task):
        key = f"test_{name}"
        delta = _interval(scored, name, None, config) if compared else None
        theirs = evaluated.results["against"].metrics[key] if compared else None
        mine = evaluated.results["candidate"].metrics[key]
        metrics.append(MetricRow(name, mine, theirs, delta, metric_direction(name) > 0))
    slices = []
    for column, value, positions in slice_positions(scored.frame, config.evaluate.slices, config.evaluate.slice_bins):
        if len(positions) < config.evaluate.min_slice_rows:
            continue
        mine = scored.scorer("candidate", headline)(positions)
        theirs = scored.scorer("against", headline)(positions) if compared else None
        delta = _interval(scored, headline, positions, config) if compared else None
        slices.append(SliceRow(column, value, len(positions), mine, theirs, delta))
    served = {
        key: ServedModel.load(ModelRef(v.name, version=str(v.version)), client, 1_000_000)
        for key, v in versions.items()
    }
    quiet = StageReporter(Console(file=io.StringIO()))
    facts = {}
    for key, model in served.items():
        label = f"version {model.version}" if key == "candidate" else _against_label(against, model.version)
        tests = behavioural_results(config, client, model, quiet)
        facts[key] = VersionFacts(label, model.version, model.lineage, tests)
    schemas = {k: logged_schema(client, m.lineage.get("run_id", "")) for k, m in served.items()}
    changes = []
    if compared:
        old, new = served["against"].packaged.preprocessing, served["candidate"].packaged.preprocessing
        changes = schema_changes(schemas["against"], schemas["candidate"], old, new)
    report = ComparisonReport(
        versions["candidate"].name,
        facts["candidate"],
        facts.get("against"),
        len(scored.frame),
        data.fingerprint.digest,
        headline,
        gate.confidence,
        metrics,
        slices,
        changes,
    )
    report.figures = _figures(report, scored, data)
    return report


def write_report(report: ComparisonReport, fmt: Format, output: Path) -> str:
    """Write the report (Markdown plots into ``<stem>_plots/``), log it as a comparison run; return the run id."""
    output.parent.mkdir(parents=True, exist_ok=True)
    links: dict[str, str] = {}
    if fmt == "markdown":
        folder = output.parent / f"{output.stem}_plots"
        folder.mkdir(exist_ok=True)
        for name, figure in report.figures.items():
            figure.savefig(folder / name, dpi=80, bbox_inches="tight")
            links[name.removesuffix(".png")] = f"{folder.name}/{name}"
        text = render_markdown(report, links)
        if len(text) > COMMENT_LIMIT:
            text = text[: COMMENT_LIMIT - 200] + "\n\n(cut to fit a pull-request comment; the HTML report is whole)\n"
    else:
        text = render_html(report)
    output.write_text(text)
    tags = {RUN_KIND_TAG: "comparison", STAGE_TAG: "report", MODEL_TAG: report.model}
    tags[VERSION_TAG] = report.candidate.version
    if report.against:
        tags[REPORT_AGAINST_TAG] = report.against.version
    with mlflow.start_run(run_name=f"{report.model}-v{report.candidate.version}-report", tags=tags) as run:
        mlflow.log_dict(report.to_dict(), f"{REPORT_DIR}/report.json")
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "report.md").write_text(render_markdown(report, {}))
            (Path(tmp) / "report.html").write_text(render_html(report) if fmt == "markdown" else text)
            mlflow.log_artifacts(tmp, REPORT_DIR)
    return run.info.run_id


def _interval(scored: ScoredRows, metric: str, positions: np.ndarray | None, config: Config) -> Interval:
    """Paired bootstrap of candidate minus the other version, over all test rows or one slice's."""
    mine, theirs = scored.scorer("candidate", metric), scored.scorer("against", metric)
    base = np.arange(len(scored.frame)) if positions is None else positions

    def delta(resample: np.ndarray) -> float:
        picked = base[resample]
        return mine(picked) - theirs(picked)

    gate = config.gate
    return paired_bootstrap(delta, len(base), gate.bootstrap_samples, gate.confidence, gate.seed)


def _figures(report: ComparisonReport, scored: ScoredRows, data: PreparedData) -> dict[str, Figure]:
    figures = {}
    deltas = metric_delta_figure(report)
    if deltas is not None:
        figures["metric_deltas.png"] = deltas
    truth, output = scored.truth, scored.output("candidate")
    if data.task == "regression":
        found = regression_plots(truth, output)
    else:
        found = classification_plots(truth, output, data.class_names)
    figures |= {f"candidate_{name}": figure for name, figure in found.items()}
    return figures


def _against_label(against: str, version: str) -> str:
    text = against.strip()
    return f"@{text} (version {version})" if _BARE_ALIAS.match(text) else f"version {version}"
