"""The network builder: every config choice builds, specs survive JSON, weights reload, and the nets can learn."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import get_args

import pytest
import torch
from torch import nn

from mlops_ray.config import ModelConfig
from mlops_ray.config.sections import BUILT_IN_MODELS
from mlops_ray.models import ModelSpec, build_model
from mlops_ray.models.builder import _BUILDERS, ResMLP

NAMES = BUILT_IN_MODELS
NORMALIZATIONS = get_args(ModelConfig.model_fields["normalization"].annotation)
ACTIVATIONS = get_args(ModelConfig.model_fields["activation"].annotation)


def spec(**changes: object) -> ModelSpec:
    base = ModelSpec(
        name="resmlp",
        n_features=5,
        n_outputs=3,
        depth=2,
        width=8,
        dropout=0.0,
        normalization="none",
        activation="relu",
    )
    return replace(base, **changes)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_config_choices_are_the_ones_the_builder_knows() -> None:
    assert set(NAMES) == {"mlp", "resmlp"} == set(_BUILDERS)
    assert set(NORMALIZATIONS) == {"none", "batch", "layer"}
    assert set(ACTIVATIONS) == {"relu", "gelu", "silu", "tanh"}


@pytest.mark.parametrize(
    ("name", "normalization", "activation"), list(itertools.product(NAMES, NORMALIZATIONS, ACTIVATIONS))
)
def test_every_choice_maps_batch_by_features_to_batch_by_outputs(
    name: str, normalization: str, activation: str
) -> None:
    model = build_model(spec(name=name, normalization=normalization, activation=activation, dropout=0.1))
    x = torch.randn(7, 5)
    model.train()
    assert model(x).shape == (7, 3)
    model.eval()
    with torch.no_grad():
        assert model(x[:1]).shape == (1, 3)  # eval mode takes a single row, even with BatchNorm


def test_from_config_copies_every_field() -> None:
    config = ModelConfig(name="resmlp", depth=3, width=16, dropout=0.2, normalization="layer", activation="gelu")
    assert ModelSpec.from_config(config, n_features=11, n_outputs=2) == ModelSpec(
        name="resmlp",
        n_features=11,
        n_outputs=2,
        depth=3,
        width=16,
        dropout=0.2,
        normalization="layer",
        activation="gelu",
    )


def test_spec_round_trips_through_json() -> None:
    original = ModelSpec.from_config(ModelConfig(), n_features=4, n_outputs=1)
    restored = ModelSpec.from_dict(json.loads(json.dumps(original.to_dict())))
    assert restored == original
    assert isinstance(restored.dropout, float)


def test_from_dict_accepts_an_integer_dropout() -> None:
    assert ModelSpec.from_dict({**spec().to_dict(), "dropout": 0}).dropout == 0.0


def test_from_dict_names_unknown_and_missing_keys() -> None:
    data = spec().to_dict()
    del data["depth"]
    with pytest.raises(ValueError, match=r"unknown key\(s\) hidden_sizes; missing key\(s\) depth"):
        ModelSpec.from_dict({**data, "hidden_sizes": [64, 32]})
    with pytest.raises(ValueError, match=r"unknown key\(s\) extra"):
        ModelSpec.from_dict({**spec().to_dict(), "extra": 1})


@pytest.mark.parametrize(("key", "value"), [("depth", "2"), ("depth", True), ("width", 8.0), ("name", None)])
def test_from_dict_rejects_wrong_json_types(key: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"'{key}' must be"):
        ModelSpec.from_dict({**spec().to_dict(), key: value})


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown model name 'transformer'; valid names: mlp, resmlp"):
        build_model(spec(name="transformer"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"normalization": "group"}, "valid: none, batch, layer"),
        ({"activation": "elu"}, "valid: relu, gelu, silu, tanh"),
        ({"depth": 0}, "depth must be at least 1"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
    ],
)
def test_bad_values_from_a_file_are_rejected_at_build(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_model(spec(**changes))


def test_parameter_counts_pin_the_architectures() -> None:
    # mlp: Linear(3, 8) + Linear(8, 8) + Linear(8, 2)
    mlp = spec(name="mlp", n_features=3, n_outputs=2, depth=2, width=8)
    assert n_params(build_model(mlp)) == (3 * 8 + 8) + (8 * 8 + 8) + (8 * 2 + 2)
    # resmlp: stem Linear(3, 8); block LayerNorm(8) + Linear(8, 16) + Linear(16, 8); head LayerNorm(8) + Linear(8, 2)
    res = spec(n_features=3, n_outputs=2, depth=1, width=8, normalization="layer")
    assert n_params(build_model(res)) == (3 * 8 + 8) + (16 + 8 * 16 + 16 + 16 * 8 + 8) + (16 + 8 * 2 + 2)


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_grows_with_depth_and_width(name: str) -> None:
    base = n_params(build_model(spec(name=name)))
    assert n_params(build_model(spec(name=name, depth=3))) > base
    assert n_params(build_model(spec(name=name, width=16))) > base


def test_no_normalization_means_identity_modules() -> None:
    model = build_model(spec(normalization="none"))
    assert not any(isinstance(m, nn.BatchNorm1d | nn.LayerNorm) for m in model.modules())
    assert sum(isinstance(m, nn.Identity) for m in model.modules()) == 2 + 1  # one per block, one in the head


def test_resmlp_blocks_are_residual() -> None:
    model = build_model(spec(depth=2))
    assert isinstance(model, ResMLP)
    with torch.no_grad():
        for block in model.blocks:
            block.linear_out.weight.zero_()
            block.linear_out.bias.zero_()
    x = torch.randn(4, 5)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.head(model.stem(x)))


def test_resmlp_without_dropout_is_deterministic_in_eval_mode() -> None:
    model = build_model(spec(dropout=0.0, normalization="batch")).eval()
    x = torch.randn(16, 5)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


def test_dropout_is_active_in_train_mode_only() -> None:
    model = build_model(spec(dropout=0.5, width=32))
    x = torch.randn(16, 5)
    with torch.no_grad():
        assert not torch.equal(model.train()(x), model(x))
        assert torch.equal(model.eval()(x), model(x))


def test_same_seed_builds_the_same_weights() -> None:
    torch.manual_seed(3)
    first = build_model(spec()).state_dict()
    torch.manual_seed(3)
    second = build_model(spec()).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.parametrize(("name", "normalization"), [("mlp", "batch"), ("resmlp", "batch"), ("resmlp", "layer")])
def test_weights_only_state_dict_reloads_into_a_fresh_model(tmp_path: Path, name: str, normalization: str) -> None:
    model_spec = spec(name=name, normalization=normalization, dropout=0.1)
    trained = build_model(model_spec).train()
    trained(torch.randn(32, 5))  # moves BatchNorm running statistics away from their initial values
    torch.save(trained.state_dict(), tmp_path / "weights.pt")

    stored = ModelSpec.from_dict(json.loads(json.dumps(model_spec.to_dict())))
    fresh = build_model(stored)
    fresh.load_state_dict(torch.load(tmp_path / "weights.pt", map_location="cpu", weights_only=True))
    x = torch.randn(9, 5)
    with torch.no_grad():
        assert torch.equal(trained.eval()(x), fresh.eval()(x))


def test_batch_norm_rejects_a_one_row_training_batch() -> None:
    """The documented limitation: the training loop must not feed a 1-row batch in train mode."""
    model_spec = spec(normalization="batch")
    assert model_spec.min_train_batch_rows == 2
    assert spec(normalization="layer").min_train_batch_rows == 1
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        build_model(model_spec).train()(torch.randn(1, 5))


@pytest.mark.parametrize(
    ("n_outputs", "loss_fn", "target"),
    [
        (3, nn.CrossEntropyLoss(), lambda g: torch.randint(0, 3, (64,), generator=g)),
        (1, nn.MSELoss(), lambda g: torch.randn(64, 1, generator=g)),
    ],
    ids=["classification", "regression"],
)
def test_tiny_resmlp_overfits_64_random_rows(
    n_outputs: int, loss_fn: nn.Module, target: Callable[[torch.Generator], torch.Tensor]
) -> None:
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, generator=generator)
    y = target(generator)
    model = build_model(spec(n_features=8, n_outputs=n_outputs, depth=2, width=32, normalization="layer"))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    losses: list[float] = []
    for _ in range(200):
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if losses[-1] < 0.1 * losses[0]:
            break  # reached the bar: stop early to keep the unit suite fast
    assert losses[-1] < 0.1 * losses[0], f"loss went from {losses[0]:.4f} to {losses[-1]:.4f} in 200 steps"
