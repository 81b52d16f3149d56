"""Checkpoints of a run in Ray Train's local mode, kept where and as a worker group's run keeps them.

Local mode (``ScalingConfig(num_workers=0)``) runs the training function in the calling
process and remembers only the last reported checkpoint, in memory; the loop writes each
checkpoint into a temporary folder. So in local mode this store copies every reported
checkpoint under the run's own folder (``<storage>/train-<run id>/checkpoint_epoch_<n>``,
beside where a worker group's checkpoints go), keeps the best ``keep`` by the selection
metric plus the newest, and hands the newest back when the run is resumed. ``--resume``
and the pick of the best checkpoint then work the same in both modes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

PREFIX = "checkpoint_epoch_"
METRICS_FILE = "reported_metrics.json"  # what the epoch reported, beside the checkpoint's own files


class LocalCheckpoints:
    def __init__(self, root: str | Path, keep: int, metric: str, mode: str):
        self.root = Path(root)
        self.keep = keep
        self.metric = metric
        self.mode = mode

    def arguments(self) -> dict[str, object]:
        """What rebuilds this store (it travels to the loop in the trainer's config)."""
        return {"root": str(self.root), "keep": self.keep, "metric": self.metric, "mode": self.mode}

    def save(self, source: Path, metrics: dict[str, float]) -> Path:
        """Copy a reported checkpoint in (a partial copy never counts: it is renamed into place whole)."""
        target = self.root / f"{PREFIX}{int(metrics['epoch']):06d}"
        staging = self.root / f".staging-{target.name}"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(source, staging)
        (staging / METRICS_FILE).write_text(json.dumps(metrics))
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        self._prune()
        return target

    def kept(self) -> list[tuple[Path, dict[str, float]]]:
        """Every complete checkpoint with its metrics, oldest first."""
        found = []
        for folder in sorted(self.root.glob(f"{PREFIX}*")):
            metrics_file = folder / METRICS_FILE
            if folder.is_dir() and metrics_file.is_file():
                found.append((folder, json.loads(metrics_file.read_text())))
        return found

    def latest(self) -> Path | None:
        kept = self.kept()
        return kept[-1][0] if kept else None

    def best(self) -> tuple[Path, dict[str, float]] | None:
        kept = self.kept()
        if not kept:
            return None
        pick = min if self.mode == "min" else max
        return pick(kept, key=lambda pair: pair[1][self.metric])

    def _prune(self) -> None:
        kept = self.kept()
        ranked = sorted(kept, key=lambda pair: pair[1][self.metric], reverse=self.mode == "max")
        keep = {path for path, _ in ranked[: self.keep]} | {kept[-1][0]}
        for path, _ in kept:
            if path not in keep:
                shutil.rmtree(path, ignore_errors=True)
