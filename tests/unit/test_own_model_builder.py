"""Your own network (``model.name: module.path:builder``): the config's rules, and each way a builder can be wrong.

Every builder here is a real module written to a temporary directory and imported the
way a user's ``my_models.py`` is: from the working directory.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from mlops_ray.config import load_config
from mlops_ray.config.sections import ModelConfig
from mlops_ray.errors import ConfigError
from mlops_ray.models import ModelSpec, build_model
from mlops_ray.models.user import check_builder, search_dir_of, source_paths

ROOT = Path(__file__).resolve().parents[2]
GOOD = """
import torch
from torch import nn

def build(n_features, n_outputs, hidden=16, blocks=1):
    layers = [nn.Linear(n_features, hidden), nn.BatchNorm1d(hidden), nn.ReLU()]
    for _ in range(blocks - 1):
        layers += [nn.Linear(hidden, hidden), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(hidden, n_outputs))
"""

BAD = {
    "cannot import 'missing_module'": ("missing_module:build", None),
    "SyntaxError": ("broken:build", "def build(:\n"),
    "has no 'build'": ("nobuild:build", "def make(n_features, n_outputs):\n    pass\n"),
    "is a int, not a callable": ("notcallable:build", "build = 3\n"),
    "cannot be called as builder": ("onearg:build", "def build(n_features):\n    pass\n"),
    "returned a dict, not a torch.nn.Module": ("notmodule:build", "def build(n_features, n_outputs):\n    return {}\n"),
    "raised RuntimeError: no GPU here": (
        "raises:build",
        "def build(n_features, n_outputs):\n    raise RuntimeError('no GPU here')\n",
    ),
    "gives output of shape (2, 1); expected (2, 3)": (
        "wrongshape:build",
        "from torch import nn\ndef build(n_features, n_outputs):\n    return nn.Linear(n_features, 1)\n",
    ),
    "a batch of shape (2, 4) fails": (
        "wronginput:build",
        "from torch import nn\ndef build(n_features, n_outputs):\n    return nn.Linear(7, n_outputs)\n",
    ),
    "no trainable parameters": (
        "frozen:build",
        "from torch import nn\ndef build(n_features, n_outputs):\n"
        "    m = nn.Linear(n_features, n_outputs)\n    m.requires_grad_(False)\n    return m\n",
    ),
}


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working directory holding the user's modules; the modules are forgotten afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    (tmp_path / "my_models.py").write_text(textwrap.dedent(GOOD))
    for name, source in BAD.values():
        if source is not None:
            (tmp_path / f"{name.partition(':')[0]}.py").write_text(source)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def test_the_config_takes_a_builder_path_and_its_params_and_refuses_anything_else() -> None:
    assert ModelConfig(name="team.nets.tabular:build", params={"hidden": 32}).is_builder
    assert not ModelConfig(name="resmlp").is_builder
    for bad, message in [
        ({"name": "xgb"}, "neither a built-in network"),
        ({"name": "my_models.build"}, "module.path:callable"),
        ({"name": "my_models:build", "params": {"x": float("nan")}}, "JSON values"),
        ({"name": "mlp", "params": {"hidden": 3}}, "builder's arguments; mlp takes model.depth"),
    ]:
        with pytest.raises(ValidationError, match=message):
            ModelConfig(**bad)


def test_a_good_builder_builds_with_its_params_and_ships_its_own_file(workdir: Path) -> None:
    check_builder("my_models:build", 4, 3, {"hidden": 8, "blocks": 2})
    spec = ModelSpec.from_config(ModelConfig(name="my_models:build", params={"hidden": 8}), 4, 3)
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    network = build_model(spec)
    assert network(torch.zeros(5, 4)).shape == (5, 3)
    assert source_paths("my_models:build") == [str(workdir / "my_models.py")]
    assert search_dir_of("my_models:build") == str(workdir)


def test_a_package_builder_ships_the_whole_package(workdir: Path) -> None:
    package = workdir / "team" / "nets"
    package.mkdir(parents=True)
    (workdir / "team" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "tabular.py").write_text(textwrap.dedent(GOOD))
    check_builder("team.nets.tabular:build", 4, 2, {})
    assert source_paths("team.nets.tabular:build") == [str(workdir / "team")]


def test_a_spec_stored_before_builders_existed_still_loads() -> None:
    stored = ModelSpec.from_config(ModelConfig(), 4, 2).to_dict()
    del stored["params"]
    assert ModelSpec.from_dict(stored).params == {}


@pytest.mark.parametrize("message", list(BAD))
def test_each_way_a_builder_is_wrong_is_one_error_naming_it(workdir: Path, message: str) -> None:
    name = BAD[message][0]
    with pytest.raises(ConfigError, match=f"model builder '{name}'.*") as raised:
        check_builder(name, 4, 3, {})
    assert message in str(raised.value)
    assert raised.value.where == "model.name"


def test_a_sweep_tunes_a_builders_params_and_refuses_them_on_a_built_in_network() -> None:
    space = "tune.space={model.params.hidden: {type: choice, values: [8, 16]}}"
    config = load_config(ROOT / "configs" / "sweep.yaml", ["model.name=my_models:build", space])
    assert config.tune is not None and list(config.tune.space) == ["model.params.hidden"]
    with pytest.raises(ConfigError, match=r"value 8 is not valid for model.params.hidden: .*builder's arguments"):
        load_config(ROOT / "configs" / "sweep.yaml", [space])


def test_a_shipped_copy_is_imported_afresh_so_two_versions_build_from_their_own_code(workdir: Path) -> None:
    """A process holding two registered versions (a canary) must not build the second from the first's module."""
    spec = ModelSpec.from_config(ModelConfig(name="my_models:build"), 4, 3)
    for version, hidden in (("v1", 5), ("v2", 7)):
        code = workdir / version / "code"
        code.mkdir(parents=True)
        (code / "my_models.py").write_text(
            f"from torch import nn\ndef build(n_features, n_outputs):\n    return nn.Linear(n_features, {hidden})\n"
        )
    assert isinstance(build_model(spec), torch.nn.Sequential)  # the working directory's module, imported first
    first = build_model(spec, str(workdir / "v1" / "code"), shipped=True)
    second = build_model(spec, str(workdir / "v2" / "code"), shipped=True)
    assert (first.out_features, second.out_features) == (5, 7)
