"""Build a torch module from a small, JSON-serialisable spec.

The spec (not a pickled module) is what gets stored next to the weights, so a
model is loaded by rebuilding the architecture and reading a ``weights_only``
state dict: nothing is unpickled, and for the built-in networks no code but this
package's runs at load time (a ``module.path:builder`` network runs its own
builder, shipped with the model). That only works if the same spec
always builds the same module tree (same parameter names and shapes), so every
architectural choice lives in the spec and nothing here reads global state.

Two networks, chosen by ``name``, and your own (``module.path:builder``, ``user.py``):

``mlp``
    ``depth`` x [Linear(width) -> norm -> activation -> dropout] -> Linear(n_outputs).
``resmlp``
    The ResNet for tabular data of Gorishniy et al. 2021, "Revisiting Deep Learning
    Models for Tabular Data": Linear(n_features, width), then ``depth`` residual blocks
    ``x + Dropout(Linear(Dropout(act(Linear(norm(x), 2 * width))), width))``, then
    norm -> activation -> Linear(n_outputs). The paper uses separate hidden and
    residual dropout rates; one ``dropout`` drives both here to keep the config small.

The head is linear with ``n_outputs`` units and no output activation: the number of
classes for classification (binary too: 2 logits for cross-entropy, never 1 for a
sigmoid), 1 for regression. The caller picks the loss; the builder does not.

Weights keep torch's default initialisation (Kaiming-uniform for ``Linear``,
ones/zeros for the norms), as the paper's reference implementation does.

BatchNorm (``normalization="batch"``) in training mode raises
``ValueError: Expected more than 1 value per channel when training`` on a batch
of one row. Training loops must therefore never feed a 1-row batch in ``train()``
mode: drop a trailing 1-row batch (or use ``drop_last``), and under DDP make the
same decision on every rank (equal shards do), or ranks run different step counts
and the gradient all-reduce hangs. ``ModelSpec.min_train_batch_rows`` says what a
spec needs. Evaluation (``eval()`` mode) uses running statistics and takes any
batch size. BatchNorm statistics are per worker unless the module is converted with
``nn.SyncBatchNorm.convert_sync_batchnorm``; DDP broadcasts rank 0's running
buffers, which is what its checkpoint holds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
from torch import nn

from mlops_ray.config import ModelConfig
from mlops_ray.config.sections import is_builder_name
from mlops_ray.models.user import build_user_model

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}
NORMALIZATIONS = ("none", "batch", "layer")
# Expected JSON types per field; ``dropout`` also accepts an int (``0`` in a hand-written file).
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "n_features": (int,),
    "n_outputs": (int,),
    "depth": (int,),
    "width": (int,),
    "dropout": (float, int),
    "normalization": (str,),
    "activation": (str,),
}


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a network; stored as JSON next to its weights.

    Fields are plain ``str``/``int``/``float`` rather than the config's literals
    because a spec may come from a file: ``build_model`` validates the values.
    """

    name: str
    n_features: int
    n_outputs: int
    depth: int
    width: int
    dropout: float
    normalization: str
    activation: str
    params: dict[str, Any] = field(default_factory=dict)  # a builder's keyword arguments (absent: none)

    @property
    def is_builder(self) -> bool:
        return is_builder_name(self.name)

    @classmethod
    def from_config(cls, config: ModelConfig, n_features: int, n_outputs: int) -> ModelSpec:
        """The spec for ``config`` on data with ``n_features`` inputs and ``n_outputs`` head units."""
        return cls(
            name=config.name,
            n_features=n_features,
            n_outputs=n_outputs,
            depth=config.depth,
            width=config.width,
            dropout=float(config.dropout),
            normalization=config.normalization,
            activation=config.activation,
            params=dict(config.params),
        )

    def to_dict(self) -> dict[str, Any]:
        """A dict of JSON scalars; ``from_dict`` inverts it exactly."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        """Read a stored spec, refusing unknown or missing keys and wrong JSON types.

        Strict on purpose: a spec written by another version of this code (say one
        with ``hidden_sizes``) must fail loudly here, not build a different network
        that then fails on ``load_state_dict`` with a wall of key names.
        """
        expected = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(expected))
        missing = [k for k in expected if k not in data and k != "params"]  # specs stored before builders lack it
        if unknown or missing:
            problems = [f"unknown key(s) {', '.join(unknown)}"] if unknown else []
            problems += [f"missing key(s) {', '.join(missing)}"] if missing else []
            raise ValueError(f"invalid model spec: {'; '.join(problems)} (expected keys: {', '.join(expected)})")
        if not isinstance(data.get("params", {}), dict):
            raise ValueError(f"invalid model spec: 'params' must be a map, got {data['params']!r}")
        for key, types in _FIELD_TYPES.items():
            value = data[key]
            # bool is an int subclass; ``depth: true`` is a mistake, not 1.
            if isinstance(value, bool) or not isinstance(value, types):
                wanted = " or ".join(t.__name__ for t in types)
                raise ValueError(f"invalid model spec: {key!r} must be {wanted}, got {type(value).__name__} {value!r}")
        return cls(**{**data, "dropout": float(data["dropout"])})

    @property
    def min_train_batch_rows(self) -> int:
        """Smallest batch ``train()`` mode accepts: 2 with BatchNorm (see the module docstring), else 1.

        Read from the spec, so for the built-in networks only; ``min_train_rows`` answers for any
        built network, an own one included.
        """
        return 2 if self.normalization == "batch" else 1


_BATCH_NORMS = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.LazyBatchNorm1d,
    nn.LazyBatchNorm2d,
    nn.LazyBatchNorm3d,
)


def min_train_rows(network: nn.Module) -> int:
    """Smallest batch ``train()`` mode accepts for a built network: 2 if any BatchNorm layer is in it, else 1."""
    return 2 if any(isinstance(module, _BATCH_NORMS) for module in network.modules()) else 1


def build_model(spec: ModelSpec, search_dir: str | None = None, shipped: bool = False) -> nn.Module:
    """A freshly initialised network for ``spec``; ValueError names the valid choices of a bad field.

    A ``module.path:builder`` spec is built by the user's builder (``search_dir``: where a
    worker finds its module, or with ``shipped`` a registered model's own copy of it), which
    raises ``ConfigError`` naming it.
    """
    if spec.is_builder and ":" in spec.name:
        return build_user_model(spec.name, spec.n_features, spec.n_outputs, spec.params, search_dir, shipped)
    builder = _BUILDERS.get(spec.name)
    if builder is None:
        raise ValueError(f"unknown model name {spec.name!r}; valid names: {', '.join(_BUILDERS)}")
    _check(spec)
    return builder(spec)


def _check(spec: ModelSpec) -> None:
    """The config validates its own values; a spec read from a file is checked here."""
    if spec.normalization not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {spec.normalization!r}; valid: {', '.join(NORMALIZATIONS)}")
    if spec.activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {spec.activation!r}; valid: {', '.join(ACTIVATIONS)}")
    for key in ("n_features", "n_outputs", "depth", "width"):
        if getattr(spec, key) < 1:
            raise ValueError(f"model spec {key} must be at least 1, got {getattr(spec, key)}")
    if not 0 <= spec.dropout < 1:
        raise ValueError(f"model spec dropout must be in [0, 1), got {spec.dropout}")


def _norm(kind: str, width: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm1d(width)
    if kind == "layer":
        return nn.LayerNorm(width)
    return nn.Identity()


def _mlp(spec: ModelSpec) -> nn.Sequential:
    layers: list[nn.Module] = []
    inputs = spec.n_features
    for _ in range(spec.depth):
        layers += [
            nn.Linear(inputs, spec.width),
            _norm(spec.normalization, spec.width),
            ACTIVATIONS[spec.activation](),
            nn.Dropout(spec.dropout),
        ]
        inputs = spec.width
    layers.append(nn.Linear(inputs, spec.n_outputs))
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    """``x + Dropout(Linear(Dropout(act(Linear(norm(x), 2 * width))), width))``: pre-norm, so the skip is clean."""

    def __init__(self, width: int, dropout: float, normalization: str, activation: str):
        super().__init__()
        self.norm = _norm(normalization, width)
        self.linear_in = nn.Linear(width, 2 * width)
        self.activation = ACTIVATIONS[activation]()
        self.hidden_dropout = nn.Dropout(dropout)
        self.linear_out = nn.Linear(2 * width, width)
        self.residual_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.hidden_dropout(self.activation(self.linear_in(self.norm(x))))
        return x + self.residual_dropout(self.linear_out(h))


class ResMLP(nn.Module):
    """Stem ``Linear(n_features, width)``, ``depth`` residual blocks, then norm -> activation -> Linear head.

    The final norm and activation are needed because the blocks are pre-norm: the
    residual stream itself is never normalised or passed through a non-linearity.
    """

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.stem = nn.Linear(spec.n_features, spec.width)
        self.blocks = nn.Sequential(
            *(ResidualBlock(spec.width, spec.dropout, spec.normalization, spec.activation) for _ in range(spec.depth))
        )
        self.head = nn.Sequential(
            _norm(spec.normalization, spec.width),
            ACTIVATIONS[spec.activation](),
            nn.Linear(spec.width, spec.n_outputs),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


_BUILDERS: dict[str, Callable[[ModelSpec], nn.Module]] = {"mlp": _mlp, "resmlp": ResMLP}
