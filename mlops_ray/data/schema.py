"""The schema contract: which columns a table must have, their types, roles and allowed values.

A schema is a small YAML file a config points to (``data.schema_file: <path>``). It is
written once, usually by ``infer_schema`` on a dataset known to be good, reviewed by a
person, and from then on every dataset is validated against it before training, so a
renamed column or a new category fails loudly instead of quietly changing the model.
Its ``digest()`` goes into lineage: two runs with the same digest saw the same contract.

Inference runs as one pass of Ray Data aggregations; the driver receives counts, bounds
and, per string column, at most ``max_categories + 1`` distinct values.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import ray.data
import yaml
from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, ValidationError, model_validator
from ray.data.aggregate import AggregateFnV2, Count, Max, Min
from ray.data.block import Block, BlockAccessor

from mlops_ray.errors import ConfigError, DataError

ColumnType = Literal["integer", "float", "boolean", "string", "other"]
Role = Literal["feature", "label", "id", "ignore"]

_HEADER = """\
# mlops-ray data schema (version 1): the contract every row is checked against before training.
# A config uses it with `data.schema_file: <path to this file>`.
# Per column: type (integer | float | boolean | string | other), role (feature | label | id | ignore),
# nullable (whether a value may be missing), min / max (inclusive bounds, integer and float only),
# categories (the allowed strings; leave it out to allow any string). A column of type `other`
# cannot be checked and must have role `ignore`; ignored columns are dropped before training.
"""


class ColumnSchema(BaseModel):
    """One column's contract; the validators reject combinations that could never be checked."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    type: ColumnType
    role: Role = "feature"
    nullable: bool = True
    min: FiniteFloat | None = None
    max: FiniteFloat | None = None
    categories: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ColumnSchema:
        numeric = self.type in ("integer", "float")
        if (self.min is not None or self.max is not None) and not numeric:
            raise ValueError(f"min/max apply only to integer and float columns, not to type '{self.type}'")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is greater than max ({self.max:g})")
        if self.categories is not None:
            if self.type != "string":
                raise ValueError(f"categories apply only to string columns, not to type '{self.type}'")
            if not self.categories:
                raise ValueError("categories must not be empty; leave the key out to allow any string")
            repeated = sorted({c for c in self.categories if self.categories.count(c) > 1})
            if repeated:
                raise ValueError(f"categories list {', '.join(map(repr, repeated))} more than once")
        if self.type == "other" and self.role != "ignore":
            raise ValueError(f"type 'other' cannot be checked, so it needs role 'ignore', not '{self.role}'")
        if self.role in ("label", "id") and self.nullable:
            raise ValueError(f"a column with role '{self.role}' must be complete; set nullable: false")
        return self


class DataSchema(BaseModel):
    """The whole table's contract: exactly one label, at most one id, every other column a feature or ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    columns: tuple[ColumnSchema, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _roles(self) -> DataSchema:
        names = [c.name for c in self.columns]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"column(s) {', '.join(map(repr, repeated))} declared more than once")
        labels = [c.name for c in self.columns if c.role == "label"]
        if len(labels) != 1:
            found = f"found {', '.join(map(repr, labels))}" if labels else "found none"
            raise ValueError(f"exactly one column must have role 'label'; {found}")
        ids = [c.name for c in self.columns if c.role == "id"]
        if len(ids) > 1:
            raise ValueError(f"at most one column may have role 'id'; found {', '.join(map(repr, ids))}")
        return self

    @property
    def label(self) -> str:
        return next(c.name for c in self.columns if c.role == "label")

    @property
    def id_column(self) -> str | None:
        return next((c.name for c in self.columns if c.role == "id"), None)

    @property
    def features(self) -> tuple[str, ...]:
        """Feature columns in schema order, which is the order the model sees them."""
        return tuple(c.name for c in self.columns if c.role == "feature")

    def column(self, name: str) -> ColumnSchema:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"no column '{name}' in the schema; the columns are: {', '.join(c.name for c in self.columns)}")

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def digest(self) -> str:
        """SHA-256 of the canonical JSON form: the schema's identity in lineage, independent of YAML layout."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def column_type(arrow_type: object) -> ColumnType:
    """The schema type an Arrow column maps to; ``other`` for anything the validator cannot check.

    Ray reports columns Arrow cannot represent (e.g. mixed Python objects) as ``object``: those are ``other``.
    """
    if not isinstance(arrow_type, pa.DataType):
        return "other"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_integer(arrow_type):
        return "integer"
    if pa.types.is_floating(arrow_type):
        return "float"
    if is_string_type(arrow_type):
        return "string"
    return "other"


