"""Bad data files: one DataError naming the source and the reason, and nothing registered."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from rich.console import Console

from mlops_ray import pipeline
from mlops_ray.config import DataConfig, load_config
from mlops_ray.data import prepare_data
from mlops_ray.errors import DataError
from mlops_ray.reporting import StageReporter

pytestmark = pytest.mark.usefixtures("ray_cluster")
ROOT = Path(__file__).resolve().parents[2]

BAD_FILES = {
    "empty.csv": ("", "Empty CSV file"),
    "ragged.csv": ("a,b,y\n1,2,0\n3,4\n5,6,1\n", "Expected 3 columns, got 2"),
    "corrupt.parquet": ("PAR1 this is not parquet", "Parquet magic bytes not found"),
    "no_label.csv": ("a,b\n1,2\n3,4\n", "label column 'y' not found; the columns are: a, b"),
    "one_class.csv": ("a,y\n1,0\n2,0\n", "single class"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_gives_one_clear_error(tmp_path: Path, name: str) -> None:
    text, reason = BAD_FILES[name]
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DataError) as err:
        prepare_data(DataConfig(source=str(path), label="y"))
    assert reason in err.value.paragraph()
    assert str(path) in err.value.paragraph()
    assert "Traceback" not in err.value.paragraph()


def test_column_of_unsupported_type_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nested.parquet"
    pd.DataFrame({"a": [1.0, 2.0], "tags": [[1, 2], [3]], "y": [0, 1]}).to_parquet(path)
    with pytest.raises(DataError, match=r"must be numbers or strings; unsupported: tags \(list<"):
        prepare_data(DataConfig(source=str(path), label="y"))


def test_failed_pipeline_leaves_nothing_registered(tmp_path: Path) -> None:
    bad = tmp_path / "ragged.csv"
    bad.write_text(BAD_FILES["ragged.csv"][0])
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = load_config(
        ROOT / "configs" / "quickstart.yaml",
        [f"data.source={bad}", "data.label=y", f"tracking.uri={tracking}", f"tracking.artifact_location={tmp_path}"],
    )
    with pytest.raises(DataError, match="Expected 3 columns"):
        pipeline.run(config, StageReporter(Console(file=io.StringIO())))
    client = MlflowClient(tracking)
    assert client.search_registered_models() == []
    experiment = client.get_experiment_by_name(config.tracking.experiment)
    assert client.search_runs([experiment.experiment_id]) == []
