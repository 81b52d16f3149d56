"""Build a TorchTrainer from the config, run it, and return the best weights.

The best checkpoint (lowest validation loss) is what gets registered, not the last
epoch's, so a late overfit does not reach production.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from ray.train import CheckpointConfig, LoggingConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from mlops_ray.config import Config
from mlops_ray.data import PreparedData
from mlops_ray.models import ModelSpec
from mlops_ray.train.loop import WEIGHTS_FILE, train_loop_per_worker

SELECTION_METRIC = "val_loss"


@dataclass(frozen=True)
class TrainResult:
    spec: ModelSpec
    state_dict: dict[str, torch.Tensor]
    best_metrics: dict[str, float]
    checkpoint_path: str


def train_model(config: Config, data: PreparedData, tracking_uri: str, run_id: str | None) -> TrainResult:
    spec = ModelSpec.from_config(config.model, data.preprocessing.width, data.target.n_outputs)
    train = config.train
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "model_spec": spec.to_dict(),
            "task": data.target.task,
            "target_std": data.target.std,
            "epochs": train.epochs,
            "batch_size": train.batch_size,
            "lr": train.lr,
            "weight_decay": train.weight_decay,
            "seed": train.seed,
            "cache_shard_mb": train.cache_shard_mb,
            "tracking_uri": tracking_uri,
            "run_id": run_id,
        },
        scaling_config=ScalingConfig(
            num_workers=train.num_workers,
            use_gpu=train.use_gpu,
            resources_per_worker={"CPU": train.cpus_per_worker},
        ),
        run_config=RunConfig(
            name=f"train-{run_id}" if run_id else None,
            storage_path=_storage_uri(train.storage_path),
            logging_config=LoggingConfig(log_level="WARNING"),
            checkpoint_config=CheckpointConfig(
                num_to_keep=1, checkpoint_score_attribute=SELECTION_METRIC, checkpoint_score_order="min"
            ),
        ),
        datasets={"train": data.train, "val": data.val},
    )
    result = trainer.fit()
    checkpoint, metrics = min(result.best_checkpoints, key=lambda pair: pair[1][SELECTION_METRIC])
    with checkpoint.as_directory() as directory:
        state_dict = torch.load(Path(directory) / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    best = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
    return TrainResult(spec, state_dict, best, checkpoint.path)


def _storage_uri(path: str) -> str:
    return path if "://" in path else str(Path(path).resolve())
