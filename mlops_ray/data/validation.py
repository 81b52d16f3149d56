"""Check every row against the schema contract on Ray Data; keep the good rows, quarantine the rest.

Table-level mismatches (a missing or unexpected column, a column whose type can never
hold the declared one) raise at once: dropping rows cannot fix them. Row-level checks run
in one distributed ``map_batches`` pass that tags each row with the rules it breaks; the
tagged data is materialized once and the counts (Ray Data ``Sum`` aggregations over
per-rule 0/1 columns), a few example rows, and the valid and rejected splits all derive
from it. The driver only ever receives counts and ``examples`` rows per violation.

Rules, each reported per column as ``column:rule``:

- ``type``: the value is not exactly a value of the declared type. Nothing is coerced:
  ``"1.5"`` or ``1.5`` in an integer column is rejected, never truncated, while ``"1.0"``
  and ``1.0`` are the integer 1. NaN and infinity in a numeric column are ``type``
  violations too: they are not numbers a model can use, and a missing value must be
  written as a null so that ``nullable`` governs it.
- ``null``: a missing value in a column declared ``nullable: false``.
- ``range``: a number outside the inclusive ``[min, max]``.
- ``category``: a string not among the declared ``categories``.

A numeric or boolean column may arrive as strings (a CSV reader falls back to strings
when a few values are bad). Those strings are parsed here, treating blank cells and
pyarrow's CSV null markers (``NA``, ``null``, ``NaN``, ...) as missing, so the good rows
get exactly what the reader would have produced without the bad ones.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray.data
from ray.data.aggregate import Count, Sum
from ray.data.expressions import col

from mlops_ray.data.parsing import mask, parse_column
from mlops_ray.data.schema import ColumnSchema, ColumnType, DataSchema, column_type
from mlops_ray.errors import DataError

REASON = "_rejected_because"
_FLAG_PREFIX = "__mlops_violation_"
# Arrow column kinds a declared type can be read from; anything else fails at table level.
_READABLE_FROM: dict[ColumnType, tuple[ColumnType, ...]] = {
    "integer": ("integer", "float", "string"),
    "float": ("integer", "float", "string"),
    "boolean": ("boolean", "integer", "string"),
    "string": ("string",),
}
_METRIC_UNSAFE = re.compile(r"[^0-9A-Za-z_.\- ]")  # MLflow refuses other characters in metric names


@dataclass(frozen=True)
class Violation:
    column: str
    rule: str
    count: int
    examples: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class ValidationReport:
    rows: int
    invalid_rows: int
    violations: tuple[Violation, ...] = ()
    id_column: str | None = None  # lets an error message point at rows by their id

    @property
    def ok(self) -> bool:
        return self.invalid_rows == 0

    def to_dict(self) -> dict[str, Any]:
        violations = [{**vars(v), "examples": list(v.examples)} for v in self.violations]
        return {"rows": self.rows, "invalid_rows": self.invalid_rows, "violations": violations}

    def counts(self) -> dict[str, int]:
        """Flat metric names for ``mlflow.log_metrics``; odd characters in column names become ``_``."""
        metrics = {"invalid_rows": self.invalid_rows}
        for v in self.violations:
            metrics[f"invalid.{_METRIC_UNSAFE.sub('_', v.column)}.{v.rule}"] = v.count
        return metrics


@dataclass(frozen=True)
class ValidationResult:
    valid: ray.data.Dataset
    rejected: ray.data.Dataset
    report: ValidationReport


def validate(dataset: ray.data.Dataset, schema: DataSchema, *, examples: int = 3) -> ValidationResult:
    """Split ``dataset`` into rows that meet ``schema`` (cast to the declared types) and rejected rows."""
    arrow_schema = dataset.schema()
    check_table(arrow_schema, schema)
    checks = [(c.name, rule) for c in schema.columns for rule in _rules(c)]
    flags = [f"{_FLAG_PREFIX}{i}" for i in range(len(checks))]
    checked = dataset.map_batches(_check_batch, batch_format="pyarrow", fn_kwargs={"schema": schema}).materialize()
    sums = [Sum(on=flag, alias_name=flag) for flag in flags]
    stats = checked.aggregate(Count(alias_name="rows"), Count(on=REASON, ignore_nulls=True, alias_name="bad"), *sums)
    stats = stats or {}
    shown = [*arrow_schema.names, REASON]
    violations = []
    for (column, rule), flag in zip(checks, flags, strict=True):
        count = int(stats.get(flag) or 0)
        if count:
            rows = checked.filter(expr=col(flag) == 1).select_columns(shown).take(examples) if examples > 0 else []
            violations.append(Violation(column, rule, count, tuple(_json_safe(r) for r in rows)))
    violations.sort(key=lambda v: v.count, reverse=True)  # stable: schema order among equal counts
    report = ValidationReport(
        int(stats.get("rows") or 0), int(stats.get("bad") or 0), tuple(violations), schema.id_column
    )
    valid = checked.filter(expr=col(REASON).is_null())
    valid = valid.map_batches(_cast_batch, batch_format="pyarrow", fn_kwargs={"schema": schema})
    rejected = checked.filter(expr=col(REASON).is_not_null())
    return ValidationResult(valid, rejected.drop_columns(flags) if flags else rejected, report)


def check_table(arrow_schema: Any, schema: DataSchema) -> None:
    """Raise one DataError listing every column-level mismatch between the data and ``schema``."""
    if arrow_schema is None:
        raise DataError("the dataset has no rows, so its columns are unknown", where="data.schema_file")
    data_types = dict(zip(arrow_schema.names, arrow_schema.types, strict=True))
    declared = {c.name: c for c in schema.columns}
    problems, hints = [], []
    reserved = [n for n in declared if n == REASON or n.startswith(_FLAG_PREFIX)]
    if reserved:
        problems.append(f"column name(s) {_names(reserved)} are reserved for validation's own bookkeeping")
        hints.append("Rename those columns.")
    missing = [n for n in declared if n not in data_types]
    if missing:
        problems.append(f"missing column(s) {_names(missing)} (in the schema, not in the data)")
        hints.append("Check that data.source is the intended table, or remove those columns from the schema.")
    unexpected = [n for n in data_types if n not in declared]
    if unexpected:
        problems.append(f"unexpected column(s) {_names(unexpected)} (in the data, not in the schema)")
        hints.append("Declare each with `role: ignore` (and `type: other` if its values cannot be checked).")
    mismatched = [
        f"'{name}' is declared {column.type} but the data holds {data_types[name]}"
        for name, column in declared.items()
        if name in data_types and column.type != "other" and not _readable(data_types[name], column.type)
    ]
    if mismatched:
        problems.append("; ".join(mismatched))
        hints.append("Correct the declared type, or the way the data is written.")
    if problems:
        raise DataError(
            f"the data does not match the schema: {'; '.join(problems)}", where="data.schema_file", hint=" ".join(hints)
        )


def _readable(arrow_type: Any, declared: ColumnType) -> bool:
    if isinstance(arrow_type, pa.DataType) and pa.types.is_null(arrow_type):
        return True  # an all-null column holds nothing of the wrong type
    return isinstance(arrow_type, pa.DataType) and column_type(arrow_type) in _READABLE_FROM[declared]


def _rules(column: ColumnSchema) -> tuple[str, ...]:
    """The rules that can fail for ``column``, in report order; one 0/1 column is kept per rule."""
    rules = ["type"] if column.type in ("integer", "float", "boolean") else []
    rules += [] if column.nullable else ["null"]
    rules += ["range"] if column.min is not None or column.max is not None else []
    rules += ["category"] if column.categories is not None else []
    return tuple(rules)


def _check_batch(table: pa.Table, schema: DataSchema) -> pa.Table:
    """Append one 0/1 column per (column, rule) and the ``_rejected_because`` text (null for a good row)."""
    reasons = np.full(table.num_rows, None, dtype=object)
    index = 0
    for column in schema.columns:
        parsed, missing, wrong_type = parse_column(table.column(column.name), column.type)
        for rule in _rules(column):
            if rule == "type":
                hits = wrong_type
            elif rule == "null":
                hits = missing
            elif rule == "range":
                low = mask(pc.less(parsed, column.min)) if column.min is not None else False
                hits = low | (mask(pc.greater(parsed, column.max)) if column.max is not None else False)
            else:
                hits = ~mask(pc.is_in(parsed, value_set=pa.array(column.categories, pa.string()))) & ~missing
            table = table.append_column(f"{_FLAG_PREFIX}{index}", pa.array(hits.astype(np.int8)))
            index += 1
            for row in np.flatnonzero(hits):
                tag = f"{column.name}:{rule}"
                reasons[row] = tag if reasons[row] is None else f"{reasons[row]}; {tag}"
    return table.append_column(REASON, pa.array(reasons, pa.string()))


def _cast_batch(table: pa.Table, schema: DataSchema) -> pa.Table:
    """Good rows -> the declared types in schema order, ignored columns dropped; cannot fail after the checks."""
    kept = [c for c in schema.columns if c.role != "ignore"]
    return pa.table({c.name: parse_column(table.column(c.name), c.type)[0] for c in kept})


def raise_for_violations(report: ValidationReport, source: str) -> None:
    """Refuse the data with one paragraph: each broken rule, how often, and a few offending values."""
    if report.ok:
        return
    parts = []
    for v in report.violations:
        keep = [k for k in (report.id_column, v.column) if k]
        shown = ", ".join(str({k: e.get(k) for k in keep}) for e in v.examples[:3])
        parts.append(f"column '{v.column}' rule '{v.rule}': {v.count} row(s)" + (f" (e.g. {shown})" if shown else ""))
    raise DataError(
        f"{report.invalid_rows} of {report.rows} row(s) break the schema: {'; '.join(parts)}.",
        where=f"data.source={source!r}",
        hint="Fix the data or the schema (data.schema_file), or set `data.on_invalid: drop` "
        "to train on the valid rows and quarantine the rest.",
    )


def write_quarantine(rejected: ray.data.Dataset, directory: str | Path) -> Path | None:
    """Write the rejected rows as Parquet under ``directory``; None, and nothing written, when there are none.

    Ray writes into a fresh sibling directory which is then renamed into place, replacing a
    previous quarantine only once the new one is complete. An existing quarantine is left
    untouched when there is nothing to write: deleting data nobody asked to replace is worse
    than a stale folder, and the None return says this run rejected nothing. The directory
    must be reachable from every Ray worker (a local disk on one machine, or a shared mount).
    """
    if "://" in str(directory):
        raise DataError("quarantine needs a directory on a local or shared filesystem", where=str(directory))
    if rejected.count() == 0:
        return None
    target = Path(directory).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        staging.chmod(0o755)
        rejected.write_parquet(str(staging))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    previous = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    if target.exists():
        os.replace(target, previous)
    os.replace(staging, target)
    shutil.rmtree(previous, ignore_errors=True)
    return target


def _names(names: list[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def _json_safe(value: Any) -> Any:
    """Example values as JSON can hold them: non-finite floats and other objects become strings."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_json_safe(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value.isoformat() if hasattr(value, "isoformat") else str(value)
