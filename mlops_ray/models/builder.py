"""Build a torch module from a small, JSON-serialisable spec.

The spec (not a pickled module) is what gets stored next to the weights, so a
model is loaded by rebuilding the architecture and reading a ``weights_only``
state dict: no arbitrary code runs at load time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import nn

from mlops_ray.config import ModelConfig


@dataclass(frozen=True)
class ModelSpec:
    name: str
    n_features: int
    n_outputs: int
    hidden_sizes: tuple[int, ...]
    dropout: float

    @classmethod
    def from_config(cls, config: ModelConfig, n_features: int, n_outputs: int) -> ModelSpec:
        return cls(config.name, n_features, n_outputs, tuple(config.hidden_sizes), config.dropout)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelSpec:
        return cls(**{**data, "hidden_sizes": tuple(data["hidden_sizes"])})


def build_model(spec: ModelSpec) -> nn.Module:
    if spec.name != "mlp":
        raise ValueError(f"unknown model name {spec.name!r}")
    return _mlp(spec)


def _mlp(spec: ModelSpec) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = spec.n_features
    for hidden in spec.hidden_sizes:
        layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(spec.dropout)]
        width = hidden
    layers.append(nn.Linear(width, spec.n_outputs))
    return nn.Sequential(*layers)
