"""Your own network: ``model.name: "module.path:builder"``, imported, called and checked before training.

The builder is ``builder(n_features, n_outputs, **params) -> torch.nn.Module``: the
head gives ``n_outputs`` raw outputs (class logits, or one number for regression), as
the built-in networks do, and the training loop picks the loss. It is imported from
``sys.path`` plus the working directory (where a user's ``my_models.py`` sits; a
console script does not put it on ``sys.path``), on the driver and, with the directory
it was found in, on every Ray worker. The registered model ships the module's source
(``source_paths``, MLflow's ``code_paths``), so loading it needs nothing but the
packages the model lists; the weights are still a state dict read ``weights_only``.

Everything that can be wrong with a builder is found by ``check_builder`` on one batch
of zeros before a run starts, and reported as one ``ConfigError`` naming the builder.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mlops_ray.errors import ConfigError

HINT = "A builder is `def build(n_features: int, n_outputs: int, **params) -> torch.nn.Module`; see docs/models.md."


def _fail(name: str, problem: str) -> ConfigError:
    return ConfigError(f"model builder {name!r}: {problem}", where="model.name", hint=HINT)


def import_builder(name: str, search_dir: str | None = None, shipped: bool = False) -> Callable[..., Any]:
    """The callable ``name`` (``module.path:attr``) names; ConfigError if it cannot be imported or called.

    ``shipped``: ``search_dir`` is a registered model's own copy of the source (MLflow's
    ``code`` folder). The module is imported afresh from there, first on ``sys.path``, so a
    process that already imported another version of it (the training driver, a canary
    loading two versions) builds each model from the code it was trained with.
    """
    module_name, _, attribute = name.partition(":")
    if shipped and search_dir:
        top = module_name.split(".")[0]
        for loaded in [m for m in sys.modules if m == top or m.startswith(f"{top}.")]:
            del sys.modules[loaded]
        sys.path.insert(0, search_dir)
        importlib.invalidate_caches()
    for directory in (search_dir, os.getcwd()):
        if directory and directory not in sys.path:
            sys.path.append(directory)  # after everything installed: a local file never shadows a package
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any error the module raises on import is the builder's to report
        raise _fail(name, f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    builder = getattr(module, attribute, None)
    if builder is None:
        raise _fail(name, f"module {module_name!r} ({module.__file__}) has no {attribute!r}")
    if not callable(builder):
        raise _fail(name, f"{attribute!r} is a {type(builder).__name__}, not a callable")
    return builder


def build_user_model(
    name: str,
    n_features: int,
    n_outputs: int,
    params: dict[str, Any],
    search_dir: str | None = None,
    shipped: bool = False,
) -> nn.Module:
    """Call the builder with the data's sizes and ``params``; ConfigError for a bad signature or a non-module."""
    builder = import_builder(name, search_dir, shipped)
    try:
        inspect.signature(builder).bind(n_features, n_outputs, **params)
    except TypeError as exc:
        raise _fail(name, f"cannot be called as builder(n_features, n_outputs, **model.params): {exc}") from None
    except ValueError:
        pass  # no signature to read (a C callable): the call itself says what is wrong
    try:
        network = builder(n_features, n_outputs, **params)
    except Exception as exc:
        raise _fail(name, f"raised {type(exc).__name__}: {exc}") from None
    if not isinstance(network, nn.Module):
        raise _fail(name, f"returned a {type(network).__name__}, not a torch.nn.Module")
    return network


def check_builder(name: str, n_features: int, n_outputs: int, params: dict[str, Any]) -> None:
    """Build the network and pass one batch of zeros through it: right type, shape and dtype, or ConfigError."""
    network = build_user_model(name, n_features, n_outputs, params)
    batch = torch.zeros(2, n_features)
    network.eval()
    try:
        with torch.no_grad():
            output = network(batch)
    except Exception as exc:
        raise _fail(name, f"a batch of shape {tuple(batch.shape)} fails: {type(exc).__name__}: {exc}") from None
    if not isinstance(output, torch.Tensor):
        raise _fail(name, f"the module returns a {type(output).__name__}, not a tensor")
    if tuple(output.shape) != (2, n_outputs):
        raise _fail(
            name,
            f"a batch of shape {tuple(batch.shape)} gives output of shape {tuple(output.shape)}; "
            f"expected (2, {n_outputs}): one row per input row, n_outputs={n_outputs} raw outputs",
        )
    if not output.is_floating_point():
        raise _fail(name, f"the module returns {output.dtype}, not floating point")
    if not any(p.requires_grad for p in network.parameters()):
        raise _fail(name, "the module has no trainable parameters")


def search_dir_of(name: str) -> str | None:
    """The directory to put on a worker's ``sys.path`` for the builder's top-level module (None: installed)."""
    source = _top_level_source(name)
    if source is None:
        return None
    directory = str(source.parent)
    return None if _installed(Path(directory)) else directory


def source_paths(name: str) -> list[str]:
    """What the MLflow model ships for the builder: its top-level module file or package directory.

    A builder from an installed distribution (under ``site-packages`` / ``dist-packages``) is
    not shipped: the model's environment must install that package. Neither is anything the
    builder imports from outside its top-level module or package.
    """
    source = _top_level_source(name)
    if source is None or _installed(source):
        return []
    return [str(source)]


def _top_level_source(name: str) -> Path | None:
    top = name.partition(":")[0].split(".")[0]
    found = importlib.util.find_spec(top)
    if found is None:
        return None
    if found.submodule_search_locations:  # a package (or namespace package): its directory
        return Path(next(iter(found.submodule_search_locations)))
    return Path(found.origin) if found.origin and found.origin.endswith(".py") else None


def _installed(path: Path) -> bool:
    return bool({"site-packages", "dist-packages"} & set(path.parts))
