"""Read a time window of captured traffic with Ray Data and reduce it to counts and a sample.

Why Ray Data: a day of traffic can be millions of rows in thousands of files. Only the
``date=`` partitions that overlap the window are listed; each block is normalised where
it lies (types, the window's exact bounds, the prediction kept only for the monitored
version) and reduced there to per-bin counts against the reference's bins. A second
streamed read draws a uniform sample (``random_sample``) of about ``sample_rows`` rows
for the tests. The window is never held whole, in the driver or in the object store;
the driver only adds small arrays.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow.fs as pafs
import ray.data

from mlops_ray.monitor.stats import CurrentCounts, NumericReference, Reference, categorical_counts, numeric_counts
from mlops_ray.serve.capture import as_uri

PREDICTION = "prediction"  # the column name monitoring gives the served answer (class, or number)
VERSION = "_model_version"


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime

    @classmethod
    def last(cls, hours: float, until: datetime) -> Window:
        return cls(until - timedelta(hours=hours), until)

    def dates(self) -> set[date]:
        days = (self.until.date() - self.since.date()).days
        return {self.since.date() + timedelta(days=d) for d in range(days + 1)}


@dataclass(frozen=True)
class WindowSummary:
    rows: int  # captured rows in the window, every model version
    versions: dict[str, int]  # rows per model version that answered them
    counts: dict[str, CurrentCounts]  # per column (features, and PREDICTION: the monitored version's rows only)
    sample: pd.DataFrame  # a uniform sample of the window's rows (PREDICTION empty where another version answered)


def captured_files(path: str, window: Window) -> list[str]:
    """The Parquet files under the ``date=`` partitions that overlap the window."""
    uri = as_uri(path)
    filesystem, root = pafs.FileSystem.from_uri(uri)
    wanted = {f"date={d.isoformat()}" for d in window.dates()}
    partitions = filesystem.get_file_info(pafs.FileSelector(root, allow_not_found=True))
    files: list[str] = []
    for partition in partitions:
        if partition.type != pafs.FileType.Directory or partition.base_name not in wanted:
            continue
        found = filesystem.get_file_info(pafs.FileSelector(partition.path, recursive=True))
        files += [f.path for f in found if f.type == pafs.FileType.File and f.path.endswith(".parquet")]
    scheme = uri.split("://")[0]
    return sorted(f if scheme == "file" else f"{scheme}://{f}" for f in files)


def summarize_window(
    path: str,
    window: Window,
    references: dict[str, Reference],
    prediction_column: str,
    version: str,
    sample_rows: int,
    seed: int = 0,
) -> WindowSummary | None:
    """Counts per column and a sample of every captured row in ``window``; None when nothing is there."""
    files = captured_files(path, window)
    if not files:
        return None
    normalise = _Normalise(references, prediction_column, version, window)

    def rows() -> ray.data.Dataset:
        """The window's normalised rows, streamed: nothing is kept in the object store between the two passes."""
        read = ray.data.read_parquet(files, partitioning=ray.data.datasource.Partitioning("hive"))
        return read.map_batches(normalise, batch_size=None, batch_format="pandas")

    blocks = rows().map_batches(_Count(references), batch_size=None, batch_format="pandas").take_all()
    summaries = [json.loads(block["summary"]) for block in blocks]
    total = sum(summary["rows"] for summary in summaries)
    if total == 0:
        return None
    fraction = min(1.0, 1.2 * sample_rows / total)
    sample = (rows() if fraction >= 1.0 else rows().random_sample(fraction, seed=seed)).to_pandas()
    return _merge(summaries, references, sample.head(sample_rows), total)


class _Normalise:
    """The window's rows of one block, one column per reference, with the types the reference has."""

    def __init__(self, references: dict[str, Reference], prediction_column: str, version: str, window: Window):
        self.references = references
        self.prediction_column = prediction_column
        self.version = version
        self.since, self.until = pd.Timestamp(window.since), pd.Timestamp(window.until)

    def __call__(self, block: pd.DataFrame) -> pd.DataFrame:
        at = pd.to_datetime(block["captured_at"], utc=True)
        block = block[(at >= self.since) & (at < self.until)]
        versions = block["model_version"].astype(str) if "model_version" in block else pd.Series("", index=block.index)
        columns: dict[str, pd.Series] = {VERSION: versions}
        for name, reference in self.references.items():
            source = self.prediction_column if name == PREDICTION else name
            raw = block[source] if source in block else pd.Series(None, index=block.index, dtype=object)
            if name == PREDICTION:
                raw = raw.where(versions == self.version)
            columns[name] = _typed(raw, reference)
        return pd.DataFrame(columns, index=block.index).reset_index(drop=True)


class _Count:
    """One block -> one row: JSON counts per column against the reference's bins, and rows per version."""

    def __init__(self, references: dict[str, Reference]):
        self.references = references

    def __call__(self, block: pd.DataFrame) -> pd.DataFrame:
        counts = {}
        for name, reference in self.references.items():
            values = block[name]
            present = values.dropna()
            # only the monitored version's rows carry a prediction here; features count every row
            rows = len(present) if name == PREDICTION else len(block)
            if isinstance(reference, NumericReference):
                bins = numeric_counts(present.to_numpy(dtype=float), reference.edges)
            else:
                bins = categorical_counts(present.to_numpy(dtype=object), reference.categories)
            counts[name] = {"counts": bins.tolist(), "missing": rows - len(present), "rows": rows}
        versions = block[VERSION].value_counts().to_dict()
        summary = {"rows": len(block), "counts": counts, "versions": versions}
        return pd.DataFrame({"summary": [json.dumps(summary)]})


def _typed(values: pd.Series, reference: Reference) -> pd.Series:
    if isinstance(reference, NumericReference):
        return pd.to_numeric(values, errors="coerce").astype(float)
    text = values.astype("string")  # missing stays missing (pd.NA), everything else becomes its text
    return text.astype(object).where(text.notna(), None)


def _merge(summaries: list[dict], references: dict[str, Reference], sample: pd.DataFrame, total: int) -> WindowSummary:
    counts = {}
    for name, reference in references.items():
        bins, missing, rows = np.zeros(len(reference.counts), dtype=np.int64), 0, 0
        for summary in summaries:
            column = summary["counts"][name]
            bins += np.asarray(column["counts"], dtype=np.int64)
            missing += column["missing"]
            rows += column["rows"]
        counts[name] = CurrentCounts(bins, missing, rows)
    versions: dict[str, int] = {}
    for summary in summaries:
        for version, count in summary["versions"].items():
            versions[version] = versions.get(version, 0) + count
    return WindowSummary(total, versions, counts, sample.drop(columns=[VERSION]))
