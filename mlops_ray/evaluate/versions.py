"""Several registered versions scored in one pass over the test split: metrics, slices, plots.

``mlops-ray evaluate`` scores one version, the gate scores the challenger with the
champion, the comparison report any two: one pass over the same rows for all of
them, so the gate's bootstrap and the report's intervals are paired. The test split is
rebuilt from the config (splits are deterministic), and a version's recorded data
fingerprint is compared with today's data: a model evaluated on other data than it was
split from may have seen some of these "test" rows in training, which the user must be
told.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import mlflow
import numpy as np
from mlflow.entities.model_registry import ModelVersion
from rich.table import Table

from mlops_ray.config import Config
from mlops_ray.data import PreparedData
from mlops_ray.errors import ConfigError
from mlops_ray.evaluate.metrics import metric_direction
from mlops_ray.evaluate.plots import classification_plots, regression_plots
from mlops_ray.evaluate.scoring import ScoredRows, predict_test_split
from mlops_ray.evaluate.slices import SliceResult, slice_metrics, worst_slice
from mlops_ray.reporting import StageReporter
from mlops_ray.tags import EVALUATION_DIR, FINGERPRINT_TAG


@dataclass(frozen=True)
class ModelEvaluation:
    """One registered version's results on the test split."""

    name: str
    version: str
    metrics: dict[str, float]  # test_<metric>
    slices: list[SliceResult] = field(default_factory=list)
    worst_slice: SliceResult | None = None

    def value(self, metric: str) -> float:
        return self.metrics[f"test_{metric}"]


@dataclass(frozen=True)
class Evaluated:
    """The scored rows of every evaluated version, and each version's results."""

    scored: ScoredRows
    results: dict[str, ModelEvaluation]  # key ("candidate", "champion") -> results


def evaluate_versions(
    config: Config, data: PreparedData, tracking_uri: str, versions: dict[str, ModelVersion]
) -> Evaluated:
    """Score every version in one pass over the test split; metrics and slices for each."""
    slices = _slice_columns(config, data)
    uris = {key: f"models:/{v.name}/{v.version}" for key, v in versions.items()}
    scored = predict_test_split(uris, tracking_uri, data.test, data.features, data.target, keep=slices)
    names = metric_names(config, data.task)
    gate_metric = config.gate.metric_for(data.task)
    results = {}
    for key, version in versions.items():
        found = slice_metrics(
            scored.frame[list(slices)],
            slices,
            scored.scorer(key, gate_metric),
            bins=config.evaluate.slice_bins,
            min_rows=config.evaluate.min_slice_rows,
        )
        results[key] = ModelEvaluation(
            version.name,
            str(version.version),
            scored.metrics(key, names),
            found,
            worst_slice(found, metric_direction(gate_metric)),
        )
    return Evaluated(scored, results)


def log_evaluation(evaluated: Evaluated, key: str, data: PreparedData, prefix: str = "") -> None:
    """Metrics, per-slice results and plots of ``key`` into the active run (under ``prefix``)."""
    result = evaluated.results[key]
    mlflow.log_metrics({f"{prefix}{k}": v for k, v in result.metrics.items() if np.isfinite(v)})
    mlflow.log_dict(
        {
            "model": f"{result.name}/{result.version}",
            "metrics": result.metrics,
            "slices": [asdict(s) for s in result.slices],
            "worst_slice": asdict(result.worst_slice) if result.worst_slice else None,
        },
        f"{prefix}{EVALUATION_DIR}/results.json",
    )
    truth, output = evaluated.scored.truth, evaluated.scored.output(key)
    if data.task == "regression":
        figures = regression_plots(truth, output)
    else:
        figures = classification_plots(truth, output, data.class_names)
    with tempfile.TemporaryDirectory() as tmp:
        for name, figure in figures.items():
            figure.savefig(Path(tmp) / name, dpi=100, bbox_inches="tight")
        mlflow.log_artifacts(tmp, f"{prefix}{EVALUATION_DIR}/plots")


def warn_if_other_data(version: ModelVersion, data: PreparedData, reporter: StageReporter) -> None:
    trained_on = version.tags.get(FINGERPRINT_TAG)
    if trained_on and trained_on != data.fingerprint.digest:
        reporter.warn(
            f"{version.name} version {version.version} was trained on data {trained_on[:12]}, but the config's "
            f"source now has fingerprint {data.fingerprint.digest[:12]}: its test rows may differ from the ones it "
            "was split from, and some may have been training rows"
        )


def print_evaluation(reporter: StageReporter, result: ModelEvaluation, title: str) -> None:
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in result.metrics.items():
        table.add_row(name.removeprefix("test_"), f"{value:.4f}")
    reporter.console.print(table)
    if not result.slices:
        return
    table = Table(title="slices (the gate metric per slice; the worst is flagged)", title_justify="left")
    for heading in ("column", "slice", "rows", "value", ""):
        table.add_column(heading, justify="right" if heading in ("rows", "value") else "left")
    for s in result.slices:
        flag = "worst" if s == result.worst_slice else ""
        table.add_row(s.column, s.value, str(s.rows), "-" if np.isnan(s.metric) else f"{s.metric:.4f}", flag)
    reporter.console.print(table)


def metric_names(config: Config, task: str) -> tuple[str, ...]:
    """The configured metrics plus every metric the gate reads."""
    names = list(config.evaluate.metrics_for(task))
    for extra in (config.gate.metric_for(task), *config.gate.thresholds):
        if extra not in names:
            names.append(extra)
    return tuple(names)


def _slice_columns(config: Config, data: PreparedData) -> tuple[str, ...]:
    available = list(data.test.schema().names)
    missing = [c for c in config.evaluate.slices if c not in available]
    if missing:
        raise ConfigError(
            f"slice column(s) {', '.join(repr(c) for c in missing)} are not in the test rows; "
            f"columns: {', '.join(available)}",
            where="evaluate.slices",
        )
    return tuple(config.evaluate.slices)
