"""Splits: deterministic, stratified per class, stable by id hash, independent of file layout; id leakage caught."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray.data

from mlops_ray.config import DataConfig, SplitConfig
from mlops_ray.data import prepare_data
from mlops_ray.data.splits import split_dataset
from mlops_ray.errors import DataError

pytestmark = pytest.mark.usefixtures("ray_cluster")


def table(rows: int, start: int = 0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "user": np.arange(start, start + rows),
            "x": rng.normal(size=rows),
            "y": rng.choice(["a", "b", "c"], size=rows, p=[0.7, 0.2, 0.1]),
        }
    )


def ids_by_split(frame: pd.DataFrame, method: str, **kwargs: object) -> dict[str, set[int]]:
    config = SplitConfig(seed=5)
    parts = split_dataset(ray.data.from_pandas(frame), config, method, label="y", id_column="user", **kwargs)  # type: ignore[arg-type]
    return {name: set(getattr(parts, name).to_pandas()["user"]) for name in ("train", "val", "test")}


def test_stratified_split_keeps_each_class_share() -> None:
    frame = table(2_000)
    parts = ids_by_split(frame, "stratified", classes=("a", "b", "c"))
    labels = frame.set_index("user")["y"]
    for name, share in (("train", 0.7), ("val", 0.15), ("test", 0.15)):
        counts = Counter(labels[sorted(parts[name])])
        for label, total in Counter(frame["y"]).items():
            assert abs(counts[label] - total * share) <= 2, (name, label, counts[label], total * share)
    assert set().union(*parts.values()) == set(frame["user"])
    assert sum(map(len, parts.values())) == len(frame)


def test_hash_split_keeps_old_rows_in_place_when_rows_are_appended() -> None:
    old = table(1_000)
    grown = pd.concat([table(500, start=1_000, seed=1), old.sample(frac=1.0, random_state=3)])
    before, after = ids_by_split(old, "hash"), ids_by_split(grown, "hash")
    for name in before:
        assert after[name] & set(old["user"]) == before[name], name
    shares = {name: len(ids) / len(grown) for name, ids in after.items()}
    assert shares["train"] == pytest.approx(0.7, abs=0.05) and shares["test"] == pytest.approx(0.15, abs=0.04)


def test_random_split_ignores_file_layout_and_row_order(tmp_path: Path) -> None:
    frame = table(600)
    one, many = tmp_path / "one", tmp_path / "many"
    one.mkdir(), many.mkdir()
    frame.to_parquet(one / "all.parquet")
    shuffled = frame.sample(frac=1.0, random_state=1)
    for i in range(4):
        shuffled.iloc[i::4].to_parquet(many / f"part-{i}.parquet", index=False)
    config = {"label": "y", "split": SplitConfig(method="random", seed=9)}
    a = prepare_data(DataConfig(source=str(one), **config))  # type: ignore[arg-type]
    b = prepare_data(DataConfig(source=str(many), **config))  # type: ignore[arg-type]
    assert a.row_counts == b.row_counts
    assert set(a.test.to_pandas()["user"]) == set(b.test.to_pandas()["user"])


def test_id_in_two_splits_is_leakage(tmp_path: Path) -> None:
    frame = table(400)
    frame["user"] = frame["user"] % 50  # eight rows per user: a random split scatters them
    path = tmp_path / "rows.parquet"
    frame.to_parquet(path)
    with pytest.raises(DataError, match=r"value\(s\) of id column 'user' appear in more than one split") as caught:
        prepare_data(DataConfig(source=str(path), label="y", id_column="user", split=SplitConfig(method="random")))
    assert "data.split.method: hash" in caught.value.paragraph()
    data = prepare_data(DataConfig(source=str(path), label="y", id_column="user"))  # auto: hash keeps users together
    assert data.split_method == "hash" and "user" not in data.features


def test_id_column_must_exist_and_be_complete(tmp_path: Path) -> None:
    frame = table(100)
    frame.loc[3, "user"] = None
    path = tmp_path / "rows.parquet"
    frame.to_parquet(path)
    with pytest.raises(DataError, match="id column 'user' has 1 missing value"):
        prepare_data(DataConfig(source=str(path), label="y", id_column="user"))
    with pytest.raises(DataError, match="id column 'uid' not found; the columns are: user, x, y"):
        prepare_data(DataConfig(source=str(path), label="y", id_column="uid"))


def test_constant_columns_are_warned_about(tmp_path: Path) -> None:
    frame = table(200).assign(flat=1.5, same="z")
    path = tmp_path / "rows.parquet"
    frame.to_parquet(path)
    data = prepare_data(DataConfig(source=str(path), label="y"))
    assert data.warnings == (
        "feature 'flat' is constant (1.5 in every row)",
        "feature 'same' is constant ('z' in every row)",
    )


def test_too_few_rows_to_split(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": ["a", "b", "a", "b"]}).to_csv(path, index=False)
    with pytest.raises(DataError, match="too few rows to split"):
        prepare_data(DataConfig(source=str(path), label="y"))
