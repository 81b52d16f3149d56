"""Tracking under load and faults (issue 10, item 3): the MLflow tracking server on PostgreSQL, for real.

A real ``mlflow server`` (started as ``cluster/local/cluster.py`` starts it: served
artifacts, one uvicorn worker; without the basic-auth app) runs on a free loopback port
with a fresh PostgreSQL database for this module, and real clients in other processes
talk to it over HTTP:

- eight writer processes, released together by a barrier, each log a run's params,
  metrics over many steps (batched and one request per value), tags and an artifact;
  their clients do not retry, so any failed request counts as an error instead of being
  papered over, and every value is read back and compared exactly;
- four processes register versions of one model at the same moment with
  ``mlflow.register_model`` (what ``mlops_ray.registry.register_model`` calls): the
  server must hand out 1..4, each once, with no error (on PostgreSQL MLflow's store
  serialises the creations on the registered model's row; its retry on a version-number
  collision is the backstop, and the test counts how often it ran);
- a training (``run_training``, what ``mlops-ray train`` runs, on the session's Ray) goes on
  while the server is SIGKILLed and restarted on the same port and database: the run must
  finish, with every epoch's metrics once, carried over the outage by the MLflow client's
  HTTP retries in the Ray Train worker (MLflow's defaults; nothing is set).

Needs ``$MLOPS_RAY_TEST_POSTGRES_URI`` (``.ci/run`` sets it); skipped with the reason without.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import pytest
import requests
from mlflow.entities import LoggedModelStatus, Metric, Param
from mlflow.tracking import MlflowClient

from tests.conftest import free_port
from tests.postgres import POSTGRES_ENV, postgres_database

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow

WRITERS = 8
KEYS = ("loss", "accuracy", "lr", "throughput")  # logged with log_batch, STEPS_PER_BATCH steps per request
STEPS = 100
STEPS_PER_BATCH = 10
SINGLE_KEY, SINGLE_STEPS = "single", 25  # one request per value: the many-small-requests pattern
PARAMS = 10
REGISTRANTS = 4
MODEL_NAME = "concurrently-registered"
EPOCHS = 40  # on the session's warm Ray an epoch takes ~0.1-0.3 s: enough left to overlap the kill
KILL_AFTER_EPOCHS = 2  # the server dies once this many epochs are in the database
EPOCH_METRICS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "train_seconds")
START_TIMEOUT_S = 180  # `mlflow server` has taken 110 s to start (and migrate) on a two-core machine under load


@dataclass
class TrackingServer:
    """One ``mlflow server`` process group on a fixed port; ``kill`` and ``start`` again keep port and backend."""

    backend: str
    port: int
    artifacts: Path
    log: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> float:
        """Start the server and wait until ``/health`` answers; returns the seconds that took."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # its job-runner process only costs CPU here
        command = [
            str(BIN / "mlflow"), "server", f"--backend-store-uri={self.backend}", "--serve-artifacts",
            f"--artifacts-destination={self.artifacts}", "--host=127.0.0.1", f"--port={self.port}", "--workers=1",
        ]  # fmt: skip
        started = time.monotonic()
        with self.log.open("a") as sink:
            # A session of its own: kill() takes the CLI and its uvicorn child down together, as a crash would.
            self.process = subprocess.Popen(
                command, stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        while time.monotonic() - started < START_TIMEOUT_S:
            assert self.process.poll() is None, f"mlflow server exited: {self.log.read_text()[-3000:]}"
            try:
                if requests.get(f"{self.uri}/health", timeout=2).status_code == 200:
                    return time.monotonic() - started
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError(f"mlflow server did not answer within {START_TIMEOUT_S} s: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the whole process group: no graceful shutdown, in-flight requests die with it."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()


@pytest.fixture(scope="module")
def postgres_backend() -> Iterator[str]:
    with postgres_database("mlops_ray_tracking") as backend:
        if backend is None:
            pytest.skip(f"${POSTGRES_ENV} is not set (.ci/run sets it when PostgreSQL answers): no server to test")
        yield backend


@pytest.fixture(scope="module")
def server(postgres_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackingServer]:
    base = tmp_path_factory.mktemp("tracking-server")
    tracking = TrackingServer(postgres_backend, free_port(), base / "mlartifacts", base / "mlflow.log")
    seconds = tracking.start()
    print(f"\n[tracking] server on {tracking.uri} (PostgreSQL) up in {seconds:.1f} s")
    try:
        yield tracking
    finally:
        tracking.stop()


# ---------------------------------------------------------------------------------------------- concurrent writers


def expected_value(writer: int, key_index: int, step: int) -> float:
    """Distinct per writer, key and step, and exact in binary: a mixed-up or lost value cannot compare equal."""
    return writer * 10_000 + key_index * 1_000 + step * 0.125


@dataclass(frozen=True)
class WriterReport:
    index: int
    run_id: str | None
    calls: int  # client calls that succeeded
    seconds: float
    error: str | None


def write_run(index: int, uri: str, experiment_id: str, start: Any, results: Any) -> None:
    """One writer process: a whole run through the HTTP API, from the moment the barrier opens."""
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"  # a failed request is an error here, not a silent retry
    client = MlflowClient(uri)
    run_id, calls, began = None, 0, 0.0
    try:
        start.wait(timeout=START_TIMEOUT_S)
        began = time.monotonic()
        run_id = client.create_run(experiment_id, run_name=f"writer-{index}", tags={"writer": str(index)}).info.run_id
        calls += 1
        client.log_batch(run_id, params=[Param(f"p{i}", f"{index}-{i}") for i in range(PARAMS)])
        calls += 1
        for first in range(0, STEPS, STEPS_PER_BATCH):
            now = int(time.time() * 1000)
            batch = [
                Metric(key, expected_value(index, k, step), now, step)
                for step in range(first, first + STEPS_PER_BATCH)
                for k, key in enumerate(KEYS)
            ]
            client.log_batch(run_id, metrics=batch)
            calls += 1
        for step in range(SINGLE_STEPS):
            client.log_metric(run_id, SINGLE_KEY, expected_value(index, len(KEYS), step), step=step)
            calls += 1
        client.set_tag(run_id, "phase", "done")
        calls += 1
        client.log_text(run_id, f"writer {index}\n", "notes/writer.txt")
        calls += 1
        client.set_terminated(run_id)
        calls += 1
        results.put(WriterReport(index, run_id, calls, time.monotonic() - began, None))
    except Exception as exc:  # reported to the parent, which fails the test naming the writer and the call
        results.put(WriterReport(index, run_id, calls, time.monotonic() - began, f"{type(exc).__name__}: {exc}"))


def run_together(target: Any, args_for: list[tuple[Any, ...]], timeout_s: float = 300) -> tuple[list[Any], float]:
    """Start one process per argument tuple, release them together, collect what each put on the queue.

    Forked from a fork server that imported this module (and so MLflow) once: eight fresh
    interpreters importing it cost ~4 CPU-seconds each, more than the writing itself on two
    cores, and forking the test process itself is unsafe once a Ray in it runs threads.
    The barrier opens only once every process has built its client, so the requests really
    overlap. Returns the results and the seconds from the barrier opening to the last result.
    """
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    start = context.Barrier(len(args_for) + 1)
    results = context.Queue()
    processes = [context.Process(target=target, args=(*args, start, results)) for args in args_for]
    for process in processes:
        process.start()
    try:
        start.wait(timeout=START_TIMEOUT_S)
        released = time.monotonic()
        collected = [results.get(timeout=timeout_s) for _ in processes]
        seconds = time.monotonic() - released
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    return collected, seconds


def test_eight_concurrent_writers_lose_nothing_and_see_no_error(server: TrackingServer) -> None:
    client = MlflowClient(server.uri)
    experiment_id = client.create_experiment("concurrent-writers")
    reports, seconds = run_together(write_run, [(i, server.uri, experiment_id) for i in range(WRITERS)])

    errors = [f"writer {r.index} after {r.calls} call(s): {r.error}" for r in reports if r.error]
    assert errors == []
    assert sorted(r.index for r in reports) == list(range(WRITERS))
    metrics = 0
    with tempfile.TemporaryDirectory() as downloads:
        for report in reports:
            assert report.run_id is not None
            run = client.get_run(report.run_id)
            assert run.info.status == "FINISHED"
            assert run.data.params == {f"p{i}": f"{report.index}-{i}" for i in range(PARAMS)}
            assert (run.data.tags["writer"], run.data.tags["phase"]) == (str(report.index), "done")
            for k, (key, steps) in enumerate([*((key, STEPS) for key in KEYS), (SINGLE_KEY, SINGLE_STEPS)]):
                history = client.get_metric_history(report.run_id, key)
                # Every step once (none lost, none twice), with the value this writer sent for it.
                assert sorted(m.step for m in history) == list(range(steps)), (report.index, key)
                assert all(m.value == expected_value(report.index, k, m.step) for m in history), (report.index, key)
                metrics += len(history)
            note = client.download_artifacts(report.run_id, "notes/writer.txt", f"{downloads}/{report.index}")
            assert Path(note).read_text() == f"writer {report.index}\n"
    assert metrics == WRITERS * (len(KEYS) * STEPS + SINGLE_STEPS)
    calls = sum(r.calls for r in reports)
    print(
        f"\n[tracking] writers={WRITERS} runs={len(reports)} metrics={metrics} calls={calls} "
        f"errors={len(errors)} seconds={seconds:.1f}"
    )


# ------------------------------------------------------------------------------------- concurrent registrations


def register_version(index: int, uri: str, model_uri: str, start: Any, results: Any) -> None:
    """One registering process: ``mlflow.register_model``, the call ``mlops_ray.registry.register_model`` makes."""
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"  # a client retry could hide a failure (or add a version)
    mlflow.set_tracking_uri(uri)
    start.wait(timeout=START_TIMEOUT_S)
    try:
        version = mlflow.register_model(model_uri, MODEL_NAME, tags={"registrant": str(index)})
        results.put((index, int(version.version), None))
    except Exception as exc:
        results.put((index, None, f"{type(exc).__name__}: {exc}"))


def test_four_processes_registering_at_once_get_versions_one_to_four(server: TrackingServer) -> None:
    client = MlflowClient(server.uri)
    experiment_id = client.create_experiment("concurrent-registrations")
    run_id = client.create_run(experiment_id).info.run_id
    model = client.create_logged_model(experiment_id, name="model", source_run_id=run_id)
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "MLmodel").write_text(f"model_id: {model.model_id}\nflavors: {{}}\n")
        client.log_model_artifacts(model.model_id, folder)
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    log_before = server.log.read_text()

    outcomes, seconds = run_together(
        register_version, [(i, server.uri, f"models:/{model.model_id}") for i in range(REGISTRANTS)]
    )

    errors = [f"registrant {index}: {error}" for index, _, error in outcomes if error]
    assert errors == []
    handed_out = {index: version for index, version, _ in outcomes}
    assert sorted(handed_out.values()) == list(range(1, REGISTRANTS + 1))
    stored = client.search_model_versions(f"name = '{MODEL_NAME}'")
    # Each stored version carries the tag of the process that was told that number: no two shared a row.
    assert {int(v.version): v.tags["registrant"] for v in stored} == {v: str(i) for i, v in handed_out.items()}
    collisions = server.log.read_text().removeprefix(log_before).count("Model Version creation error")
    print(
        f"\n[tracking] registrants={REGISTRANTS} versions={','.join(str(v) for v in sorted(handed_out.values()))} "
        f"collisions_retried_by_server={collisions} errors={len(errors)} seconds={seconds:.1f}"
    )


# --------------------------------------------------------------------------------- restart during training


def committed_epochs(database: Any, experiment: str) -> set[int]:
    """Steps with a ``val_loss`` row in the experiment, read from PostgreSQL itself (the server may be down)."""
    rows = database.execute(
        "SELECT DISTINCT m.step FROM metrics m JOIN runs r ON r.run_uuid = m.run_uuid "
        "JOIN experiments e ON e.experiment_id = r.experiment_id WHERE e.name = %s AND m.key = 'val_loss'",
        (experiment,),
    ).fetchall()
    return {int(step) for (step,) in rows}


class RestartDuringTraining(threading.Thread):
    """Once ``KILL_AFTER_EPOCHS`` epochs are in the database: SIGKILL the server, wait 3 s, start it again.

    A thread, so that the training runs in the test's main thread as ``mlops-ray train`` runs it;
    it gives up (touching nothing) if the training ends first, and records what it saw.
    """

    def __init__(self, server: TrackingServer, experiment: str) -> None:
        super().__init__(name="restart-during-training", daemon=True)
        self.server, self.experiment = server, experiment
        self.training_done = threading.Event()
        self.killed_unix: float | None = None
        self.ready_unix: float | None = None
        self.before: set[int] = set()
        self.error: BaseException | None = None

    def run(self) -> None:
        import psycopg

        try:
            with psycopg.connect(self.server.backend, autocommit=True) as database:
                while len(committed_epochs(database, self.experiment)) < KILL_AFTER_EPOCHS:
                    if self.training_done.wait(0.1):
                        return
                self.killed_unix = time.time()
                self.server.kill()
                self.before = committed_epochs(database, self.experiment)  # what the database held at the crash
            time.sleep(3)
            self.server.start()
            self.ready_unix = time.time()
        except BaseException as exc:  # re-raised in the test's thread
            self.error = exc


def test_a_tracking_server_restart_during_training_loses_no_metric(
    ray_cluster: None, server: TrackingServer, tmp_path: Path
) -> None:
    # Imported here, not at the top: the writer processes import this module, and need neither torch nor Ray.
    from rich.console import Console

    from mlops_ray.config import load_config
    from mlops_ray.reporting import StageReporter
    from mlops_ray.train.stage import run_training

    experiment = "restart-during-training"
    config = load_config(
        ROOT / "configs" / "quickstart.yaml",
        [
            f"train.epochs={EPOCHS}",
            "train.num_workers=1",
            f"train.storage_path={tmp_path / 'ray_results'}",
            f"tracking.uri={server.uri}",
            f"tracking.experiment={experiment}",
        ],
    )
    restart = RestartDuringTraining(server, experiment)
    restart.start()
    try:
        outcome = run_training(config, StageReporter(Console(file=io.StringIO())))
        finished_unix = time.time()
    finally:
        restart.training_done.set()
        restart.join(timeout=START_TIMEOUT_S + 60)
    if restart.error is not None:
        raise restart.error
    assert restart.killed_unix is not None and restart.ready_unix is not None, "training ended before the kill"
    assert restart.ready_unix < finished_unix

    client = MlflowClient(server.uri)
    assert client.get_run(outcome.run_id).info.status == "FINISHED"
    lost, duplicated = 0, 0
    for key in EPOCH_METRICS:
        steps = [m.step for m in client.get_metric_history(outcome.run_id, key)]
        lost += len(set(range(1, EPOCHS + 1)) - set(steps))
        duplicated += len(steps) - len(set(steps))
    stamps = {m.step: m.timestamp / 1000 for m in client.get_metric_history(outcome.run_id, "val_loss")}
    after = sorted(set(stamps) - restart.before)
    # Each epoch's batch is stamped just before it is sent, so the longest gap between two epochs is how long
    # the loop stood in one log call; the loop's own count of seconds spent logging says the same from inside.
    gaps = sorted(stamps[step] - stamps[step - 1] for step in range(2, EPOCHS + 1))
    stall, typical = gaps[-1], gaps[len(gaps) // 2]
    logging_s = outcome.trained.final_metrics["mlflow_log_seconds"]
    outage = restart.ready_unix - restart.killed_unix
    logged_after = f"{after[0]}..{after[-1]}" if after else "none"
    print(
        f"\n[tracking] outage {time.strftime('%H:%M:%S', time.localtime(restart.killed_unix))} to "
        f"{time.strftime('%H:%M:%S', time.localtime(restart.ready_unix))}: epochs in the database at the kill "
        f"{sorted(restart.before)}, logged after the restart {logged_after}"
        f"; epochs {typical:.2f} s apart but {stall:.1f} s across the outage; rank 0 spent {logging_s:.1f} s in MLflow"
    )
    print(f"[tracking] restart outage_s={outage:.1f} epochs={EPOCHS} lost={lost} duplicated={duplicated}")
    assert (lost, duplicated) == (0, 0)
    assert after, "no epoch was logged after the restart: the outage did not overlap the training's logging"
    # One log call stood across the whole outage and then returned: the client retried (without retries it raises
    # and the run fails). Rank 0 otherwise spends milliseconds per epoch in MLflow.
    assert stall >= outage - 1, f"epochs at most {stall:.1f} s apart across a {outage:.1f} s outage"
    assert logging_s > outage / 2, f"rank 0 spent {logging_s:.1f} s in MLflow calls during a {outage:.1f} s outage"
