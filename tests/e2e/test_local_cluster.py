"""The laptop-to-cluster path for real: a multi-node Ray cluster on this machine, used only through ``ray job submit``.

``cluster/local/cluster.py up`` starts a head and a worker node as separate ``ray start``
processes (token authentication on) and an MLflow tracking server, on PostgreSQL when
``$MLOPS_RAY_TEST_POSTGRES_URI`` names a server (``.ci/run`` sets it; this test makes
and drops its own database there), else on SQLite. The tests then do what a user does:
a submission without the token is refused; the CI workflow templates' own steps train
the first model as a job, test and report it, promote it through the gate as a job and
roll the endpoint out with ``serve deploy``; ``jobs/deploy.py`` redeploys it and it answers
over HTTP; drifted traffic makes the monitor job submit a retraining pipeline job, which
ends SUCCEEDED with its training spread over both nodes and the model registered in the
tracking server; and ``down`` leaves no process of the cluster behind. Timings are printed (``-s``) for the
issue's record: cluster start, submit-to-running and the job's total time.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import pytest
import requests
from mlflow.tracking import MlflowClient
from sklearn.datasets import load_breast_cancer

from tests.conftest import free_port
from tests.workflow_steps import run_step, steps

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CLUSTER_SCRIPT = ROOT / "cluster" / "local" / "cluster.py"
POSTGRES_ENV = "MLOPS_RAY_TEST_POSTGRES_URI"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
MODEL_NAME = "quickstart-breast-cancer"
pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@dataclass(frozen=True)
class LocalCluster:
    state: Path
    temp_dir: str
    mlflow_backend: str  # what cluster.py started the tracking server on: postgresql or sqlite
    postgres_database: str | None
    env: dict[str, str]  # a client's environment: RAY_ADDRESS, RAY_AUTH_MODE, RAY_AUTH_TOKEN_PATH
    tracking_uri: str
    serve_port: int
    scratch: Path  # storage every node of this one-machine cluster reaches (checkpoints, captured traffic)


def clean_env() -> dict[str, str]:
    """This process's environment without anything that points at another Ray or MLflow."""
    drop = ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
    env = {key: value for key, value in os.environ.items() if key not in drop}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def ray_cli(args: list[str], env: dict[str, str], timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(BIN / "ray"), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s
    )
    return subprocess.CompletedProcess(done.args, done.returncode, ANSI.sub("", done.stdout), ANSI.sub("", done.stderr))


