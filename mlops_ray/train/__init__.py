"""Training on Ray Train v2: the per-worker loop, the TorchTrainer that runs it, and the ``train`` stage."""

from mlops_ray.train.trainer import train_model

__all__ = ["train_model"]
