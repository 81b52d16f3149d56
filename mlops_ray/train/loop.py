"""The per-worker training loop that every training run (and later every trial) executes.

It reads its shard of the Ray Data splits, trains with DDP when there is more than
one worker (every epoch reshuffles the rows), reduces validation statistics across
workers so every rank sees the same numbers, and reports one checkpoint per epoch.
Classification trains with cross-entropy, regression with the mean squared error of
the standardised label. Only rank 0 writes the
checkpoint and logs to MLflow: one writer keeps the SQLite store safe.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
from torch import nn

from mlops_ray.models import ModelSpec, build_model

WEIGHTS_FILE = "model.pt"
TARGET_DTYPES = {"classification": torch.long, "regression": torch.float32}


def train_loop_per_worker(cfg: dict[str, Any]) -> None:
    torch.manual_seed(cfg["seed"])
    rank = ray.train.get_context().get_world_rank()
    device = ray.train.torch.get_device()
    model = ray.train.torch.prepare_model(build_model(ModelSpec.from_dict(cfg["model_spec"])))
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    objective = _Objective(cfg["task"], cfg.get("target_std", 1.0))
    train_shard = _EpochSource(ray.train.get_dataset_shard("train"), cfg, device)
    val_shard = _EpochSource(ray.train.get_dataset_shard("val"), cfg, device)
    logger = _EpochLogger(cfg["tracking_uri"], cfg["run_id"]) if rank == 0 and cfg.get("run_id") else None

    for epoch in range(cfg["epochs"]):
        model.train()
        train_sums = torch.zeros(3, device=device)
        for batch in train_shard.batches(shuffle_seed=cfg["seed"] + epoch):
            outputs = model(batch["x"])
            loss = objective.loss(outputs, batch["y"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            train_sums += objective.sums(outputs.detach(), batch["y"], loss.detach())
        val_sums = _evaluate(model, val_shard, objective, device)
        metrics = {"epoch": epoch + 1, **objective.rates("train", train_sums), **objective.rates("val", val_sums)}
        _report(model, metrics, rank)
        if logger:
            logger.log(metrics, step=epoch + 1)


def _evaluate(model: nn.Module, shard: _EpochSource, objective: _Objective, device: torch.device) -> torch.Tensor:
    model.eval()
    sums = torch.zeros(3, device=device)
    with torch.no_grad():
        for batch in shard.batches(shuffle_seed=None):
            outputs = model(batch["x"])
            sums += objective.sums(outputs, batch["y"], objective.loss(outputs, batch["y"]))
    return sums


class _Objective:
    """The task's loss and its per-epoch summary: accuracy, or absolute error in label units.

    Statistics are kept as additive sums ``[loss * rows, correct or |error|, rows]`` so
    shards can be all-reduced and every rank sees the same epoch metrics.
    """

    def __init__(self, task: str, target_std: float):
        self.task = task
        self.target_std = target_std
        self.loss_fn: nn.Module = nn.CrossEntropyLoss() if task == "classification" else nn.MSELoss()

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(outputs if self.task == "classification" else outputs.squeeze(1), y)

    def sums(self, outputs: torch.Tensor, y: torch.Tensor, mean_loss: torch.Tensor) -> torch.Tensor:
        n = y.shape[0]
        if self.task == "classification":
            second = (outputs.argmax(dim=1) == y).sum().float()
        else:
            second = (outputs.squeeze(1) - y).abs().sum() * self.target_std
        return torch.stack([mean_loss * n, second, torch.tensor(float(n), device=y.device)])

    def rates(self, prefix: str, sums: torch.Tensor) -> dict[str, float]:
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(sums)
        loss, second, rows = sums.tolist()
        rows = max(rows, 1.0)
        name = "accuracy" if self.task == "classification" else "mae"
        return {f"{prefix}_loss": loss / rows, f"{prefix}_{name}": second / rows}


class _EpochSource:
    """Batches of one worker's shard, epoch after epoch.

    Starting a Ray Data execution costs about a second, which dominated small runs
    (two splits x every epoch). A shard that fits under ``cache_shard_mb`` is
    therefore read once and kept as tensors; larger shards stream every epoch.
    """

    def __init__(self, shard: Any, cfg: dict[str, Any], device: torch.device):
        self.shard = shard
        self.batch_size = cfg["batch_size"]
        self.dtypes = {"x": torch.float32, "y": TARGET_DTYPES[cfg["task"]]}
        self.cache_bytes = cfg["cache_shard_mb"] * 2**20
        self.device = device
        self.cached: dict[str, torch.Tensor] | None = None

    def batches(self, shuffle_seed: int | None) -> Iterator[dict[str, torch.Tensor]]:
        if self.cached is not None:
            yield from self._from_cache(shuffle_seed)
            return
        seen: list[dict[str, torch.Tensor]] = []
        size = 0
        for batch in self.shard.iter_torch_batches(
            batch_size=self.batch_size,
            dtypes=self.dtypes,
            device=self.device,
            local_shuffle_buffer_size=self.batch_size * 8 if shuffle_seed is not None else None,
            local_shuffle_seed=shuffle_seed,
        ):
            size += sum(t.element_size() * t.nelement() for t in batch.values())
            if size <= self.cache_bytes:
                seen.append(batch)
            yield batch
        if size <= self.cache_bytes and seen:
            self.cached = {k: torch.cat([b[k] for b in seen]) for k in seen[0]}

    def _from_cache(self, shuffle_seed: int | None) -> Iterator[dict[str, torch.Tensor]]:
        assert self.cached is not None
        rows = self.cached["y"].shape[0]
        if shuffle_seed is None:
            order = torch.arange(rows, device=self.device)
        else:
            generator = torch.Generator().manual_seed(shuffle_seed)
            order = torch.randperm(rows, generator=generator).to(self.device)
        for start in range(0, rows, self.batch_size):
            index = order[start : start + self.batch_size]
            yield {k: v[index] for k, v in self.cached.items()}


def _report(model: nn.Module, metrics: dict[str, float], rank: int) -> None:
    if rank != 0:
        ray.train.report(metrics)
        return
    module = model.module if hasattr(model, "module") else model
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(module.state_dict(), Path(tmp) / WEIGHTS_FILE)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


class _EpochLogger:
    """Per-epoch metrics into the driver's MLflow run, in one batch per epoch."""

    def __init__(self, tracking_uri: str, run_id: str):
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri)
        self.run_id = run_id

    def log(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if k != "epoch"]
        self.client.log_batch(self.run_id, metrics=batch)
