"""Build a TorchTrainer from the config, run it, and return the best weights.

The best checkpoint by ``train.checkpoint.metric`` is what gets registered, not the
last epoch's, so a late overfit does not reach production. The Ray Train run is
named after the MLflow run (``train-<run id>``) under ``train.storage_path``:
starting a trainer with the same name again is how Ray Train v2 finds the run's
checkpoints, which is what ``mlops-ray train --resume`` relies on.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from ray.data import ExecutionOptions
from ray.train import (
    Checkpoint,
    CheckpointConfig,
    DataConfig,
    FailureConfig,
    LoggingConfig,
    RunConfig,
    ScalingConfig,
    TrainingFailedError,
)
from ray.train.torch import TorchTrainer

from mlops_ray.config import Config, TrainConfig
from mlops_ray.errors import ConfigError, TrainingError
from mlops_ray.models import ModelSpec
from mlops_ray.models.record import TrainResult
from mlops_ray.models.user import check_builder, search_dir_of
from mlops_ray.train.local_checkpoints import LocalCheckpoints
from mlops_ray.train.loop import train_loop_per_worker
from mlops_ray.train.state import WEIGHTS_FILE

if TYPE_CHECKING:  # workers import this package to load the loop; the data layer (scikit-learn) costs them 0.8 s
    from mlops_ray.data import PreparedData


def run_name(run_id: str) -> str:
    return f"train-{run_id}"


def selectable_metrics(task: str) -> tuple[str, ...]:
    """Metrics every epoch reports, so they can rank checkpoints and drive early stopping."""
    second = "accuracy" if task == "classification" else "mae"
    return tuple(f"{split}_{name}" for split in ("val", "train") for name in ("loss", second))


def check_selection_metric(train: TrainConfig, task: str) -> None:
    """Refuse, before anything starts, a checkpoint metric the loop will never report."""
    allowed = selectable_metrics(task)
    if train.checkpoint.metric not in allowed:
        raise ConfigError(
            f"'{train.checkpoint.metric}' is not reported for {task}; choose one of {', '.join(allowed)}",
            where="train.checkpoint.metric",
        )


def check_model(config: Config, data: PreparedData) -> None:
    """Before any run starts: a ``module.path:builder`` network imports, builds and takes a batch (ConfigError)."""
    spec = ModelSpec.from_config(config.model, data.preprocessing.width, data.target.n_outputs)
    if spec.is_builder:
        check_builder(spec.name, spec.n_features, spec.n_outputs, spec.params)


def train_model(config: Config, data: PreparedData, tracking_uri: str, run_id: str) -> TrainResult:
    spec = ModelSpec.from_config(config.model, data.preprocessing.width, data.target.n_outputs)
    train = config.train
    check_selection_metric(train, data.task)
    storage = storage_uri(train.storage_path)
    name = run_name(run_id)
    workers = train.workers_for(data.row_counts["train"])
    builder_dir = search_dir_of(spec.name) if spec.is_builder else None
    cfg = loop_config(config, spec, data.target.task, data.target.std, tracking_uri, run_id, builder_dir)
    if train.fault_injection is not None:
        marker = Path(storage) / name / f"fault-injected-epoch-{train.fault_injection.epoch}"
        cfg["fault_injection"] = {**train.fault_injection.model_dump(), "marker": str(marker)}
    store = local_checkpoints(train, Path(storage) / name) if workers == 0 else None
    if store is not None:
        cfg["local_checkpoints"] = store.arguments()  # the loop builds its own store from these
    trainer = build_trainer(train, workers, cfg, {"train": data.train, "val": data.val}, name, storage)
    try:
        result = trainer.fit()
    except TrainingFailedError as exc:
        raise TrainingError(
            f"training failed after {max(train.max_failures, 0)} restart(s): {_root_cause(exc)}",
            where=f"Ray Train run {name} under {storage}",
            hint="Worker logs are in /tmp/ray/session_latest/logs; raise train.max_failures to retry more, "
            "and `mlops-ray train CONFIG --resume` continues from the last checkpoint.",
        ) from None
    except Exception as exc:
        if store is None:
            raise
        raise TrainingError(
            f"training failed in this process (local mode restarts nothing): {type(exc).__name__}: {exc}",
            where=f"Ray Train run {name} under {storage} (local mode)",
            hint="`mlops-ray train CONFIG --resume` continues from the last checkpoint; for restarts after a "
            "failure, train with workers (train.num_workers >= 1, and train.max_failures).",
        ) from exc
    if store is None:
        kept = list(result.best_checkpoints)
    else:  # local mode reports nothing Ray keeps: the store's best is the one candidate
        kept = [(Checkpoint.from_directory(path), metrics) for path, metrics in filter(None, [store.best()])]
    return _best(kept, result.metrics, spec, train.checkpoint.metric, train.checkpoint.mode)


def local_checkpoints(train: TrainConfig, root: Path) -> LocalCheckpoints:
    """Where a local-mode run keeps its checkpoints, ranked as the worker group's ``CheckpointConfig`` ranks them."""
    selection = train.checkpoint
    return LocalCheckpoints(root, selection.keep, selection.metric, selection.mode)


