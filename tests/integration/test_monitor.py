"""``mlops-ray monitor`` on traffic whose drift is known: none, or a mean shift on two features and a new category.

The model is a real packaged, registered version (preprocessing fitted by Ray Data on
synthetic rows, a network from the model builder, logged by the pipeline's own
function, which also logs the monitoring reference); its weights are a seeded
initialisation, because what is checked is monitoring, not model quality. Traffic is
fresh synthetic rows (another seed of the same generator: the training distribution),
predicted by the loaded model and written by the serving capture writer, so the
window has exactly the format and partitions that Serve writes.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import mlflow
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from mlops_ray.cli import app
from mlops_ray.config import Config, SyntheticConfig, load_config
from mlops_ray.data import PreparedData, prepare_data
from mlops_ray.data.synthetic import LABEL, synthetic_table
from mlops_ray.errors import ModelRefError
from mlops_ray.models import ModelSpec, build_model
from mlops_ray.models.record import TrainResult
from mlops_ray.monitor.stage import MonitorOutcome, run_monitor
from mlops_ray.registry.lineage import version_tags
from mlops_ray.registry.model_store import log_packaged_model, register_model
from mlops_ray.registry.refs import parse_model_ref
from mlops_ray.reporting import StageReporter
from mlops_ray.runtime import connect_tracking
from mlops_ray.serve.capture import CaptureWriter
from mlops_ray.serve.served_model import ServedModel
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
MODEL_NAME = "drift-watch"
SHAPE = {"features": 6, "categoricals": 2, "categories": 4}
FEATURES = [f"num_{i}" for i in range(6)] + ["cat_0", "cat_1"]
TRAFFIC_ROWS = 1500
pytestmark = pytest.mark.usefixtures("ray_cluster")


@dataclasses.dataclass(frozen=True)
class Watched:
    tmp: Path
    overrides: list[str]
    config: Config
    served: ServedModel


def overrides_for(tmp: Path) -> list[str]:
    return [
        "data.source=synthetic:classification",
        "data.synthetic.rows=4000",
        *(f"data.synthetic.{k}={v}" for k, v in SHAPE.items()),
        f"tracking.uri=sqlite:///{tmp / 'mlflow.db'}",
        f"tracking.artifact_location={tmp / 'artifacts'}",
        f"registry.model_name={MODEL_NAME}",
        f"monitor.report_dir={tmp / 'reports'}",
        "monitor.min_rows=500",
    ]


def register(config: Config, data: PreparedData, alias: str = "champion") -> None:
    spec = ModelSpec.from_config(config.model, data.preprocessing.width, len(data.class_names))
    torch.manual_seed(0)
    trained = TrainResult(spec, {k: v.clone() for k, v in build_model(spec).state_dict().items()}, {}, "", 0, {})
    connect_tracking(config.tracking)
    with mlflow.start_run(run_name="monitor-fixture"):
        uri = log_packaged_model(trained, data)
    register_model(uri, MODEL_NAME, alias, version_tags(data, "monitor fixture"))


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> Watched:
    tmp = tmp_path_factory.mktemp("monitor")
    overrides = overrides_for(tmp)
    config = load_config(ROOT / "configs" / "quickstart.yaml", overrides)
    data = prepare_data(config.data)
    assert data.reference is not None and list(data.reference.columns) == FEATURES
    register(config, data)
    served = ServedModel.load(parse_model_ref(f"{MODEL_NAME}@champion"), MlflowClient(config.tracking.uri), 10_000)
    return Watched(tmp, overrides, config, served)


def traffic(seed: int) -> pd.DataFrame:
    """Fresh rows from the training distribution: the same generator, another seed."""
    config = SyntheticConfig(rows=TRAFFIC_ROWS, seed=seed, **SHAPE)
    return synthetic_table(config, "classification").to_pandas().drop(columns=[LABEL])


def capture(watched: Watched, frame: pd.DataFrame, folder: str) -> list[str]:
    """Predict ``frame`` with the served model and write it as Serve's capture does; returns the --set overrides."""
    path = watched.tmp / folder
    writer = CaptureWriter(watched.config.serve.capture.model_copy(update={"path": str(path), "sample_rate": 1.0}))
    for start in range(0, len(frame), 100):  # requests of 100 rows
        rows = frame.iloc[start : start + 100].reset_index(drop=True)
        writer.add(watched.served.version, rows, watched.served.predict(rows))
    writer.close()
    return [*watched.overrides, f"serve.capture.path={path}"]


def monitor(watched: Watched, overrides: list[str]) -> MonitorOutcome:
    config = load_config(ROOT / "configs" / "quickstart.yaml", overrides)
    return run_monitor(config, StageReporter(), "configs/quickstart.yaml", overrides)


