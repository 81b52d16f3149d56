"""Labels: strings map to class indices and back; the task follows the label; bad labels are refused."""

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
    assert data.task == "classification"
    assert data.class_names == ("maybe", "no", "yes")
    test = data.test.to_pandas()
    names = [data.class_names[i] for i in data.target.encode(test["outcome"])]
    assert names == list(test["outcome"])
    train = pd.concat([pd.DataFrame({"y": b["y"]}) for b in data.train.iter_batches(batch_format="numpy")])
    assert set(train["y"]) == {0, 1, 2}


def test_integer_labels_that_are_not_0_to_k_are_mapped(tmp_path: Path) -> None:
    data = prepare_data(DataConfig(source=write(tmp_path, [3, 7] * 30), label="outcome"))
    assert data.class_names == ("3", "7")
    assert set(data.target.encode(data.test.to_pandas()["outcome"])) <= {0, 1}


def test_missing_label_values_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"label column 'outcome' has 10 missing value\(s\)"):
        prepare_data(DataConfig(source=write(tmp_path, ["a", None, "b"] * 10), label="outcome"))


def test_fractional_labels_mean_regression_with_a_train_only_scaling(tmp_path: Path) -> None:
    data = prepare_data(DataConfig(source=write(tmp_path, [0.5, 1.25, 2.0, 10.0] * 20), label="outcome"))
    assert data.task == "regression" and data.split_method == "random"
    assert data.class_names == () and data.target.n_outputs == 1
    train = np.concatenate([b["y"] for b in data.train.iter_batches(batch_format="numpy")])
    assert train.dtype == np.float32
    np.testing.assert_allclose([train.mean(), train.std()], [0.0, 1.0], atol=1e-5)


def test_integer_label_with_many_values_is_regression_unless_told(tmp_path: Path) -> None:
    source = write(tmp_path, list(range(60)) * 10)
    assert prepare_data(DataConfig(source=source, label="outcome")).task == "regression"
    forced = prepare_data(DataConfig(source=source, label="outcome", task="classification"))
    assert forced.task == "classification" and len(forced.class_names) == 60


def test_fractional_labels_cannot_be_classes(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="holds fractional numbers"):
        prepare_data(DataConfig(source=write(tmp_path, [0.5, 1.25] * 10), label="outcome", task="classification"))


def test_string_labels_cannot_be_regressed(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="regression needs numbers"):
        prepare_data(DataConfig(source=write(tmp_path, ["a", "b"] * 10), label="outcome", task="regression"))