def is_string_type(arrow_type: pa.DataType) -> bool:
    """Plain, large, view and dictionary-encoded strings all read back as Python ``str``."""
    if pa.types.is_dictionary(arrow_type):
        return is_string_type(arrow_type.value_type)
    return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or pa.types.is_string_view(arrow_type)


def infer_schema(
    dataset: ray.data.Dataset, label: str, id_column: str | None = None, max_categories: int = 50
) -> DataSchema:
    """Describe ``dataset`` as it is: a starting point for a schema a person then reviews and tightens.

    Bounds are the observed min and max (left open where they are not finite) and a string
    column gets categories only when it has at most ``max_categories`` distinct values. The id
    column gets neither bounds nor categories: new rows bring new ids.
    """
    arrow_schema = dataset.schema()
    if arrow_schema is None:
        raise DataError("the dataset has no rows; there is nothing to infer a schema from")
    types = {name: column_type(t) for name, t in zip(arrow_schema.names, arrow_schema.types, strict=True)}
    roles = _roles(types, arrow_schema, label, id_column)
    aggregations: list[AggregateFnV2] = [Count(alias_name="rows")]
    for name, kind in types.items():
        aggregations.append(Count(on=name, ignore_nulls=True, alias_name=f"count({name})"))
        if kind in ("integer", "float") and roles[name] != "id":
            aggregations += [Min(on=name, alias_name=f"min({name})"), Max(on=name, alias_name=f"max({name})")]
        if kind == "string" and roles[name] != "id":
            aggregations.append(_FirstDistinct(name, max_categories))
    stats = dataset.aggregate(*aggregations) or {}
    rows = int(stats.get("rows") or 0)
    if rows == 0:
        raise DataError("the dataset has no rows; there is nothing to infer a schema from")
    columns = []
    for name, kind in types.items():
        missing = rows - int(stats[f"count({name})"])
        if missing and roles[name] in ("label", "id"):
            raise DataError(
                f"{roles[name]} column '{name}' has {missing} missing value(s); it must be complete",
                where=f"data.{'label' if roles[name] == 'label' else 'id_column'}",
                hint="Drop or fill those rows before inferring a schema.",
            )
        distinct = stats.get(f"distinct({name})")
        columns.append(
            ColumnSchema(
                name=name,
                type=kind,
                role=roles[name],
                nullable=missing > 0,
                min=_finite(stats.get(f"min({name})")),
                max=_finite(stats.get(f"max({name})")),
                categories=tuple(distinct) if distinct and len(distinct) <= max_categories else None,
            )
        )
    return DataSchema(columns=tuple(columns))


def _roles(types: dict[str, ColumnType], arrow_schema: Any, label: str, id_column: str | None) -> dict[str, Role]:
    names = list(types)
    for key, name in (("label", label), ("id_column", id_column)):
        if name is None:
            continue
        if name not in types:
            raise DataError(f"column '{name}' not found; the columns are: {', '.join(names)}", where=f"data.{key}")
        if types[name] == "other":
            arrow_type = arrow_schema.types[names.index(name)]
            raise DataError(f"column '{name}' holds {arrow_type} values, which cannot be checked", where=f"data.{key}")
    if id_column == label:
        raise DataError(f"'{label}' cannot be both the label and the id column", where="data.id_column")
    roles: dict[str, Role] = {n: "feature" if t != "other" else "ignore" for n, t in types.items()}
    roles[label] = "label"
    if id_column is not None:
        roles[id_column] = "id"
    return roles


