"""The schema contract in the data stage and on the command line: fail with a report, or drop and quarantine."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from rich.console import Console
from typer.testing import CliRunner

from mlops_ray import pipeline
from mlops_ray.cli import app
from mlops_ray.config import DataConfig, load_config
from mlops_ray.data import prepare_data
from mlops_ray.errors import ConfigError, DataError
from mlops_ray.reporting import StageReporter

pytestmark = pytest.mark.usefixtures("ray_cluster")
ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def clean_rows(rows: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(4)
    return pd.DataFrame(
        {
            "order_id": np.arange(rows),
            "amount": rng.uniform(1, 100, size=rows).round(2),
            "channel": rng.choice(["web", "shop", "phone"], size=rows),
            "churned": rng.choice(["yes", "no"], size=rows),
        }
    )


@pytest.fixture
def project(tmp_path: Path) -> dict[str, Path]:
    """A CSV, a config pointing at it, and the schema inferred from it by the CLI."""
    data = tmp_path / "orders.csv"
    clean_rows().to_csv(data, index=False)
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump({"data": {"source": str(data), "label": "churned", "id_column": "order_id"}, "ray": {}})
    )
    schema = tmp_path / "schema.yaml"
    result = runner.invoke(app, ["data", "infer-schema", str(config), "-o", str(schema)])
    assert result.exit_code == 0, result.output
    return {"data": data, "config": config, "schema": schema, "root": tmp_path}


def with_bad_rows(path: Path) -> None:
    """Three bad rows: a word where a number belongs, a channel never declared, an empty label ("" for CSV)."""
    text = path.read_text()
    path.write_text(text + "9001,lots,web,no\n9002,12.5,fax,yes\n9003,7.0,shop,\n")


def test_infer_schema_writes_a_reviewable_contract(project: dict[str, Path]) -> None:
    schema = yaml.safe_load(project["schema"].read_text())
    columns = {c["name"]: c for c in schema["columns"]}
    assert columns["order_id"]["role"] == "id" and columns["churned"]["role"] == "label"
    assert columns["amount"]["type"] == "float" and 1 <= columns["amount"]["min"] < columns["amount"]["max"] <= 100
    assert columns["channel"]["categories"] == ["phone", "shop", "web"]
    again = runner.invoke(app, ["data", "infer-schema", str(project["config"]), "-o", str(project["schema"])])
    assert again.exit_code == 2 and "already exists; pass --force" in again.output


def test_validate_passes_clean_data_and_reports_bad_rows(project: dict[str, Path]) -> None:
    args = ["data", "validate", str(project["config"]), "--set", f"data.schema_file={project['schema']}"]
    clean = runner.invoke(app, args)
    assert clean.exit_code == 0, clean.output
    assert "All 300 rows" in clean.output
    with_bad_rows(project["data"])
    quarantine = project["root"] / "rejected"
    bad = runner.invoke(app, [*args, "--quarantine", str(quarantine)])
    assert bad.exit_code == 1, bad.output
    assert "3 of 303 rows break" in bad.output
    for column, rule in (("amount", "type"), ("channel", "category"), ("churned", "category")):
        assert any(column in line and rule in line for line in bad.output.splitlines()), (column, rule)
    assert sorted(pd.read_parquet(quarantine)["order_id"]) == [9001, 9002, 9003]


def test_fail_stops_with_column_rule_count_and_example(project: dict[str, Path]) -> None:
    with_bad_rows(project["data"])
    config = DataConfig(source=str(project["data"]), schema_file=str(project["schema"]))
    with pytest.raises(DataError) as caught:
        prepare_data(config)
    message = caught.value.paragraph()
    assert "3 of 303 row(s) break the schema" in message
    assert "column 'amount' rule 'type': 1 row(s) (e.g. {'order_id': 9001, 'amount': 'lots'})" in message
    assert "column 'channel' rule 'category': 1 row(s)" in message
    assert "data.on_invalid: drop" in message


def test_drop_trains_on_valid_rows_and_keeps_the_rejected(project: dict[str, Path]) -> None:
    with_bad_rows(project["data"])
    config = DataConfig(source=str(project["data"]), schema_file=str(project["schema"]), on_invalid="drop")
    data = prepare_data(config)
    assert sum(data.row_counts.values()) == 300 and data.split_method == "hash"
    assert data.validation is not None and data.validation.invalid_rows == 3
    assert data.rejected is not None and sorted(data.rejected.to_pandas()["order_id"]) == [9001, 9002, 9003]
    assert data.features == ("amount", "channel")


def test_label_named_twice_differently_is_refused(project: dict[str, Path]) -> None:
    config = DataConfig(source=str(project["data"]), schema_file=str(project["schema"]), label="amount")
    with pytest.raises(ConfigError, match=r"data\.label: is 'amount' but the schema .* declares 'churned'"):
        prepare_data(config)


@pytest.mark.parametrize("bad_row", ["9001,lots,web,no", "9002,12.5,fax,yes"], ids=["wrong-type", "unknown-category"])
def test_invalid_rows_under_fail_leave_nothing_registered(project: dict[str, Path], bad_row: str) -> None:
    with project["data"].open("a") as out:
        out.write(bad_row + "\n")
    tracking = f"sqlite:///{project['root'] / 'mlflow.db'}"
    config = load_config(
        ROOT / "configs" / "quickstart.yaml",
        [
            f"data.source={project['data']}",
            f"data.schema_file={project['schema']}",
            f"tracking.uri={tracking}",
            f"tracking.artifact_location={project['root'] / 'artifacts'}",
        ],
    )
    with pytest.raises(DataError, match="1 of 301 row"):
        pipeline.run(config, StageReporter(Console(file=io.StringIO())))
    client = MlflowClient(tracking)
    assert client.search_registered_models() == []
    experiment = client.get_experiment_by_name(config.tracking.experiment)
    assert experiment is None or client.search_runs([experiment.experiment_id]) == []
