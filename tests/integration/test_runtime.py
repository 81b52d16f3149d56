"""``ray_session`` against a live in-process Ray: reuse it, but never ignore a named address."""

from __future__ import annotations

import pytest
import ray

from mlops_ray.config import RayConfig
from mlops_ray.errors import ServiceUnavailableError
from mlops_ray.runtime import ray_session
from tests.conftest import free_port

pytestmark = pytest.mark.usefixtures("ray_cluster")


def test_live_ray_is_reused_and_left_running() -> None:
    with ray_session(RayConfig()) as info:
        assert not info.embedded
    assert ray.is_initialized()


def test_unreachable_address_fails_even_with_a_live_ray() -> None:
    address = f"127.0.0.1:{free_port()}"
    with (
        pytest.raises(ServiceUnavailableError, match="no Ray cluster answers") as err,
        ray_session(RayConfig(address=address)),
    ):
        pass
    assert err.value.where == f"ray.address={address}"
    assert ray.is_initialized()
