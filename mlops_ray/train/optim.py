"""Optimizer and learning-rate schedule from the train config.

The schedule steps once per epoch (warm-up, then constant, cosine or step decay), so a
run resumed from a checkpoint continues the same curve: the scheduler's state travels
in the checkpoint with the optimizer's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch


def make_optimizer(cfg: dict[str, Any], parameters: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    name, lr, decay = cfg["optimizer"], cfg["lr"], cfg["weight_decay"]
    if name == "adam":
        return torch.optim.Adam(parameters, lr=lr, weight_decay=decay)
    if name == "adamw":
        return torch.optim.AdamW(parameters, lr=lr, weight_decay=decay)
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=cfg["momentum"], weight_decay=decay)
    raise ValueError(f"unknown optimizer {name!r}; choose adam, adamw or sgd")


def make_scheduler(cfg: dict[str, Any], optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-epoch multiplier of the base learning rate: linear warm-up, then the chosen decay."""
    warmup, epochs, kind = cfg["warmup_epochs"], cfg["epochs"], cfg["lr_schedule"]
    every, gamma = cfg["step_every_epochs"], cfg["step_gamma"]

    def factor(epoch: int) -> float:  # epoch = epochs completed so far
        if epoch < warmup:
            return (epoch + 1) / (warmup + 1)
        done = epoch - warmup
        if kind == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(done / max(epochs - warmup, 1), 1.0)))
        if kind == "step":
            return gamma ** (done // every)
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def apply_optimizer_settings(cfg: dict[str, Any], optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
    """Set the config's rate, momentum and decay on an optimizer restored from a checkpoint.

    Loading an optimizer's state also loads the settings it was saved with; population-based
    training restores another trial's checkpoint under a perturbed config, whose values must win.
    On a plain resume the config equals the saved values, so this changes nothing.
    """
    scheduler.base_lrs = [cfg["lr"] for _ in optimizer.param_groups]
    factor = scheduler.lr_lambdas[0](scheduler.last_epoch)
    for group in optimizer.param_groups:
        group["initial_lr"] = cfg["lr"]
        group["lr"] = cfg["lr"] * factor
        group["weight_decay"] = cfg["weight_decay"]
        if "momentum" in group:
            group["momentum"] = cfg["momentum"]
