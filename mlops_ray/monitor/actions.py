"""What ``on_drift`` does: post an alert, or submit the pipeline as a Ray job and let the gate decide.

Retraining goes through the Ray Jobs API with the same entrypoint and runtime
environment a person would submit (``jobs/pipeline.py``, ``jobs/runtime_env.yaml``), so
the new model is trained, evaluated and gated exactly like any other: a better model is
promoted, a worse one is rejected and the champion keeps serving.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
import yaml

from mlops_ray.config.monitor import MonitorConfig
from mlops_ray.errors import ConfigError, ServiceUnavailableError

WEBHOOK_ENV = "MLOPS_RAY_ALERT_WEBHOOK"
RUNTIME_ENV_FILE = Path("jobs") / "runtime_env.yaml"
API_SERVER_ENV = "RAY_API_SERVER_ADDRESS"  # what Ray's Jobs client reads before $RAY_ADDRESS


def post_alert(config: MonitorConfig, summary: dict[str, Any]) -> str:
    url = config.webhook_url or os.environ.get(WEBHOOK_ENV)
    if not url:
        raise ConfigError(
            "monitor.on_drift is 'alert' but no webhook is configured",
            where="monitor.webhook_url",
            hint=f"Set monitor.webhook_url or ${WEBHOOK_ENV} (keep secret URLs in the environment).",
        )
    try:
        answer = requests.post(url, json={"event": "mlops-ray.drift", **summary}, timeout=10)
        answer.raise_for_status()
    except requests.RequestException as exc:
        raise ServiceUnavailableError(
            f"the drift alert could not be delivered ({type(exc).__name__}: {exc})", where="monitor.webhook_url"
        ) from None
    return f"alert posted (HTTP {answer.status_code})"


def submit_retraining(config: MonitorConfig, config_path: str, overrides: list[str], metadata: dict[str, str]) -> str:
    """Submit ``jobs/pipeline.py`` with ``retrain.config`` (default: this config and its ``--set`` overrides).

    The job's working directory is this one, uploaded; the config must be inside it.
    Returns the submission id.
    """
    from ray.job_submission import JobSubmissionClient

    if not RUNTIME_ENV_FILE.is_file():
        raise ConfigError(
            f"retraining submits jobs/pipeline.py with {RUNTIME_ENV_FILE}, which is not in {Path.cwd()}",
            where="monitor.on_drift",
            hint="Run `mlops-ray monitor` from the repository root (as jobs/monitor.py does).",
        )
    runtime_env = yaml.safe_load(RUNTIME_ENV_FILE.read_text())
    job_config = _inside_working_dir(config.retrain.config or config_path)
    arguments = ["python", "jobs/pipeline.py", "--config", job_config]
    for override in [*([] if config.retrain.config else overrides), *config.retrain.overrides]:
        arguments += ["--set", override]
    address = config.retrain.address or os.environ.get("RAY_ADDRESS")
    try:
        with _api_server(config.retrain.address):
            client = JobSubmissionClient(address)
        return client.submit_job(entrypoint=shlex.join(arguments), runtime_env=runtime_env, metadata=metadata)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ServiceUnavailableError(
            f"the retraining job could not be submitted ({exc})",
            where=f"monitor.retrain.address={address}",
            hint="Point monitor.retrain.address or $RAY_ADDRESS at the cluster's job server (http://head:8265).",
        ) from None


def _inside_working_dir(path: str) -> str:
    """The config's path as the job will see it: relative to the uploaded working directory."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(Path.cwd().resolve()))
    except ValueError:
        raise ConfigError(
            f"the retraining job runs from the uploaded working directory {Path.cwd()}, and {path} is outside it",
            where="monitor.retrain.config",
            hint="Keep the config under the repository (configs/) or set monitor.retrain.config to one there.",
        ) from None


@contextmanager
def _api_server(address: str | None) -> Iterator[None]:
    """Make a configured address win: Ray's Jobs client otherwise prefers $RAY_ADDRESS over its argument."""
    if address is None:  # $RAY_ADDRESS (inside a Ray job, the GCS address, which the client resolves)
        yield
        return
    before = os.environ.get(API_SERVER_ENV)
    os.environ[API_SERVER_ENV] = address
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(API_SERVER_ENV, None)
        else:
            os.environ[API_SERVER_ENV] = before
