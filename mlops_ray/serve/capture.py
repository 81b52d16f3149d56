"""Sampled requests and predictions, appended to Parquet off the request path.

The request path only appends to an in-memory buffer (a lock and a list append); a
daemon thread writes the buffer out every ``flush_interval_s`` or once it holds
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
from typing import Any

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
        self.filesystem, self.root = pafs.FileSystem.from_uri(_as_uri(config.path))
        self._buffer: dict[tuple[str, str], list[pd.DataFrame]] = defaultdict(list)
        self._rows = 0
        self._sequence = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self.files_written = 0
        self.rows_written = 0
        self._thread = threading.Thread(target=self._run, name="capture-writer", daemon=True)
        if config.sample_rate > 0:
            self._thread.start()

    def add(self, version: str, features: pd.DataFrame, predictions: list[dict[str, Any]]) -> None:
        """Keep one request (all its rows) with probability ``sample_rate``; never blocks on I/O."""
        if self.config.sample_rate <= 0 or random.random() >= self.config.sample_rate:
            return
        now = datetime.now(UTC)
        frame = features.reset_index(drop=True).copy()
        frame.insert(0, "request_id", uuid.uuid4().hex)
        frame.insert(0, "captured_at", pd.Timestamp(now))
        frame = pd.concat([frame, pd.json_normalize(predictions).add_prefix(PREDICTION_PREFIX)], axis=1)
        with self._lock:
            self._buffer[(now.strftime("%Y-%m-%d"), version)].append(frame)
            self._rows += len(frame)
            full = self._rows >= self.config.flush_rows
        if full:
            self._wake.set()

    def flush(self) -> int:
        """Write everything buffered now; returns the number of files written."""
        with self._lock:
            buffered, self._buffer, self._rows = self._buffer, defaultdict(list), 0
        written = 0
        for (date, version), frames in buffered.items():
            self._write(date, version, pd.concat(frames, ignore_index=True))
            written += 1
        return written

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
        self.files_written += 1
        self.rows_written += len(frame)


def _as_uri(path: str) -> str:
    if "://" in path:
        return path
    from pathlib import Path

    return Path(path).expanduser().resolve().as_uri()