def loop_config(
    config: Config,
    spec: ModelSpec,
    task: str,
    target_std: float,
    tracking_uri: str | None,
    run_id: str | None,
    builder_dir: str | None = None,
) -> dict[str, Any]:
    """What the loop reads: the train section, the network, the task; MLflow only when rank 0 should log.

    ``builder_dir``: where the driver found an own network's module, for workers to import it from.
    """
    return {
        **config.train.model_dump(mode="json", exclude={"fault_injection"}),
        "model_spec": spec.to_dict(),
        "builder_dir": builder_dir,
        "task": task,
        "target_std": target_std,
        "tracking_uri": tracking_uri,
        "run_id": run_id,
    }


def build_trainer(
    train: TrainConfig,
    workers: int,
    cfg: dict[str, Any],
    datasets: dict[str, Any],
    name: str,
    storage: str,
    callbacks: tuple[Any, ...] = (),
) -> TorchTrainer:
    """The TorchTrainer every training path uses: ``mlops-ray train`` and each multi-worker sweep trial.

    ``workers`` 0 is Ray Train's local mode: the loop runs in this process, with no worker
    group, placement group or controller to start (seconds on a laptop, most of a small run).
    """
    selection = train.checkpoint
    scaling = (
        ScalingConfig(num_workers=0, use_gpu=train.use_gpu)
        if workers == 0
        else ScalingConfig(
            num_workers=workers,
            use_gpu=train.use_gpu,
            resources_per_worker=dict(train.resources_per_worker),
            placement_strategy=train.placement_strategy,
        )
    )
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config=cfg,
        scaling_config=scaling,
        run_config=RunConfig(
            name=name,
            storage_path=storage,
            logging_config=LoggingConfig(log_level="WARNING"),
            checkpoint_config=CheckpointConfig(
                num_to_keep=selection.keep,
                checkpoint_score_attribute=selection.metric,
                checkpoint_score_order=selection.mode,
            ),
            failure_config=FailureConfig(max_failures=train.max_failures),
            callbacks=list(callbacks),
        ),
        datasets=datasets,
        # Blocks in a fixed order: with one worker and one seed, a re-run sees the same batches.
        dataset_config=DataConfig(execution_options=ExecutionOptions(preserve_order=True)),
    )


def _best(
    kept: list[tuple[Checkpoint, dict[str, Any]]], last: dict[str, Any] | None, spec: ModelSpec, metric: str, mode: str
) -> TrainResult:
    """The best kept checkpoint by ``metric`` as a record; ``last`` is the final epoch's report."""
    if not kept:
        raise TrainingError("training finished without a checkpoint", where="train.checkpoint")
    pick = min if mode == "min" else max
    checkpoint, metrics = pick(kept, key=lambda pair: pair[1][metric])
    with checkpoint.as_directory() as directory:
        state_dict = torch.load(Path(directory) / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    best = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
    final = {k: float(v) for k, v in (last or metrics).items() if isinstance(v, int | float)}
    return TrainResult(spec, state_dict, best, checkpoint.path, int(final["epoch"]), final)


def _root_cause(exc: TrainingFailedError) -> str:
    failures = getattr(exc, "worker_failures", None)
    if failures:
        rank, error = sorted(failures.items())[0]
        return f"rank {rank}: {str(error).strip().splitlines()[-1]}"
    return str(exc).strip().splitlines()[-1]


def storage_uri(path: str) -> str:
    return path if "://" in path else str(Path(path).resolve())
