"""The endpoint's request/response contract.

Values must be finite numbers and unknown fields in the envelope are rejected, so a
malformed request becomes a 422 naming the problem instead of a wrong prediction.
Column presence is checked against the loaded model's feature list by the app.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: list[dict[str, FiniteFloat]] = Field(min_length=1, description="one mapping of feature -> value per row")


class Prediction(BaseModel):
    predicted_class: str
    probabilities: dict[str, float]


class PredictResponse(BaseModel):
    model_name: str
    model_version: str
    predictions: list[Prediction]


class ModelMetadata(BaseModel):
    model_name: str
    model_version: str
    model_uri: str
    features: list[str]
    classes: list[str]