def cluster_script(action: str, state: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CLUSTER_SCRIPT), action, "--state", str(state)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def cluster_processes(temp_dir: str) -> list[str]:
    listing = subprocess.run(["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True, check=True).stdout
    return [line.strip() for line in listing.splitlines() if temp_dir in line and "ps -eo" not in line]


@contextlib.contextmanager
def postgres_database() -> Iterator[str | None]:
    """A fresh database on the PostgreSQL server that ``$MLOPS_RAY_TEST_POSTGRES_URI`` names; dropped afterwards."""
    server = os.environ.get(POSTGRES_ENV)
    if not server:
        yield None
        return
    import psycopg

    name = f"mlops_ray_cluster_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield urlunparse(urlparse(server)._replace(path=f"/{name}"))
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    base = tmp_path_factory.mktemp("cluster")
    state = base / "state"
    with postgres_database() as backend:
        env = clean_env()
        env.pop("MLOPS_RAY_POSTGRES_URI", None)
        if backend:
            env["MLOPS_RAY_POSTGRES_URI"] = backend
        started = time.monotonic()
        up = cluster_script("up", state, env)
        try:
            assert up.returncode == 0, up.stdout + up.stderr
            print(f"\n[cluster] up in {time.monotonic() - started:.1f} s: {up.stdout.strip()}")
            info = json.loads((state / "cluster.json").read_text())
            client_env = dict(env)
            for line in (state / "env.sh").read_text().splitlines():
                key, _, value = line.removeprefix("export ").partition("=")
                client_env[key] = value
            yield LocalCluster(
                state=state,
                temp_dir=info["temp_dir"],
                mlflow_backend=info["mlflow_backend"],
                postgres_database=backend,
                env=client_env,
                tracking_uri=client_env["MLFLOW_TRACKING_URI"],
                serve_port=free_port(),
                scratch=base / "shared",
            )
        finally:
            cluster_script("down", state, env)  # idempotent: the last test already brought it down


def test_the_tracking_server_runs_on_postgresql(cluster: LocalCluster) -> None:
    if cluster.postgres_database is None:
        pytest.skip(f"${POSTGRES_ENV} is not set (.ci/run sets it when PostgreSQL answers): the server used SQLite")
    assert cluster.mlflow_backend == "postgresql"


def test_the_cluster_has_a_head_and_a_worker_node(cluster: LocalCluster) -> None:
    listed = ray_cli(["list", "nodes", "--format", "json"], cluster.env)
    assert listed.returncode == 0, listed.stderr
    nodes = json.loads(listed.stdout)
    assert sorted((node["is_head_node"], node["state"]) for node in nodes) == [(False, "ALIVE"), (True, "ALIVE")]
    worker = next(node for node in nodes if not node["is_head_node"])
    assert worker["resources_total"]["worker"] == 1 and worker["resources_total"]["CPU"] == 3


@pytest.mark.parametrize(
    "credentials",
    [{}, {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "not-the-token"}],
    ids=["no-token", "wrong-token"],
)
def test_a_submission_without_the_token_is_refused(cluster: LocalCluster, credentials: dict[str, str]) -> None:
    env = {**clean_env(), "RAY_ADDRESS": cluster.env["RAY_ADDRESS"], **credentials}
    refused = ray_cli(["job", "submit", "--no-wait", "--", "echo", "should-not-run"], env)
    assert refused.returncode != 0
    assert "AuthenticationError" in refused.stderr + refused.stdout
    listed = ray_cli(["job", "list"], cluster.env)  # with the token: nothing was queued
    assert listed.returncode == 0 and "should-not-run" not in listed.stdout


def submit(cluster: LocalCluster, stage: str, *overrides: str) -> str:
    """``ray job submit --no-wait`` a ``jobs/<stage>.py`` entrypoint with the quickstart config; returns its id."""
    submission_id = f"e2e-{stage}-{uuid.uuid4().hex[:8]}"
    command = [
        "job", "submit", "--no-wait", f"--submission-id={submission_id}",
        "--runtime-env", "jobs/runtime_env.yaml", "--",
        "python", f"jobs/{stage}.py", "--config", "configs/quickstart.yaml",
        "--set", f"serve.port={cluster.serve_port}", "--set", "serve.proxy_location=HeadOnly",
        "--set", f"serve.capture.path={cluster.scratch / 'capture'}", "--set", "serve.capture.flush_interval_s=1",
    ]  # fmt: skip
    for override in overrides:
        command += ["--set", override]
    submitted = ray_cli(command, cluster.env)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    return submission_id


def job_status(cluster: LocalCluster, submission_id: str) -> str:
    shown = ray_cli(["job", "status", submission_id], cluster.env)
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout + shown.stderr
    ended = re.search(r"Job '[^']+' (succeeded|failed|stopped)", text)  # how the CLI words a job that ended
    if ended:
        return ended.group(1).upper()
    match = re.search(r"Status for job '[^']+': (\w+)", text)
    assert match, text
    return match.group(1)


def wait_for_job(cluster: LocalCluster, submission_id: str, timeout_s: float) -> tuple[str, float | None, float]:
    """Poll until the job ends; returns its final status, seconds until RUNNING and seconds until the end."""
    started = time.monotonic()
    running_after: float | None = None
    status = "PENDING"
    while time.monotonic() - started < timeout_s:
        status = job_status(cluster, submission_id)
        if status == "RUNNING" and running_after is None:
            running_after = time.monotonic() - started
        if status in ("SUCCEEDED", "FAILED", "STOPPED"):
            break
        time.sleep(1)
    return status, running_after, time.monotonic() - started


def job_logs(cluster: LocalCluster, submission_id: str) -> str:
    return ANSI.sub("", ray_cli(["job", "logs", submission_id], cluster.env).stdout)


def test_the_ci_workflow_steps_train_test_report_promote_and_roll_out(cluster: LocalCluster) -> None:
    """The workflow templates' own commands (cluster/ci/github/), run with bash against this cluster as a runner would.

    The pull request: a short training job registers the PR's version as @pr-7, the
    behavioural tests and the comparison report run on the "runner" (an embedded Ray);
    the merge: the promotion gate as a job, then ``serve build`` + ``serve deploy``. The
    PR's version is the cluster's first model, so the report describes it alone and the gate
    makes it the first @champion; the report against a champion is tested in
    tests/integration/test_model_tests.py.
    """
    token = Path(cluster.env["RAY_AUTH_TOKEN_PATH"]).read_text().strip()
    values = {
        "github.event.pull_request.number": "7",
        "github.token": "",
        "vars.RAY_ADDRESS": cluster.env["RAY_ADDRESS"],
        "vars.MLFLOW_TRACKING_URI": cluster.tracking_uri,
        "vars.CAPTURE_PATH": str(cluster.scratch / "capture"),
        "secrets.RAY_AUTH_TOKEN": token,
        "secrets.MLFLOW_TRACKING_USERNAME": "",
        "secrets.MLFLOW_TRACKING_PASSWORD": "",
    }
    env = {k: v for k, v in clean_env().items() if not k.startswith("MLFLOW_TRACKING_")}
    overrides = {
        "TRAIN_EPOCHS": "2",
        "SERVE_HOST": "127.0.0.1",
        "SERVE_PORT": str(cluster.serve_port),
        "SERVE_PROXY_LOCATION": "HeadOnly",
    }
    written = [ROOT / "model-report.md", ROOT / "model-report_plots", ROOT / "serve.yaml"]
    client = MlflowClient(cluster.tracking_uri)
    try:
        pull_request = {s.id: s for s in steps("model-pull-request.yml") if s.id}
        release = {s.id: s for s in steps("model-release.yml") if s.id}
        started = time.monotonic()
        trained = run_step(pull_request["train"], values, env, overrides, timeout_s=600)
        assert trained.returncode == 0, trained.stdout[-4000:] + trained.stderr[-4000:]
        pr_version = client.get_model_version_by_alias(MODEL_NAME, "pr-7").version
        tested = run_step(pull_request["test-model"], values, env, overrides, timeout_s=300)
        assert tested.returncode in (0, 3) and "behavioural tests of" in tested.stdout, tested.stdout + tested.stderr
        assert client.get_model_version(MODEL_NAME, pr_version).tags["model_tests.passed"] in ("true", "false")
        reported = run_step(pull_request["report"], values, env, overrides, timeout_s=300)
        assert reported.returncode == 0, reported.stdout + reported.stderr
        comment = (ROOT / "model-report.md").read_text()
        assert len(comment) < 65_536  # what `gh pr comment` posts
        assert f"version {pr_version} (nothing to compare against)" in comment
        print(f"\n[cluster] CI pull-request steps (train job, test-model, report): {time.monotonic() - started:.1f} s")

        started = time.monotonic()
        promoted = run_step(release["promote"], values, env, overrides, timeout_s=600)
        assert promoted.returncode == 0, promoted.stdout[-4000:] + promoted.stderr[-4000:]
        assert client.get_model_version_by_alias(MODEL_NAME, "champion").version == pr_version
        for step_id in ("build-serve-config", "rollout"):
            done = run_step(release[step_id], values, env, overrides, timeout_s=300)
            assert done.returncode == 0, f"{step_id}: {done.stdout[-3000:]} {done.stderr[-3000:]}"
        deadline = time.monotonic() + 120
        while True:  # the rolled-out application answers with the promoted version
            try:
                health = requests.get(f"http://127.0.0.1:{cluster.serve_port}/healthz", timeout=5)
                if health.status_code == 200 and health.json()["model_version"] == str(pr_version):
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "the endpoint never answered with the promoted version"
            time.sleep(2)
        took = time.monotonic() - started
        print(f"[cluster] CI release steps (promote job, serve build, serve deploy): {took:.1f} s")
    finally:
        for path in written:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)


def test_the_deploy_job_leaves_an_endpoint_that_answers(cluster: LocalCluster) -> None:
    submission_id = submit(cluster, "deploy")
    status, _, total = wait_for_job(cluster, submission_id, timeout_s=300)
    assert status == "SUCCEEDED", job_logs(cluster, submission_id)[-6000:]
    print(f"\n[cluster] deploy job: SUCCEEDED after {total:.1f} s")
    url = f"http://127.0.0.1:{cluster.serve_port}"
    health = requests.get(f"{url}/healthz", timeout=10)
    assert health.status_code == 200 and health.json()["model_version"] == "1"
    features = requests.get(f"{url}/metadata", timeout=10).json()["features"]
    answer = requests.post(f"{url}/predict", json={"records": [{f["name"]: 0.0 for f in features}]}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == "1"


def assert_registered_with_training_on_both_nodes(cluster: LocalCluster, version: str) -> None:
    """A pipeline job's version: in the cluster's tracking server, trained on both nodes.

    Its artifacts are served by the tracking server (no node-local path) and it has test
    metrics; two 1-CPU training workers cannot both fit the 1-CPU head node.
    """
    client = MlflowClient(cluster.tracking_uri)
    registered = client.get_model_version(MODEL_NAME, version)
    run = client.get_run(registered.run_id)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    assert {"test_accuracy", "val_loss"} <= set(run.data.metrics)
    listed = ray_cli(["list", "actors", "--filter", "class_name=RayTrainWorker", "--format", "json"], cluster.env)
    assert listed.returncode == 0, listed.stderr
    nodes = json.loads(ray_cli(["list", "nodes", "--format", "json"], cluster.env).stdout)
    worker_node = next(node["node_id"] for node in nodes if not node["is_head_node"])
    assert worker_node in {actor["node_id"] for actor in json.loads(listed.stdout)}


def test_drifted_traffic_makes_the_monitor_job_submit_a_retraining_job_that_completes(cluster: LocalCluster) -> None:
    """serve -> capture -> monitor (as a job) -> drift -> a retraining job that runs to the end."""
    url = f"http://127.0.0.1:{cluster.serve_port}"
    rows = load_breast_cancer(as_frame=True).data
    rows.columns = [name.replace(" ", "_") for name in rows.columns]  # as the sklearn: source names them
    rows["mean_radius"] += 3 * rows["mean_radius"].std()  # two features moved far from what training saw
    rows["worst_texture"] -= 2 * rows["worst_texture"].std()
    for start in range(0, len(rows), 50):
        records = rows.iloc[start : start + 50].to_dict(orient="records")
        answer = requests.post(f"{url}/predict", json={"records": records}, timeout=30)
        assert answer.status_code == 200, answer.text[:1000]
    time.sleep(3)  # the replica's capture writer flushes every second

    training = ("train.epochs=2", f"train.storage_path={cluster.scratch / 'results'}")
    monitor_id = submit(cluster, "monitor", "monitor.on_drift=retrain", "monitor.min_rows=200", *training)
    status, _, took = wait_for_job(cluster, monitor_id, timeout_s=300)
    logs = job_logs(cluster, monitor_id)
    assert status == "FAILED" and "exit code 3" in ray_cli(["job", "status", monitor_id], cluster.env).stdout, logs
    assert "DRIFT in" in logs and "mean_radius" in logs and "worst_texture" in logs, logs[-4000:]
    retrain_id = re.search(r"retraining job (\S+) submitted", logs)
    assert retrain_id, logs[-4000:]
    print(f"\n[cluster] monitor job: drift found, retraining submitted, exit 3 after {took:.1f} s")

    shown = ray_cli(["job", "list"], cluster.env).stdout
    assert "jobs/pipeline.py" in shown and "monitor_run_id" in shown
    assert "monitor.on_drift=retrain" in shown  # it carries the monitor's own config and overrides
    status, running_after, took = wait_for_job(cluster, retrain_id.group(1), timeout_s=600)
    if status != "SUCCEEDED":
        debug = [ray_cli(args, cluster.env).stdout for args in (
            ["status", "-v"],
            ["list", "tasks", "--filter", "state!=FINISHED", "--detail", "--format", "yaml", "--limit", "50"],
            ["list", "actors", "--filter", "state=ALIVE", "--detail", "--format", "yaml"],
            ["list", "nodes", "--detail", "--format", "yaml"],
        )]  # fmt: skip
        Path("/tmp/retrain_debug.txt").write_text("\n=====\n".join(debug) + job_logs(cluster, retrain_id.group(1)))
    logs = job_logs(cluster, retrain_id.group(1))
    assert status == "SUCCEEDED", logs[-6000:]
    total = re.search(r"total time\W+([\d.]+s)", logs)
    stages = " ".join(f"{name} {spent}" for name, spent in re.findall(r"✓ (\w+)\s+([\d.]+s)", logs))
    print(
        f"[cluster] retraining (pipeline) job: RUNNING after {running_after or 0:.1f} s, SUCCEEDED after {took:.1f} s; "
        f"inside the job: {total.group(1) if total else '?'} ({stages})"
    )
    assert "Traceback" not in logs
    assert_registered_with_training_on_both_nodes(cluster, "2")
    assert MlflowClient(cluster.tracking_uri).get_model_version(MODEL_NAME, "1").tags["monitor.last_drifted"] == "true"


def test_the_cluster_comes_down_cleanly(cluster: LocalCluster) -> None:
    assert cluster_processes(cluster.temp_dir)
    started = time.monotonic()
    down = cluster_script("down", cluster.state, clean_env())
    assert down.returncode == 0, down.stdout + down.stderr
    print(f"\n[cluster] down in {time.monotonic() - started:.1f} s: {down.stdout.strip()}")
    assert cluster_processes(cluster.temp_dir) == []
    assert not (cluster.state / "cluster.json").exists() and not (cluster.state / "auth_token").exists()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{cluster.serve_port}/healthz", timeout=5)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{cluster.tracking_uri}/health", timeout=5)
