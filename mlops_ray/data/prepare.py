"""The data stage: source -> checked columns -> seeded split -> fitted preprocessing.

Splitting happens before any statistic is computed, so nothing about the
validation or test rows leaks into the scaler. The train and validation splits
stay Ray Datasets (Ray Train shards them per worker); the test split is small and
kept as raw rows so that evaluation runs the packaged model exactly as served.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import ray.data

from mlops_ray.config import DataConfig
from mlops_ray.data.fingerprint import Fingerprint, fingerprint
from mlops_ray.data.preprocessing import Preprocessing
from mlops_ray.data.profile import DatasetProfile, is_categorical, is_numeric, profile
from mlops_ray.data.read_errors import readable_source_errors
from mlops_ray.data.sources import load_source
from mlops_ray.errors import DataError


@dataclass(frozen=True)
class PreparedData:
    train: ray.data.Dataset
    val: ray.data.Dataset
    test_frame: pd.DataFrame
    preprocessing: Preprocessing
    label: str
    label_values: tuple[object, ...]
    class_names: tuple[str, ...]
    source_uri: str
    row_counts: dict[str, int]
    fingerprint: Fingerprint
    profile: DatasetProfile
    schema: ray.data.Schema

    @property
    def features(self) -> tuple[str, ...]:
        return self.preprocessing.features

    def test_labels(self) -> np.ndarray:
        """The test split's labels as class indices (positions in ``class_names``)."""
        return label_codes(self.test_frame[self.label], self.label_values)


def prepare_data(config: DataConfig) -> PreparedData:
    with readable_source_errors(config.source):
        return _prepare(config)


def _prepare(config: DataConfig) -> PreparedData:
    source = load_source(config)
    # Read the files once: checks, shuffle, fingerprint and profile all pass over the data,
    # and each pass would otherwise re-read the source (Ray spills to disk past memory).
    dataset = source.dataset.materialize()
    schema = dataset.schema()
    numeric, categorical = _feature_columns(schema, source.label, config.source)
    label_values = tuple(_class_values(dataset, source.label, config.source))
    split = config.split
    train_fraction = 1.0 - split.val_fraction - split.test_fraction
    train, val, test = dataset.random_shuffle(seed=split.seed).split_proportionately(
        [train_fraction, split.val_fraction]
    )
    preprocessing = Preprocessing.fit(
        train,
        numeric,
        categorical,
        standardize=config.standardize,
        encoding=config.categorical_encoding,
        max_categories=config.max_categories,
    )
    to_tensors = _TensorColumns(preprocessing, source.label, label_values)
    class_names = source.class_names or tuple(str(v) for v in label_values)
    return PreparedData(
        train=train.map_batches(to_tensors, batch_format="pandas").materialize(),
        val=val.map_batches(to_tensors, batch_format="pandas").materialize(),
        test_frame=test.to_pandas(),
        preprocessing=preprocessing,
        label=source.label,
        label_values=label_values,
        class_names=class_names,
        source_uri=source.uri,
        row_counts={"train": train.count(), "val": val.count(), "test": test.count()},
        fingerprint=fingerprint(dataset),
        profile=profile(dataset),
        schema=schema,
    )


def _feature_columns(schema: ray.data.Schema, label: str, source: str) -> tuple[list[str], list[str]]:
    """Split the non-label columns into numeric and categorical (string) features."""
    names = list(schema.names)
    if label not in names:
        raise DataError(
            f"label column '{label}' not found; the columns are: {', '.join(names)}",
            where=f"data.label (source {source})",
        )
    types = dict(zip(schema.names, schema.types, strict=True))
    features = [n for n in names if n != label]
    unsupported = [f"{n} ({types[n]})" for n in features if not (is_numeric(types[n]) or is_categorical(types[n]))]
    if unsupported:
        raise DataError(
            f"feature columns must be numbers or strings; unsupported: {', '.join(unsupported)}",
            where=f"data.source={source!r}",
        )
    return [n for n in features if is_numeric(types[n])], [n for n in features if is_categorical(types[n])]


def _class_values(dataset: ray.data.Dataset, label: str, source: str) -> list[object]:
    """The label's distinct values in sorted order; class index i stands for values[i]."""
    where = f"data.label (source {source})"
    values = dataset.unique(label)
    if any(v is None or (isinstance(v, float) and np.isnan(v)) for v in values):
        raise DataError(f"label column '{label}' has missing values; drop or fill those rows first", where=where)
    values = sorted(values)
    if len(values) < 2:
        raise DataError(f"label column '{label}' has a single class {values}; nothing to learn", where=where)
    if any(isinstance(v, float) and not v.is_integer() for v in values):
        shown = ", ".join(map(repr, values[:5]))
        raise DataError(
            f"label column '{label}' holds fractional numbers ({shown}, ...); only classification is supported so far",
            where=where,
        )
    return values


def label_codes(column: pd.Series, label_values: tuple[object, ...]) -> np.ndarray:
    """Label values (strings or numbers) -> class indices, by position in ``label_values``."""
    return pd.Categorical(column.to_numpy(dtype=object), categories=list(label_values)).codes.astype(np.int64)


class _TensorColumns:
    """Ray Data batch function: raw columns -> {'x': float32 matrix, 'y': int64 class index}."""

    def __init__(self, preprocessing: Preprocessing, label: str, label_values: tuple[object, ...]):
        self.preprocessing = preprocessing
        self.label = label
        self.label_values = label_values

    def __call__(self, batch: pd.DataFrame) -> dict[str, np.ndarray]:
        y = label_codes(batch[self.label], self.label_values)
        return {"x": self.preprocessing.transform(batch), "y": y}
