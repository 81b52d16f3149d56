"""Package attributes that import their module on first use (PEP 562).

A Serve replica imports ``mlops_ray.data.schema`` and ``mlops_ray.registry.refs``; if
the packages' ``__init__`` imported everything they export, every replica start would
also pay for scikit-learn, Ray Train and Ray Tune, which it never runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def exports(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports each name in ``homes`` from its module when first asked for."""

    def __getattr__(name: str) -> Any:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(homes[name]), name)

    return __getattr__
