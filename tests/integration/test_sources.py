"""Every kind of source the data layer accepts, and the errors for the ones it cannot read."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlops_ray.config import DataConfig, SyntheticConfig
from mlops_ray.data.fingerprint import fingerprint
from mlops_ray.data.profile import profile
from mlops_ray.data.sources import load_source
from mlops_ray.errors import DataError

pytestmark = pytest.mark.usefixtures("ray_cluster")
FRAME = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [1, 0, 1, 0], "y": [0, 1, 0, 1]})


def test_jsonl_file(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    FRAME.to_json(path, orient="records", lines=True)
    assert load_source(DataConfig(source=str(path), label="y")).dataset.count() == 4


def test_directory_of_parquet_and_csv_glob(tmp_path: Path) -> None:
    (tmp_path / "pq").mkdir()
    FRAME.iloc[:2].to_parquet(tmp_path / "pq" / "a.parquet")
    FRAME.iloc[2:].to_parquet(tmp_path / "pq" / "b.parquet")
    (tmp_path / "pq" / "_SUCCESS").write_text("")
    assert load_source(DataConfig(source=str(tmp_path / "pq"), label="y")).dataset.count() == 4
    FRAME.to_csv(tmp_path / "x1.csv", index=False)
    FRAME.to_csv(tmp_path / "x2.csv", index=False)
    loaded = load_source(DataConfig(source=str(tmp_path / "x*.csv"), label="y"))
    assert loaded.dataset.count() == 8
    assert loaded.uri == str(tmp_path / "x*.csv")


def test_explicit_format_for_unusual_names(tmp_path: Path) -> None:
    path = tmp_path / "rows.txt"
    FRAME.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"cannot tell the file format.*data\.format"):
        load_source(DataConfig(source=str(path), label="y"))
    assert load_source(DataConfig(source=str(path), label="y", format="csv")).dataset.count() == 4


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("missing/rows.csv", "no such file or directory"),
        ("missing/*.csv", "no file matches this pattern"),
        ("synthetic:regressionish", "unknown generator"),
    ],
)
def test_unreadable_sources_name_the_source(source: str, message: str) -> None:
    with pytest.raises(DataError, match=message) as err:
        load_source(DataConfig(source=source, label="y"))
    assert source in err.value.where


def test_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="holds no data files"):
        load_source(DataConfig(source=str(tmp_path), label="y"))


def test_synthetic_is_deterministic_and_shaped_by_config() -> None:
    shape = SyntheticConfig(rows=2_000, features=3, categoricals=2, missing_fraction=0.1, seed=5)
    first = load_source(DataConfig(source="synthetic:classification", synthetic=shape)).dataset
    again = load_source(DataConfig(source="synthetic:classification", synthetic=shape)).dataset
    other = load_source(
        DataConfig(source="synthetic:classification", synthetic=shape.model_copy(update={"seed": 6}))
    ).dataset
    assert fingerprint(first) == fingerprint(again)
    assert fingerprint(first).digest != fingerprint(other).digest
    stats = {c.name: c for c in profile(first).columns}
    assert set(stats) == {"num_0", "num_1", "num_2", "cat_0", "cat_1", "label"}
    assert stats["num_0"].nulls > 0 and stats["cat_1"].nulls > 0 and stats["label"].nulls == 0
    assert stats["cat_0"].kind == "categorical" and len(stats["cat_0"].top) == 4
    assert stats["label"].min == 0 and stats["label"].max == 1


def test_profile_numbers_match_pandas(tmp_path: Path) -> None:
    frame = pd.DataFrame({"v": [1.0, None, 3.0, 8.0], "s": ["a", "b", "a", None], "y": [0, 1, 0, 1]})
    path = tmp_path / "rows.parquet"
    frame.to_parquet(path)
    stats = {c.name: c for c in profile(load_source(DataConfig(source=str(path), label="y")).dataset).columns}
    assert (stats["v"].count, stats["v"].nulls, stats["v"].min, stats["v"].max) == (3, 1, 1.0, 8.0)
    assert stats["v"].mean == pytest.approx(4.0)
    assert stats["s"].top == (("a", 2), ("b", 1)) and stats["s"].nulls == 1


@pytest.mark.parametrize(
    ("sample", "rows", "label", "classes"),
    [("breast_cancer", 569, "target", 2), ("wine", 178, "target", 3), ("iris", 150, "target", 3)],
)
def test_bundled_classification_samples_load_with_their_label(sample: str, rows: int, label: str, classes: int) -> None:
    source = load_source(DataConfig(source=f"sklearn:{sample}"))
    frame = source.dataset.to_pandas()
    assert len(frame) == rows and source.label == label and frame[label].nunique() == classes
    assert all(" " not in column for column in frame.columns)  # snake_case names, as JSON requests carry them
