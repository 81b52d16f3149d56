"""``mlops-ray run`` on a config with a ``tune`` section: sweep -> best trial @challenger -> gate -> serve.

On an empty registry the gate's verdict is FIRST_MODEL, so the sweep's best model
takes @champion too; the test checks both aliases name one version, which answers
over real HTTP, and that the decision is recorded on the version.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from rich.console import Console

from mlops_ray import pipeline
from mlops_ray.config import load_config
from mlops_ray.reporting import StageReporter
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_cluster")]


def test_run_sweeps_registers_the_best_trial_and_serves_it(tmp_path: Path) -> None:
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = load_config(
        ROOT / "configs" / "sweep.yaml",
        [
            "train.epochs=3",
            "train.resources_per_worker={CPU: 0.5}",
            "tune.num_samples=4",
            "tune.asha.grace_period=1",
            f"tune.storage_path={tmp_path / 'tune'}",
            f"serve.capture.path={tmp_path / 'capture'}",
            f"tracking.uri={tracking}",
            f"tracking.artifact_location={tmp_path / 'artifacts'}",
            f"serve.port={free_port()}",
        ],
    )
    out = io.StringIO()
    result = pipeline.run(config, StageReporter(Console(file=out, width=160)))
    output = out.getvalue()
    for stage in ("connect", "data", "sweep", "register", "gate", "serve", "predict"):
        assert f"✓ {stage}" in output, output
    assert "sweep: 4 trials" in output  # the trial table
    client = MlflowClient(tracking)
    champion = client.get_model_version_by_alias("sweep-breast-cancer", "champion")
    challenger = client.get_model_version_by_alias("sweep-breast-cancer", "challenger")
    assert str(champion.version) == str(challenger.version) == result.model.version == "1"
    assert champion.tags["sweep.parent_run_id"] == result.run_id
    assert champion.tags["promotion.verdict"] == "FIRST_MODEL" == str(result.promotion.decision.verdict)
    assert result.prediction["predictions"][0]["predicted_class"] in ("malignant", "benign")
    assert result.test_metrics["test_accuracy"] > 0.6
