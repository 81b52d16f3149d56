"""The data stage on real Ray Data: seeded splits, train-only statistics, clear failures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_ray.config import DataConfig, SplitConfig
from mlops_ray.data import prepare_data
from mlops_ray.errors import DataError

pytestmark = pytest.mark.usefixtures("ray_cluster")


def _sorted_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def test_split_is_seeded_and_covers_every_row() -> None:
    first = prepare_data(DataConfig())
    again = prepare_data(DataConfig())
    other = prepare_data(DataConfig(split=SplitConfig(seed=7)))
    assert sum(first.row_counts.values()) == 569
    test_rows = _sorted_rows(first.test.to_pandas())
    assert first.row_counts["test"] == len(test_rows) > 0
    pd.testing.assert_frame_equal(test_rows, _sorted_rows(again.test.to_pandas()))
    assert not test_rows.equals(_sorted_rows(other.test.to_pandas()))


def test_standardisation_is_fitted_on_train_only() -> None:
    data = prepare_data(DataConfig())
    train_x = np.concatenate([b["x"] for b in data.train.iter_batches(batch_format="numpy")])
    np.testing.assert_allclose(train_x.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(train_x.std(axis=0), 1.0, atol=1e-3)
    test_x = data.preprocessing.transform(data.test.to_pandas())
    assert np.abs(test_x.mean(axis=0)).max() > 1e-3


def test_multiclass_sample_keeps_class_names() -> None:
    data = prepare_data(DataConfig(source="sklearn:wine"))
    assert data.class_names == ("class_0", "class_1", "class_2")


def test_missing_label_column_lists_columns(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    pd.DataFrame({"a": [1.0, 2.0], "b": [0, 1]}).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"label column 'y' not found; the columns are: a, b"):
        prepare_data(DataConfig(source=str(path), label="y"))


def test_single_class_label_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    pd.DataFrame({"a": [1.0, 2.0, 3.0], "y": [1, 1, 1]}).to_csv(path, index=False)
    with pytest.raises(DataError, match="single class"):
        prepare_data(DataConfig(source=str(path), label="y"))


def test_missing_file_and_unknown_sample() -> None:
    with pytest.raises(DataError, match="no such file or directory"):
        prepare_data(DataConfig(source="nope.csv", label="y"))
    with pytest.raises(DataError, match="unknown sample"):
        prepare_data(DataConfig(source="sklearn:nope"))
