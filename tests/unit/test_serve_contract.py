"""The serving contract, settings and files without Ray: request models, error paths, capture, probe, serve build."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.dataset as pads
import pytest
import torch
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from mlops_ray.cli import app
from mlops_ray.config import CaptureConfig, load_config
from mlops_ray.data.preprocessing import CategoricalColumn, NumericColumn, Preprocessing
from mlops_ray.data.schema import ColumnSchema, DataSchema
from mlops_ray.data.target import Target
from mlops_ray.errors import ConfigError
from mlops_ray.models import ModelSpec, build_model
from mlops_ray.registry.packaged_model import PackagedModel
from mlops_ray.serve.capture import CaptureWriter
from mlops_ray.serve.contract import contract_for, error_details
from mlops_ray.serve.deploy import IMPORT_PATH, serve_config_document
from mlops_ray.serve.served_model import ServedModel

ROOT = Path(__file__).resolve().parents[2]
PREPROCESSING = Preprocessing(
    (NumericColumn("size m2", 80.0, 80.0, 30.0), NumericColumn("rooms", 3.0, 3.0, 1.0)),
    (CategoricalColumn("district", ("north", "south")),),
)
SCHEMA = DataSchema(
    columns=(
        ColumnSchema(name="size m2", type="float", nullable=False, min=10, max=500),
        ColumnSchema(name="rooms", type="integer", nullable=True),
        ColumnSchema(name="district", type="string", categories=("north", "south")),
        ColumnSchema(name="price", type="float", role="label", nullable=False),
    )
)


def errors_for(body: object, schema: DataSchema | None = SCHEMA, max_rows: int = 5) -> list[str]:
    contract = contract_for(PREPROCESSING, schema, max_rows)
    with pytest.raises(ValidationError) as caught:
        contract.parse(json.dumps(body).encode())
    return [d["field"] for d in error_details(caught.value)]


def test_a_valid_request_becomes_a_frame_in_feature_order() -> None:
    contract = contract_for(PREPROCESSING, SCHEMA, 5)
    body = {
        "records": [
            {"district": "north", "rooms": 2, "size m2": 50},
            {"size m2": 60.5, "rooms": None, "district": None},
        ]
    }
    frame = contract.parse(json.dumps(body).encode())
    assert list(frame.columns) == ["size m2", "rooms", "district"]
    assert frame["size m2"].tolist() == [50.0, 60.5]
    assert frame["district"][0] == "north" and pd.isna(frame["district"][1])


def test_every_bad_field_is_named_with_its_path() -> None:
    body = {"records": [{"size m2": "50", "rooms": 2.5, "district": "east"}, {"rooms": 1, "district": "north", "x": 1}]}
    assert sorted(errors_for(body)) == [
        "records[0].district",
        "records[0].rooms",
        "records[0].size m2",
        "records[1].size m2",
        "records[1].x",
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"records": []}, "records"),
        ({"records": [{"size m2": 50, "rooms": 1, "district": "north"}] * 6}, "records"),
        ({"records": [{"size m2": None, "rooms": 1, "district": "north"}]}, "records[0].size m2"),
        ({"records": [{"size m2": 5, "rooms": 1, "district": "north"}]}, "records[0].size m2"),
        ({"records": [{"size m2": True, "rooms": 1, "district": "north"}]}, "records[0].size m2"),
        ({"rows": []}, "rows"),
    ],
)
def test_contract_rules(body: object, field: str) -> None:
    assert field in errors_for(body)


def test_without_a_schema_strings_are_free_and_nulls_allowed() -> None:
    contract = contract_for(PREPROCESSING, None, 5)
    body = {"records": [{"size m2": None, "rooms": 2.5, "district": "anywhere"}]}
    assert len(contract.parse(json.dumps(body).encode())) == 1
    assert errors_for({"records": [{"size m2": float("nan"), "rooms": 1, "district": "x"}]}, schema=None) == [
        "records[0].size m2"
    ]


def test_batch_size_above_the_ongoing_limit_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="max_ongoing_requests"):
        load_config(ROOT / "configs" / "quickstart.yaml", ["serve.max_ongoing_requests=4"])
    with pytest.raises(ConfigError, match="min_replicas"):
        load_config(ROOT / "configs" / "quickstart.yaml", ["serve.autoscaling.min_replicas=3"])


def test_capture_writes_partitioned_parquet_and_no_temporary_files(tmp_path: Path) -> None:
    writer = CaptureWriter(CaptureConfig(path=str(tmp_path / "cap"), flush_interval_s=60), writer_id="w1")
    frame = pd.DataFrame({"size m2": [50.0, 60.0], "district": ["north", None]})
    writer.add("3", frame, [{"prediction": 1.0}, {"prediction": 2.0}])
    writer.add("4", frame.head(1), [{"prediction": 3.0}])
    writer.close()
    table = pads.dataset(tmp_path / "cap", format="parquet", partitioning="hive").to_table().to_pandas()
    assert sorted(table["prediction.prediction"]) == [1.0, 2.0, 3.0]
    assert sorted(table["model_version"].astype(str)) == ["3", "3", "4"]
    assert not list((tmp_path / "cap").rglob(".*"))
    off = CaptureWriter(CaptureConfig(path=str(tmp_path / "off"), sample_rate=0))
    off.add("3", frame, [{"prediction": 1.0}] * 2)
    off.close()
    assert not (tmp_path / "off").exists() or not list((tmp_path / "off").rglob("*.parquet"))


def served_model(weights_nan: bool) -> ServedModel:
    spec = ModelSpec("mlp", PREPROCESSING.width, 1, 1, 8, 0.0, "none", "relu")
    packaged = PackagedModel()
    packaged.preprocessing, packaged.target = PREPROCESSING, Target("regression", "price", mean=100.0, std=10.0)
    packaged.network = build_model(spec).eval()
    if weights_nan:
        for parameter in packaged.network.parameters():
            parameter.data.fill_(float("nan"))
    contract = contract_for(PREPROCESSING, SCHEMA, 5)
    return ServedModel("m", "1", "champion", packaged, contract)


def test_health_probe_passes_a_sound_model_and_fails_a_broken_one() -> None:
    served_model(weights_nan=False).probe()
    with pytest.raises(RuntimeError, match="non-finite"):
        served_model(weights_nan=True).probe()
    assert torch.isnan(next(served_model(weights_nan=True).packaged.network.parameters())).all()


def test_serve_build_writes_a_config_serve_accepts(tmp_path: Path) -> None:
    out = tmp_path / "deploy" / "serve.yaml"
    config_file = ROOT / "configs" / "quickstart.yaml"
    result = CliRunner().invoke(
        app, ["serve", "build", str(config_file), "-o", str(out), "--canary", "10", "--set", "serve.port=8100"]
    )
    assert result.exit_code == 0, result.output
    document = yaml.safe_load(out.read_text())
    (application,) = document["applications"]
    assert application["import_path"] == IMPORT_PATH
    (deployment,) = application["deployments"]
    assert deployment["user_config"]["canary_percent"] == 10.0
    assert deployment["user_config"]["model"] == "quickstart-breast-cancer@champion"
    assert deployment["autoscaling_config"]["max_replicas"] >= deployment["autoscaling_config"]["min_replicas"]
    assert document["http_options"]["port"] == 8100
    config = load_config(config_file)
    assert serve_config_document(config, "sqlite:///x.db")["applications"][0]["args"]["settings"]["tracking_uri"] == (
        "sqlite:///x.db"
    )
    module, name = IMPORT_PATH.split(":")
    assert callable(getattr(__import__(module, fromlist=[name]), name))


def test_serve_build_without_output_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["serve", "build", str(ROOT / "configs" / "quickstart.yaml")])
    assert result.exit_code == 2 and "serve build CONFIG -o" in result.output


def test_detach_without_a_cluster_is_refused_before_anything_starts(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["serve", str(ROOT / "configs" / "quickstart.yaml"), "--detach"])
    assert result.exit_code == 1 and "needs a Ray cluster" in result.output
    assert not (tmp_path / "mlflow.db").exists()  # refused before the registry was even opened