def _finite(value: object) -> float | None:
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    return number if math.isfinite(number) else None


class _FirstDistinct(AggregateFnV2[list, list]):
    """The smallest ``limit + 1`` distinct non-null strings: enough to tell "at most ``limit``" from "more".

    Ray's ``Unique`` would carry every distinct value of a free-text column to the driver;
    this keeps each partial result bounded, so memory does not grow with cardinality.
    """

    def __init__(self, on: str, limit: int):
        super().__init__(f"distinct({on})", zero_factory=list, on=on, ignore_nulls=True)
        self._limit = limit

    def aggregate_block(self, block: Block) -> list:
        column = BlockAccessor.for_block(block).to_arrow().column(self.get_target_column())
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        return sorted(pc.unique(column.drop_null()).to_pylist())[: self._limit + 1]

    def combine(self, current_accumulator: list, new: list) -> list:
        return sorted(set(current_accumulator) | set(new))[: self._limit + 1]


def load_schema(path: str | Path) -> DataSchema:
    """Read and validate a schema file; every problem becomes one ConfigError naming field and column."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError("schema file not found", where=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"schema file cannot be read ({exc.strerror})", where=str(path)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"is not valid YAML ({exc})".replace("\n", " "), where=str(path)) from None
    if not isinstance(raw, dict):
        got = "an empty file" if raw is None else type(raw).__name__
        raise ConfigError(f"must be a YAML mapping with a 'columns' list, got {got}", where=str(path))
    try:
        return DataSchema.model_validate(raw)
    except ValidationError as exc:
        problems = [_describe(err, raw) for err in exc.errors()]
        raise ConfigError(
            f"{len(problems)} problem(s): " + "; ".join(problems) + ".",
            where=str(path),
            hint="Each column takes name, type, role, nullable, min, max and categories; "
            "a file written by save_schema starts with a comment explaining them.",
        ) from None


def _describe(err: Any, raw: dict[str, Any]) -> str:
    """One pydantic error as ``'columns[2].min' (column 'age') <message> (got <value>)``."""
    loc = list(err["loc"])
    key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    column = ""
    if len(loc) >= 2 and loc[0] == "columns" and isinstance(loc[1], int):
        entries = raw.get("columns")
        entry = entries[loc[1]] if isinstance(entries, list) and loc[1] < len(entries) else None
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            column = f" (column '{entry['name']}')"
    if err["type"] == "extra_forbidden":
        model = ColumnSchema if len(loc) == 3 and loc[0] == "columns" else DataSchema
        valid = sorted(model.model_fields)
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.6)
        suggestion = f"did you mean '{close[0]}'" if close else f"valid keys: {', '.join(valid)}"
        return f"'{key}'{column} is not a known key, {suggestion}"
    given = f" (got {err['input']!r})" if err["type"] != "missing" and not isinstance(err["input"], dict | list) else ""
    message = err["msg"].removeprefix("Value error, ")
    return f"'{key}'{column} {message}{given}" if key else f"{message}"


def save_schema(schema: DataSchema, path: str | Path) -> Path:
    """Write ``schema`` as commented YAML, atomically: a failed write never leaves half a file behind.

    Unset bounds and categories are left out and integer columns' bounds written as integers,
    so the file reads as a person would write it; ``load_schema`` gives back an equal schema.
    """
    path = Path(path)
    columns = []
    for column in schema.columns:
        entry = column.model_dump(mode="json", exclude_none=True)
        if column.type == "integer":
            entry.update({k: int(v) for k, v in entry.items() if k in ("min", "max") and float(v).is_integer()})
        columns.append(entry)
    text = _HEADER + yaml.safe_dump({"version": schema.version, "columns": columns}, sort_keys=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, 0o644)  # mkstemp's 0600 would make the schema unreadable to a cluster's other users
        with os.fdopen(handle, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
