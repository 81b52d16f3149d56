"""The per-worker training loop that every training run (and later every trial) executes.

It reads its shard of the Ray Data splits, trains with DDP when there is more than
one worker (every epoch reshuffles the rows), reduces validation statistics across
workers so every rank sees the same numbers (and so takes the same early-stopping
decision), and reports every epoch, with a checkpoint every ``every_epochs``.
Classification trains with cross-entropy, regression with the mean squared error of
the standardised label, optionally under autocast (bf16, or fp16 with a grad scaler)
and with gradient clipping. On start it continues from ``ray.train.get_checkpoint()``
when there is one: after a worker failure Ray Train restarts the group from the last
checkpoint, and the epoch counter, optimizer and schedule carry on from there. Only
rank 0 writes checkpoints and logs to MLflow: one writer keeps the SQLite store safe.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from mlops_ray.models import ModelSpec, build_model, min_train_rows
from mlops_ray.train.local_checkpoints import LocalCheckpoints
from mlops_ray.train.optim import apply_optimizer_settings, make_optimizer, make_scheduler
from mlops_ray.train.precision import Precision
from mlops_ray.train.session import LocalModeSession, LoopSession, RayTrainSession
from mlops_ray.train.state import Progress, load_checkpoint, save_checkpoint

TARGET_DTYPES = {"classification": torch.long, "regression": torch.float32}
# Wall-clock measurements in every report: they describe the machine, not the model, so they differ between runs.
TIMING_METRICS = frozenset({"train_seconds", "train_samples_per_s", "first_batch_unix", "mlflow_log_seconds"})


def train_loop_per_worker(cfg: dict[str, Any]) -> None:
    """Ray Train's entry: one worker of a TorchTrainer group, or the calling process in local mode."""
    local = cfg.get("local_checkpoints")
    session = LocalModeSession(LocalCheckpoints(**local), cfg["use_gpu"]) if local else RayTrainSession()
    run_loop(cfg, session)


def run_loop(cfg: dict[str, Any], session: LoopSession) -> None:
    rank, device = session.rank, session.device
    torch.manual_seed(cfg["seed"])
    network = build_model(ModelSpec.from_dict(cfg["model_spec"]), cfg.get("builder_dir"))
    optimizer = make_optimizer(cfg, network.parameters())
    scheduler = make_scheduler(cfg, optimizer)
    precision = Precision.choose(cfg["precision"], device)
    parts = {"optimizer": optimizer, "scheduler": scheduler, "scaler": precision.scaler}
    model = session.prepare_model(network)
    progress = Progress()
    checkpoint = session.checkpoint()
    if checkpoint:  # a restart after a failure, `--resume`, or a PBT trial taking over a better one's weights
        with checkpoint.as_directory() as directory:
            progress = load_checkpoint(Path(directory), network, parts)
        apply_optimizer_settings(cfg, optimizer, scheduler)  # PBT may have changed lr, momentum, weight decay
    min_rows = min_train_rows(network)  # BatchNorm (built-in or in an own network) cannot train on one row
    objective = _Objective(cfg["task"], cfg.get("target_std", 1.0))
    train_shard = _EpochSource(session.dataset("train"), cfg, device, session.kept_tensors("train"))
    val_shard = _EpochSource(session.dataset("val"), cfg, device, session.kept_tensors("val"))
    logger = _EpochLogger(cfg["tracking_uri"], cfg["run_id"]) if rank == 0 and cfg.get("run_id") else None
    selection, stopping = cfg["checkpoint"], cfg.get("early_stopping")

    first_batch_unix: float | None = None
    logging_seconds = 0.0
    while progress.epoch < cfg["epochs"]:
        epoch = progress.epoch + 1
        _maybe_fail(cfg.get("fault_injection"), epoch, rank)
        model.train()
        train_sums = torch.zeros(3, device=device)
        epoch_start = time.perf_counter()
        for batch in train_shard.batches(shuffle_seed=cfg["seed"] + epoch):
            first_batch_unix = first_batch_unix or time.time()
            if batch["y"].shape[0] < min_rows:
                continue  # shards are equal in size, so every rank skips the same trailing batch
            with precision.autocast():
                outputs = model(batch["x"])
                loss = objective.loss(outputs, batch["y"])
            optimizer.zero_grad(set_to_none=True)
            precision.scaler.scale(loss).backward()
            if cfg.get("grad_clip_norm"):
                precision.scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip_norm"])
            precision.scaler.step(optimizer)
            precision.scaler.update()
            train_sums += objective.sums(outputs.detach().float(), batch["y"], loss.detach().float())
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        train_seconds = time.perf_counter() - epoch_start
        epoch_lr = optimizer.param_groups[0]["lr"]  # the rate this epoch trained with
        scheduler.step()
        val_sums = _evaluate(model, val_shard, objective, precision, device)
        metrics = {"epoch": epoch, **objective.rates("train", train_sums), **objective.rates("val", val_sums)}
        metrics["lr"] = epoch_lr
        metrics["train_seconds"] = train_seconds
        metrics["train_samples_per_s"] = float(train_sums[2]) / max(train_seconds, 1e-9)  # all ranks' rows
        progress.epoch = epoch
        progress.update(metrics[selection["metric"]], selection["mode"], stopping["min_delta"] if stopping else 0.0)
        stop = bool(stopping) and progress.bad_epochs >= stopping["patience"]
        keep = epoch % selection["every_epochs"] == 0 or epoch == cfg["epochs"] or stop
        if logger:
            logged = time.perf_counter()
            logger.log(metrics, step=epoch)
            logging_seconds += time.perf_counter() - logged
        # Timings for benchmarks: in Ray Train's result, not in MLflow (they describe the machine, not the model).
        timing = {"first_batch_unix": first_batch_unix or 0.0, "mlflow_log_seconds": logging_seconds}
        _report(session, network, parts, progress, {**metrics, **timing}, keep)
        if stop:
            break


