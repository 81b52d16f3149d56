"""The governance chain on real Ray and MLflow: evaluate, gate, promote, roll back, lineage, reproduce.

Three models are trained on the same generated data: a moderate one (one epoch), a
deliberately broken one (one epoch at a learning rate that barely moves the
weights) and a good one (eight epochs), once for the module. The gate must make the
first the champion, reject the second with its reasons, and promote the third;
rollback must bring back the first. The test split has 450 rows, enough for the
bootstrap to tell these apart. The other tests read the same store.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from click.testing import Result
from mlflow.tracking import MlflowClient
from rich.console import Console
from typer.testing import CliRunner

from mlops_ray.cli import app
from mlops_ray.config import Config, dump_config, load_config
from mlops_ray.data import prepare_data
from mlops_ray.errors import ConfigError, DataError, ModelRefError, PromotionError
from mlops_ray.evaluate.scoring import IN_PROCESS_ROWS, TRUE_COLUMN, predict_test_split
from mlops_ray.evaluate.stage import run_evaluation
from mlops_ray.promote.stage import run_promotion, run_rollback
from mlops_ray.registry import register_model
from mlops_ray.registry.aliases import champion_history
from mlops_ray.registry.lineage import version_tags
from mlops_ray.registry.trace import trace_version, versions_trained_on
from mlops_ray.reporting import StageReporter
from mlops_ray.runtime import connect_tracking
from mlops_ray.train.reproduce import run_reproduce
from mlops_ray.train.training_run import train_and_log

pytestmark = [pytest.mark.usefixtures("ray_cluster"), pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
NAME = "gate-test"


def make_config(tmp_path: Path, *extra: str) -> Config:
    return load_config(
        ROOT / "configs" / "quickstart.yaml",
        [
            "data.source=synthetic:classification",
            "data.synthetic={rows: 3000, features: 6, categoricals: 1, seed: 5}",
            "model.depth=1",
            "model.width=32",
            "train.num_workers=0",  # local mode: the gate is under test, not the worker group
            "train.resources_per_worker={CPU: 0.5}",
            "train.batch_size=64",
            "train.lr=0.003",
            "train.seed=0",
            f"train.storage_path={tmp_path / 'ray_results'}",
            f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
            f"tracking.artifact_location={tmp_path / 'artifacts'}",
            f"registry.model_name={NAME}",
            "evaluate.slices=[cat_0, num_0]",
            *extra,
        ],
    )


def reporter(out: io.StringIO | None = None) -> StageReporter:
    return StageReporter(Console(file=out or io.StringIO(), width=200))


@dataclass(frozen=True)
class Trained:
    """The module's shared store: three versions of NAME, registered without any alias yet."""

    tmp: Path
    moderate: Config
    runs: dict[str, str]  # version -> its training run
    model_uris: dict[str, str]

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(self.moderate.tracking.uri)


def train_version(config: Config) -> tuple[str, str, str]:
    """Train, log and register a version (no alias): (version, run id, logged model URI)."""
    tracking = connect_tracking(config.tracking)
    outcome = train_and_log(config, reporter(), tracking.uri)
    model = register_model(outcome.model_uri, NAME, "trained", version_tags(outcome.data, dump_config(config)))
    return model.version, outcome.run_id, outcome.model_uri


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    tmp = tmp_path_factory.mktemp("gate")
    moderate = make_config(tmp, "train.epochs=1")
    weak = make_config(tmp, "train.epochs=1", "train.lr=0.000001")
    good = make_config(tmp, "train.epochs=8")
    runs, uris = {}, {}
    for config in (moderate, weak, good):
        version, run_id, uri = train_version(config)
        runs[version], uris[version] = run_id, uri
    return Trained(tmp, moderate, runs, uris)


