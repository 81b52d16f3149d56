"""``mlops-ray reproduce RUN_ID``: train again from a run's recorded config and compare the results.

The data fingerprint is checked before anything trains: reproducing on different
rows would measure the data change, not the training, so a mismatch is a refusal.
A sweep trial is reproduced from its sweep's config with the trial's parameters and
the number of epochs it actually ran (a scheduler may have stopped it early).
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import yaml
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from rich.table import Table

from mlops_ray.config import Config, apply_override, validate_config
from mlops_ray.data.fingerprint import fingerprint_of_source
from mlops_ray.errors import DataError, ReproduceError
from mlops_ray.reporting import StageReporter
from mlops_ray.runtime import connected
from mlops_ray.tags import CONFIG_ARTIFACT, FINGERPRINT_TAG, PARENT_TAG, REPRODUCES_TAG, STAGE_TAG
from mlops_ray.train.training_run import train_and_log

DEFAULT_TOLERANCE = 0.02


@dataclass(frozen=True)
class MetricDifference:
    name: str
    original: float
    reproduced: float

    @property
    def difference(self) -> float:
        return self.reproduced - self.original


@dataclass(frozen=True)
class Reproduction:
    original_run_id: str
    run_id: str
    differences: list[MetricDifference]
    tolerance: float

    @property
    def exceeding(self) -> list[MetricDifference]:
        """Differences beyond the tolerance (a metric undefined in either run is not compared)."""
        return [d for d in self.differences if math.isfinite(d.difference) and abs(d.difference) > self.tolerance]

    @property
    def matches(self) -> bool:
        return not self.exceeding


def run_reproduce(
    run_id: str,
    reporter: StageReporter,
    tracking_uri: str | None = None,
    overrides: tuple[str, ...] = (),
    tolerance: float = DEFAULT_TOLERANCE,
) -> Reproduction:
    client = MlflowClient(tracking_uri)
    original = _get_run(client, run_id)
    config = recorded_config(client, original, tracking_uri, overrides)
    expected = original.data.tags.get(FINGERPRINT_TAG) or _input_digest(original)
    with connected(config, reporter) as (tracking, _):
        with reporter.stage("verify", f"fingerprinting {config.data.source}") as stage:
            uri, now = fingerprint_of_source(config.data)
            if expected is None:
                raise ReproduceError(f"run {run_id} recorded no data fingerprint, so its data cannot be verified")
            if now.digest != expected:
                raise DataError(
                    f"the data changed since run {run_id}: it trained on fingerprint {expected[:16]}, "
                    f"the source now has {now.digest[:16]} ({now.rows} rows); refusing to reproduce.",
                    where=uri,
                    hint="Restore the original data (or point data.source at it with --set).",
                )
            stage.detail = f"fingerprint {now.digest[:12]} matches run {run_id}"
        outcome = train_and_log(config, reporter, tracking.uri)
        mlflow.MlflowClient(tracking.uri).set_tag(outcome.run_id, REPRODUCES_TAG, run_id)
    reproduced = _get_run(client, outcome.run_id)
    result = Reproduction(run_id, outcome.run_id, compare(original, reproduced), tolerance)
    _print(reporter, result)
    return result


def recorded_config(
    client: MlflowClient, run: Run, tracking_uri: str | None, overrides: tuple[str, ...] = ()
) -> Config:
    """The run's config.yaml (a trial's: its sweep's, with the trial's parameters and epochs)."""
    source = run
    trial_overrides: list[str] = []
    if run.data.tags.get(STAGE_TAG) == "trial":
        source = _get_run(client, run.data.tags[PARENT_TAG])
        trial_overrides = [f"{k}={v}" for k, v in run.data.params.items()]
        epochs = len(client.get_metric_history(run.info.run_id, "val_loss"))
        trial_overrides.append(f"train.epochs={epochs}")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(source.info.run_id, CONFIG_ARTIFACT, tmp)
        except (MlflowException, OSError):
            raise ReproduceError(
                f"run {source.info.run_id} has no config.yaml artifact; only train and sweep runs (and their "
                "trials) can be reproduced",
                where=run.info.run_id,
            ) from None
        raw = yaml.safe_load(Path(path).read_text())
    raw.pop("tune", None)
    raw.setdefault("tracking", {})
    if tracking_uri:
        raw["tracking"]["uri"] = tracking_uri
    for override in (*trial_overrides, *overrides):
        apply_override(raw, override)
    return validate_config(raw, source=f"config.yaml of run {source.info.run_id}")


def compare(original: Run, reproduced: Run) -> list[MetricDifference]:
    """Test metrics both runs logged; for a trial without test metrics, the last validation metrics."""
    mine, theirs = reproduced.data.metrics, original.data.metrics
    names = sorted(k for k in theirs if k.startswith("test_") and k in mine)
    if not names:
        names = sorted(k for k in theirs if k.startswith("val_") and k in mine)
    return [MetricDifference(k, theirs[k], mine[k]) for k in names]


def _get_run(client: MlflowClient, run_id: str) -> Run:
    try:
        return client.get_run(run_id)
    except MlflowException:
        raise ReproduceError(
            f"no run '{run_id}' in the tracking store {client.tracking_uri}",
            where="RUN_ID",
            hint="Copy the id from `mlops-ray lineage MODEL_REF`, or pass --tracking-uri.",
        ) from None


def _input_digest(run: Run) -> str | None:
    inputs = run.inputs.dataset_inputs if run.inputs else []
    return inputs[0].dataset.digest if inputs else None


def _print(reporter: StageReporter, result: Reproduction) -> None:
    table = Table(title=f"run {result.run_id} reproduces {result.original_run_id}", title_justify="left")
    for heading in ("metric", "original", "reproduced", "difference"):
        table.add_column(heading, justify="left" if heading == "metric" else "right")
    for d in result.differences:
        table.add_row(d.name, f"{d.original:.4f}", f"{d.reproduced:.4f}", f"{d.difference:+.4f}")
    reporter.console.print(table)
    over = [d.name for d in result.exceeding]
    if over:
        reporter.console.print(f"[red]{len(over)} difference(s) exceed ±{result.tolerance:g}:[/] {', '.join(over)}.")
    else:
        reporter.console.print(f"Every difference is within ±{result.tolerance:g}.")
