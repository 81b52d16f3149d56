"""Look at the label column once, in a streaming pass, and decide the task from it.

The pass returns, per batch, whether the label has missing or fractional values and
its distinct values up to a cap, so a ten-million-row regression label never brings
ten million values to the driver. From that summary ``decide_task`` settles
classification versus regression and refuses labels that cannot be learned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import ray.data

from mlops_ray.data.target import Task
from mlops_ray.errors import DataError

MAX_CLASSES = 1000  # distinct values tracked per label; more than this is not a classification label
AUTO_MAX_CLASSES = 20  # task "auto": an integer label with more distinct values is treated as regression


@dataclass(frozen=True)
class LabelSummary:
    column: str
    arrow_type: pa.DataType
    rows: int
    nulls: int
    fractional: bool
    values: tuple[object, ...] | None  # sorted distinct values; None when over MAX_CLASSES

    @property
    def numeric(self) -> bool:
        return pa.types.is_integer(self.arrow_type) or pa.types.is_floating(self.arrow_type)


def summarize_label(dataset: ray.data.Dataset, column: str) -> LabelSummary:
    arrow_type = dict(zip(dataset.schema().names, dataset.schema().types, strict=True))[column]
    partials = dataset.select_columns([column]).map_batches(
        _BatchSummary(column), batch_format="pandas", batch_size=None
    )
    rows = nulls = 0
    fractional = False
    values: set[object] | None = set()
    for part in partials.iter_rows():
        rows += int(part["rows"])
        nulls += int(part["nulls"])
        fractional = fractional or bool(part["fractional"])
        batch_values = part["values"]
        if values is not None and batch_values is not None:
            values.update(_python(v) for v in batch_values)
            if len(values) > MAX_CLASSES:
                values = None
        else:
            values = None
    ordered = tuple(sorted(values)) if values is not None else None  # type: ignore[type-var]
    return LabelSummary(column, arrow_type, rows, nulls, fractional, ordered)


class _BatchSummary:
    def __init__(self, column: str):
        self.column = column

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        present = batch[self.column].dropna()
        fractional = False
        if pd.api.types.is_float_dtype(present):
            numbers = present.to_numpy(dtype=np.float64)
            fractional = bool((~np.isfinite(numbers) | (numbers != np.round(numbers))).any())
        distinct = pd.unique(present.to_numpy())
        values = list(distinct) if len(distinct) <= MAX_CLASSES else None
        return pd.DataFrame(
            {"rows": [len(batch)], "nulls": [len(batch) - len(present)], "fractional": [fractional], "values": [values]}
        )


def _python(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def decide_task(summary: LabelSummary, setting: str, known: Task | None, where: str) -> Task:
    """The task to train; raises DataError for a label that cannot be learned as that task."""
    label = summary.column
    if summary.nulls:
        raise DataError(
            f"label column '{label}' has {summary.nulls} missing value(s); drop or fill those rows first", where=where
        )
    task: Task
    if setting != "auto":
        task = setting  # type: ignore[assignment]
    elif known is not None:
        task = known
    elif not summary.numeric or pa.types.is_boolean(summary.arrow_type):
        task = "classification"
    elif summary.fractional or summary.values is None or len(summary.values) > AUTO_MAX_CLASSES:
        task = "regression"
    else:
        task = "classification"
    if task == "regression":
        if not summary.numeric:
            raise DataError(
                f"label column '{label}' holds {summary.arrow_type} values; regression needs numbers", where=where
            )
        return task
    if summary.values is None:
        raise DataError(
            f"label column '{label}' has more than {MAX_CLASSES} distinct values; "
            "set data.task: regression if it is a number to predict",
            where=where,
        )
    if len(summary.values) < 2:
        raise DataError(
            f"label column '{label}' has a single class {list(summary.values)}; nothing to learn", where=where
        )
    if summary.fractional:
        shown = ", ".join(map(repr, summary.values[:5]))
        raise DataError(
            f"label column '{label}' holds fractional numbers ({shown}, ...) but data.task is classification; "
            "use data.task: regression or auto",
            where=where,
        )
    return task