def test_first_champion_weak_rejected_better_promoted_idempotent_and_rolled_back(trained: Trained) -> None:
    client, config = trained.client, trained.moderate
    first = run_promotion(config, reporter(), f"{NAME}/1")
    assert str(first.decision.verdict) == "FIRST_MODEL" and first.moved
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"

    out = io.StringIO()
    rejected = run_promotion(config, reporter(out), f"{NAME}/2")  # one epoch at lr 1e-6: barely trained
    assert str(rejected.decision.verdict) == "REJECT" and not rejected.moved
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"  # untouched
    failed = [c.text for c in rejected.decision.checks if not c.passed]
    assert failed and "f1_macro" in failed[0] and "champion version 1" in failed[0]
    assert "REJECT" in out.getvalue() and "@champion stays on version 1" in out.getvalue()
    tags = client.get_model_version(NAME, "2").tags
    assert tags["promotion.verdict"] == "REJECT" and "FAIL" in tags["promotion.reasons"]
    record_path = client.download_artifacts(tags["promotion.run_id"], "promotion/decision.json")
    record = json.loads(Path(record_path).read_text())
    assert record["verdict"] == "REJECT" and record["champion_version"] == "1"
    assert record["improvement"]["high"] < 0  # clearly worse: the whole interval is below zero

    client.set_registered_model_alias(NAME, "challenger", "3")  # the default --model is @challenger
    promoted = run_promotion(config, reporter())
    assert str(promoted.decision.verdict) == "PROMOTE" and promoted.moved
    assert promoted.decision.improvement.low > 0
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "3"

    again = run_promotion(config, reporter())  # promoting twice changes nothing
    assert again.decision is None and not again.moved and again.champion_version == "3"
    assert champion_history(client, NAME) == ["1", "3"]

    assert run_rollback(config, reporter()) == "1"
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"
    with pytest.raises(PromotionError, match="no earlier champion"):
        run_rollback(config, reporter())

    chain = trace_version(f"{NAME}/3")  # lineage, both ways
    digest = client.get_model_version(NAME, "3").tags["data.fingerprint"]
    kinds = [link.kind for link in chain]
    assert kinds[:3] == ["data", "run", "version"] and chain[0].ident == digest
    assert chain[1].ident == trained.runs["3"] and "test_f1_macro" in chain[1].facts
    assert next(link for link in chain if link.kind == "promotion").ident == "PROMOTE"
    trained_on = versions_trained_on(digest[:12])
    assert [v.version for v in trained_on] == ["1", "2", "3"] and "champion" in trained_on[0].aliases
    assert versions_trained_on("0123456789abcdef") == []


def test_a_first_model_below_the_thresholds_is_rejected_and_nothing_is_champion(trained: Trained) -> None:
    other = "gate-thresholds"
    connect_tracking(trained.moderate.tracking)
    register_model(trained.model_uris["2"], other, "challenger", {})
    config = make_config(trained.tmp, f"registry.model_name={other}", "gate.thresholds={f1_macro: 0.95}")
    outcome = run_promotion(config, reporter())
    assert str(outcome.decision.verdict) == "REJECT" and outcome.champion_version is None
    (check,) = outcome.decision.checks
    assert not check.passed and check.text.startswith("f1_macro") and ">= 0.95 (threshold)" in check.text
    assert "champion" not in trained.client.get_registered_model(other).aliases


def test_evaluate_logs_metrics_slices_with_the_worst_flagged_and_plots(trained: Trained) -> None:
    config, client = trained.moderate, trained.client
    out = io.StringIO()
    result = run_evaluation(config, reporter(out), f"{NAME}/3")
    for name in ("accuracy", "f1_macro", "precision_macro", "recall_macro", "roc_auc", "log_loss", "calibration_error"):
        assert 0 <= result.metrics[f"test_{name}"] <= (10 if name == "log_loss" else 1), name
    assert {s.column for s in result.slices} == {"cat_0", "num_0"}
    assert sum(s.rows for s in result.slices if s.column == "num_0") == 450  # 4 quantile bins cover the split
    assert len([s for s in result.slices if s.column == "num_0"]) == 4
    assert result.worst_slice is not None
    assert result.worst_slice.metric == min(s.metric for s in result.slices if s.rows >= 10)
    assert "worst" in out.getvalue()
    experiment = client.get_experiment_by_name(config.tracking.experiment).experiment_id
    (run,) = client.search_runs([experiment], filter_string="tags.`mlops_ray.stage` = 'evaluate'")
    plots = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "evaluation/plots")}
    assert plots == {"confusion_matrix.png", "roc_curve.png", "pr_curve.png", "calibration.png"}
    assert run.data.metrics["test_f1_macro"] == result.metrics["test_f1_macro"]
    with pytest.raises(ConfigError, match="'region' are not in the test rows; columns: num_0"):
        run_evaluation(make_config(trained.tmp, "evaluate.slices=[region]"), reporter(), f"{NAME}/3")


