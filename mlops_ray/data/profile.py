"""Per-column profile (counts, nulls, min/max/mean, top categories) from Ray Data aggregations.

Everything is computed by distributed aggregations; the driver only receives the
aggregated numbers and, per string column, the ``top_k`` most frequent values.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pyarrow as pa
import ray.data
from ray.data.aggregate import Count, Max, Mean, Min

TOP_K = 5


@dataclass(frozen=True)
class ColumnProfile:
    name: str
    kind: str  # "numeric" or "categorical"
    count: int
    nulls: int
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    top: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class DatasetProfile:
    rows: int
    columns: tuple[ColumnProfile, ...]

    def to_dict(self) -> dict:
        return {"rows": self.rows, "columns": [asdict(c) for c in self.columns]}


def profile(dataset: ray.data.Dataset, top_k: int = TOP_K) -> DatasetProfile:
    schema = dataset.schema()
    kinds = {n: "numeric" if is_numeric(t) else "categorical" for n, t in zip(schema.names, schema.types, strict=True)}
    aggregations = [Count(alias_name="rows")]
    for name, kind in kinds.items():
        aggregations.append(Count(on=name, ignore_nulls=True, alias_name=f"count({name})"))
        if kind == "numeric":
            aggregations += [Min(on=name, ignore_nulls=True), Max(on=name, ignore_nulls=True)]
            aggregations.append(Mean(on=name, ignore_nulls=True))
    stats = dataset.aggregate(*aggregations)
    rows = int(stats["rows"])
    columns = []
    for name, kind in kinds.items():
        count = int(stats[f"count({name})"])
        if kind == "numeric":
            low, high, mean = (_float(stats[f"{agg}({name})"]) for agg in ("min", "max", "mean"))
            columns.append(ColumnProfile(name, kind, count, rows - count, low, high, mean))
        else:
            columns.append(ColumnProfile(name, kind, count, rows - count, top=top_values(dataset, name, top_k)))
    return DatasetProfile(rows, tuple(columns))


def top_values(dataset: ray.data.Dataset, column: str, top_k: int) -> tuple[tuple[str, int], ...]:
    """The ``top_k`` most frequent non-null values of ``column`` with their counts, most frequent first."""
    grouped = dataset.select_columns([column]).groupby(column).count()
    ranked = grouped.sort(["count()", column], descending=[True, False]).take(top_k + 1)  # ties: by value
    return tuple((str(r[column]), int(r["count()"])) for r in ranked if r[column] is not None)[:top_k]


def _float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def is_categorical(arrow_type: object) -> bool:
    return isinstance(arrow_type, pa.DataType) and (
        pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or pa.types.is_dictionary(arrow_type)
    )


def is_numeric(arrow_type: object) -> bool:
    return isinstance(arrow_type, pa.DataType) and (
        pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type) or pa.types.is_boolean(arrow_type)
    )
