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
import pyarrow.csv as pa_csv
import ray.data
from ray.data.aggregate import Count, Sum
from ray.data.expressions import col

from mlops_ray.data.schema import ColumnSchema, ColumnType, DataSchema, column_type, is_string_type
from mlops_ray.errors import DataError

REASON = "_rejected_because"
_FLAG_PREFIX = "__mlops_violation_"
_TARGET = {"integer": pa.int64(), "float": pa.float64(), "boolean": pa.bool_(), "string": pa.string()}
# Arrow column kinds a declared type can be read from; anything else fails at table level.
_READABLE_FROM: dict[ColumnType, tuple[ColumnType, ...]] = {
    "integer": ("integer", "float", "string"),
    "float": ("integer", "float", "string"),
    "boolean": ("boolean", "integer", "string"),
    "string": ("string",),
}
_NULL_MARKERS = pa.array(pa_csv.ConvertOptions().null_values, pa.string())
_EXACT_FLOAT = 2**53  # beyond this not every integer has a float64 of its own
_INTEGER_TEXT = r"^-?\d{1,18}$"  # 18 digits always fit int64; longer ones are checked one by one
_LONG_INTEGER_TEXT = r"^-?\d{19,}$"
_FLOAT_TEXT = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
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
                mask = wrong_type
            elif rule == "null":
                mask = missing
            elif rule == "range":
                low = _mask(pc.less(parsed, column.min)) if column.min is not None else False
                mask = low | (_mask(pc.greater(parsed, column.max)) if column.max is not None else False)
            else:
                mask = ~_mask(pc.is_in(parsed, value_set=pa.array(column.categories, pa.string()))) & ~missing
            table = table.append_column(f"{_FLAG_PREFIX}{index}", pa.array(mask.astype(np.int8)))
            index += 1
            for row in np.flatnonzero(mask):
                tag = f"{column.name}:{rule}"
                reasons[row] = tag if reasons[row] is None else f"{reasons[row]}; {tag}"
    return table.append_column(REASON, pa.array(reasons, pa.string()))


def _cast_batch(table: pa.Table, schema: DataSchema) -> pa.Table:
    """Good rows -> the declared types in schema order, ignored columns dropped; cannot fail after the checks."""
    kept = [c for c in schema.columns if c.role != "ignore"]
    return pa.table({c.name: parse_column(table.column(c.name), c.type)[0] for c in kept})


def parse_column(values: pa.ChunkedArray | pa.Array, declared: ColumnType) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """(values as the declared type with unparseable ones null, missing mask, wrong-type mask)."""
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    none = np.zeros(len(array), dtype=bool)
    if declared == "other":
        return array, _mask(pc.is_null(array)), none
    if pa.types.is_null(array.type):
        return pa.nulls(len(array), _TARGET[declared]), ~none, none
    if is_string_type(array.type):
        array = array.cast(pa.string())
        if declared == "string":
            return array, _mask(pc.is_null(array)), none
        text = pc.utf8_trim_whitespace(array)
        missing = _mask(pc.is_null(text)) | _mask(pc.is_in(text, value_set=_NULL_MARKERS))
        text = pc.if_else(pa.array(missing), pa.scalar(None, pa.string()), text)
        parsed = {"integer": _integers_from_text, "float": _floats_from_text, "boolean": _booleans_from_text}
        result = parsed[declared](text)
    else:
        missing = _mask(pc.is_null(array))
        result = _from_numbers(array, declared)
    return result, missing, ~missing & _mask(pc.is_null(result))


def _from_numbers(array: pa.Array, declared: ColumnType) -> pa.Array:
    """Numbers or booleans -> the declared type; a value the type cannot hold exactly becomes null."""
    if declared == "boolean":
        if pa.types.is_boolean(array.type):
            return array
        return _keep(pc.equal(array, 1), pc.is_in(array, value_set=pa.array([0, 1], array.type)))
    if pa.types.is_floating(array.type):
        array = array.cast(pa.float64())
        finite = pc.is_finite(array)
        if declared == "float":
            return _keep(array, finite)
        whole = pc.and_(finite, pc.equal(pc.floor(array), array))
        fits = pc.and_(pc.greater_equal(array, -(2.0**63)), pc.less(array, 2.0**63))
        return _keep(array, pc.and_(whole, fits)).cast(pa.int64())
    if declared == "integer":
        if pa.types.is_uint64(array.type):
            return _keep(array, pc.less_equal(array, pa.scalar(2**63 - 1, pa.uint64()))).cast(pa.int64())
        return array.cast(pa.int64())
    if pa.types.is_int64(array.type) or pa.types.is_uint64(array.type):  # narrower integers are all exact
        floats = array.cast(pa.float64(), safe=False)
        limit = 2.0**64 if pa.types.is_uint64(array.type) else 2.0**63
        back = _keep(floats, pc.and_(pc.greater_equal(floats, -(2.0**63)), pc.less(floats, limit)))
        array = _keep(array, pc.equal(back.cast(array.type), array))  # exact if it survives the round trip
    return array.cast(pa.float64(), safe=False)  # safe=False: pyarrow refuses any |value| > 2**53, exact or not


def _integers_from_text(text: pa.Array) -> pa.Array:
    text = pc.replace_substring_regex(text, r"^\+", "")
    short = pc.match_substring_regex(text, _INTEGER_TEXT)
    values = _keep(text, short).cast(pa.int64())
    floats = _floats_from_text(_keep(text, pc.invert(short)))
    floats = _keep(floats, pc.less_equal(pc.abs(floats), float(_EXACT_FLOAT)))  # beyond, "1e17" may not be exact
    values = pc.coalesce(values, _from_numbers(floats, "integer"))  # "1.0" is 1, "1.5" is null
    long = np.flatnonzero(_mask(pc.match_substring_regex(text, _LONG_INTEGER_TEXT)))
    if len(long):
        fitting = {int(i): int(text[int(i)].as_py()) for i in long}
        fitting = {i: v for i, v in fitting.items() if -(2**63) <= v < 2**63}
        exact = pa.array([fitting.get(i) for i in range(len(text))], pa.int64())
        values = pc.coalesce(values, exact)
    return values


def _floats_from_text(text: pa.Array) -> pa.Array:
    values = _keep(text, pc.match_substring_regex(text, _FLOAT_TEXT)).cast(pa.float64())
    return _keep(values, pc.is_finite(values))  # "1e999" parses to inf, which no float column accepts


def _booleans_from_text(text: pa.Array) -> pa.Array:
    lower = pc.utf8_lower(text)
    true = pc.is_in(lower, pa.array(["true", "1"]))
    return _keep(true, pc.or_(true, pc.is_in(lower, pa.array(["false", "0"]))))


def _keep(values: pa.Array, condition: pa.Array) -> pa.Array:
    """``values`` where ``condition`` holds, null elsewhere (also where ``condition`` is null)."""
    return pc.if_else(condition.fill_null(False), values, pa.scalar(None, values.type))


def _mask(condition: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(condition.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


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