def test_a_small_test_split_scored_in_process_matches_ray_data_tasks_row_for_row(trained: Trained) -> None:
    """Below IN_PROCESS_ROWS the driver scores the split; the Ray Data path must give the very same rows."""
    config = trained.moderate
    data = prepare_data(config.data)
    uris = {"champion": f"models:/{NAME}/1", "challenger": f"models:/{NAME}/3"}
    args = (uris, config.tracking.uri, data.test, data.features, data.target)
    here = predict_test_split(*args, keep=("cat_0",))
    tasks = predict_test_split(*args, keep=("cat_0",), in_process_below=0)
    assert data.test.count() == 450 < IN_PROCESS_ROWS
    # the same values; Ray Data's batches come back with pyarrow-backed dtypes (int64[pyarrow])
    pd.testing.assert_frame_equal(here.frame, tasks.frame, check_dtype=False)
    assert list(here.frame.columns)[:1] == [TRUE_COLUMN] and "cat_0" in here.frame.columns
    assert here.metrics("challenger", ("accuracy",)) == tasks.metrics("challenger", ("accuracy",))


def test_reproduce_matches_the_original_run_and_refuses_changed_data(trained: Trained) -> None:
    original = trained.runs["1"]
    uri = trained.moderate.tracking.uri
    again = run_reproduce(original, reporter(), uri)
    assert again.run_id != original and again.matches
    assert {d.name for d in again.differences} >= {"test_accuracy", "test_f1_macro"}
    assert max(abs(d.difference) for d in again.differences) <= 0.02  # the stated tolerance
    assert trained.client.get_run(again.run_id).data.tags["mlops_ray.reproduces"] == original
    changed = "data.synthetic={rows: 3000, features: 6, categoricals: 1, seed: 6}"
    with pytest.raises(DataError, match="the data changed since run"):
        run_reproduce(original, reporter(), uri, overrides=(changed,))


def test_the_cli_prints_lineage_and_a_bad_model_ref_is_a_clear_error(trained: Trained) -> None:
    uri = trained.moderate.tracking.uri

    def lineage(*args: str) -> Result:  # the CLI in this process: a subprocess would only add its start-up
        return CliRunner().invoke(app, ["lineage", *args, "--tracking-uri", uri])

    shown = lineage(f"{NAME}/2")
    assert shown.exit_code == 0, shown.output
    digest = trained.client.get_model_version(NAME, "2").tags["data.fingerprint"]
    for expected in (f"data       {digest}", f"run        {trained.runs['2']}", f"version    {NAME}/2"):
        assert expected in shown.stdout
    with pytest.raises(ModelRefError, match=r"has no alias 'nope' \(aliases: .*@trained -> version 3"):
        trace_version(f"{NAME}@nope")
    bad = lineage("not a ref")
    assert bad.exit_code == 1 and "is not a model reference" in bad.stderr and "Traceback" not in bad.output
    assert [v.version for v in versions_trained_on(digest[:10])] == ["1", "2", "3"]
    listed = lineage("--dataset", digest[:10])
    assert listed.exit_code == 0, listed.output
    assert all(f"{NAME}/{n}  run {trained.runs[n]}" in listed.stdout for n in "123")
