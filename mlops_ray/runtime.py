"""Connect to Ray and MLflow for one command, and let go afterwards.

An embedded Ray started here is shut down on exit; a Ray that was already
initialised (a test session, a Ray job's driver) is reused and left running. Both
services are probed up front so an unreachable address fails in seconds with a
message naming it, instead of minutes later inside a stage.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import mlflow
import ray
import ray.data
import requests
from ray.data.context import ShuffleStrategy

from mlops_ray import settings
from mlops_ray.config import RayConfig, TrackingConfig
from mlops_ray.errors import ServiceUnavailableError

if TYPE_CHECKING:
    from mlops_ray.config import Config
    from mlops_ray.reporting import StageReporter

PROBE_TIMEOUT_S = 5.0
# Ray Train's controller polls workers this often, and ``ray.train.report`` blocks
# until the previous report is consumed: the 2 s default made every epoch of a
# small model last 2 s. Embedded workers inherit these from this process.
WORKER_ENV_DEFAULTS = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2", "RAY_USAGE_STATS_ENABLED": "0"}


@dataclass(frozen=True)
class RayInfo:
    address: str
    dashboard_url: str | None
    embedded: bool


@dataclass(frozen=True)
class TrackingInfo:
    uri: str
    experiment_id: str
    ui_hint: str


def quiet_library_logs() -> None:
    """Keep the terminal to the stage lines: library INFO chatter and progress bars off."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for noisy in ("mlflow", "ray.serve", "ray.data", "ray.train"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def configure_ray_data() -> None:
    """Ray Data settings for every dataset this process builds: no progress bars, task-based shuffles.

    Ray 2.60's default shuffle (``shuffle_v2``) runs aggregations through aggregator actors
    that reserve CPU and memory from what the cluster has free at that moment. With Serve
    replicas and Train workers holding resources, a later job's aggregate can wait for ever
    (seen on the local two-node cluster: a ``HashAggregateMap`` task stuck in
    PENDING_NODE_ASSIGNMENT; ray-project/ray#57979 is the same class of hang), and on two
    cores each profile paid ~17 s of actor start-up. The pull-based sort shuffle uses plain
    tasks: profiling 600 rows took 3.8 s instead of 17.4 s, 1M rows 3.9 s instead of 18.3 s
    (2 CPUs). ``$RAY_DATA_DEFAULT_SHUFFLE_STRATEGY``, when set, still wins.
    """
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    if "RAY_DATA_DEFAULT_SHUFFLE_STRATEGY" not in os.environ:
        context.shuffle_strategy = ShuffleStrategy.SORT_SHUFFLE_PULL_BASED


@contextmanager
def ray_session(config: RayConfig) -> Iterator[RayInfo]:
    for key, value in WORKER_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    configure_ray_data()
    address = settings.ray_address(config.address)
    if address:
        _probe_ray(address)  # even before reusing a live Ray: a named address must exist
    if ray.is_initialized():
        yield RayInfo(ray.get_runtime_context().gcs_address, None, embedded=False)
        return
    if address:
        kwargs: dict[str, object] = {"address": address}
    else:
        kwargs = {
            "address": "local",
            "num_cpus": config.num_cpus,
            "num_gpus": config.num_gpus,
            "include_dashboard": config.include_dashboard,
            "dashboard_host": "127.0.0.1",
            "log_to_driver": config.log_to_driver,
        }
    try:
        context = ray.init(logging_level=logging.WARNING, configure_logging=True, **kwargs)
    except ConnectionError as exc:
        raise ServiceUnavailableError(f"cannot connect to Ray ({exc})", where=f"ray.address={address}") from None
    try:
        dashboard = f"http://{context.dashboard_url}" if context.dashboard_url else None
        yield RayInfo(ray.get_runtime_context().gcs_address, dashboard, embedded=not address)
    finally:
        ray.shutdown()


def _probe_ray(address: str) -> None:
    """Fail fast on a host:port nobody listens on; 'auto' and ray:// are left to Ray."""
    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=PROBE_TIMEOUT_S).close()
    except (OSError, ValueError) as exc:
        raise ServiceUnavailableError(
            f"no Ray cluster answers ({exc})",
            where=f"ray.address={address}",
            hint="Start one with `ray start --head`, fix ray.address / $RAY_ADDRESS, "
            "or unset both to use an embedded Ray.",
        ) from None


def connect_tracking(config: TrackingConfig) -> TrackingInfo:
    """Point MLflow at the tracking store and make sure the experiment exists."""
    uri = settings.tracking_uri(config.uri)
    if uri.startswith(("http://", "https://")):
        _probe_tracking_server(uri)
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.get_experiment_by_name(config.experiment)
    if experiment is None:
        location = None if uri.startswith("http") else Path(config.artifact_location).resolve().as_uri()
        experiment_id = mlflow.create_experiment(config.experiment, artifact_location=location)
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return TrackingInfo(uri, experiment_id, _ui_hint(uri))


def _connect_beside(stack: ExitStack, config: Config) -> tuple[TrackingInfo, RayInfo]:
    """MLflow's store set-up in a thread while Ray starts in this one; the Ray session joins ``stack``.

    A fresh SQLite store runs every schema migration (~2 s) and an embedded Ray waits
    ~3 s on its processes: side by side the connect stage costs the longer of the two.
    A tracking error is raised once Ray is up (``stack`` then shuts Ray down again).
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlops-ray-connect") as pool:
        tracking = pool.submit(connect_tracking, config.tracking)
        ray_info = stack.enter_context(ray_session(config.ray))
        return tracking.result(), ray_info


def _probe_tracking_server(uri: str) -> None:
    try:
        response = requests.get(f"{uri.rstrip('/')}/health", timeout=PROBE_TIMEOUT_S)
        response.raise_for_status()
    except requests.RequestException as exc:
        raise ServiceUnavailableError(
            f"the MLflow tracking server does not answer ({type(exc).__name__})",
            where=f"tracking.uri={uri}",
            hint="Start it, fix tracking.uri / $MLFLOW_TRACKING_URI, or unset both to use ./mlflow.db.",
        ) from None


def _ui_hint(uri: str) -> str:
    if urlparse(uri).scheme in ("http", "https"):
        return uri
    return f"mlflow ui --backend-store-uri {uri}  (then http://127.0.0.1:5000)"


@contextmanager
def connected(config: Config, reporter: StageReporter) -> Iterator[tuple[TrackingInfo, RayInfo]]:
    """The ``connect`` stage every command starts with: MLflow and Ray side by side (Ray stopped on exit if started)."""
    with ExitStack() as stack:
        with reporter.stage("connect", "connecting to MLflow and Ray") as stage:
            tracking, ray_info = _connect_beside(stack, config)
            stage.detail = f"MLflow {tracking.uri}; Ray {'embedded' if ray_info.embedded else ray_info.address}"
        yield tracking, ray_info
