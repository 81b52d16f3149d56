"""The preprocessing that ships inside the model: math, constant columns, JSON round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlops_ray.data.preprocessing import Preprocessing


def test_transform_standardises_with_stored_stats() -> None:
    prep = Preprocessing(("a", "b"), (1.0, 10.0), (2.0, 5.0))
    frame = pd.DataFrame({"b": [10.0, 20.0], "a": [3.0, 1.0], "extra": [0, 0]})
    out = prep.transform(frame)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[1.0, 0.0], [0.0, 2.0]])


def test_constant_column_is_not_divided_by_zero() -> None:
    prep = Preprocessing(("a",), (4.0,), (0.0,))
    np.testing.assert_allclose(prep.transform(pd.DataFrame({"a": [4.0, 5.0]})), [[0.0], [1.0]])


def test_json_round_trip() -> None:
    prep = Preprocessing(("a", "b"), (0.5, -1.0), (1.5, 2.0))
    assert Preprocessing.from_json(prep.to_json()) == prep