def _maybe_fail(fault: dict[str, Any] | None, epoch: int, rank: int) -> None:
    """Testing aid: raise once (a marker file remembers it) on ``fault['rank']`` at ``fault['epoch']``."""
    if not fault or fault["epoch"] != epoch or fault["rank"] != rank:
        return
    marker = Path(fault["marker"])
    if marker.exists():
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"fault injected at epoch {epoch} on rank {rank}\n")
    raise RuntimeError(f"injected fault at epoch {epoch} on rank {rank} (train.fault_injection)")


def _evaluate(
    model: nn.Module, shard: _EpochSource, objective: _Objective, precision: Precision, device: torch.device
) -> torch.Tensor:
    model.eval()
    sums = torch.zeros(3, device=device)
    with torch.no_grad(), precision.autocast():
        for batch in shard.batches(shuffle_seed=None):
            outputs = model(batch["x"]).float()
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
    therefore read once and kept as tensors; larger shards stream every epoch. In a
    sweep, the session keeps those tensors for the next trial of the same actor.
    """

    def __init__(self, shard: Any, cfg: dict[str, Any], device: torch.device, kept: dict[str, torch.Tensor]):
        self.shard = shard
        self.batch_size = cfg["batch_size"]
        self.dtypes = {"x": torch.float32, "y": TARGET_DTYPES[cfg["task"]]}
        self.pin_memory = device.type == "cuda"  # page-locked host buffers make the copy to the GPU asynchronous
        self.cache_bytes = cfg["cache_shard_mb"] * 2**20
        self.device = device
        self.kept = kept  # the session's store: a reused sweep actor hands the next trial what this one read
        self.cached: dict[str, torch.Tensor] | None = dict(kept) or None

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
            pin_memory=self.pin_memory,
        ):
            size += sum(t.element_size() * t.nelement() for t in batch.values())
            if size <= self.cache_bytes:
                seen.append(batch)
            yield batch
        if size <= self.cache_bytes and seen:
            self.cached = {k: torch.cat([b[k] for b in seen]) for k in seen[0]}
            self.kept.update(self.cached)

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


def _report(
    session: LoopSession,
    network: nn.Module,
    parts: dict[str, Any],
    progress: Progress,
    metrics: dict[str, float],
    keep: bool,
) -> None:
    """Every rank reports; rank 0 attaches the checkpoint on the epochs that keep one."""
    if session.rank != 0 or not keep:
        session.report(metrics, None)
        return
    with tempfile.TemporaryDirectory() as tmp:
        save_checkpoint(Path(tmp), network, parts, progress)
        session.report(metrics, Path(tmp))


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
