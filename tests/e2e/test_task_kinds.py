"""The pipeline for every task kind: each bundled sample, and a regression on a mixed file under a schema.

The mixed-file run is the full data contract in one go: numeric and string columns
with missing values, an id column (hash split), a schema inferred from clean rows,
and appended bad rows that ``on_invalid: drop`` must quarantine and count in MLflow
before the regression model is registered, served, and asked over real HTTP.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray.data
import requests
from mlflow.tracking import MlflowClient
from rich.console import Console

from mlops_ray import pipeline
from mlops_ray.config import load_config
from mlops_ray.data.schema import infer_schema, save_schema
from mlops_ray.reporting import StageReporter
from mlops_ray.serve import deploy_model
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_cluster")]


def run_pipeline(tmp_path: Path, overrides: list[str]) -> tuple[pipeline.PipelineResult, str]:
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = load_config(
        ROOT / "configs" / "quickstart.yaml",
        [
            f"train.storage_path={tmp_path / 'ray_results'}",
            f"serve.capture.path={tmp_path / 'capture'}",
            f"tracking.uri={tracking}",
            f"tracking.artifact_location={tmp_path / 'artifacts'}",
            f"serve.port={free_port()}",
            *overrides,
        ],
    )
    return pipeline.run(config, StageReporter(Console(file=io.StringIO()))), tracking


# sample -> (metric, lower bound well above chance, with a short training); iris, another small multi-class
# sample, would only repeat wine (and test_mixed_columns trains a three-class model too)
SAMPLES = {"wine": ("test_accuracy", 0.7), "diabetes": ("test_r2", 0.2)}


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_bundled_sample_runs_end_to_end(tmp_path: Path, sample: str) -> None:
    metric, floor = SAMPLES[sample]
    overrides = [f"data.source=sklearn:{sample}", f"registry.model_name={sample}", "train.epochs=25", "train.lr=0.005"]
    result, _ = run_pipeline(tmp_path, overrides)
    assert result.test_metrics[metric] > floor, result.test_metrics
    answer = result.prediction["predictions"][0]
    if sample == "diabetes":
        assert set(answer) == {"prediction"} and isinstance(answer["prediction"], float)
    else:
        assert answer["predicted_class"] in answer["probabilities"]


def mixed_rows(rows: int, start: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    size = rng.uniform(20, 200, rows)
    rooms = rng.integers(1, 7, rows).astype(float)
    district = rng.choice(["north", "south", "centre"], rows)
    price = 3.0 * size + 15.0 * rooms + pd.Series(district).map({"north": 50, "south": 0, "centre": 150}).to_numpy()
    frame = pd.DataFrame(
        {
            "listing": np.arange(start, start + rows),
            "size_m2": size,
            "rooms": rooms,
            "district": pd.Series(district, dtype=object),
            "price": price + rng.normal(0, 10, rows),
        }
    )
    frame.loc[rng.random(rows) < 0.05, "rooms"] = None  # missing values the preprocessing imputes
    frame.loc[rng.random(rows) < 0.05, "district"] = None  # missing category: the unknown bucket
    return frame


def test_regression_on_a_mixed_file_with_a_schema_that_drops_bad_rows(tmp_path: Path) -> None:
    folder = tmp_path / "listings"
    folder.mkdir()
    clean = mixed_rows(2_000, start=0, seed=0)
    clean.to_parquet(folder / "part-0.parquet", index=False)
    schema_file = save_schema(
        infer_schema(ray.data.read_parquet(str(folder)), label="price", id_column="listing"), tmp_path / "schema.yaml"
    )
    bad = mixed_rows(2, start=9_000, seed=1)
    bad.loc[0, "size_m2"] = -5.0  # below the schema's range
    bad.loc[1, "district"] = "harbour"  # a category the schema does not allow
    bad.to_parquet(folder / "part-1.parquet", index=False)

    result, tracking = run_pipeline(
        tmp_path,
        [
            f"data.source={folder}",
            f"data.schema_file={schema_file}",
            "data.on_invalid=drop",
            f"data.quarantine_dir={tmp_path / 'quarantine'}",
            "registry.model_name=listing-prices",
            "train.epochs=25",
            "train.lr=0.005",
        ],
    )
    assert result.test_metrics["test_r2"] > 0.8, result.test_metrics
    assert isinstance(result.prediction["predictions"][0]["prediction"], float)

    client = MlflowClient(tracking)
    run = client.get_run(result.run_id)
    assert run.data.metrics["data.invalid_rows"] == 2
    assert run.data.metrics["data.invalid.size_m2.range"] == 1
    assert run.data.metrics["data.invalid.district.category"] == 1
    quarantined = pd.read_parquet(run.data.tags["data.quarantine"])
    assert sorted(quarantined["listing"]) == [9_000, 9_001]
    version = client.get_model_version("listing-prices", result.model.version)
    assert len(version.tags["data.schema_sha256"]) == 64

    serve_config = load_config(
        ROOT / "configs" / "quickstart.yaml", [f"serve.port={free_port()}", f"serve.capture.path={tmp_path / 'cap'}"]
    )
    endpoint = deploy_model(serve_config, tracking, "listing-prices@champion")
    try:
        metadata = requests.get(f"{endpoint.url}/metadata", timeout=10).json()
        assert metadata["task"] == "regression" and metadata["classes"] == []
        assert [feature["name"] for feature in metadata["features"]] == ["size_m2", "rooms", "district"]
        row = {"size_m2": 100.0, "rooms": None, "district": "centre"}
        answer = requests.post(f"{endpoint.url}/predict", json={"records": [row]}, timeout=10)
        assert answer.status_code == 200, answer.text
        (prediction,) = answer.json()["predictions"]
        assert prediction.keys() == {"prediction"}
        assert 300 < prediction["prediction"] < 700  # 3 * 100 + 15 * rooms + 150, rooms imputed
    finally:
        endpoint.shutdown()
