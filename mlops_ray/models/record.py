"""The trained-model record: what training (or a sweep's best trial) hands to packaging and registration.

It lives below the training and registry layers because both need it: ``train`` and
``tune`` produce it, ``registry`` packages it, and neither should import the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mlops_ray.models.builder import ModelSpec


@dataclass(frozen=True)
class TrainResult:
    """The best checkpoint's weights, the spec that rebuilds the network, and what the run measured."""

    spec: ModelSpec
    state_dict: dict[str, torch.Tensor]
    best_metrics: dict[str, float]
    checkpoint_path: str
    epochs_run: int
    final_metrics: dict[str, float]  # the last epoch's report, with timings (train_seconds, first_batch_unix, ...)
