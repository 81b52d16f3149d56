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
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from mlflow.tracking import MlflowClient
from sklearn.datasets import load_breast_cancer

from tests.conftest import free_port
from tests.postgres import POSTGRES_ENV, postgres_database
from tests.workflow_steps import run_step, steps

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CLUSTER_SCRIPT = ROOT / "cluster" / "local" / "cluster.py"
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


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    base = tmp_path_factory.mktemp("cluster")
    monkeypatch = pytest.MonkeyPatch()
    state = base / "state"
    with postgres_database("mlops_ray_cluster") as backend:
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
            # env.sh reads the password from its 0600 file when sourced; this test reads the file itself
            client_env["MLFLOW_TRACKING_PASSWORD"] = (state / "mlflow_password").read_text()
            for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):  # for this process's MlflowClient
                monkeypatch.setenv(key, client_env[key])
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
            monkeypatch.undo()


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


@pytest.mark.parametrize("credentials", [None, ("mlops-ray", "not-the-password-at-all")], ids=["none", "wrong"])
def test_the_tracking_server_refuses_a_client_without_the_password(
    cluster: LocalCluster, credentials: tuple[str, str] | None
) -> None:
    url = f"{cluster.tracking_uri}/api/2.0/mlflow/experiments/search"
    refused = requests.get(url, params={"max_results": 1}, auth=credentials, timeout=30)
    assert refused.status_code == 401, refused.text[:500]
    user, password = cluster.env["MLFLOW_TRACKING_USERNAME"], cluster.env["MLFLOW_TRACKING_PASSWORD"]
    assert requests.get(url, params={"max_results": 1}, auth=(user, password), timeout=30).status_code == 200
    assert requests.get(f"{cluster.tracking_uri}/health", timeout=30).status_code == 200  # probes need no password


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
        "secrets.MLFLOW_TRACKING_USERNAME": cluster.env["MLFLOW_TRACKING_USERNAME"],
        "secrets.MLFLOW_TRACKING_PASSWORD": cluster.env["MLFLOW_TRACKING_PASSWORD"],
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

    # Two workers: the quickstart's 398 rows would train in-process (local mode), and training across nodes is
    # what this job is here to show.
    training = ("train.epochs=2", "train.num_workers=2", f"train.storage_path={cluster.scratch / 'results'}")
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
    # Ours never prints one; Ray's own PlacementGroupCleaner thread may, when a GCS call times out on a busy machine.
    assert not [line for line in logs.splitlines() if "Traceback" in line and "PlacementGroupCleaner" not in line]
    assert_registered_with_training_on_both_nodes(cluster, "2")
    assert MlflowClient(cluster.tracking_uri).get_model_version(MODEL_NAME, "1").tags["monitor.last_drifted"] == "true"


def training_run_epochs(client: MlflowClient, started_ms: int) -> tuple[str | None, list[int]]:
    """The newest training run started after ``started_ms`` and the epochs its val_loss was logged at, in order."""
    experiment = client.get_experiment_by_name("quickstart")  # configs/quickstart.yaml's tracking.experiment
    if experiment is None:
        return None, []
    runs = client.search_runs(
        [experiment.experiment_id],
        f"attributes.start_time > {started_ms} and attributes.run_name = '{MODEL_NAME}-train'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        return None, []
    history = client.get_metric_history(runs[0].info.run_id, "val_loss")
    return runs[0].info.run_id, [m.step for m in sorted(history, key=lambda m: m.timestamp)]


def with_descendants(pids: list[int]) -> list[int]:
    """``pids`` and every process below them: Ray's workers are the raylet's children, renamed ``ray::...``."""
    listing = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True, check=True).stdout
    children: dict[int, list[int]] = {}
    for line in listing.splitlines():
        pid, ppid = (int(field) for field in line.split())
        children.setdefault(ppid, []).append(pid)
    found, queue = set(pids), list(pids)
    while queue:
        for child in children.get(queue.pop(), []):
            if child not in found:
                found.add(child)
                queue.append(child)
    return sorted(found)


