"""What a model endpoint is told: replica settings, live settings, and Serve deployment options.

Settings fixed for a replica's life travel as the deployment's init argument; the
ones that may change while it runs (which model, the canary share, batching) travel
as ``user_config``, which Serve hands to ``reconfigure`` on live replicas without a
restart. ``serve build`` writes the same three pieces into a Serve config file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mlops_ray.config import CaptureConfig, Config
from mlops_ray.registry.refs import ModelRef


class EndpointSettings(BaseModel):
    """Fixed for a replica's life (changing them is a rolling restart)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tracking_uri: str
    challenger_alias: str
    max_rows_per_request: int
    max_body_bytes: int
    alias_refresh_s: float
    capture: CaptureConfig


class LiveSettings(BaseModel):
    """``user_config``: applied to running replicas by ``reconfigure``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="name@alias (followed as the alias moves) or name/version (pinned)")
    canary_percent: float = Field(ge=0, le=100)  # every field given: the defaults live in ServeConfig only
    max_batch_size: int = Field(ge=1)
    batch_wait_timeout_s: float = Field(ge=0)


def endpoint_settings(config: Config, tracking_uri: str) -> EndpointSettings:
    capture = config.serve.capture
    if "://" not in capture.path:  # replicas may not share the driver's working directory
        capture = capture.model_copy(update={"path": str(Path(capture.path).expanduser().resolve())})
    return EndpointSettings(
        tracking_uri=tracking_uri,
        challenger_alias=config.registry.challenger_alias,
        max_rows_per_request=config.serve.max_rows_per_request,
        max_body_bytes=config.serve.max_body_bytes,
        alias_refresh_s=config.serve.alias_refresh_s,
        capture=capture,
    )


def model_or_champion(config: Config, model: str | None) -> str:
    """The reference to serve: the one given, else the config's ``name@champion``."""
    return model or str(ModelRef(config.registry.model_name, alias=config.registry.alias))


def live_settings(config: Config, model: str | None, canary_percent: float | None = None) -> LiveSettings:
    return LiveSettings(
        model=model_or_champion(config, model),
        canary_percent=config.serve.canary_percent if canary_percent is None else canary_percent,
        max_batch_size=config.serve.batching.max_batch_size,
        batch_wait_timeout_s=config.serve.batching.batch_wait_timeout_s,
    )


def deployment_options(config: Config) -> dict[str, Any]:
    """Serve deployment options, in the keys both ``.options()`` and a Serve config file use."""
    serve = config.serve
    scaling = serve.autoscaling
    return {
        "max_ongoing_requests": serve.max_ongoing_requests,
        "max_queued_requests": serve.max_queued_requests,
        "autoscaling_config": {
            "min_replicas": scaling.min_replicas,
            "initial_replicas": scaling.min_replicas,
            "max_replicas": scaling.max_replicas,
            "target_ongoing_requests": scaling.target_ongoing_requests,
            "upscale_delay_s": scaling.upscale_delay_s,
            "downscale_delay_s": scaling.downscale_delay_s,
            "look_back_period_s": scaling.look_back_period_s,
        },
        "health_check_period_s": serve.health_check_period_s,
        "health_check_timeout_s": serve.health_check_timeout_s,
        "ray_actor_options": {"num_cpus": serve.cpus_per_replica},
        "logging_config": {"enable_access_log": serve.access_log},
    }
