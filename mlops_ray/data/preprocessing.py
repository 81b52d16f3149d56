"""Feature preprocessing that travels with the model.

Numeric columns: missing values filled with the training mean, then standardised.
String columns: the training split's most frequent values (up to ``max_categories``)
plus one *unknown* bucket that also takes missing values and anything new at
serving time; encoded one-hot or as an ordinal code. Statistics are fitted with Ray
Data aggregations over the training split only and kept as plain JSON. The same
``transform`` runs inside the Ray Data pipeline during training and inside the
served model, so training and serving cannot drift apart, and loading a model
never unpickles a preprocessor.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import ray.data
from ray.data.aggregate import Mean, Std

from mlops_ray.data.profile import top_values

_EPSILON = 1e-8  # same guard as Ray's StandardScaler for constant columns
Encoding = Literal["onehot", "ordinal"]


@dataclass(frozen=True)
class NumericColumn:
    name: str
    fill: float
    mean: float
    std: float


@dataclass(frozen=True)
class CategoricalColumn:
    name: str
    categories: tuple[str, ...]

    @property
    def unknown(self) -> int:
        return len(self.categories)


@dataclass(frozen=True)
class Preprocessing:
    numeric: tuple[NumericColumn, ...]
    categorical: tuple[CategoricalColumn, ...] = ()
    encoding: Encoding = "onehot"

    def typical_row(self) -> dict[str, Any]:
        """Training means for numbers, the most frequent category for strings: what an unspecified column takes."""
        row: dict[str, Any] = {c.name: c.fill for c in self.numeric}
        return row | {c.name: (c.categories[0] if c.categories else None) for c in self.categorical}

    @property
    def features(self) -> tuple[str, ...]:
        """The raw input columns, in the order the model expects them."""
        return tuple(c.name for c in self.numeric) + tuple(c.name for c in self.categorical)

    @property
    def width(self) -> int:
        """Number of columns ``transform`` produces: the network's input size."""
        per_category = (lambda c: c.unknown + 1) if self.encoding == "onehot" else (lambda c: 1)
        return len(self.numeric) + sum(per_category(c) for c in self.categorical)

    @classmethod
    def fit(
        cls,
        train: ray.data.Dataset,
        numeric: list[str],
        categorical: list[str],
        *,
        standardize: bool = True,
        encoding: Encoding = "onehot",
        max_categories: int = 50,
    ) -> Preprocessing:
        stats: dict[str, object] = {}
        if numeric:
            aggregations = [Mean(on=c, ignore_nulls=True) for c in numeric]
            aggregations += [Std(on=c, ddof=0, ignore_nulls=True) for c in numeric]
            stats = train.aggregate(*aggregations)
        numeric_columns = []
        for name in numeric:
            mean = stats.get(f"mean({name})")
            std = stats.get(f"std({name})")
            fill = 0.0 if mean is None else float(mean)  # an all-missing column becomes constant 0
            numeric_columns.append(
                NumericColumn(name, fill, fill if standardize else 0.0, float(std or 1.0) if standardize else 1.0)
            )
        tops = top_values(train, categorical, max_categories)
        categorical_columns = [CategoricalColumn(name, tuple(value for value, _ in tops[name])) for name in categorical]
        return cls(tuple(numeric_columns), tuple(categorical_columns), encoding)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Raw feature columns -> the float32 matrix the network consumes.

        Written column block by column block into one float32 array: no float64
        one-hot copies, which tripled the memory of a large batch.
        """
        out = np.zeros((len(frame), self.width), dtype=np.float32)
        position = len(self.numeric)
        if self.numeric:
            out[:, :position] = self._numeric(frame)
        rows = np.arange(len(frame))
        for column in self.categorical:
            codes = self._codes(frame, column)
            if self.encoding == "ordinal":
                out[:, position] = codes
                position += 1
            else:
                out[rows, position + codes] = 1.0
                position += column.unknown + 1
        return out

    def _numeric(self, frame: pd.DataFrame) -> np.ndarray:
        raw = np.column_stack(
            [pd.to_numeric(frame[c.name]).to_numpy(dtype=np.float64, na_value=np.nan) for c in self.numeric]
        )
        fills = np.array([c.fill for c in self.numeric])
        raw = np.where(np.isnan(raw), fills, raw)
        means = np.array([c.mean for c in self.numeric])
        stds = np.array([c.std if c.std >= _EPSILON else 1.0 for c in self.numeric])
        return (raw - means) / stds

    @staticmethod
    def _codes(frame: pd.DataFrame, column: CategoricalColumn) -> np.ndarray:
        values = frame[column.name].astype(object).where(frame[column.name].notna(), None)
        codes = pd.Categorical(values, categories=list(column.categories)).codes.astype(np.int64)
        return np.where(codes < 0, column.unknown, codes)  # unseen values and missing share the unknown bucket

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Preprocessing:
        data = json.loads(text)
        return cls(
            tuple(NumericColumn(**c) for c in data["numeric"]),
            tuple(CategoricalColumn(c["name"], tuple(c["categories"])) for c in data["categorical"]),
            data["encoding"],
        )