def test_a_training_job_survives_losing_its_worker_node_and_resumes_from_its_checkpoint(cluster: LocalCluster) -> None:
    """Kill every process of the worker node mid-training; a replacement node joins; the job finishes.

    Ray Train (``train.max_failures``) restarts the worker group from the last reported
    checkpoint, on storage every node reaches. Two 1-CPU workers cannot fit the 1-CPU head, so
    the restart waits for the replacement node, as it would for an autoscaler's.
    """
    client = MlflowClient(cluster.tracking_uri)
    started_ms = int(time.time() * 1000)
    epochs = 60  # ~0.3 s each on an idle machine: time to see a checkpoint and kill the node mid-way
    training = (f"train.epochs={epochs}", "train.max_failures=3", f"train.storage_path={cluster.scratch / 'node-loss'}")
    submission_id = submit(cluster, "train", *training)
    deadline = time.monotonic() + 300
    run_id, logged = None, []
    while len(logged) < 3:  # a few epochs in, so there is a checkpoint to resume from
        assert time.monotonic() < deadline, job_logs(cluster, submission_id)[-4000:]
        if run_id is None:  # `ray job status` takes a second: asked only until the run exists
            status = job_status(cluster, submission_id)
            assert status in ("PENDING", "RUNNING"), job_logs(cluster, submission_id)[-4000:]
        time.sleep(0.3)
        run_id, logged = training_run_epochs(client, started_ms)
    worker_temp = f"{cluster.temp_dir}-w{json.loads((cluster.state / 'cluster.json').read_text())['workers']}"
    killed = with_descendants([int(line.split()[0]) for line in cluster_processes(worker_temp)])  # the whole node
    for pid in killed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    killed_at, before = time.monotonic(), list(logged)
    assert before[-1] < epochs - 5, f"training was nearly over (epoch {before[-1]}) before the node could be killed"
    added = cluster_script("add-worker", cluster.state, clean_env())
    assert added.returncode == 0, added.stdout + added.stderr
    status, _, _ = wait_for_job(cluster, submission_id, timeout_s=600)
    logs = job_logs(cluster, submission_id)
    assert status == "SUCCEEDED", logs[-6000:]
    recovered = time.monotonic() - killed_at
    _, after = training_run_epochs(client, started_ms)
    assert run_id is not None and client.get_run(run_id).info.status == "FINISHED"
    assert sorted(set(after)) == list(range(1, epochs + 1)), after  # every epoch, to the last one
    repeated = sorted(step for step in set(after) if after.count(step) > 1)
    # Resumed, not restarted: at most the epochs after the last checkpoint ran twice, never the first ones.
    assert after.count(1) == 1 and all(step >= before[-1] - 1 for step in repeated), (before, after)
    print(
        f"\n[cluster] worker node killed ({len(killed)} processes) after epoch {before[-1]}; replacement joined; "
        f"job SUCCEEDED {recovered:.1f} s later; epochs run again: {repeated or 'none'}"
    )


def test_no_secret_reaches_a_log_a_param_or_a_tag(cluster: LocalCluster) -> None:
    """The Ray token and the MLflow password, searched for in everything this cluster wrote or logged."""
    secrets = {
        "Ray token": Path(cluster.env["RAY_AUTH_TOKEN_PATH"]).read_text().strip(),
        "MLflow password": cluster.env["MLFLOW_TRACKING_PASSWORD"],
    }
    client = MlflowClient(cluster.tracking_uri)
    recorded: list[str] = []
    for experiment in client.search_experiments():
        for run in client.search_runs([experiment.experiment_id], max_results=1000):
            recorded += [*run.data.params.values(), *run.data.tags.values(), *run.data.params, run.info.run_name]
    for version in client.search_model_versions(f"name = '{MODEL_NAME}'"):
        recorded += [*version.tags.values(), version.source or "", version.description or ""]
    jobs = ray_cli(["job", "list"], cluster.env).stdout
    job_ids = re.findall(r"submission_id='([^']+)'", jobs)
    recorded += [jobs, *(job_logs(cluster, job_id) for job_id in job_ids)]
    log_files = [
        path
        for root in (cluster.state, *Path(cluster.temp_dir).parent.glob(f"{Path(cluster.temp_dir).name}*"))
        for path in Path(root).rglob("*")
        if path.is_file() and (path.suffix in (".log", ".out", ".err", ".txt") or "logs" in path.parts)
    ]
    assert len(log_files) > 20 and job_ids and len(recorded) > 10
    for what, value in secrets.items():
        assert len(value) >= 12
        assert not any(value in text for text in recorded), f"the {what} is in a param, tag or job log"
        found = [str(p) for p in log_files if value.encode() in p.read_bytes()]
        assert found == [], f"the {what} is written in {found}"
    print(
        f"\n[cluster] secrets: none in {len(recorded)} params/tags/job logs ({len(job_ids)} jobs), "
        f"{len(log_files)} log files"
    )


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
