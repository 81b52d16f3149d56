"""Build the Serve application from a config, run it, and write it out as a Serve config file."""

from __future__ import annotations

import contextlib
import functools
import signal
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import requests
import yaml
from mlflow.tracking import MlflowClient
from ray import serve
from ray.serve import Application

from mlops_ray.config import Config
from mlops_ray.errors import ServingError
from mlops_ray.registry.refs import ModelRef, parse_model_ref, resolve_model_ref
from mlops_ray.serve.app import ModelEndpoint
from mlops_ray.serve.options import deployment_options, endpoint_settings, live_settings, model_or_champion

IMPORT_PATH = "mlops_ray.serve.deploy:app_builder"
DEPLOYMENT_NAME = "ModelEndpoint"
POLL_S = 0.1  # how often a deploy looks at the application's status and /healthz


@dataclass(frozen=True)
class Endpoint:
    """A deployed application, and what deploying it added to the cluster (so ``shutdown`` removes only that)."""

    url: str
    model_version: str
    app_name: str
    started_serve: bool = True
    created_app: bool = True

    def predict(self, records: list[dict[str, Any]], timeout_s: float = 30.0) -> dict[str, Any]:
        response = requests.post(f"{self.url}/predict", json={"records": records}, timeout=timeout_s)
        if response.status_code != 200:
            raise ServingError(
                f"answered HTTP {response.status_code}: {response.text[:500]}", where=f"{self.url}/predict"
            )
        return response.json()

    def shutdown(self) -> str | None:
        """Leave the cluster as found: Serve off if this command started it, else only a new application deleted.

        An application that ran before (now redeployed with this model) keeps running, so a
        pipeline job never takes down the endpoint it shares a cluster with; the returned
        sentence says so, for the command to print.
        """
        others = set(serve.status().applications) - {self.app_name}
        if self.started_serve and not others:
            serve.shutdown()
        elif self.created_app:
            serve.delete(self.app_name)
        else:
            return (
                f"Serve application '{self.app_name}' ran in this cluster before this command: "
                f"left running (now model version {self.model_version})."
            )
        return None


def app_builder(args: dict[str, Any]) -> Application:
    """Entry point for ``serve deploy`` / a RayService: ``args`` holds ``settings`` and ``live`` (see options.py)."""
    return ModelEndpoint.bind(args["settings"], args["live"])


def build_app(config: Config, tracking_uri: str, model: str, canary_percent: float | None = None) -> Application:
    live = live_settings(config, model, canary_percent)
    settings = endpoint_settings(config, tracking_uri)
    options = deployment_options(config)
    return ModelEndpoint.options(user_config=live.model_dump(), **options).bind(
        settings.model_dump(), live.model_dump()
    )


def check_models(config: Config, tracking_uri: str, model: str, canary_percent: float | None) -> None:
    """Fail in the driver, with the registry's own words, before any replica tries to load a missing model."""
    ref = parse_model_ref(model)
    client = MlflowClient(tracking_uri)
    resolve_model_ref(ref, client)
    canary = config.serve.canary_percent if canary_percent is None else canary_percent
    if canary > 0:
        resolve_model_ref(ModelRef(ref.name, alias=config.registry.challenger_alias), client)


@dataclass(frozen=True)
class ServeStart:
    """Serve on the configured port: started by this command (perhaps still starting, in a thread) or found running."""

    started: bool
    existing_apps: frozenset[str] = frozenset()
    pending: Future[None] | None = None

    def wait(self) -> None:
        if self.pending is not None:
            self.pending.result()

    def undo(self) -> None:
        """Stop a Serve this command started and never deployed to (a stage before ``serve`` failed)."""
        if self.started:
            with contextlib.suppress(Exception):
                self.wait()
            serve.shutdown()


def start_serve(config: Config, in_background: bool = False) -> ServeStart:
    """Serve's controller and HTTP proxy on ``serve.port``, or the Serve already running there.

    The checks run here and fail at once (a taken port, a Serve on another port);
    ``in_background`` then leaves ``serve.start`` (~1.5-3 s of process start-up) to a
    thread, so the pipeline's earlier stages overlap it.
    """
    serve_config = config.serve
    running_port = _running_serve_port()
    if running_port is not None:
        if running_port != serve_config.port:  # Serve keeps its first proxy options for the cluster's life
            raise ServingError(
                f"Serve already runs in this Ray cluster with its HTTP proxy on port {running_port}",
                where="serve.port",
                hint=f"Deploy with --set serve.port={running_port}, or `serve shutdown` first.",
            )
        return ServeStart(started=False, existing_apps=frozenset(serve.status().applications))
    _require_free_port(serve_config.host, serve_config.port)
    start = functools.partial(
        serve.start,
        http_options={"host": serve_config.host, "port": serve_config.port},
        proxy_location=serve_config.proxy_location,
    )
    if not in_background:
        start()
        return ServeStart(started=True)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlops-ray-serve-start")
    pending = pool.submit(start)
    pool.shutdown(wait=False)  # the thread ends with the start; nothing else is queued
    return ServeStart(started=True, pending=pending)


