"""Turn ``data.source`` into a Ray Dataset plus the label column's name.

Bundled samples (``sklearn:<name>``) ship with scikit-learn, so the quickstart never
downloads anything. Their column names are made snake_case so that they can be
typed as JSON keys in a request without quoting spaces.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import ray.data
from sklearn import datasets

from mlops_ray.errors import DataError

SAMPLES: dict[str, Callable[..., object]] = {
    "breast_cancer": datasets.load_breast_cancer,
    "wine": datasets.load_wine,
    "iris": datasets.load_iris,
}
SAMPLE_LABEL = "target"
READERS = {".csv": ray.data.read_csv, ".parquet": ray.data.read_parquet}


@dataclass(frozen=True)
class LoadedSource:
    dataset: ray.data.Dataset
    label: str
    uri: str
    class_names: tuple[str, ...] | None


def load_source(source: str, label: str | None) -> LoadedSource:
    """Read the configured source; fail early, naming the source, if it cannot be read."""
    if source.startswith("sklearn:"):
        return _load_sample(source.removeprefix("sklearn:"), label)
    path = Path(source)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(
            f"unsupported source; use 'sklearn:<{'|'.join(SAMPLES)}>' or a file ending in {' or '.join(READERS)}",
            where=f"data.source={source!r}",
        )
    if not path.exists():
        raise DataError("file not found", where=f"data.source={source!r}")
    if label is None:
        raise DataError("a file source needs the label column named in data.label", where="data.label")
    return LoadedSource(reader(str(path.resolve())), label, path.resolve().as_uri(), None)


def _load_sample(name: str, label: str | None) -> LoadedSource:
    loader = SAMPLES.get(name)
    if loader is None:
        raise DataError(f"unknown sample; choose one of {', '.join(SAMPLES)}", where=f"data.source='sklearn:{name}'")
    if label not in (None, SAMPLE_LABEL):
        raise DataError(f"the bundled samples' label is '{SAMPLE_LABEL}'", where=f"data.label={label!r}")
    bunch = loader(as_frame=True)
    frame: pd.DataFrame = bunch.frame.rename(columns=_snake_case)
    return LoadedSource(
        ray.data.from_pandas(frame), SAMPLE_LABEL, f"sklearn:{name}", tuple(map(str, bunch.target_names))
    )


def _snake_case(name: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()
