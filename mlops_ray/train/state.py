"""What a checkpoint holds, and how it is written and read without unpickling.

``model.pt`` is the network's state dict (what gets packaged and registered);
``train_state.pt`` is everything needed to continue exactly where training stopped:
optimizer, schedule, grad scaler, the epoch counter, early-stopping bookkeeping and
the RNG state. Both are plain tensors, numbers and lists, read back with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

WEIGHTS_FILE = "model.pt"
STATE_FILE = "train_state.pt"


@dataclass
class Progress:
    """The epoch counter and early-stopping bookkeeping, identical on every rank."""

    epoch: int = 0  # epochs completed
    best: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0

    def update(self, value: float, mode: str, min_delta: float) -> None:
        """Record this epoch's selection metric; count epochs without improvement."""
        better = self.best is None or (
            value < self.best - min_delta if mode == "min" else value > self.best + min_delta
        )
        if better:
            self.best, self.best_epoch, self.bad_epochs = value, self.epoch, 0
        else:
            self.bad_epochs += 1


def save_checkpoint(directory: Path, model: torch.nn.Module, parts: dict[str, Any], progress: Progress) -> None:
    torch.save(model.state_dict(), directory / WEIGHTS_FILE)
    state = {name: part.state_dict() for name, part in parts.items()}
    torch.save({**state, "progress": asdict(progress), "rng": torch.get_rng_state()}, directory / STATE_FILE)


def load_checkpoint(directory: Path, model: torch.nn.Module, parts: dict[str, Any]) -> Progress:
    model.load_state_dict(torch.load(directory / WEIGHTS_FILE, map_location="cpu", weights_only=True))
    state = torch.load(directory / STATE_FILE, map_location="cpu", weights_only=True)
    for name, part in parts.items():
        part.load_state_dict(state[name])
    torch.set_rng_state(state["rng"])
    return Progress(**state["progress"])
