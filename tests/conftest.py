"""Shared fixtures: one Ray for the whole session, a throwaway MLflow store per test.

Ray is started through ``mlops_ray.runtime.ray_session`` (the code path the CLI uses),
with logical CPUs above the machine's two cores so that two train workers, Ray Data
and a Serve replica fit at once. Unit tests never request it and never start Ray.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops_ray.config import RayConfig


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not any("gpu" in item.keywords for item in items):
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; torch.cuda.is_available() is False on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    from mlops_ray.runtime import ray_session

    with ray_session(RayConfig(num_cpus=4, include_dashboard=False)):
        yield


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
