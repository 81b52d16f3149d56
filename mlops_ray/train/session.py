"""Where the training loop runs: a Ray Train worker, Ray Train's local mode, or a Ray Tune trial in-process.

The loop asks its session for its rank, device, data and checkpoint, and reports
through it; nothing else in the loop knows which of them it runs under. That is what
lets a small training run (``train.num_workers: 0``, or ``auto`` on small data) and a
one-worker sweep trial run the very same loop inside the calling process (no worker
group to start), while larger runs and multi-worker trials start a TorchTrainer whose
workers use ``RayTrainSession``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import ray.train
import ray.train.torch
import ray.tune
import torch
from torch import nn

from mlops_ray.train.local_checkpoints import LocalCheckpoints


class LoopSession(Protocol):
    rank: int
    device: torch.device

    def prepare_model(self, network: nn.Module) -> nn.Module: ...

    def dataset(self, name: str) -> Any: ...

    def checkpoint(self) -> ray.train.Checkpoint | None: ...

    def report(self, metrics: dict[str, float], checkpoint_dir: Path | None) -> None: ...

    def kept_tensors(self, name: str) -> dict[str, torch.Tensor]: ...


# Per process: Tune reuses a trial's actor for the next trial, which then skips reading the data again.
_TRIAL_TENSORS: dict[tuple[str, str, str, str], dict[str, torch.Tensor]] = {}


class RayTrainSession:
    """A Ray Train worker: DDP across the group, data shards, checkpoints in the Train run."""

    def __init__(self) -> None:
        self.rank = ray.train.get_context().get_world_rank()
        self.device = ray.train.torch.get_device()

    def prepare_model(self, network: nn.Module) -> nn.Module:
        return ray.train.torch.prepare_model(network)  # moves the parameters in place: the optimizer keeps them

    def dataset(self, name: str) -> Any:
        return ray.train.get_dataset_shard(name)

    def checkpoint(self) -> ray.train.Checkpoint | None:
        return ray.train.get_checkpoint()

    def report(self, metrics: dict[str, float], checkpoint_dir: Path | None) -> None:
        checkpoint = ray.train.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.train.report(metrics, checkpoint=checkpoint)

    def kept_tensors(self, name: str) -> dict[str, torch.Tensor]:
        return {}  # a worker group lives for one run: nothing to hand on


class _InProcess:
    """Rank 0 of one, in the calling process: the device the config asks for, no DDP to wrap the model in."""

    def __init__(self, use_gpu: bool) -> None:
        self.rank = 0
        self.device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")

    def prepare_model(self, network: nn.Module) -> nn.Module:
        return network.to(self.device)


class LocalModeSession(_InProcess):
    """Ray Train's local mode: the whole train/val datasets in this process, checkpoints kept by ``store``."""

    def __init__(self, store: LocalCheckpoints, use_gpu: bool) -> None:
        super().__init__(use_gpu)
        self.store = store

    def dataset(self, name: str) -> Any:
        return ray.train.get_dataset_shard(name)  # in local mode: the whole dataset

    def checkpoint(self) -> ray.train.Checkpoint | None:
        latest = self.store.latest()  # local mode itself keeps nothing between runs; `--resume` reads the store
        return ray.train.Checkpoint.from_directory(latest) if latest else None

    def report(self, metrics: dict[str, float], checkpoint_dir: Path | None) -> None:
        if checkpoint_dir:
            self.store.save(checkpoint_dir, metrics)
        ray.train.report(metrics)

    def kept_tensors(self, name: str) -> dict[str, torch.Tensor]:
        return {}


class TuneTrialSession(_InProcess):
    """A one-worker Tune trial: the whole train/val datasets, checkpoints in the trial (so PBT can copy them)."""

    def __init__(self, datasets: dict[str, Any], use_gpu: bool, data_key: str) -> None:
        super().__init__(use_gpu)
        self.datasets = datasets
        self.data_key = data_key  # names the prepared data (fingerprint, split, preprocessing) of this sweep

    def dataset(self, name: str) -> Any:
        return self.datasets[name].iterator()

    def checkpoint(self) -> ray.train.Checkpoint | None:
        return ray.tune.get_checkpoint()

    def report(self, metrics: dict[str, float], checkpoint_dir: Path | None) -> None:
        checkpoint = ray.tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.tune.report(metrics, checkpoint=checkpoint)

    def kept_tensors(self, name: str) -> dict[str, torch.Tensor]:
        """The split as tensors, if an earlier trial in this process read it (same data, same device)."""
        key = (self.data_key, name, str(self.device), str(torch.get_default_dtype()))
        for stale in [k for k in _TRIAL_TENSORS if k[0] != self.data_key]:
            del _TRIAL_TENSORS[stale]  # another sweep's data: replaced, never added to
        return _TRIAL_TENSORS.setdefault(key, {})
