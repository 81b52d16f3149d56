"""Score the test split through the packaged model, streamed in batches.

The raw test rows of a large split never come to the driver: Ray Data tasks turn each
batch into predictions (each worker process loads the logged model once and keeps it),
and the driver only gathers the predictions with the true labels (a few numbers per
row) to compute the metrics. Tasks, not an actor pool: no actor start-up. A split
under ``IN_PROCESS_ROWS`` is scored in the driver by the same batch function: there a
worker's start-up would cost a hundred times the prediction.
Several models (a challenger and the champion) score each batch in the same task,
so their predictions are paired row by row without any join.
Scoring the packaged pyfunc, not the bare network, also checks the preprocessing
that ships with the model.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import mlflow
import numpy as np
import pandas as pd
import ray.data
from mlflow.exceptions import MlflowException

from mlops_ray.data.target import Target
from mlops_ray.evaluate.metrics import metric_on_rows
from mlops_ray.registry.integrity import load_verified, verify_uri
from mlops_ray.registry.packaged_model import PackagedModel

BATCH_ROWS = 4096
# Below this many test rows the driver scores the split itself: a Ray Data task would
# first start a worker that imports torch and MLflow and loads the model (~2 s on the
# quickstart), for milliseconds of prediction. The rows are few enough to hold here.
IN_PROCESS_ROWS = 20_000
TRUE_COLUMN = "__true"
SEPARATOR = "::"  # model key :: output column, e.g. "champion::probability_malignant"


@dataclass(frozen=True)
class ScoredRows:
    """The test rows' true labels, kept columns, and each model's output, row-aligned.

    Every model scored the same batch in the same task, so rows line up by position:
    that pairing is what the promotion gate's bootstrap resamples.
    """

    frame: pd.DataFrame
    target: Target
    keys: tuple[str, ...]

    @property
    def truth(self) -> np.ndarray:
        values = self.frame[TRUE_COLUMN].to_numpy()
        return values.astype(np.float64 if self.target.task == "regression" else np.int64)

    def output(self, key: str) -> np.ndarray:
        """Class probabilities (rows x classes) for classification, predictions for regression."""
        if self.target.task == "regression":
            return self.frame[f"{key}{SEPARATOR}prediction"].to_numpy(np.float64)
        columns = [f"{key}{SEPARATOR}probability_{c}" for c in self.target.classes]
        return self.frame[columns].to_numpy(np.float64)

    @property
    def n_classes(self) -> int | None:
        return None if self.target.task == "regression" else len(self.target.classes)

    def metrics(self, key: str, names: tuple[str, ...]) -> dict[str, float]:
        truth, output = self.truth, self.output(key)
        return {f"test_{name}": metric_on_rows(name, output, truth, self.n_classes) for name in names}

    def scorer(self, key: str, metric: str) -> Callable[[np.ndarray], float]:
        """``metric`` of model ``key`` on some row positions (a slice, a bootstrap resample).

        The arrays are taken from the frame once, here: the gate calls the scorer a
        thousand times.
        """
        truth, output, n_classes = self.truth, self.output(key), self.n_classes
        return lambda rows: metric_on_rows(metric, output[rows], truth[rows], n_classes)


def predict_test_split(
    model_uris: Mapping[str, str],
    tracking_uri: str,
    test: ray.data.Dataset,
    features: tuple[str, ...],
    target: Target,
    keep: tuple[str, ...] = (),
    num_cpus: float = 0.5,
    in_process_below: int = IN_PROCESS_ROWS,
) -> ScoredRows:
    """Run every model in ``model_uris`` (key -> URI) over the test split in one pass.

    A split under ``in_process_below`` rows is scored here, by the same batch function
    in one batch, instead of in Ray Data tasks.

    Registered versions' files are checked in this process either way (loading verifies
    them; before Ray Data tasks, ``verify_uri`` does), so a tampered artifact stops the
    command with its own message instead of as a failed Ray Data task.
    """
    if test.count() < in_process_below:  # a materialised split knows its count without a pass
        # each model downloaded, verified and loaded once, here: no separate check, no cache across calls
        loaded = {key: _load(uri, tracking_uri) for key, uri in model_uris.items()}
        scorer = _Scorer(dict(model_uris), tracking_uri, features, target, keep, loaded)
        return ScoredRows(scorer(test.to_pandas()).reset_index(drop=True), target, tuple(model_uris))
    for uri in model_uris.values():
        verify_uri(uri)
    scorer = _Scorer(dict(model_uris), tracking_uri, features, target, keep)
    scored = test.map_batches(scorer, batch_format="pandas", batch_size=BATCH_ROWS, num_cpus=num_cpus)
    parts = list(scored.iter_batches(batch_format="pandas", batch_size=None))
    return ScoredRows(pd.concat(parts, ignore_index=True), target, tuple(model_uris))


def score_test_split(
    model_uri: str,
    tracking_uri: str,
    test: ray.data.Dataset,
    features: tuple[str, ...],
    target: Target,
    metric_names: tuple[str, ...],
    num_cpus: float = 0.5,
) -> dict[str, float]:
    scored = predict_test_split({"model": model_uri}, tracking_uri, test, features, target, num_cpus=num_cpus)
    return scored.metrics("model", metric_names)


def _load(model_uri: str, tracking_uri: str) -> mlflow.pyfunc.PyFuncModel:
    mlflow.set_tracking_uri(tracking_uri)
    return load_verified(model_uri)


_load_model = functools.lru_cache(maxsize=4)(_load)  # a Ray Data worker keeps its models for every batch


def _predict(model: mlflow.pyfunc.PyFuncModel, rows: pd.DataFrame) -> pd.DataFrame:
    """The packaged model's own predict, as serving calls it.

    MLflow's signature enforcement would refuse a missing value in a column whose
    logged example happened to be all integers (``rooms: long``), although the
    preprocessing imputes it; the packaged model checks its columns itself.
    """
    try:
        packaged = model.unwrap_python_model()
    except MlflowException:  # another flavour: no python model inside
        packaged = None
    if isinstance(packaged, PackagedModel):
        return packaged.predict(None, rows)
    return model.predict(rows)


class _Scorer:
    """Ray Data batch function: raw rows -> each model's output columns, the true label, the kept columns."""

    def __init__(
        self,
        model_uris: dict[str, str],
        tracking_uri: str,
        features: tuple[str, ...],
        target: Target,
        keep: tuple,
        loaded: dict[str, mlflow.pyfunc.PyFuncModel] | None = None,
    ):
        self.model_uris = model_uris
        self.tracking_uri = tracking_uri
        self.features = list(features)
        self.target = target
        self.keep = list(keep)
        self.loaded = loaded or {}  # by key, when the caller loaded the models (in-process scoring)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        columns: dict[str, object] = {TRUE_COLUMN: self._truth(batch)}
        for key, uri in self.model_uris.items():
            model = self.loaded[key] if key in self.loaded else _load_model(uri, self.tracking_uri)
            output = _predict(model, batch[self.features])
            wanted = ["prediction"] if self.target.task == "regression" else output.columns.drop("predicted_class")
            columns.update({f"{key}{SEPARATOR}{c}": output[c].to_numpy() for c in wanted})
        columns.update({c: batch[c].to_numpy() for c in self.keep})
        return pd.DataFrame(columns)

    def _truth(self, batch: pd.DataFrame) -> np.ndarray:
        if self.target.task == "classification":
            return np.asarray(self.target.encode(batch[self.target.column]))
        return pd.to_numeric(batch[self.target.column]).to_numpy(np.float64)
