"""Turn ``data.source`` into a Ray Dataset plus the label column's name.

Sources: bundled scikit-learn samples (``sklearn:<name>``), the generators
(``synthetic:classification``, ``synthetic:regression``), and CSV / Parquet / JSON-lines tables given as one
file, a directory or a glob, on local disk or any URI pyarrow reads. Nothing is
read on the driver except the small bundled samples. Sample column names are made
snake_case so they can be typed as JSON keys in a request.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import ray.data

from mlops_ray.config import DataConfig
from mlops_ray.data.synthetic import LABEL as SYNTHETIC_LABEL
from mlops_ray.data.synthetic import synthetic_table
from mlops_ray.data.target import Task
from mlops_ray.errors import DataError

# scikit-learn loader names: imported on use, because the Ray Data workers that run
# this package's batch functions import this module too, and scikit-learn costs them ~0.6 s.
SAMPLES: dict[str, tuple[str, Task]] = {
    "breast_cancer": ("load_breast_cancer", "classification"),
    "wine": ("load_wine", "classification"),
    "iris": ("load_iris", "classification"),
    "diabetes": ("load_diabetes", "regression"),
}
GENERATORS: tuple[Task, ...] = ("classification", "regression")
SAMPLE_LABEL = "target"
SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".json": "jsonl"}
READERS: dict[str, Callable[[list[str]], ray.data.Dataset]] = {
    "csv": lambda paths: ray.data.read_csv(paths),
    "parquet": lambda paths: ray.data.read_parquet(paths),
    "jsonl": lambda paths: ray.data.read_json(paths, lines=True),
}


@dataclass(frozen=True)
class LoadedSource:
    dataset: ray.data.Dataset
    label: str
    uri: str
    class_names: tuple[str, ...] | None
    task: Task | None = None  # known for samples and generators; files leave it to data.task


def load_source(config: DataConfig) -> LoadedSource:
    """Open the configured source lazily; fail early, naming it, if it cannot be found."""
    source = config.source
    if source.startswith("sklearn:"):
        return _load_sample(source.removeprefix("sklearn:"), config.label)
    if source.startswith("synthetic:"):
        task = source.removeprefix("synthetic:")
        if task not in GENERATORS:
            choices = " or ".join(f"'synthetic:{t}'" for t in GENERATORS)
            raise DataError(f"unknown generator; use {choices}", where=f"data.source={source!r}")
        _require_label(config.label in (None, SYNTHETIC_LABEL), f"the generator's label is '{SYNTHETIC_LABEL}'")
        return LoadedSource(synthetic_table(config.synthetic, task), SYNTHETIC_LABEL, source, None, task)  # type: ignore[arg-type]
    paths, uri = _resolve_paths(source)
    file_format = config.format or _infer_format(paths, source)
    if config.label is None:
        raise DataError("a file source needs its label column named in data.label", where="data.label")
    return LoadedSource(READERS[file_format](paths), config.label, uri, None)


def _resolve_paths(source: str) -> tuple[list[str], str]:
    """Local files, directories and globs are checked here; remote URIs are left to pyarrow."""
    if "://" in source and not source.startswith("file://"):
        return [source], source
    local = source.removeprefix("file://")
    if glob.has_magic(local):
        matches = sorted(glob.glob(local, recursive=True))
        if not matches:
            raise DataError("no file matches this pattern", where=f"data.source={source!r}")
        return [str(Path(m).resolve()) for m in matches], source
    path = Path(local)
    if not path.exists():
        raise DataError("no such file or directory", where=f"data.source={source!r}")
    if path.is_dir() and not any(p.is_file() and not p.name.startswith((".", "_")) for p in path.rglob("*")):
        raise DataError("the directory holds no data files", where=f"data.source={source!r}")
    return [str(path.resolve())], path.resolve().as_uri()


def _infer_format(paths: list[str], source: str) -> str:
    candidates = [paths[0]] if not Path(paths[0]).is_dir() else [str(p) for p in Path(paths[0]).rglob("*.*")]
    formats = {SUFFIXES.get(Path(p).suffix.lower()) for p in [*candidates, *paths[1:]]} - {None}
    if len(formats) != 1:
        found = ", ".join(sorted(f for f in formats if f)) or "none recognised"
        raise DataError(
            f"cannot tell the file format (found: {found}); name it in data.format (csv, parquet or jsonl)",
            where=f"data.source={source!r}",
        )
    return formats.pop()  # type: ignore[return-value]


def _load_sample(name: str, label: str | None) -> LoadedSource:
    if name not in SAMPLES:
        raise DataError(f"unknown sample; choose one of {', '.join(SAMPLES)}", where=f"data.source='sklearn:{name}'")
    _require_label(label in (None, SAMPLE_LABEL), f"the bundled samples' label is '{SAMPLE_LABEL}'")
    from sklearn import datasets

    loader, task = SAMPLES[name]
    bunch = getattr(datasets, loader)(as_frame=True)
    frame: pd.DataFrame = bunch.frame.rename(columns=_snake_case)
    names = tuple(map(str, bunch.target_names)) if task == "classification" else None
    return LoadedSource(ray.data.from_pandas(frame), SAMPLE_LABEL, f"sklearn:{name}", names, task)


def _require_label(ok: bool, message: str) -> None:
    if not ok:
        raise DataError(message, where="data.label")


def _snake_case(name: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()
