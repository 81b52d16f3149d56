"""The per-worker training loop that every training run (and later every trial) executes.

It reads its shard of the Ray Data splits, trains with DDP when there is more than
one worker (every epoch reshuffles the rows),  reduces validation statistics across workers so every rank sees the
same numbers, and reports one checkpoint per epoch. Only rank 0 writes the
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
BATCH_DTYPES = {"x": torch.float32, "y": torch.long}


def train_loop_per_worker(cfg: dict[str, Any]) -> None:
    torch.manual_seed(cfg["seed"])
    rank = ray.train.get_context().get_world_rank()
    device = ray.train.torch.get_device()
    model = ray.train.torch.prepare_model(build_model(ModelSpec.from_dict(cfg["model_spec"])))
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    loss_fn = nn.CrossEntropyLoss()
    train_shard = _EpochSource(ray.train.get_dataset_shard("train"), cfg, device)
    val_shard = _EpochSource(ray.train.get_dataset_shard("val"), cfg, device)
    logger = _EpochLogger(cfg["tracking_uri"], cfg["run_id"]) if rank == 0 and cfg.get("run_id") else None

    for epoch in range(cfg["epochs"]):
        model.train()
        train_sums = torch.zeros(3, device=device)
        for batch in train_shard.batches(shuffle_seed=cfg["seed"] + epoch):
            logits = model(batch["x"])
            loss = loss_fn(logits, batch["y"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            train_sums += _batch_sums(logits.detach(), batch["y"], loss.detach())
        val_sums = _evaluate(model, val_shard, loss_fn, device)
        metrics = {"epoch": epoch + 1, **_rates("train", train_sums), **_rates("val", val_sums)}
        _report(model, metrics, rank)
        if logger:
            logger.log(metrics, step=epoch + 1)


def _evaluate(model: nn.Module, shard: _EpochSource, loss_fn: nn.Module, device: torch.device) -> torch.Tensor:
    model.eval()
    sums = torch.zeros(3, device=device)
    with torch.no_grad():
        for batch in shard.batches(shuffle_seed=None):
            logits = model(batch["x"])
            sums += _batch_sums(logits, batch["y"], loss_fn(logits, batch["y"]))
    return sums


class _EpochSource:
    """Batches of one worker's shard, epoch after epoch.

    Starting a Ray Data execution costs about a second, which dominated small runs
    (two splits x every epoch). A shard that fits under ``cache_shard_mb`` is
    therefore read once and kept as tensors; larger shards stream every epoch.
    """

    def __init__(self, shard: Any, cfg: dict[str, Any], device: torch.device):
        self.shard = shard
        self.batch_size = cfg["batch_size"]
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
            dtypes=BATCH_DTYPES,
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


def _batch_sums(logits: torch.Tensor, y: torch.Tensor, mean_loss: torch.Tensor) -> torch.Tensor:
    """[summed loss, correct predictions, rows]: additive, so shards can be all-reduced."""
    n = y.shape[0]
    return torch.stack(
        [mean_loss * n, (logits.argmax(dim=1) == y).sum().float(), torch.tensor(float(n), device=y.device)]
    )


def _rates(prefix: str, sums: torch.Tensor) -> dict[str, float]:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(sums)
    loss, correct, rows = sums.tolist()
    rows = max(rows, 1.0)
    return {f"{prefix}_loss": loss / rows, f"{prefix}_accuracy": correct / rows}


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
