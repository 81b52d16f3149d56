"""The endpoint's request/response contract.

Values must be finite numbers, strings (for categorical columns) or null, and
unknown fields in the envelope are rejected, so a malformed request becomes a 422
naming the problem instead of a wrong prediction. Column presence and each value's
kind are checked against the loaded model's preprocessing by the app.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Value = float | str | None


def records_from_frame(frame: pd.DataFrame, columns: list[str]) -> list[dict[str, Value]]:
    """Rows as JSON-ready request records: missing values as null, numpy scalars as Python values."""
    raw = frame[columns].astype(object)
    rows = raw.where(raw.notna(), None).to_dict(orient="records")
    return [{k: v.item() if isinstance(v, np.generic) else v for k, v in row.items()} for row in rows]


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: list[dict[str, FiniteFloat | str | None]] = Field(
        min_length=1, description="one mapping of feature -> value per row; null for a missing value"
    )


class Prediction(BaseModel):
    """Classification fills ``predicted_class`` and ``probabilities``; regression fills ``prediction``."""

    predicted_class: str | None = None
    probabilities: dict[str, float] | None = None
    prediction: float | None = None


class PredictResponse(BaseModel):
    model_name: str
    model_version: str
    predictions: list[Prediction]


class ModelMetadata(BaseModel):
    model_name: str
    model_version: str
    model_uri: str
    task: str
    features: list[str]
    categorical_features: list[str]
    classes: list[str]
