"""The training loop's parts that need no Ray: schedules, early-stopping bookkeeping, precision, checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mlops_ray.config import TrainConfig
from mlops_ray.train.optim import make_optimizer, make_scheduler
from mlops_ray.train.precision import Precision
from mlops_ray.train.state import Progress, load_checkpoint, save_checkpoint


def rates(**train: object) -> list[float]:
    cfg = TrainConfig(**train).model_dump()  # type: ignore[arg-type]
    optimizer = make_optimizer(cfg, [torch.nn.Parameter(torch.zeros(1))])
    scheduler = make_scheduler(cfg, optimizer)
    seen = []
    for _ in range(cfg["epochs"]):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return seen


def test_schedules_warm_up_then_decay() -> None:
    assert rates(lr=0.1, epochs=3) == [0.1, 0.1, 0.1]
    assert rates(lr=0.1, epochs=4, lr_schedule="step", step_every_epochs=2, step_gamma=0.5) == pytest.approx(
        [0.1, 0.1, 0.05, 0.05]
    )
    cosine = rates(lr=1.0, epochs=6, lr_schedule="cosine", warmup_epochs=2)
    assert cosine[:2] == pytest.approx([1 / 3, 2 / 3])
    assert cosine[2] == pytest.approx(1.0) and cosine[2] > cosine[3] > cosine[4] > cosine[5] > 0


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_every_optimizer_is_built(name: str) -> None:
    cfg = TrainConfig(optimizer=name, weight_decay=0.01).model_dump()  # type: ignore[arg-type]
    assert type(make_optimizer(cfg, [torch.nn.Parameter(torch.zeros(1))])).__name__.lower() == name


def test_progress_counts_epochs_without_improvement() -> None:
    progress = Progress()
    for epoch, loss in enumerate([1.0, 0.9, 0.95, 0.89, 0.891], start=1):
        progress.epoch = epoch
        progress.update(loss, "min", min_delta=0.005)
    assert (progress.best, progress.best_epoch, progress.bad_epochs) == (0.89, 4, 1)


def test_precision_on_cpu() -> None:
    cpu = torch.device("cpu")
    assert Precision.choose("auto", cpu).name == "fp32"
    bf16 = Precision.choose("bf16", cpu)
    assert bf16.name == "bf16" and not bf16.scaler.is_enabled()
    with bf16.autocast():
        assert torch.nn.Linear(4, 2)(torch.ones(1, 4)).dtype == torch.bfloat16


def test_checkpoint_round_trip_restores_optimizer_schedule_and_progress(tmp_path: Path) -> None:
    cfg = TrainConfig(lr_schedule="cosine").model_dump()
    model = torch.nn.Linear(3, 2)
    optimizer = make_optimizer(cfg, model.parameters())
    scheduler = make_scheduler(cfg, optimizer)
    model(torch.ones(4, 3)).sum().backward()
    optimizer.step()
    scheduler.step()
    save_checkpoint(tmp_path, model, {"optimizer": optimizer, "scheduler": scheduler}, Progress(3, 0.5, 2, 1))

    fresh = torch.nn.Linear(3, 2)
    fresh_optimizer = make_optimizer(cfg, fresh.parameters())
    fresh_scheduler = make_scheduler(cfg, fresh_optimizer)
    progress = load_checkpoint(tmp_path, fresh, {"optimizer": fresh_optimizer, "scheduler": fresh_scheduler})
    assert progress == Progress(3, 0.5, 2, 1)
    assert torch.equal(fresh.weight, model.weight)
    assert fresh_scheduler.last_epoch == 1
    assert fresh_optimizer.state_dict()["state"][0]["step"] == optimizer.state_dict()["state"][0]["step"]


def test_checkpoint_metric_must_be_one_the_loop_reports() -> None:
    from mlops_ray.train.trainer import selectable_metrics

    assert selectable_metrics("classification") == ("val_loss", "val_accuracy", "train_loss", "train_accuracy")
    assert "val_mae" in selectable_metrics("regression") and "val_accuracy" not in selectable_metrics("regression")
