"""A multi-node Ray cluster and an MLflow tracking server on this machine: `make cluster-up` / `make cluster-down`.

Why: "it works on my laptop" hides everything a cluster changes: the driver and the
workers are different processes on different nodes, the token is required, and MLflow
must be a server every node reaches. This starts exactly that, locally:

- a Ray head (``ray start --head``, token authentication on with a token generated for
  this cluster in ``<state>/auth_token``; dashboard and job server on 127.0.0.1) with
  ``--head-cpus`` CPUs and the custom resource ``head``;
- one or more worker nodes (``ray start --address``), separate raylets with their own
  ``--worker-cpus`` CPUs and the custom resource ``worker``;
- an MLflow tracking server on 127.0.0.1 with artifacts served by the server
  (``--serve-artifacts``), its backend PostgreSQL when ``$MLOPS_RAY_POSTGRES_URI`` names
  one, else a SQLite file in the state folder, behind MLflow's basic-auth app: one user,
  ``$MLFLOW_TRACKING_USERNAME`` / ``$MLFLOW_TRACKING_PASSWORD`` when they are set, else
  ``mlops-ray`` with a password generated for this cluster into ``<state>/mlflow_password``
  (mode 0600). There is no default password; every node's environment carries the
  credentials, so jobs log without a flag.

Every node gets its own Ray temp folder (``/tmp/mlops-ray-cluster-<id>`` for the head,
``...-w<n>`` for worker ``n``, as separate machines would have), so ``down`` stops exactly
these processes (matched by that prefix on their command line) and never another Ray on
the machine, unlike ``ray stop``. State (ports, PIDs, logs) is
in ``--state`` (default ``.mlops-ray/cluster``); ``up`` writes ``env.sh`` there with
``RAY_ADDRESS``, ``RAY_AUTH_MODE``, ``RAY_AUTH_TOKEN_PATH``, ``MLFLOW_TRACKING_URI`` and the
MLflow credentials (the password read from its file, never written into env.sh) to ``source``:
a client without that token, or without the password, is refused.

    python cluster/local/cluster.py up [--workers N] [--head-cpus N] [--worker-cpus N] [--object-store-gb G]
                                       [--state DIR]
    python cluster/local/cluster.py status [--state DIR]
    python cluster/local/cluster.py add-worker [--worker-cpus N] [--state DIR]   # e.g. to replace a lost node
    python cluster/local/cluster.py down [--state DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

BIN = Path(sys.executable).parent
STATE_FILE = "cluster.json"
MLFLOW_USER = "mlops-ray"
MIN_PASSWORD_CHARS = 12  # what MLflow's basic-auth app accepts for its admin user
AUTH_INI = """[mlflow]
default_permission = NO_PERMISSIONS
database_uri = sqlite:///{database}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
# a password check is a PBKDF2 hash: cache a good one, or every logged metric pays for it
auth_cache_ttl_seconds = 300
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def node_options(object_store_gb: float) -> list[str]:
    """What every node needs for itself on a shared machine.

    Ports: the defaults (agent 52365, ...) would collide. Object store: Ray sizes each
    node's at 30 % of the machine's memory, which two nodes on one machine would double.
    """
    return [
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        f"--object-store-memory={int(object_store_gb * 1024**3)}",
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


def check_backend(uri: str) -> None:
    """Connect once before anything starts: ``mlflow server`` on a bad database URI keeps running, never answering."""
    import sqlalchemy

    shown = sqlalchemy.engine.make_url(uri).render_as_string(hide_password=True)
    try:
        sqlalchemy.create_engine(uri).connect().close()
    except Exception as exc:  # driver missing, server down, database absent, wrong credentials
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise SystemExit(f"MLOPS_RAY_POSTGRES_URI={shown}: cannot connect ({reason})") from None


def private_file(path: Path, text: str) -> None:
    """Write ``text`` readable by this user only (0600 from the moment the file exists)."""
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as sink:
        sink.write(text)


def mlflow_credentials(state: Path) -> tuple[str, str]:
    """The tracking server's user: the caller's $MLFLOW_TRACKING_USERNAME/_PASSWORD, else a fresh random one."""
    user = os.environ.get("MLFLOW_TRACKING_USERNAME") or MLFLOW_USER
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD") or secrets.token_urlsafe(24)
    if len(password) < MIN_PASSWORD_CHARS:
        raise SystemExit(f"MLFLOW_TRACKING_PASSWORD: needs at least {MIN_PASSWORD_CHARS} characters (MLflow's rule)")
    private_file(state / "mlflow_password", password)
    return user, password


def mlflow_server_env(state: Path, env: dict[str, str], user: str, password: str) -> dict[str, str]:
    """The basic-auth app's settings: its own user store in the state folder, the admin from the credentials."""
    (state / "mlflow_auth.db").unlink(missing_ok=True)  # a new cluster, a new user store: the password is this one
    private_file(state / "mlflow_auth.ini", AUTH_INI.format(database=state / "mlflow_auth.db"))
    return {
        **env,
        "MLFLOW_AUTH_CONFIG_PATH": str(state / "mlflow_auth.ini"),
        "MLFLOW_AUTH_ADMIN_USERNAME": user,
        "MLFLOW_AUTH_ADMIN_PASSWORD": password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(32),  # signs the auth app's CSRF tokens
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # no GenAI job runners (three more processes) on two cores
    }


def node_env(state: Path, ports: dict[str, int], user: str, password: str) -> dict[str, str]:
    """The environment every node (and so every job and worker) starts with."""
    # PATH first: a job's `python` must be this environment's, with the locked packages, on every node
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(state / "auth_token")}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env.pop("RAY_AUTH_TOKEN", None)
    env.pop("RAY_ADDRESS", None)
    # Every node's environment names the tracking server, so jobs and their workers log there without a flag.
    env["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{ports['mlflow']}"
    env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"] = user, password
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def start_worker(
    index: int, ports: dict[str, int], temp: Path, args: argparse.Namespace, env: dict[str, str], log: Path
) -> None:
    """Worker node ``index``: a raylet joining the head, in its own temp folder ``<temp>-w<index>``."""
    # Its own temp folder: nodes sharing one would share `runtime_resources/`, and a node setting up a job's
    # working_dir replaces the folder (overwrite) that a process on another node is running in.
    node_temp = Path(f"{temp}-w{index}")
    shutil.rmtree(node_temp, ignore_errors=True)
    run(
        [
            str(BIN / "ray"), "start", f"--address=127.0.0.1:{ports['gcs']}", f"--num-cpus={args.worker_cpus}",
            "--resources", json.dumps({"worker": 1}), *node_options(args.object_store_gb),
            f"--temp-dir={node_temp}", "--disable-usage-stats",
        ],
        log, env,
    )  # fmt: skip


def add_worker(args: argparse.Namespace) -> None:
    """One more worker node, numbered after the last: how a lost node is replaced (as an autoscaler would)."""
    state = Path(args.state).resolve()
    if not (state / STATE_FILE).exists():
        raise SystemExit(f"no cluster is up (no {state / STATE_FILE})")
    info = json.loads((state / STATE_FILE).read_text())
    password = (state / "mlflow_password").read_text()
    env = node_env(state, info["ports"], info["mlflow_user"], password)
    info["workers"] += 1
    start_worker(info["workers"], info["ports"], Path(info["temp_dir"]), args, env, state / "ray.log")
    (state / STATE_FILE).write_text(json.dumps(info, indent=2))
    print(f"worker node {info['workers']} joined ({args.worker_cpus} CPUs, temp {info['temp_dir']}-w{info['workers']})")


def up(args: argparse.Namespace) -> None:
    state = Path(args.state).resolve()
    postgres = os.environ.get("MLOPS_RAY_POSTGRES_URI")
    if postgres:
        check_backend(postgres)
    state.mkdir(parents=True, exist_ok=True)
    temp = temp_dir_for(state)
    shutil.rmtree(temp, ignore_errors=True)
    ports = {"gcs": free_port(), "dashboard": free_port(), "mlflow": free_port(), "client": free_port()}
    # The cluster's own token (not ~/.ray/auth_token, which other Rays on the machine share); every node and every
    # job started here reads it through RAY_AUTH_TOKEN_PATH.
    token = state / "auth_token"
    private_file(token, secrets.token_hex(32))
    user, password = mlflow_credentials(state)
    env = node_env(state, ports, user, password)
    started = time.monotonic()
    info = {"state": str(state), "temp_dir": str(temp), "ports": ports, "workers": args.workers, "mlflow_user": user}
    (state / STATE_FILE).write_text(json.dumps(info, indent=2))  # written first, so `down` can clean a half start
    log = state / "ray.log"
    run(
        [
            str(BIN / "ray"), "start", "--head", f"--port={ports['gcs']}", f"--num-cpus={args.head_cpus}",
            "--resources", json.dumps({"head": 1}), "--dashboard-host=127.0.0.1",
            f"--dashboard-port={ports['dashboard']}", f"--ray-client-server-port={ports['client']}",
            *node_options(args.object_store_gb), f"--temp-dir={temp}", "--disable-usage-stats",
        ],
        log, env,
    )  # fmt: skip
    for index in range(1, args.workers + 1):
        start_worker(index, ports, temp, args, env, log)
    backend = postgres or f"sqlite:///{state / 'mlflow.db'}"
    with (state / "mlflow.log").open("a") as sink:
        server = subprocess.Popen(
            [
                str(BIN / "mlflow"), "server", f"--backend-store-uri={backend}", "--serve-artifacts",
                f"--artifacts-destination={state / 'mlartifacts'}", "--host=127.0.0.1", f"--port={ports['mlflow']}",
                "--workers=1", "--app-name=basic-auth",
            ],
            stdout=sink, stderr=subprocess.STDOUT, env=mlflow_server_env(state, env, user, password),
            start_new_session=True,
        )  # fmt: skip
    info["mlflow_pid"] = server.pid
    info["mlflow_backend"] = backend.split("://")[0]
    (state / STATE_FILE).write_text(json.dumps(info, indent=2))
    wait_for(f"http://127.0.0.1:{ports['mlflow']}/health", "the MLflow server", state / "mlflow.log", server)
    wait_for(f"http://127.0.0.1:{ports['dashboard']}/api/version", "Ray's job server", log)
    (state / "env.sh").write_text(
        f"export RAY_ADDRESS=http://127.0.0.1:{ports['dashboard']}\n"
        "export RAY_AUTH_MODE=token\n"
        f"export RAY_AUTH_TOKEN_PATH={token}\n"
        f"export MLFLOW_TRACKING_URI=http://127.0.0.1:{ports['mlflow']}\n"
        f"export MLFLOW_TRACKING_USERNAME={user}\n"
        f'export MLFLOW_TRACKING_PASSWORD="$(cat {state / "mlflow_password"})"\n'
    )
    print(
        f"cluster up in {time.monotonic() - started:.1f} s: head + {args.workers} worker node(s), "
        f"Ray jobs at http://127.0.0.1:{ports['dashboard']} (token auth), "
        f"MLflow at http://127.0.0.1:{ports['mlflow']} ({info['mlflow_backend']}, basic auth, user {user}); "
        f"`source {state / 'env.sh'}`"
    )


def wait_for(
    url: str, what: str, log: Path, process: subprocess.Popen[bytes] | None = None, timeout_s: float = 120
) -> None:
    """Until ``url`` answers (any HTTP status); fails at once, with the log's tail, if ``process`` exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = log.read_text()[-3000:]
            raise SystemExit(f"{what} exited (code {process.returncode}) before answering at {url}; {log}:\n{tail}")
        try:
            requests.get(url, timeout=5)
            return
        except requests.RequestException:
            time.sleep(0.5)
    raise SystemExit(f"{what} did not answer at {url} within {timeout_s:.0f} s; see {log}")


def our_processes(temp: Path) -> dict[int, str]:
    """Every process whose command line names this cluster's temp folders (raylets, GCS, workers, agents): pid -> args.

    Read from ``ps -ww`` (Linux and macOS alike; full command lines whatever ``$COLUMNS`` says) rather than a
    process library the lock does not pin.
    """
    listing = subprocess.run(["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True, check=True).stdout
    found = {}
    for line in listing.splitlines():
        pid, _, args = line.strip().partition(" ")
        if str(temp) in args and int(pid) != os.getpid():
            found[int(pid)] = args
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _terminate(pids: list[int], wait_s: float) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)


# Stopped in this order, each within a second or so: the raylets (and their workers), then the dashboard, the
# autoscaler monitor and log monitors, then the GCS. Signalled all at once, raylets and the monitor wait for
# a GCS that is going away and only a SIGKILL 15 s later ends them.
SHUTDOWN_ORDER: tuple[Callable[[str], bool], ...] = (
    lambda command: "raylet/raylet" in command,
    lambda command: "gcs_server" not in command,
    lambda command: True,
)


def down(args: argparse.Namespace) -> None:
    state = Path(args.state).resolve()
    if not (state / STATE_FILE).exists():
        print(f"no cluster is up (no {state / STATE_FILE})")
        return
    info = json.loads((state / STATE_FILE).read_text())
    temp = Path(info["temp_dir"])
    stopped = our_processes(temp)
    mlflow_pid = info.get("mlflow_pid")
    if mlflow_pid and _alive(mlflow_pid):
        os.killpg(mlflow_pid, signal.SIGTERM)  # the server and its workers share its process group
    for in_this_step in SHUTDOWN_ORDER:
        _terminate([pid for pid, command in our_processes(temp).items() if in_this_step(command)], wait_s=10)
    for pid in [*our_processes(temp), *([mlflow_pid] if mlflow_pid and _alive(mlflow_pid) else [])]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    (state / STATE_FILE).unlink()
    (state / "env.sh").unlink(missing_ok=True)
    for secret in ("auth_token", "mlflow_password", "mlflow_auth.ini", "mlflow_auth.db"):
        (state / secret).unlink(missing_ok=True)
    print(f"cluster down: stopped {len(stopped)} Ray process(es) and the MLflow server")


def status(args: argparse.Namespace) -> None:
    state = Path(args.state).resolve()
    if not (state / STATE_FILE).exists():
        raise SystemExit(f"no cluster is up (no {state / STATE_FILE})")
    info = json.loads((state / STATE_FILE).read_text())
    print(json.dumps({**info, "ray_processes": len(our_processes(Path(info["temp_dir"])))}, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down", "status", "add-worker"])
    parser.add_argument("--state", default=".mlops-ray/cluster", help="folder for ports, PIDs, logs and env.sh")
    parser.add_argument("--workers", type=int, default=1, help="worker nodes besides the head")
    parser.add_argument("--head-cpus", type=int, default=1, help="CPUs the head node offers")
    parser.add_argument("--worker-cpus", type=int, default=3, help="CPUs each worker node offers")
    parser.add_argument("--object-store-gb", type=float, default=1.0, help="each node's object store, in GiB")
    args = parser.parse_args()
    if args.action != "up":
        {"down": down, "status": status, "add-worker": add_worker}[args.action](args)
        return
    if (Path(args.state) / STATE_FILE).exists():
        raise SystemExit(f"a cluster is already up (state in {args.state}); run `make cluster-down` first")
    try:
        up(args)
    except BaseException:  # a half-started cluster is stopped again, so nothing is left running
        if (Path(args.state) / STATE_FILE).exists():
            down(args)
        raise


if __name__ == "__main__":
    main()
