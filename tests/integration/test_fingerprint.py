"""The fingerprint ignores file layout and row order and notices any changed value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray.data

from mlops_ray.config import DataConfig
from mlops_ray.data.fingerprint import fingerprint
from mlops_ray.data.sources import load_source

pytestmark = pytest.mark.usefixtures("ray_cluster")


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "x": rng.normal(size=400),
            "n": rng.integers(0, 50, size=400),
            "c": rng.choice(["a", "b", None], size=400),
            "y": rng.integers(0, 2, size=400),
        }
    )


def write_parts(frame: pd.DataFrame, directory: Path, parts: int, suffix: str) -> Path:
    directory.mkdir()
    bounds = np.linspace(0, len(frame), parts + 1).astype(int)
    for i in range(parts):
        chunk = frame.iloc[bounds[i] : bounds[i + 1]]
        path = directory / f"part-{i}.{suffix}"
        chunk.to_parquet(path, index=False) if suffix == "parquet" else chunk.to_csv(path, index=False)
    return directory


def digest(source: str, label: str = "y") -> str:
    return fingerprint(load_source(DataConfig(source=source, label=label)).dataset).digest


def test_same_rows_in_one_or_eight_files_and_any_order(frame: pd.DataFrame, tmp_path: Path) -> None:
    one = write_parts(frame, tmp_path / "one", 1, "parquet")
    eight = write_parts(frame.sample(frac=1, random_state=3), tmp_path / "eight", 8, "parquet")
    assert digest(str(one)) == digest(str(eight))
    reblocked = ray.data.from_pandas(frame).repartition(7).random_shuffle(seed=1)
    assert fingerprint(reblocked).digest == digest(str(one))


def test_csv_split_across_files_matches_despite_per_file_types(frame: pd.DataFrame, tmp_path: Path) -> None:
    one = write_parts(frame, tmp_path / "one", 1, "csv")
    three = write_parts(frame, tmp_path / "three", 3, "csv")
    assert digest(str(one)) == digest(f"{three}/*.csv")


def test_one_changed_value_or_row_changes_the_digest(frame: pd.DataFrame) -> None:
    base = fingerprint(ray.data.from_pandas(frame))
    changed = frame.copy()
    changed.loc[17, "x"] += 1e-9
    assert fingerprint(ray.data.from_pandas(changed)).digest != base.digest
    fewer = fingerprint(ray.data.from_pandas(frame.iloc[1:]))
    assert fewer.digest != base.digest and fewer.rows == base.rows - 1
    duplicated = fingerprint(ray.data.from_pandas(pd.concat([frame, frame.iloc[:1]])))
    assert duplicated.digest != base.digest


def test_renamed_column_changes_the_digest(frame: pd.DataFrame) -> None:
    renamed = frame.rename(columns={"x": "z"})
    assert fingerprint(ray.data.from_pandas(renamed)).digest != fingerprint(ray.data.from_pandas(frame)).digest
