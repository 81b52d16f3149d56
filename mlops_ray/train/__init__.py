"""Training on Ray Train v2: the per-worker loop and the TorchTrainer that runs it."""

from mlops_ray.train.trainer import TrainResult, train_model

__all__ = ["TrainResult", "train_model"]
