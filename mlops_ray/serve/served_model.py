"""One registered version loaded for serving: the pyfunc, its request contract, and a health probe.

Loading resolves an alias to a concrete version once; the replica keeps that
version until its alias watcher (or a reconfigure) loads another, so every answer
names the exact version that produced it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mlops_ray.data.schema import DataSchema
from mlops_ray.registry.integrity import load_version
from mlops_ray.registry.packaged_model import PackagedModel
from mlops_ray.registry.refs import ModelRef, resolve_model_ref
from mlops_ray.serve.contract import RequestContract, contract_for
from mlops_ray.tags import (
    CONFIG_DIGEST_TAG,
    FINGERPRINT_TAG,
    GIT_COMMIT_TAG,
    SCHEMA_ARTIFACT,
    SCHEMA_DIGEST_TAG,
    SOURCE_TAG,
)

LINEAGE_TAGS = (SOURCE_TAG, FINGERPRINT_TAG, SCHEMA_DIGEST_TAG, CONFIG_DIGEST_TAG, GIT_COMMIT_TAG)


@dataclass
class ServedModel:
    name: str
    version: str
    alias: str | None
    packaged: PackagedModel
    contract: RequestContract
    lineage: dict[str, str] = field(default_factory=dict)  # run_id and the version's data/code tags

    @classmethod
    def load(cls, ref: ModelRef, client: MlflowClient, max_rows: int) -> ServedModel:
        version = resolve_model_ref(ref, client)
        # Refuses files that differ from the digests taken at registration. No environment
        # warnings: they would only reach the replica's log file, and cost every replica ~0.5 s.
        pyfunc = load_version(version, environment_warnings=False)
        packaged = pyfunc.unwrap_python_model()
        if not isinstance(packaged, PackagedModel):
            raise TypeError(f"{version.name}/{version.version} is not an mlops-ray packaged model")
        run_id = version.run_id or ""
        schema = logged_schema(client, run_id) if version.tags.get(SCHEMA_DIGEST_TAG) else None
        contract = contract_for(packaged.preprocessing, schema, max_rows)
        lineage = {"run_id": run_id, **{k: version.tags[k] for k in LINEAGE_TAGS if k in version.tags}}
        return cls(version.name, str(version.version), ref.alias, packaged, contract, lineage)

    @property
    def task(self) -> str:
        return self.packaged.target.task

    @property
    def classes(self) -> list[str]:
        return list(self.packaged.target.classes)

    def predict(self, frame: pd.DataFrame) -> list[dict[str, Any]]:
        """JSON-ready predictions, one per row.

        Calls the packaged model directly, not ``pyfunc.predict``: the request contract
        has already checked every value more strictly than MLflow's signature
        enforcement, which would also refuse a null in a column logged as integer.
        """
        output = self.packaged.predict(None, frame)
        if self.task == "regression":
            return [{"prediction": float(v)} for v in output["prediction"]]
        columns = [f"probability_{c}" for c in self.classes]
        probabilities = output[columns].to_numpy().tolist()
        return [
            {"predicted_class": label, "probabilities": dict(zip(self.classes, row, strict=True))}
            for label, row in zip(output["predicted_class"], probabilities, strict=True)
        ]

    def probe(self) -> None:
        """Predict one typical row (training means, most frequent categories); raise unless the answer is finite."""
        row = self.packaged.preprocessing.typical_row()
        answer = self.predict(pd.DataFrame([row], columns=self.contract.features))[0]
        numbers = [answer["prediction"]] if "prediction" in answer else list(answer["probabilities"].values())
        if not all(math.isfinite(n) for n in numbers):
            raise RuntimeError(f"{self.name}/{self.version} answered a non-finite prediction to the health probe")


def logged_schema(client: MlflowClient, run_id: str) -> DataSchema | None:
    """The schema contract training logged in ``run_id``; None when it logged none."""
    try:
        path = client.download_artifacts(run_id, SCHEMA_ARTIFACT)
    except (MlflowException, OSError):
        return None  # e.g. a sweep's best trial: its run logs no schema; preprocessing still types the columns
    with open(path) as handle:
        return DataSchema.model_validate(json.load(handle))
