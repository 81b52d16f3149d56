"""The endpoint's request/response contract, generated from the model's data schema.

Each served version gets its own request model: one required key per feature, typed
from the schema contract the model was trained against (``data/schema.json`` in its
run) or, without one, from its preprocessing (numbers and free strings). Models are
strict and closed (``extra="forbid"``, no NaN/Inf, no "1.5" for a number, allowed
categories only, a row limit), so a malformed request becomes a 422 naming every
bad field instead of a wrong prediction. Pydantic collects all errors in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictStr, ValidationError, create_model

from mlops_ray.data.preprocessing import Preprocessing
from mlops_ray.data.schema import DataSchema

Value = float | str | bool | None
Kind = Literal["number", "integer", "boolean", "string"]


@dataclass(frozen=True)
class FeatureRule:
    """What one feature column accepts."""

    name: str
    kind: Kind
    nullable: bool = True
    categories: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None

    def annotation(self) -> Any:
        if self.kind == "string":
            base: Any = Literal[self.categories] if self.categories else StrictStr
        elif self.kind == "boolean":
            base = StrictBool
        else:  # JSON 3 and 3.0 are both fine for a number; an integer column also refuses 3.5
            step = 1 if self.kind == "integer" else None
            base = Annotated[
                StrictFloat, Field(allow_inf_nan=False, ge=self.minimum, le=self.maximum, multiple_of=step)
            ]
        return base | None if self.nullable else base

    def describe(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}


@dataclass(frozen=True)
class RequestContract:
    """The request model of one served version, and how to turn a valid request into model input."""

    rules: tuple[FeatureRule, ...]
    max_rows: int

    @property
    def features(self) -> list[str]:
        return [rule.name for rule in self.rules]

    @cached_property
    def request_model(self) -> type[BaseModel]:
        """Built once per served version (creating pydantic models is not free)."""
        # Field names are positional (f0, f1, ...) with the column name as alias: column
        # names need not be identifiers ("mean radius"), and errors report the alias.
        fields: dict[str, Any] = {
            f"f{i}": (rule.annotation(), Field(alias=rule.name)) for i, rule in enumerate(self.rules)
        }
        record = create_model("Record", __config__=ConfigDict(extra="forbid"), **fields)
        records = (list[record], Field(min_length=1, max_length=self.max_rows))  # type: ignore[valid-type]
        return create_model("PredictRequest", __config__=ConfigDict(extra="forbid"), records=records)

    def parse(self, body: bytes) -> pd.DataFrame:
        """Validate a JSON body; the rows as a frame in feature order. Raises ``ValidationError``."""
        request = self.request_model.model_validate_json(body)
        rows = [record.model_dump(by_alias=True) for record in request.records]  # type: ignore[attr-defined]
        return pd.DataFrame.from_records(rows, columns=self.features)


def contract_for(preprocessing: Preprocessing, schema: DataSchema | None, max_rows: int) -> RequestContract:
    """Rules from the schema contract when the model has one, else from what preprocessing knows."""
    categorical = {c.name for c in preprocessing.categorical}
    rules = []
    for name in preprocessing.features:
        if schema is None:
            rules.append(FeatureRule(name, "string" if name in categorical else "number"))
            continue
        column = schema.column(name)
        kind: Kind = {"string": "string", "boolean": "boolean", "integer": "integer"}.get(column.type, "number")  # type: ignore[assignment]
        rules.append(FeatureRule(name, kind, column.nullable, column.categories, column.min, column.max))
    return RequestContract(tuple(rules), max_rows)


def error_details(error: ValidationError) -> list[dict[str, Any]]:
    """Every problem as ``{field, message, type}``; no input values echoed back beyond the field path."""
    details = []
    for item in error.errors(include_url=False, include_input=False, include_context=False):
        details.append({"field": _path(item["loc"]), "message": item["msg"], "type": item["type"]})
    return details


def _path(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def records_from_frame(frame: pd.DataFrame, columns: list[str]) -> list[dict[str, Value]]:
    """Rows as JSON-ready request records: missing values as null, numpy scalars as Python values."""
    raw = frame[columns].astype(object)
    rows = raw.where(raw.notna(), None).to_dict(orient="records")
    return [{k: v.item() if isinstance(v, np.generic) else v for k, v in row.items()} for row in rows]


class Prediction(BaseModel):
    """Classification fills ``predicted_class`` and ``probabilities``; regression fills ``prediction``."""

    predicted_class: str | None = None
    probabilities: dict[str, float] | None = None
    prediction: float | None = None


class PredictResponse(BaseModel):
    model_name: str
    model_version: str
    predictions: list[Prediction]


class ErrorResponse(BaseModel):
    """Every error answer: a sentence, and for 422 one entry per bad field."""

    model_config = ConfigDict(extra="allow")
    detail: str | list[dict[str, Any]]


class ModelMetadata(BaseModel):
    model_name: str
    model_version: str
    alias: str | None
    model_uri: str
    task: str
    features: list[dict[str, Any]]
    classes: list[str]
    max_rows_per_request: int
    lineage: dict[str, str]
    canary: dict[str, Any] | None
    requests_by_version: dict[str, int]
