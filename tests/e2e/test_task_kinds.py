"""The pipeline for every task kind: multi-class on a bundled sample, and a regression on a mixed file under a schema.

The mixed-file run is the full data contract in one go: numeric and string columns
with missing values, an id column (hash split), a schema inferred from clean rows,
and appended bad rows that ``on_invalid: drop`` must quarantine and count in MLflow
before the regression model is registered, served, and asked over real HTTP: rows
with nulls, a never-seen value of a free string column (the unknown bucket), and
values the contract refuses (a category the schema does not allow, a string for a
number), each a 422 naming the field.
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
from mlops_ray.config import DataConfig, load_config
from mlops_ray.data import prepare_data
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


def test_a_bundled_multi_class_sample_runs_end_to_end(tmp_path: Path) -> None:
    # wine: three classes, a short training; iris, another small multi-class sample, would only repeat it. One
    # worker: the quickstart and the mixed-file regression below train with two (DDP).
    overrides = ["data.source=sklearn:wine", "registry.model_name=wine", "train.epochs=25", "train.lr=0.005"]
    result, _ = run_pipeline(tmp_path, [*overrides, "train.num_workers=0"])
    assert result.test_metrics["test_accuracy"] > 0.7, result.test_metrics  # chance is about 0.4
    answer = result.prediction["predictions"][0]
    assert answer["predicted_class"] in answer["probabilities"]


def test_the_bundled_regression_sample_loads_as_a_regression() -> None:
    # A whole pipeline on it would only repeat the regression below, which also checks the model and the endpoint.
    data = prepare_data(DataConfig(source="sklearn:diabetes"))
    assert data.target.task == "regression" and data.target.column == "target" and data.target.std > 0
    assert sum(data.row_counts.values()) == 442 and len(data.preprocessing.features) == 10


def mixed_rows(rows: int, start: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    size = rng.uniform(20, 200, rows)
    rooms = rng.integers(1, 7, rows).astype(float)
    district = rng.choice(["north", "south", "centre"], rows)
    street = [f"street-{n}" for n in rng.integers(0, 80, rows)]  # too many values for the schema to list: any string
    price = 3.0 * size + 15.0 * rooms + pd.Series(district).map({"north": 50, "south": 0, "centre": 150}).to_numpy()
    frame = pd.DataFrame(
        {
            "listing": np.arange(start, start + rows),
            "size_m2": size,
            "rooms": rooms,
            "district": pd.Series(district, dtype=object),
            "street": pd.Series(street, dtype=object),
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
        assert [feature["name"] for feature in metadata["features"]] == ["size_m2", "rooms", "district", "street"]
        assert [f["name"] for f in metadata["features"] if f["kind"] == "string"] == ["district", "street"]
        row = {"size_m2": 100.0, "rooms": None, "district": "centre", "street": "street-1"}
        unseen = {**row, "street": "never-seen"}  # a free string column: the unknown bucket, not an error
        no_district = {**row, "district": None}
        answer = requests.post(f"{endpoint.url}/predict", json={"records": [row, unseen, no_district]}, timeout=10)
        assert answer.status_code == 200, answer.text
        predictions = answer.json()["predictions"]
        assert len(predictions) == 3 and all(p.keys() == {"prediction"} for p in predictions)
        assert 300 < predictions[0]["prediction"] < 700  # 3 * 100 + 15 * rooms + 150, rooms imputed
        for bad, field in (({"district": "harbour"}, "district"), ({"size_m2": "high"}, "size_m2")):
            refused = requests.post(f"{endpoint.url}/predict", json={"records": [{**row, **bad}]}, timeout=10)
            assert refused.status_code == 422, refused.text
            assert refused.json()["detail"][0]["field"] == f"records[0].{field}"
    finally:
        endpoint.shutdown()
