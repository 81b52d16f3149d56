"""The GPU path for real: device placement, mixed precision (bf16 or fp16 with a scaler), pinned memory.

Skipped, with the reason, where ``torch.cuda.is_available()`` is false (see tests/conftest.py).
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from rich.console import Console

from mlops_ray.config import load_config
from mlops_ray.reporting import StageReporter
from mlops_ray.train.precision import Precision
from mlops_ray.train.stage import run_training

pytestmark = [pytest.mark.gpu, pytest.mark.usefixtures("ray_cluster")]
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("precision", ["auto", "fp16", "fp32"])
def test_training_on_one_gpu_with_each_precision(tmp_path: Path, precision: str) -> None:
    config = load_config(
        ROOT / "configs" / "quickstart.yaml",
        [
            "data.source=synthetic:classification",
            "data.synthetic={rows: 20000, features: 16, categoricals: 2}",
            "model={name: resmlp, depth: 2, width: 128}",
            "train.num_workers=1",
            "train.use_gpu=true",
            "train.resources_per_worker={CPU: 1, GPU: 1}",
            f"train.precision={precision}",
            "train.epochs=3",
            "train.batch_size=512",
            f"train.storage_path={tmp_path / 'ray_results'}",
            f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
            f"tracking.artifact_location={tmp_path / 'artifacts'}",
        ],
    )
    outcome = run_training(config, StageReporter(Console(file=io.StringIO())))
    assert outcome.test_metrics["test_accuracy"] > 0.6
    run = MlflowClient(config.tracking.uri).get_run(outcome.run_id)
    assert run.data.tags["train.device"] == torch.cuda.get_device_name(0)
    chosen = Precision.choose(precision, torch.device("cuda"))
    assert chosen.scaler.is_enabled() == (chosen.name == "fp16")
