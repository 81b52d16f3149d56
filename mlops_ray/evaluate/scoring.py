"""Score the test split through the packaged model, streamed in batches.

The raw test rows never come to the driver: Ray Data tasks turn each batch into
predictions (each worker process loads the logged model once and keeps it), and the
driver only gathers the predictions with the true labels (a few numbers per row)
to compute the metrics. Tasks, not an actor pool: no actor start-up on small splits.
Scoring the packaged pyfunc, not the bare network, also checks the preprocessing
that ships with the model.
"""

from __future__ import annotations

import functools

import mlflow
import numpy as np
import pandas as pd
import ray.data

from mlops_ray.data.target import Target
from mlops_ray.evaluate.metrics import classification_metrics, regression_metrics

BATCH_ROWS = 4096
TRUE_COLUMN = "__true"


def score_test_split(
    model_uri: str,
    tracking_uri: str,
    test: ray.data.Dataset,
    features: tuple[str, ...],
    target: Target,
    metric_names: tuple[str, ...],
    num_cpus: float = 0.5,
) -> dict[str, float]:
    scored = test.map_batches(
        _Scorer(model_uri, tracking_uri, features, target),
        batch_format="pandas",
        batch_size=BATCH_ROWS,
        num_cpus=num_cpus,
    )
    parts = list(scored.iter_batches(batch_format="pandas", batch_size=None))
    frame = pd.concat(parts, ignore_index=True)
    y_true = frame.pop(TRUE_COLUMN).to_numpy()
    if target.task == "regression":
        return regression_metrics(frame["prediction"].to_numpy(), y_true.astype(np.float64), metric_names)
    return classification_metrics(frame, y_true.astype(np.int64), target.classes, metric_names)


@functools.lru_cache(maxsize=2)
def _load_model(model_uri: str, tracking_uri: str) -> mlflow.pyfunc.PyFuncModel:
    mlflow.set_tracking_uri(tracking_uri)
    return mlflow.pyfunc.load_model(model_uri)


class _Scorer:
    """Ray Data batch function: raw rows -> the model's output columns plus the true label."""

    def __init__(self, model_uri: str, tracking_uri: str, features: tuple[str, ...], target: Target):
        self.model_uri = model_uri
        self.tracking_uri = tracking_uri
        self.features = list(features)
        self.target = target

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        output = _load_model(self.model_uri, self.tracking_uri).predict(batch[self.features])
        if self.target.task == "classification":
            truth = self.target.encode(batch[self.target.column])
            return output.drop(columns=["predicted_class"]).assign(**{TRUE_COLUMN: truth})
        return output.assign(**{TRUE_COLUMN: pd.to_numeric(batch[self.target.column]).to_numpy(np.float64)})
