"""The Serve deployment: a FastAPI ingress whose replicas hold one loaded model each.

No ``from __future__ import annotations`` here: FastAPI reads the route
annotations at class creation to know that ``request`` is a JSON body.

The replica resolves ``name@alias`` to a concrete version once, at start, and
answers with that version in every response, so a caller always knows which model
produced a prediction even while aliases move.
"""

from typing import Any

import mlflow
import pandas as pd
from fastapi import FastAPI, HTTPException
from ray import serve
from ray.serve import Application

from mlops_ray.config import ServeConfig
from mlops_ray.serve.contract import ModelMetadata, Prediction, PredictRequest, PredictResponse

api = FastAPI(title="mlops-ray model endpoint", description="Predictions from an MLflow-registered model.")


# Defined above the deployment: @serve.deployment serialises the class at decoration
# time, so helpers it calls must already exist.
def _rows(output: pd.DataFrame, classes: list[str]) -> list[Prediction]:
    if not classes:  # regression
        return [Prediction(prediction=float(value)) for value in output["prediction"]]
    records: list[dict[str, Any]] = output.to_dict(orient="records")
    return [
        Prediction(
            predicted_class=r["predicted_class"], probabilities={c: float(r[f"probability_{c}"]) for c in classes}
        )
        for r in records
    ]


@serve.deployment
@serve.ingress(api)
class ModelEndpoint:
    def __init__(self, name: str, alias: str, tracking_uri: str, max_rows: int):
        from mlops_ray.registry.packaged_model import PackagedModel

        client = mlflow.tracking.MlflowClient(tracking_uri)
        self.version = str(client.get_model_version_by_alias(name, alias).version)
        self.name = name
        self.max_rows = max_rows
        mlflow.set_tracking_uri(tracking_uri)
        self.model = mlflow.pyfunc.load_model(f"models:/{name}/{self.version}")
        inner = self.model.unwrap_python_model()
        if not isinstance(inner, PackagedModel):
            raise TypeError(f"{name}/{self.version} is not an mlops-ray packaged model")
        self.features = list(inner.preprocessing.features)
        self.expected = frozenset(self.features)
        self.categorical = {c.name for c in inner.preprocessing.categorical}
        self.task = inner.target.task
        self.classes = list(inner.target.classes)

    @api.post("/predict", response_model_exclude_none=True)
    def predict(self, request: PredictRequest) -> PredictResponse:
        if len(request.records) > self.max_rows:
            raise HTTPException(422, f"records: {len(request.records)} rows exceed the limit of {self.max_rows}")
        problems = [problem for i, row in enumerate(request.records) for problem in self._row_problems(i, row)]
        if problems:
            raise HTTPException(422, problems)
        output = self.model.predict(pd.DataFrame(request.records, columns=self.features))
        return PredictResponse(
            model_name=self.name, model_version=self.version, predictions=_rows(output, self.classes)
        )

    def _row_problems(self, i: int, row: dict[str, Any]) -> list[str]:
        expected = self.expected
        problems = []
        if row.keys() != expected:
            problems.append(
                f"records[{i}]: missing {sorted(expected - row.keys())}, unknown {sorted(row.keys() - expected)}"
            )
        for name, value in row.items():
            if value is None or name not in expected:
                continue
            if (name in self.categorical) != isinstance(value, str):
                wanted = "a string" if name in self.categorical else "a number"
                problems.append(f"records[{i}].{name}: expected {wanted} or null, got {value!r}")
        return problems

    @api.get("/healthz")
    def healthz(self) -> dict[str, str]:
        return {"status": "ok", "model_version": self.version}

    @api.get("/metadata")
    def metadata(self) -> ModelMetadata:
        return ModelMetadata(
            model_name=self.name,
            model_version=self.version,
            model_uri=f"models:/{self.name}/{self.version}",
            task=self.task,
            features=self.features,
            categorical_features=sorted(self.categorical),
            classes=self.classes,
        )


def build_app(name: str, alias: str, tracking_uri: str, config: ServeConfig) -> Application:
    return ModelEndpoint.options(
        num_replicas=config.num_replicas,
        ray_actor_options={"num_cpus": config.cpus_per_replica},
    ).bind(name, alias, tracking_uri, config.max_rows_per_request)
