"""``mlops-ray serve``: run the model endpoint until Ctrl-C, or write it out as a Serve config file."""

from __future__ import annotations

from pathlib import Path

import requests

from mlops_ray import settings
from mlops_ray.config import Config
from mlops_ray.errors import ServingError
from mlops_ray.reporting import StageReporter
from mlops_ray.runtime import connected
from mlops_ray.serve.deploy import (
    check_models,
    deploy_model,
    serve_config_document,
    wait_for_stop_signal,
    write_serve_config,
)
from mlops_ray.serve.options import model_or_champion


def run_serving(
    config: Config, reporter: StageReporter, model: str | None, canary_percent: float | None, detach: bool = False
) -> str | None:
    """Serve ``model`` (default the config's @champion) until SIGINT/SIGTERM; returns the signal's name.

    With ``detach`` (a Ray cluster only) it deploys and returns at once, leaving the
    application running in the cluster: Serve outlives the driver that deployed it.
    """
    model = model_or_champion(config, model)
    if detach and not settings.ray_address(config.ray.address):
        raise ServingError(
            "--detach leaves the endpoint running after the command exits, which needs a Ray cluster",
            where="serve --detach",
            hint="Set RAY_ADDRESS (or ray.address), e.g. run it as a `ray job submit` job (jobs/deploy.py).",
        )
    check_models(config, settings.tracking_uri(config.tracking.uri), model, canary_percent)  # before starting Ray
    with connected(config, reporter) as (tracking, _):
        with reporter.stage("serve", f"deploying {model} on Ray Serve") as stage:
            endpoint = deploy_model(config, tracking.uri, model, canary_percent)
            stage.detail = f"{endpoint.url} (model version {endpoint.model_version})"
        if detach:
            reporter.console.print(
                f"Serving {model} at {endpoint.url} in the cluster; `serve shutdown` (or `serve delete "
                f"{config.serve.app_name}`) stops it.",
                highlight=False,
            )
            return None
        try:
            metadata = requests.get(f"{endpoint.url}/metadata", timeout=10).json()
            scaling = config.serve.autoscaling
            rows = {
                "predict": f"POST {endpoint.url}/predict",
                "docs": f"{endpoint.url}/docs",
                "model": f"{metadata['model_name']} version {metadata['model_version']} ({model})",
                "replicas": f"{scaling.min_replicas}..{scaling.max_replicas}, "
                f"{config.serve.max_ongoing_requests} requests each, queue {config.serve.max_queued_requests}",
                "capture": _capture_line(config),
            }
            if metadata.get("canary"):
                canary = metadata["canary"]
                rows["canary"] = f"{canary['percent']:g}% to @{canary['alias']} (version {canary['model_version']})"
            reporter.table("endpoint", rows)
            reporter.console.print("Serving — press Ctrl-C to stop.")
            stopped_by = wait_for_stop_signal()
            reporter.console.print(f"{stopped_by} received: stopping the endpoint.")
            return stopped_by
        finally:
            if left_running := endpoint.shutdown():
                reporter.console.print(left_running, highlight=False)


def build_serve_file(
    config: Config, output: Path, model: str | None, canary_percent: float | None, tracking_uri: str | None = None
) -> Path:
    """``mlops-ray serve build``: the endpoint as a Serve config for ``serve deploy`` or a RayService."""
    uri = tracking_uri or settings.tracking_uri(config.tracking.uri)
    return write_serve_config(serve_config_document(config, uri, model, canary_percent), output)


def _capture_line(config: Config) -> str:
    capture = config.serve.capture
    if capture.sample_rate <= 0:
        return "off"
    return f"{capture.sample_rate:.0%} of requests -> {capture.path}"
