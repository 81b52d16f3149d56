"""Start Serve on the configured address, deploy the model app, and talk to it over HTTP."""

from __future__ import annotations

import signal
import socket
import threading
from dataclasses import dataclass
from typing import Any

import requests
from ray import serve

from mlops_ray.config import ServeConfig
from mlops_ray.errors import ServingError
from mlops_ray.serve.app import build_app


@dataclass(frozen=True)
class Endpoint:
    url: str
    model_version: str
    app_name: str

    def predict(self, records: list[dict[str, float]], timeout_s: float = 30.0) -> dict[str, Any]:
        response = requests.post(f"{self.url}/predict", json={"records": records}, timeout=timeout_s)
        if response.status_code != 200:
            raise ServingError(
                f"answered HTTP {response.status_code}: {response.text[:500]}", where=f"{self.url}/predict"
            )
        return response.json()

    def shutdown(self) -> None:
        serve.shutdown()


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


def deploy_model(name: str, alias: str, tracking_uri: str, config: ServeConfig) -> Endpoint:
    """Deploy ``name@alias``; returns once the app is RUNNING and answers /healthz."""
    _require_free_port(config.host, config.port)
    serve.start(http_options={"host": config.host, "port": config.port})
    serve.run(build_app(name, alias, tracking_uri, config), name=config.app_name, route_prefix="/")
    url = f"http://{config.host}:{config.port}"
    health = requests.get(f"{url}/healthz", timeout=30)
    if health.status_code != 200:
        raise ServingError(f"health check answered HTTP {health.status_code}", where=f"{url}/healthz")
    return Endpoint(url, health.json()["model_version"], config.app_name)


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
