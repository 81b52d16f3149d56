"""Sampled requests and predictions, appended to Parquet off the request path.

The request path only appends a reference to its frame and predictions to a list
(under a lock); a daemon thread builds the tables and writes them out every ``flush_interval_s`` or once it holds
``flush_rows`` rows. Files land under ``path/date=YYYY-MM-DD/model_version=V/``
(Hive partitioning, so Ray Data and pyarrow read the partitions as columns), are
named by replica and sequence so replicas never collide, and are written to a
temporary name first and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from mlops_ray.config import CaptureConfig

PREDICTION_PREFIX = "prediction."


class CaptureWriter:
    def __init__(self, config: CaptureConfig, writer_id: str | None = None):
        self.config = config
        self.writer_id = writer_id or uuid.uuid4().hex[:12]
        self.filesystem, self.root = pafs.FileSystem.from_uri(as_uri(config.path))
        self._pending: list[tuple[datetime, str, pd.DataFrame, list[dict[str, Any]]]] = []
        self._rows = 0
        self._sequence = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="capture-writer", daemon=True)
        if config.sample_rate > 0:
            self._thread.start()

    def add(self, version: str, features: pd.DataFrame, predictions: list[dict[str, Any]]) -> None:
        """Keep one request (all its rows) with probability ``sample_rate``; O(1), no I/O, no frame building."""
        if self.config.sample_rate <= 0 or random.random() >= self.config.sample_rate:
            return
        with self._lock:
            self._pending.append((datetime.now(UTC), version, features, predictions))
            self._rows += len(features)
            full = self._rows >= self.config.flush_rows
        if full:
            self._wake.set()

    def flush(self) -> int:
        """Write everything buffered now, one file per (date, version); returns the number of files written.

        The table for a group is built in one go (one concat of the feature frames, one
        ``json_normalize`` over all its predictions): per-request frames cost the
        replica ~1 ms of GIL time per request, the bulk build ~0.01 ms.
        """
        with self._lock:
            pending, self._pending, self._rows = self._pending, [], 0
        groups: dict[tuple[str, str], list[tuple[datetime, pd.DataFrame, list[dict[str, Any]]]]] = defaultdict(list)
        for at, version, features, predictions in pending:
            groups[(at.strftime("%Y-%m-%d"), version)].append((at, features, predictions))
        for (date, version), requests in groups.items():
            self._write(date, version, _table(requests))
        return len(groups)

    def close(self) -> None:
        self._closed.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        self.flush()

    def _run(self) -> None:
        while not self._closed.is_set():
            self._wake.wait(timeout=self.config.flush_interval_s)
            self._wake.clear()
            try:
                self.flush()
            except Exception as exc:  # a full disk must not take the endpoint down; say so in the replica log
                print(f"capture: writing to {self.config.path} failed: {exc}", flush=True)
                time.sleep(self.config.flush_interval_s)

    def _write(self, date: str, version: str, frame: pd.DataFrame) -> None:
        self._sequence += 1
        folder = f"{self.root}/date={date}/model_version={version}"
        name = f"part-{self.writer_id}-{int(time.time() * 1000)}-{self._sequence:06d}.parquet"
        self.filesystem.create_dir(folder, recursive=True)
        temporary = f"{folder}/.{name}.tmp"
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), temporary, filesystem=self.filesystem)
        self.filesystem.move(temporary, f"{folder}/{name}")


def _table(requests: list[tuple[datetime, pd.DataFrame, list[dict[str, Any]]]]) -> pd.DataFrame:
    sizes = [len(features) for _, features, _ in requests]
    features = pd.concat([f for _, f, _ in requests], ignore_index=True)
    predictions = pd.json_normalize([p for _, _, batch in requests for p in batch]).add_prefix(PREDICTION_PREFIX)
    features.insert(0, "request_id", np.repeat([uuid.uuid4().hex for _ in requests], sizes))
    features.insert(0, "captured_at", np.repeat(pd.to_datetime([at for at, _, _ in requests]), sizes))
    return pd.concat([features, predictions], axis=1)


def as_uri(path: str) -> str:
    """A local path as a file:// URI (pyarrow's filesystems want URIs); URIs unchanged."""
    return path if "://" in path else Path(path).expanduser().resolve().as_uri()
