"""The model as MLflow stores and serves it: preprocessing + network in one pyfunc.

Logged with MLflow's models-from-code (``pyfunc_entry.py``), so nothing is pickled:
loading rebuilds the network from ``spec.json``, reads weights with
``torch.load(weights_only=True)`` and applies the JSON preprocessing and target.
Callers send raw feature columns and get back, for classification, the predicted
class and one probability column per class; for regression, the predicted number
in the label's units.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
import torch

from mlops_ray.data.preprocessing import Preprocessing
from mlops_ray.data.target import Target
from mlops_ray.models import ModelSpec, build_model

ARTIFACT_KEY = "bundle"
SPEC_FILE = "spec.json"
PREPROCESSING_FILE = "preprocessing.json"
TARGET_FILE = "target.json"
WEIGHTS_FILE = "weights.pt"


def write_bundle(
    directory: Path,
    spec: ModelSpec,
    preprocessing: Preprocessing,
    target: Target,
    state_dict: dict[str, torch.Tensor],
) -> Path:
    """Write everything the pyfunc needs into ``directory``; return it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / SPEC_FILE).write_text(json.dumps(spec.to_dict(), indent=2))
    (directory / PREPROCESSING_FILE).write_text(preprocessing.to_json())
    (directory / TARGET_FILE).write_text(target.to_json())
    torch.save(state_dict, directory / WEIGHTS_FILE)
    return directory


class MissingColumnsError(ValueError):
    """Raised by ``predict`` when input rows lack feature columns; names them all."""

    def __init__(self, missing: list[str]):
        self.missing = missing
        super().__init__(f"missing feature column(s): {', '.join(missing)}")


class PackagedModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        bundle = Path(context.artifacts[ARTIFACT_KEY])
        self.spec = ModelSpec.from_dict(json.loads((bundle / SPEC_FILE).read_text()))
        self.preprocessing = Preprocessing.from_json((bundle / PREPROCESSING_FILE).read_text())
        self.target = Target.from_json((bundle / TARGET_FILE).read_text())
        code = bundle.parent.parent / "code"  # MLflow's copy of a builder network's source (code_paths)
        shipped = code.is_dir()
        self.network = build_model(self.spec, str(code) if shipped else None, shipped=shipped)
        self.network.load_state_dict(torch.load(bundle / WEIGHTS_FILE, map_location="cpu", weights_only=True))
        self.network.eval()

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        missing = [c for c in self.preprocessing.features if c not in model_input.columns]
        if missing:
            raise MissingColumnsError(missing)
        with torch.inference_mode():
            outputs = self.network(torch.from_numpy(self.preprocessing.transform(model_input)))
            if self.target.task == "regression":
                return pd.DataFrame({"prediction": self.target.decode_numbers(outputs.numpy())})
            probabilities = torch.softmax(outputs, dim=1).numpy()
        classes = self.target.classes
        output = pd.DataFrame(probabilities, columns=[f"probability_{c}" for c in classes])
        output.insert(0, "predicted_class", [classes[i] for i in probabilities.argmax(axis=1)])
        return output
