"""A multi-node Ray cluster and an MLflow tracking server on this machine: `make cluster-up` / `make cluster-down`.

Why: "it works on my laptop" hides everything a cluster changes: the driver and the
workers are different processes on different nodes, the token is required, and MLflow
must be a server every node reaches. This starts exactly that, locally:

- a Ray head (``ray start --head``, token authentication on, as Ray 2.60 does by
  default; dashboard and job server on 127.0.0.1) with ``--head-cpus`` CPUs and the
  custom resource ``head``;
- one or more worker nodes (``ray start --address``), separate raylets with their own
  ``--worker-cpus`` CPUs and the custom resource ``worker``;
- an MLflow tracking server on 127.0.0.1 with artifacts served by the server
  (``--serve-artifacts``), its backend PostgreSQL when ``$MLOPS_RAY_POSTGRES_URI`` names
  one, else a SQLite file in the state folder.

Every process gets its own Ray temp folder (``/tmp/mlops-ray-cluster-<id>``), so
``down`` stops exactly these processes (matched by that folder on their command line)
and never another Ray on the machine, unlike ``ray stop``. State (ports, PIDs, logs) is
in ``--state`` (default ``.mlops-ray/cluster``); ``up`` writes ``env.sh`` there with
``RAY_ADDRESS``, ``RAY_AUTH_MODE`` and ``MLFLOW_TRACKING_URI`` to ``source``.

    python cluster/local/cluster.py up [--workers N] [--head-cpus N] [--worker-cpus N] [--state DIR]
    python cluster/local/cluster.py status [--state DIR]
    python cluster/local/cluster.py down [--state DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

BIN = Path(sys.executable).parent
STATE_FILE = "cluster.json"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def node_ports() -> list[str]:
    """Ports every node needs for itself: on one machine the defaults (agent 52365, ...) would collide."""
    return [
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--metrics-export-port={free_port()}",
    ]


def temp_dir_for(state: Path) -> Path:
    """Short (unix socket paths are limited to ~107 bytes) and unique per state folder."""
    return Path("/tmp") / f"mlops-ray-cluster-{hashlib.sha256(str(state).encode()).hexdigest()[:8]}"


def run(command: list[str], log: Path, env: dict[str, str]) -> None:
    with log.open("a") as sink:
        done = subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT, env=env, timeout=180)
    if done.returncode != 0:
        tail = log.read_text()[-3000:]
        raise SystemExit(f"`{' '.join(command)}` failed (exit {done.returncode}); {log}:\n{tail}")


def up(args: argparse.Namespace) -> None:
    state = Path(args.state).resolve()
    if (state / STATE_FILE).exists():
        raise SystemExit(f"a cluster is already up (state in {state}); run `make cluster-down` first")
    state.mkdir(parents=True, exist_ok=True)
    temp = temp_dir_for(state)
    shutil.rmtree(temp, ignore_errors=True)
    ports = {"gcs": free_port(), "dashboard": free_port(), "mlflow": free_port(), "client": free_port()}
    # PATH first: a job's `python` must be this environment's, with the locked packages, on every node
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("RAY_ADDRESS", None)
    started = time.monotonic()
    info = {"state": str(state), "temp_dir": str(temp), "ports": ports, "workers": args.workers}
    (state / STATE_FILE).write_text(json.dumps(info, indent=2))  # written first, so `down` can clean a half start
    log = state / "ray.log"
    run(
        [
            str(BIN / "ray"), "start", "--head", f"--port={ports['gcs']}", f"--num-cpus={args.head_cpus}",
            "--resources", json.dumps({"head": 1}), "--dashboard-host=127.0.0.1",
            f"--dashboard-port={ports['dashboard']}", f"--ray-client-server-port={ports['client']}",
            *node_ports(), f"--temp-dir={temp}", "--disable-usage-stats",
        ],
        log, env,
    )  # fmt: skip
    for _ in range(args.workers):
        run(
            [
                str(BIN / "ray"), "start", f"--address=127.0.0.1:{ports['gcs']}", f"--num-cpus={args.worker_cpus}",
                "--resources", json.dumps({"worker": 1}), *node_ports(), f"--temp-dir={temp}",
                "--disable-usage-stats",
            ],
            log, env,
        )  # fmt: skip
    backend = os.environ.get("MLOPS_RAY_POSTGRES_URI") or f"sqlite:///{state / 'mlflow.db'}"
    with (state / "mlflow.log").open("a") as sink:
        server = subprocess.Popen(
            [
                str(BIN / "mlflow"), "server", f"--backend-store-uri={backend}", "--serve-artifacts",
                f"--artifacts-destination={state / 'mlartifacts'}", "--host=127.0.0.1", f"--port={ports['mlflow']}",
                "--workers=1",
            ],
            stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
    info["mlflow_pid"] = server.pid
    info["mlflow_backend"] = backend.split("://")[0]
    (state / STATE_FILE).write_text(json.dumps(info, indent=2))
    wait_for(f"http://127.0.0.1:{ports['mlflow']}/health", "the MLflow server", state / "mlflow.log")
    wait_for(f"http://127.0.0.1:{ports['dashboard']}/api/version", "Ray's job server", log, any_status=True)
    (state / "env.sh").write_text(
        f"export RAY_ADDRESS=http://127.0.0.1:{ports['dashboard']}\n"
        "export RAY_AUTH_MODE=token\n"
        f"export MLFLOW_TRACKING_URI=http://127.0.0.1:{ports['mlflow']}\n"
    )
    print(
        f"cluster up in {time.monotonic() - started:.1f} s: head + {args.workers} worker node(s), "
        f"Ray jobs at http://127.0.0.1:{ports['dashboard']} (token auth), "
        f"MLflow at http://127.0.0.1:{ports['mlflow']} ({info['mlflow_backend']}); `source {state / 'env.sh'}`"
    )


def wait_for(url: str, what: str, log: Path, any_status: bool = False, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            answer = requests.get(url, timeout=5)
            if any_status or answer.status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{what} did not answer at {url} within {timeout_s:.0f} s; see {log}")


def our_processes(temp: Path) -> list[int]:
    """PIDs of every process whose command line names this cluster's temp folder (raylets, GCS, workers, agents).

    Read from ``ps`` (Linux and macOS alike) rather than a process library the lock does not pin.
    """
    listing = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True, check=True).stdout
    found = []
    for line in listing.splitlines():
        pid, _, args = line.strip().partition(" ")
        if str(temp) in args and int(pid) != os.getpid():
            found.append(int(pid))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def down(args: argparse.Namespace) -> None:
    state = Path(args.state).resolve()
    if not (state / STATE_FILE).exists():
        print(f"no cluster is up (no {state / STATE_FILE})")
        return
    info = json.loads((state / STATE_FILE).read_text())
    victims = our_processes(Path(info["temp_dir"]))
    if info.get("mlflow_pid") and _alive(info["mlflow_pid"]):
        os.killpg(info["mlflow_pid"], signal.SIGTERM)  # the server and its workers share its process group
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in victims) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    (state / STATE_FILE).unlink()
    (state / "env.sh").unlink(missing_ok=True)
    print(f"cluster down: stopped {len(victims)} Ray process(es) and the MLflow server")


def status(args: argparse.Namespace) -> None:
    state = Path(args.state).resolve()
    if not (state / STATE_FILE).exists():
        raise SystemExit(f"no cluster is up (no {state / STATE_FILE})")
    info = json.loads((state / STATE_FILE).read_text())
    print(json.dumps({**info, "ray_processes": len(our_processes(Path(info["temp_dir"])))}, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("--state", default=".mlops-ray/cluster", help="folder for ports, PIDs, logs and env.sh")
    parser.add_argument("--workers", type=int, default=1, help="worker nodes besides the head")
    parser.add_argument("--head-cpus", type=int, default=1, help="CPUs the head node offers")
    parser.add_argument("--worker-cpus", type=int, default=3, help="CPUs each worker node offers")
    args = parser.parse_args()
    {"up": up, "down": down, "status": status}[args.action](args)


if __name__ == "__main__":
    main()
