"""Labels: strings map to class indices and back; missing or fractional labels are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_ray.config import DataConfig
from mlops_ray.data import prepare_data
from mlops_ray.errors import DataError

pytestmark = pytest.mark.usefixtures("ray_cluster")


def write(tmp_path: Path, labels: list[object]) -> str:
    path = tmp_path / "rows.parquet"
    rng = np.random.default_rng(0)
    pd.DataFrame({"a": rng.normal(size=len(labels)), "outcome": labels}).to_parquet(path)
    return str(path)


def test_string_labels_become_sorted_class_indices(tmp_path: Path) -> None:
    labels = ["yes", "no", "maybe"] * 40
    data = prepare_data(DataConfig(source=write(tmp_path, labels), label="outcome"))
    assert data.class_names == ("maybe", "no", "yes")
    names = [data.class_names[i] for i in data.test_labels()]
    assert names == list(data.test_frame["outcome"])
    train = pd.concat([pd.DataFrame({"y": b["y"]}) for b in data.train.iter_batches(batch_format="numpy")])
    assert set(train["y"]) == {0, 1, 2}


def test_integer_labels_that_are_not_0_to_k_are_mapped(tmp_path: Path) -> None:
    data = prepare_data(DataConfig(source=write(tmp_path, [3, 7] * 30), label="outcome"))
    assert data.class_names == ("3", "7")
    assert set(data.test_labels()) <= {0, 1}


def test_missing_label_values_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="label column 'outcome' has missing values"):
        prepare_data(DataConfig(source=write(tmp_path, ["a", None, "b"] * 10), label="outcome"))


def test_fractional_labels_are_refused_until_regression_exists(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="holds fractional numbers"):
        prepare_data(DataConfig(source=write(tmp_path, [0.5, 1.25, 2.0] * 10), label="outcome"))
