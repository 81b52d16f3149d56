"""A row gives identical features through the batch path (Ray Data) and the online path (JSON).

The batch path is the Ray Data ``map_batches`` callable that feeds training; the
online path is what the endpoint does with a JSON request: records -> DataFrame ->
the same ``Preprocessing.transform``. Mixed numeric / string columns with missing
values exercise the imputation and the unknown bucket.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import ray.data

from mlops_ray.config import DataConfig, SyntheticConfig
from mlops_ray.data import prepare_data
from mlops_ray.data.prepare import _TensorColumns
from mlops_ray.serve.contract import records_from_frame

pytestmark = pytest.mark.usefixtures("ray_cluster")
SHAPE = SyntheticConfig(rows=3_000, features=4, categoricals=2, categories=5, missing_fraction=0.1, seed=3)


@pytest.mark.parametrize("encoding", ["onehot", "ordinal"])
def test_batch_and_online_paths_give_identical_features(encoding: str) -> None:
    data = prepare_data(
        DataConfig(source="synthetic:classification", synthetic=SHAPE, categorical_encoding=encoding)  # type: ignore[arg-type]
    )
    rows = data.test.to_pandas()
    assert rows[list(data.features)].isna().any().any(), "the sample should contain missing values"
    batch = np.concatenate(
        [
            b["x"]
            for b in ray.data.from_pandas(rows)
            .map_batches(_TensorColumns(data.preprocessing, data.target), batch_format="pandas")
            .iter_batches(batch_format="numpy")
        ]
    )
    body = json.dumps({"records": records_from_frame(rows, list(data.features))})  # what a client sends
    records = json.loads(body)["records"]
    online = data.preprocessing.transform(pd.DataFrame(records, columns=list(data.features)))
    np.testing.assert_array_equal(batch, online)
    assert batch.shape == (len(rows), data.preprocessing.width)


def test_vocabulary_is_capped_per_column_with_an_unknown_bucket() -> None:
    data = prepare_data(DataConfig(source="synthetic:classification", synthetic=SHAPE, max_categories=3))
    first, second = data.preprocessing.categorical
    assert len(first.categories) == 3 and first.unknown == 3
    assert all(value.startswith("c0_") for value in first.categories)
    assert all(value.startswith("c1_") for value in second.categories)
    assert data.preprocessing.width == 4 + 2 * (3 + 1)