def test_traffic_from_the_training_distribution_raises_no_drift_over_seeds(watched: Watched) -> None:
    false_alarms = []
    for seed in range(101, 107):
        outcome = monitor(watched, capture(watched, traffic(seed), f"clean-{seed}"))
        assert outcome.report.enough_rows and outcome.report.rows == TRAFFIC_ROWS
        if outcome.report.drifted:
            false_alarms.append((seed, {c.name: c.reasons for c in outcome.report.columns if c.drifted}))
    # 6 windows x 8 features; with PSI 0.2 and Bonferroni-corrected tests an alarm should be rare
    assert len(false_alarms) <= 1, false_alarms


def shifted(seed: int) -> pd.DataFrame:
    frame = traffic(seed)
    frame["num_0"] += 1.0  # one standard deviation
    frame["num_3"] -= 1.0
    frame.loc[frame.index % 5 == 0, "cat_1"] = "c1_new"  # 20 % a category training never saw
    return frame


def test_a_mean_shift_and_a_new_category_are_flagged_by_name(watched: Watched) -> None:
    outcome = monitor(watched, capture(watched, shifted(7), "shifted"))
    report = outcome.report
    assert report.drifted and outcome.exit_code == 3
    assert set(report.drifted_features) == {"num_0", "num_3", "cat_1"}
    cat = next(c for c in report.features if c.name == "cat_1")
    assert cat.unknown_share == pytest.approx(0.2, abs=0.01)
    assert any("unseen in training" in reason for reason in cat.reasons)
    assert next(c for c in report.features if c.name == "num_0").psi > 0.2

    # the monitoring run: linked to the version both ways, with the report as artifacts
    client = MlflowClient(watched.config.tracking.uri)
    run = client.get_run(outcome.run_id)
    assert run.data.tags["monitor.model_version"] == watched.served.version
    assert run.data.tags["monitor.drifted_features"].split(",") == list(report.drifted_features)
    assert run.data.metrics["psi.num_0"] == pytest.approx(report.features[0].psi)
    artifacts = {a.path for a in client.list_artifacts(outcome.run_id, "monitoring")}
    assert artifacts == {"monitoring/report.json", "monitoring/report.html"}
    version = client.get_model_version(MODEL_NAME, watched.served.version)
    assert version.tags["monitor.last_run_id"] == outcome.run_id and version.tags["monitor.last_drifted"] == "true"
    document = json.loads((outcome.report_dir / "report.json").read_text())
    assert document["drifted_features"] == list(report.drifted_features)
    page = (outcome.report_dir / "report.html").read_text()
    assert page.count("<img") == len([c for c in report.columns if c.drifted]) and "num_0" in page


def cli_arguments(overrides: list[str]) -> list[str]:
    arguments = ["monitor", str(ROOT / "configs" / "quickstart.yaml")]
    for override in overrides:
        arguments += ["--set", override]
    return arguments


def test_the_command_exits_0_clean_3_drifted_4_too_little_traffic(watched: Watched) -> None:
    runner = CliRunner()
    cases = [
        (capture(watched, traffic(201), "cli-clean"), 0, "no drift (exit 0)"),
        (capture(watched, shifted(202), "cli-shifted"), 3, "DRIFT in"),
        (capture(watched, traffic(203).head(100), "cli-few"), 4, "not enough traffic"),
    ]
    for overrides, code, words in cases:
        result = runner.invoke(app, cli_arguments(overrides))
        assert result.exit_code == code, result.output
        assert words in result.output.replace("\n", " ")
    empty = runner.invoke(app, cli_arguments([*watched.overrides, f"serve.capture.path={watched.tmp / 'none'}"]))
    assert empty.exit_code == 4 and "0 rows" in empty.output  # nothing was ever captured there


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Receiver.received.clear()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()


def test_the_alert_action_posts_the_drifted_features_to_the_webhook(watched: Watched, receiver: str) -> None:
    overrides = capture(watched, shifted(301), "alert")
    outcome = monitor(watched, [*overrides, "monitor.on_drift=alert", f"monitor.webhook_url={receiver}"])
    assert outcome.action == "alert posted (HTTP 204)"
    (message,) = _Receiver.received
    assert message["event"] == "mlops-ray.drift" and message["model"] == f"{MODEL_NAME}/{watched.served.version}"
    assert set(message["drifted_features"]) == {"num_0", "num_3", "cat_1"}
    assert set(message["reasons"]) >= {"num_0", "num_3", "cat_1"}

    quiet = monitor(watched, [*capture(watched, traffic(302), "quiet"), "monitor.on_drift=alert",
                              f"monitor.webhook_url={receiver}"])  # fmt: skip
    assert quiet.action is None and len(_Receiver.received) == 1  # no drift, no alert


def test_a_version_without_a_reference_is_refused_by_name(watched: Watched) -> None:
    config = load_config(ROOT / "configs" / "quickstart.yaml", watched.overrides)
    data = dataclasses.replace(prepare_data(config.data), reference=None)
    register(config, data, alias="legacy")  # version 2, logged as versions from before monitoring were
    with pytest.raises(ModelRefError, match="has no monitoring reference"):
        run_monitor(config, StageReporter(), "configs/quickstart.yaml", watched.overrides, f"{MODEL_NAME}@legacy")
