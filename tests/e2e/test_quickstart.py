"""The quickstart end to end: real Ray Train, real MLflow (temp SQLite), real HTTP.

The pipeline runs in-process on the session's Ray. Afterwards the MLflow store is
inspected directly. The champion's HTTP contract (metadata, bad requests) is probed the
way a client would in ``tests/e2e/test_cli_run.py``, where ``mlops-ray serve`` serves
the quickstart champion again anyway.
"""

from __future__ import annotations

import io
import socket
from pathlib import Path

import mlflow
import pytest
import requests
from mlflow.tracking import MlflowClient
from ray import serve
from ray.serve.context import _get_global_client
from rich.console import Console

from mlops_ray import pipeline
from mlops_ray.config import Config, load_config
from mlops_ray.errors import PromotionError, ServingError
from mlops_ray.reporting import StageReporter
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
EPOCHS = 4

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_cluster")]


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> tuple[pipeline.PipelineResult, str, str]:
    tmp = tmp_path_factory.mktemp("quickstart")
    tracking = f"sqlite:///{tmp / 'mlflow.db'}"
    config = load_config(
        ROOT / "configs" / "quickstart.yaml",
        [
            f"train.epochs={EPOCHS}",
            f"train.storage_path={tmp / 'ray_results'}",
            f"serve.capture.path={tmp / 'capture'}",
            f"tracking.uri={tracking}",
            f"tracking.artifact_location={tmp / 'artifacts'}",
            f"serve.port={free_port()}",
        ],
    )
    out = io.StringIO()
    result = pipeline.run(config, StageReporter(Console(file=out, width=120)))
    return result, tracking, out.getvalue()


def test_pipeline_prints_stages_and_summary(quickstart: tuple) -> None:
    result, _, output = quickstart
    for stage in ("connect", "data", "train", "evaluate", "register", "serve", "predict"):
        assert f"✓ {stage}" in output
        assert result.stage_seconds[stage] >= 0
    assert result.run_id in output
    assert "@champion" in output
    assert result.prediction["predictions"][0]["predicted_class"] in ("malignant", "benign")


def test_model_is_good_on_held_out_rows(quickstart: tuple) -> None:
    result, _, _ = quickstart
    assert result.test_metrics["test_accuracy"] > 0.85
    assert result.test_metrics["test_roc_auc"] > 0.9


def test_mlflow_holds_run_params_epoch_metrics_and_champion(quickstart: tuple) -> None:
    result, tracking, _ = quickstart
    client = MlflowClient(tracking)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["train.epochs"] == str(EPOCHS)
    assert run.data.params["data.source"] == "sklearn:breast_cancer"
    history = client.get_metric_history(result.run_id, "val_loss")
    assert sorted(m.step for m in history) == list(range(1, EPOCHS + 1))
    assert run.data.metrics["test_accuracy"] == pytest.approx(result.test_metrics["test_accuracy"])
    version = client.get_model_version_by_alias("quickstart-breast-cancer", "champion")
    assert str(version.version) == result.model.version
    assert version.run_id == result.run_id
    assert version.tags["data.source"] == "sklearn:breast_cancer"
    assert len(version.tags["config.sha256"]) == 64
    (data_input,) = run.inputs.dataset_inputs
    assert data_input.dataset.digest == version.tags["data.fingerprint"]
    assert '"rows": 569' in data_input.dataset.profile
    assert "mean_radius" in data_input.dataset.schema


def test_registered_model_carries_signature_example_and_preprocessing(quickstart: tuple) -> None:
    result, tracking, _ = quickstart
    mlflow.set_tracking_uri(tracking)
    model = mlflow.pyfunc.load_model(result.model.uri)
    inputs = model.metadata.get_input_schema().input_names()
    assert "mean_radius" in inputs and len(inputs) == 30
    assert model.metadata.saved_input_example_info is not None
    example = mlflow.models.Model.load(result.model.uri).load_input_example()
    out = model.predict(example)
    assert set(out.columns) == {"predicted_class", "probability_malignant", "probability_benign"}
    assert ((out["probability_malignant"] + out["probability_benign"]) - 1).abs().max() < 1e-5


def test_endpoint_was_shut_down_after_the_run(quickstart: tuple) -> None:
    result, _, _ = quickstart
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{result.endpoint_url}/healthz", timeout=5)


def test_a_taken_serve_port_fails_before_training_and_a_failed_gate_leaves_serve_off(tmp_path: Path) -> None:
    """Serve starts while the model trains: its port is checked first, and a later failure stops it again."""
    overrides = [
        "train.epochs=1",
        f"train.storage_path={tmp_path / 'ray_results'}",
        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
        f"tracking.artifact_location={tmp_path / 'artifacts'}",
    ]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = load_config(ROOT / "configs" / "quickstart.yaml", [*overrides, f"serve.port={port}"])
        out = io.StringIO()
        with pytest.raises(ServingError, match=f"cannot listen on 127.0.0.1:{port}"):
            pipeline.run(config, StageReporter(Console(file=out, width=120)))
    assert "✓ data" not in out.getvalue()  # refused before reading the data, let alone training
    assert MlflowClient(config.tracking.uri).search_runs([config_experiment(config)]) == []

    impossible = load_config(
        ROOT / "configs" / "quickstart.yaml",
        [*overrides, f"serve.port={free_port()}", "gate.thresholds={accuracy: 1.01}"],
    )
    with pytest.raises(PromotionError, match="the gate rejected"):
        pipeline.run(impossible, StageReporter(Console(file=io.StringIO(), width=120)))
    assert not serve.status().applications  # the Serve started for this run was shut down with it
    assert _get_global_client(raise_if_no_controller_running=False) is None


def config_experiment(config: Config) -> str:
    experiment = MlflowClient(config.tracking.uri).get_experiment_by_name(config.tracking.experiment)
    return experiment.experiment_id if experiment else "0"