def deploy_model(
    config: Config,
    tracking_uri: str,
    model: str | None = None,
    canary_percent: float | None = None,
    serve_start: ServeStart | None = None,
) -> Endpoint:
    """Deploy ``model`` (default ``name@champion`` from the config); returns once it answers /healthz.

    ``serve_start`` is Serve already started (``start_serve``); without it Serve is
    started here. The reference is not checked here: ``mlops-ray serve`` checks it
    before Ray starts (``check_models``), and a replica that cannot load it fails the
    start with its reason.
    """
    model = model_or_champion(config, model)
    serve_config = config.serve
    ready = serve_start or start_serve(config)
    ready.wait()
    application = build_app(config, tracking_uri, model, canary_percent)
    # serve.run would poll the application's status once a second; run_many without
    # waiting, then a 0.1 s poll here, answers up to a second sooner.
    serve.run_many(
        [serve.RunTarget(application, name=serve_config.app_name, route_prefix="/")],
        wait_for_applications_running=False,
    )
    _wait_running(serve_config.app_name, model)
    url = f"http://{serve_config.host}:{serve_config.port}"
    health = _wait_healthy(url, timeout_s=60)
    return Endpoint(
        url,
        health["model_version"],
        serve_config.app_name,
        started_serve=ready.started,
        created_app=serve_config.app_name not in ready.existing_apps,
    )


def serve_config_document(
    config: Config, tracking_uri: str, model: str | None = None, canary_percent: float | None = None
) -> dict[str, Any]:
    """A Serve config (``serve deploy`` / a RayService's ``serveConfigV2``), validated by Serve's own schema."""
    from ray.serve.schema import ServeDeploySchema

    live = live_settings(config, model, canary_percent).model_dump()
    parse_model_ref(live["model"])
    document = {
        "proxy_location": config.serve.proxy_location,
        "http_options": {"host": config.serve.host, "port": config.serve.port},
        "applications": [
            {
                "name": config.serve.app_name,
                "route_prefix": "/",
                "import_path": IMPORT_PATH,
                "args": {"settings": endpoint_settings(config, tracking_uri).model_dump(), "live": dict(live)},
                # a copy, not the same dict: YAML would write an anchor and an alias (&id001 / *id001)
                "deployments": [{"name": DEPLOYMENT_NAME, "user_config": dict(live), **deployment_options(config)}],
            }
        ],
    }
    ServeDeploySchema.model_validate(document)
    return document


def write_serve_config(document: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(yaml.safe_dump(document, sort_keys=False))
    temporary.replace(path)
    return path


def wait_for_stop_signal() -> str:
    """Block until SIGINT (Ctrl-C) or SIGTERM; return the signal's name.

    Handlers are installed explicitly: a process started from a non-interactive
    shell in the background inherits SIGINT as *ignored*, and a server must still
    stop on ``kill -INT`` / ``kill -TERM``. The previous handlers are restored.
    """
    received: list[str] = []
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(timeout=0.5):
            pass
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    return received[0]


def running_replicas(app_name: str) -> int:
    """Replicas of the model deployment in state RUNNING (what autoscaling has reached)."""
    deployment = serve.status().applications[app_name].deployments[DEPLOYMENT_NAME]
    return int(deployment.replica_states.get("RUNNING", 0))


def _running_serve_port() -> int | None:
    """The HTTP port of a Serve instance already running in this Ray, or None when there is none."""
    from ray.serve.context import _get_global_client

    client = _get_global_client(raise_if_no_controller_running=False)
    if client is None:
        return None
    return int(ray.get(client._controller.get_http_config.remote()).port)


def _failure_reason(app_name: str) -> str | None:
    """The last line of the failing replica's traceback, from Serve's status of the app."""
    try:
        application = serve.status().applications[app_name]
    except (KeyError, RuntimeError):
        return None
    messages = [d.message for d in application.deployments.values() if d.message] or [application.message]
    lines = [line.strip() for message in messages for line in message.splitlines() if line.strip()]
    return lines[-1][:500] if lines else None


def _wait_running(app_name: str, model: str) -> None:
    """Until the application is RUNNING; a failed deploy raises with the replica's own last line."""
    while (status := serve.status().applications[app_name].status) != "RUNNING":
        if status == "DEPLOY_FAILED":  # Serve's message is the replica's whole traceback; its last line says why
            raise ServingError(
                f"the Serve application did not start: {_failure_reason(app_name) or status}",
                where=f"serve {model}",
                hint="The replica logs under /tmp/ray/session_latest/logs/serve/ hold the whole traceback.",
            )
        time.sleep(POLL_S)


def _wait_healthy(url: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        try:
            health = requests.get(f"{url}/healthz", timeout=10)
            if health.status_code == 200:
                return health.json()
            last = f"HTTP {health.status_code}: {health.text[:200]}"
        except requests.RequestException as exc:
            last = str(exc)
        time.sleep(POLL_S)
    raise ServingError(f"the endpoint did not become healthy within {timeout_s:.0f} s ({last})", where=f"{url}/healthz")


def _require_free_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ServingError(
                f"cannot listen on {host}:{port} ({exc.strerror})",
                where="serve.port",
                hint="Stop what uses that port or pick another, e.g. --set serve.port=8001.",
            ) from None
