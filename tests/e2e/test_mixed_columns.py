"""The whole pipeline on a generated table with string columns and missing values.

Trains and registers a model on ``synthetic:classification`` (numeric + categorical
features, 10% missing), then serves it and sends rows with nulls and a never-seen
category over real HTTP, and a value of the wrong kind, which must get a 422.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import requests
from rich.console import Console

from mlops_ray import pipeline
from mlops_ray.config import load_config
from mlops_ray.reporting import StageReporter
from mlops_ray.serve import deploy_model
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_cluster")]


def test_mixed_numeric_categorical_missing_end_to_end(tmp_path: Path) -> None:
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = load_config(
        ROOT / "configs" / "quickstart.yaml",
        [
            "data.source=synthetic:classification",
            "data.synthetic={rows: 3000, features: 4, categoricals: 2, classes: 3, missing_fraction: 0.1, seed: 1}",
            "train.epochs=8",
            f"train.storage_path={tmp_path / 'ray_results'}",
            f"serve.capture.path={tmp_path / 'capture'}",
            f"tracking.uri={tracking}",
            f"tracking.artifact_location={tmp_path / 'artifacts'}",
            "registry.model_name=mixed-columns",
            f"serve.port={free_port()}",
        ],
    )
    result = pipeline.run(config, StageReporter(Console(file=io.StringIO())))
    assert result.test_metrics["test_accuracy"] > 0.5  # three classes: chance is about 0.33

    serve_config = config.model_copy(update={"serve": config.serve.model_copy(update={"port": free_port()})})
    endpoint = deploy_model(serve_config, tracking, "mixed-columns@champion")
    try:
        meta = requests.get(f"{endpoint.url}/metadata", timeout=10).json()
        assert [f["name"] for f in meta["features"] if f["kind"] == "string"] == ["cat_0", "cat_1"]
        row = {"num_0": 0.5, "num_1": None, "num_2": -1.0, "num_3": 2.0, "cat_0": "c0_1", "cat_1": None}
        unseen = {**row, "cat_0": "never-seen"}
        answer = requests.post(f"{endpoint.url}/predict", json={"records": [row, unseen]}, timeout=10)
        assert answer.status_code == 200, answer.text
        assert {p["predicted_class"] for p in answer.json()["predictions"]} <= {"0", "1", "2"}
        wrong = requests.post(f"{endpoint.url}/predict", json={"records": [{**row, "num_0": "high"}]}, timeout=10)
        assert wrong.status_code == 422
        assert wrong.json()["detail"][0]["field"] == "records[0].num_0"
    finally:
        endpoint.shutdown()
