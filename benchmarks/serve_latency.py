"""Serving throughput and latency: our Ray Serve endpoint against a plain FastAPI + uvicorn process.

Why: a model endpoint on Ray Serve pays for an extra hop (HTTP proxy actor -> replica
actor) and, with ``@serve.batch``, for waiting on a batch to fill; in return it can
predict many requests in one forward pass and add replicas. A single uvicorn process
is what a team would otherwise write in an afternoon, so it is the baseline: ours
should not lose much when one client waits on every answer (goal: ours / plain QPS
>= 0.5x at concurrency 1) and should win once requests come in parallel, which is
where batching pays (goal: >= 1.5x at concurrency 32).

The model: the quickstart config (``configs/quickstart.yaml``: scikit-learn's breast
cancer data, 30 numeric features, the 2-layer MLP), really trained by
``mlops_ray.train.training_run.train_and_log`` into a temp SQLite MLflow store with one Ray
Train worker and ``--epochs`` epochs (3 by default: latency does not depend on how
well it learned; ~20 s), then registered by ``register_model`` as ``@champion``, as
``mlops-ray run`` does (without the gate). Both sides serve that one version.

Ours: ``mlops_ray.serve.deploy_model`` on the embedded Ray the model was trained on
(``--ray-cpus`` logical CPUs, no dashboard), i.e. the ``ModelEndpoint`` deployment
(FastAPI ingress, request contract, ``@serve.batch`` predictions in a thread, capture
of sampled requests to Parquet at ``--capture-rate``, default 1.0 as in the config,
Prometheus metrics) behind Serve's HTTP proxy, in two configurations:

- **1 replica**: autoscaling with min = max = 1;
- **autoscaled**: min 1, max ``--max-replicas``, ``target_ongoing_requests``
  ``--target-ongoing``, upscale delay 2 s, look-back 12 s (Serve warns below its 10 s
  metrics interval), downscale delay 600 s (so it never scales down during the run).
  Before each measured point the load runs until the replica count reaches
  ``ceil(concurrency / target)`` (capped at the maximum) or ``--scale-timeout`` passes
  (the seconds it took are in the JSON); the replica counts seen during the measured
  window are recorded (polled from ``serve.status()`` every second).

Both use ``serve.cpus_per_replica`` 0.5, ``--max-batch-size``, ``--batch-wait-ms`` and
``--max-ongoing``; the JSON records every setting used.

Baseline ("plain"): this script with ``--plain-server`` in its own process: uvicorn,
one worker, a minimal FastAPI app whose ``POST /predict`` does the same per-request
work as ours without batching, capture or metrics: ``ServedModel.load`` once at start,
then per request ``contract.parse`` + ``predict`` in the event loop (no thread hop), and
the same JSON answer. Uvicorn's access log is off. It runs with ``OMP_NUM_THREADS=1``,
as Ray sets it for a replica holding less than one CPU, so both predict on one torch
thread. Before measuring, both sides answer the same body and their predictions must
agree (to 1e-6) or the script exits without a result.

Serve's floor ("Serve no-op", ``--no-floor`` skips it): a FastAPI ingress deployment
with ours' replica options that reads the body and returns plain's answer to it
unchanged, measured at the first ``--rows`` value. It is what Serve's HTTP path costs
with no work at all: ours cannot beat it, so when it is below the goal, no setting of
ours reaches the goal on this machine.

Load: this script with ``--load`` in its own process (asyncio + aiohttp, one keep-alive
connection per concurrent client, ``--concurrency`` clients each sending the next
request as soon as the last is answered). Each point runs ``--warmup`` seconds that do
not count, then ``--seconds`` measured: QPS = answers completed in the window / its
length; p50 and p99 over those answers' latencies (send to last byte); non-200 answers
count as errors (and make the point's goal fail). Every request carries ``--rows``
records (test rows of the data set, repeated if needed); several values may be given.

Where the time goes: around each point the driver reads the CPU seconds (``/proc``) of
every process it started, Ray's included, grouped as the plain server, Serve's proxy,
Serve's replicas and the rest of Ray (GCS, raylet, agents, controller); the load
generator reports its own. Divided by the answers of the point (warm-up included), that
is CPU milliseconds per answer: work done per request, idle background included, which
weighs most at concurrency 1.

Machine sharing: everything, the load generator included, shares the machine's CPUs.
Ray starts its workers (the proxy and the replicas among them) at niceness 15, so a
load generator at the default 0 would take CPU from ours and not from plain; the load
generator and the plain server run at ``--nice`` (default 15, as Ray's workers). Ray's
own GCS, raylet and agents keep niceness 0. Order: the plain server's points first (Ray
is up, Serve not yet started), then Serve's floor, then ours with 1 replica, then the
autoscaled deployment (a fresh ``deploy_model`` on a new port). The JSON notes the load
average, the machine and the git state of the code measured.

Goals, judged for every ``--rows`` value on the better of ours' two configurations
(the table shows both): QPS ratio ours / plain >= 0.5x at concurrency 1 and >= 1.5x at
concurrency 32.

    python benchmarks/serve_latency.py [--rows N ...] [--concurrency N ...] [--seconds S] [--warmup S]
                                       [--max-batch-size N] [--batch-wait-ms MS] [--max-ongoing N]
                                       [--capture-rate R] [--max-replicas N] [--target-ongoing N]
                                       [--nice N] [--no-floor] [--epochs N] [--save]

Defaults (rows 1 and 32; 10 s + 2 s a point) take about 6 minutes on 2 CPUs. Prints a
table per ``--rows`` value and one JSON line; ``--save`` also writes it to
benchmarks/results/.
"""

import argparse
import asyncio
import io
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from common import emit, goal_table, machine, verdict  # benchmarks/common.py, next to this script

ROOT = Path(__file__).resolve().parents[1]
GOAL_C1 = 0.5
GOAL_C32 = 1.5
SIDES = ("plain", "ours_1_replica", "ours_autoscaled")
HEADERS = {"plain": "plain", "ours_1_replica": "ours, 1 replica", "ours_autoscaled": "ours, autoscaled"}
FLOOR = "serve_noop"  # Serve's own floor: a no-op FastAPI ingress deployment (first --rows value only)
HEADERS[FLOOR] = "Serve no-op"
UPSCALE_DELAY_S = 2.0
LOOK_BACK_S = 12.0  # above Serve's 10 s metrics interval, which it warns about (and will refuse)
DOWNSCALE_DELAY_S = 600.0
CPUS_PER_REPLICA = 0.5
# Process groups of the CPU accounting, by a marker in the command line; the rest of Ray is "ray_other".
CPU_GROUPS = (("ray::ProxyActor", "serve_proxy"), ("ray::ServeReplica", "serve_replicas"), ("--load", "load_generator"))


# --- the load generator (its own process: --load) -------------------------------------------------------------------


def run_load(url: str, concurrency: int, seconds: float, warmup: float, body_file: str) -> dict[str, Any]:
    """``concurrency`` clients in a closed loop for ``warmup + seconds``; statistics of the measured window only."""
    import aiohttp

    body = Path(body_file).read_bytes()
    answered_overall = [0]  # warm-up included: what the servers' CPU seconds are divided by
    cpu_at_start = time.process_time()  # after the imports: only the generating counts

    async def generate() -> tuple[list[float], Counter[str]]:
        latencies: list[float] = []
        statuses: Counter[str] = Counter()
        connector = aiohttp.TCPConnector(limit=concurrency)
        timeout = aiohttp.ClientTimeout(total=60)
        headers = {"content-type": "application/json"}
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:
            begin = time.perf_counter()
            window_start, window_end = begin + warmup, begin + warmup + seconds

            async def client() -> None:
                while (sent := time.perf_counter()) < window_end:
                    try:
                        async with session.post(url, data=body) as response:
                            await response.read()
                            status = str(response.status)
                    except (aiohttp.ClientError, TimeoutError) as exc:
                        status = type(exc).__name__
                    done = time.perf_counter()
                    answered_overall[0] += 1
                    if window_start <= done < window_end and sent >= window_start:
                        latencies.append(done - sent)
                        statuses[status] += 1
                    elif window_start <= done < window_end:  # sent in the warm-up: counts for QPS, not latency
                        statuses[status] += 1

            await asyncio.gather(*(client() for _ in range(concurrency)))
        return latencies, statuses

    latencies, statuses = asyncio.run(generate())
    latencies.sort()
    total = answered_overall[0]

    def quantile(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else math.nan

    answered = sum(statuses.values())
    return {
        "concurrency": concurrency,
        "seconds": seconds,
        "answers": answered,
        "errors": answered - statuses.get("200", 0),
        "statuses": dict(statuses),
        "qps": answered / seconds,
        "p50_ms": quantile(0.50),
        "p99_ms": quantile(0.99),
        "mean_ms": sum(latencies) / len(latencies) * 1000 if latencies else math.nan,
        "answers_with_warmup": total,
        "load_generator_cpu_s": time.process_time() - cpu_at_start,
    }


# --- the baseline server (its own process: --plain-server) ----------------------------------------------------------


def run_plain_server(port: int, tracking_uri: str, model_ref: str, max_rows: int) -> None:
    """uvicorn, 1 worker: load the version once; per request parse + predict, as a replica does without batching."""
    import mlflow
    import torch
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from mlflow.tracking import MlflowClient
    from pydantic import ValidationError

    from mlops_ray.registry.refs import parse_model_ref
    from mlops_ray.serve.contract import error_details
    from mlops_ray.serve.served_model import ServedModel

    mlflow.set_tracking_uri(tracking_uri)
    model = ServedModel.load(parse_model_ref(model_ref), MlflowClient(tracking_uri), max_rows)
    model.probe()
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        body = await request.body()
        try:
            frame = model.contract.parse(body)
        except ValidationError as error:
            return JSONResponse({"detail": error_details(error)}, status_code=422)
        predictions = model.predict(frame)
        return JSONResponse({"model_name": model.name, "model_version": model.version, "predictions": predictions})

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "model_version": model.version, "torch_threads": torch.get_num_threads()}

    uvicorn.run(app, host="127.0.0.1", port=port, workers=1, log_level="warning", access_log=False)


# --- the driver ------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def niced(niceness: int) -> list[str]:
    """The command prefix running a process at ``niceness``: Ray runs its workers (proxy, replicas) at 15."""
    return ["nice", "-n", str(niceness)] if niceness else []


def process_cpu(plain_pid: int | None) -> dict[int, tuple[str, float]]:
    """CPU seconds so far of every process this driver started (Ray's included), each with its group's name."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    stats: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        group = next((name for marker, name in CPU_GROUPS if marker in command), "ray_other")
        stats[pid] = ("plain" if pid == plain_pid else group, (int(fields[11]) + int(fields[12])) / tick)

    def ours(pid: int) -> bool:
        while pid > 1:
            if pid == os.getpid():
                return True
            pid = parents.get(pid, 0)
        return False

    return {pid: (group, cpu) for pid, (group, cpu) in stats.items() if pid != os.getpid() and ours(pid)}


def cpu_ms_per_answer(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], point: dict[str, Any]
) -> dict[str, float]:
    """CPU milliseconds per answer (warm-up included) by process group, the load generator's own included."""
    used: Counter[str] = Counter()
    for pid, (group, cpu) in after.items():
        used[group] += cpu - before.get(pid, (group, 0.0))[1]
    used["load_generator"] = point["load_generator_cpu_s"]
    answers = max(1, point["answers_with_warmup"])
    per_answer = {group: round(seconds * 1000 / answers, 3) for group, seconds in used.items() if seconds > 0}
    per_answer["total"] = round(sum(per_answer.values()), 3)
    return per_answer


def measure_point(
    url: str, concurrency: int, args: argparse.Namespace, body_file: Path, plain_pid: int | None = None
) -> dict[str, Any]:
    """One point: a fresh load-generator process; its JSON line back, with the CPU each process group spent."""
    command = [*niced(args.nice), sys.executable, __file__, "--load", f"{url}/predict", str(concurrency)]
    command += [str(args.seconds), str(args.warmup), str(body_file)]
    before = process_cpu(plain_pid)
    done = subprocess.run(command, capture_output=True, text=True, timeout=args.seconds + args.warmup + 120)
    after = process_cpu(plain_pid)
    if done.returncode != 0:
        raise SystemExit(f"the load generator failed against {url}: {done.stderr[-2000:]}")
    point = json.loads(done.stdout.strip().splitlines()[-1])
    point["cpu_ms_per_answer"] = cpu_ms_per_answer(before, after, point)
    return point


def describe(point: dict[str, Any]) -> str:
    cpu = point["cpu_ms_per_answer"]
    spent = ", ".join(f"{group} {ms:.2f}" for group, ms in sorted(cpu.items(), key=lambda kv: -kv[1]) if ms >= 0.01)
    return f"{point['qps']:.0f} QPS, p50 {point['p50_ms']:.1f} ms, p99 {point['p99_ms']:.1f} ms; CPU ms/answer: {spent}"


def wait_answering(url: str, timeout_s: float, process: subprocess.Popen | None = None) -> dict[str, Any]:
    import requests

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"the plain server exited with {process.returncode}; see its log")
        try:
            answer = requests.get(f"{url}/healthz", timeout=5)
            if answer.status_code == 200:
                return answer.json()
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} did not answer /healthz within {timeout_s:.0f} s")


@contextmanager
def plain_server(
    port: int, tracking_uri: str, model_ref: str, max_rows: int, log: Path, nice: int
) -> Iterator[dict[str, Any]]:
    command = [*niced(nice), sys.executable, __file__, "--plain-server", str(port), tracking_uri, model_ref]
    command.append(str(max_rows))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # what Ray gives a replica holding < 1 CPU
    with log.open("w") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env)
        try:
            url = f"http://127.0.0.1:{port}"
            yield {**wait_answering(url, 120, process), "pid": process.pid, "url": url}
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def replica_count(app_name: str) -> int:
    from mlops_ray.serve.deploy import running_replicas

    return running_replicas(app_name)


class ReplicaPoller:
    """Replica counts every second from a driver thread while a point runs; ``window`` keeps the measured part."""

    def __init__(self, app_name: str):
        self.app_name = app_name
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with suppress(Exception):  # a status hiccup loses one sample, not the run
                self.samples.append((time.monotonic(), replica_count(self.app_name)))
            self._stop.wait(1.0)

    def __enter__(self) -> "ReplicaPoller":
        self.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def window(self, skip_s: float) -> list[int]:
        return [n for t, n in self.samples if t >= self.started + skip_s]


def scale_up(url: str, app_name: str, concurrency: int, expected: int, args: argparse.Namespace, body: Path) -> float:
    """Load at ``concurrency`` until ``expected`` replicas run (or the timeout); the seconds it took."""
    if replica_count(app_name) >= expected:
        return 0.0
    command = [*niced(args.nice), sys.executable, __file__, "--load", f"{url}/predict", str(concurrency)]
    command += [str(args.scale_timeout), "0", str(body)]
    start = time.monotonic()
    load = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.monotonic() - start < args.scale_timeout and replica_count(app_name) < expected:
            time.sleep(0.5)
    finally:
        load.terminate()
        load.wait()
    return time.monotonic() - start


def serving_config(args: argparse.Namespace, workdir: Path, port: int, max_replicas: int) -> Any:
    from mlops_ray.config import load_config

    return load_config(
        ROOT / "configs" / "quickstart.yaml",
        [
            f"tracking.uri=sqlite:///{workdir / 'mlflow.db'}",
            f"tracking.artifact_location={workdir / 'artifacts'}",
            "tracking.experiment=serve-latency",
            "train.num_workers=1",
            f"train.epochs={args.epochs}",
            f"train.storage_path={workdir / 'ray_results'}",
            f"ray.num_cpus={args.ray_cpus}",
            "ray.include_dashboard=false",
            f"serve.port={port}",
            f"serve.cpus_per_replica={CPUS_PER_REPLICA}",
            f"serve.capture.path={workdir / 'capture'}",
            f"serve.capture.sample_rate={args.capture_rate}",
            f"serve.max_ongoing_requests={args.max_ongoing}",
            f"serve.batching.max_batch_size={args.max_batch_size}",
            f"serve.batching.batch_wait_timeout_s={args.batch_wait_ms / 1000}",
            "serve.autoscaling.min_replicas=1",
            f"serve.autoscaling.max_replicas={max_replicas}",
            f"serve.autoscaling.target_ongoing_requests={args.target_ongoing}",
            f"serve.autoscaling.upscale_delay_s={UPSCALE_DELAY_S}",
            f"serve.autoscaling.downscale_delay_s={DOWNSCALE_DELAY_S}",
            f"serve.autoscaling.look_back_period_s={LOOK_BACK_S}",
        ],
    )


def train_and_register(config: Any) -> tuple[str, Any, dict[str, float], float]:
    """The quickstart model, trained for real and registered @champion; its ref, data, test metrics and seconds."""
    from rich.console import Console

    from mlops_ray.config import dump_config
    from mlops_ray.registry.lineage import version_tags
    from mlops_ray.registry.model_store import register_model
    from mlops_ray.reporting import StageReporter
    from mlops_ray.runtime import connect_tracking
    from mlops_ray.train.training_run import train_and_log

    start = time.perf_counter()
    connect_tracking(config.tracking)
    reporter = StageReporter(Console(file=io.StringIO()))
    outcome = train_and_log(config, reporter, config.tracking.uri)
    name, alias = config.registry.model_name, config.registry.alias
    register_model(outcome.model_uri, name, alias, version_tags(outcome.data, dump_config(config)))
    return f"{name}@{alias}", outcome.data, outcome.test_metrics, time.perf_counter() - start


def request_bodies(data: Any, rows_values: list[int], workdir: Path) -> dict[int, Path]:
    """One JSON body per ``--rows`` value, from the test split (repeated when it has fewer rows)."""
    from mlops_ray.serve.contract import records_from_frame

    test = data.test_rows(max(rows_values))
    records = records_from_frame(test, list(data.features))
    bodies = {}
    for rows in rows_values:
        chosen = [records[i % len(records)] for i in range(rows)]
        bodies[rows] = workdir / f"body-{rows}.json"
        bodies[rows].write_text(json.dumps({"records": chosen}))
    return bodies


def same_predictions(url_a: str, url_b: str, body: Path) -> bool:
    import requests

    answers = []
    for url in (url_a, url_b):
        response = requests.post(f"{url}/predict", data=body.read_bytes(), timeout=30)
        if response.status_code != 200:
            raise SystemExit(f"{url}/predict answered HTTP {response.status_code}: {response.text[:300]}")
        answers.append(response.json())
    a, b = (answer["predictions"] for answer in answers)
    if len(a) != len(b) or answers[0]["model_version"] != answers[1]["model_version"]:
        return False
    for left, right in zip(a, b, strict=True):
        if left["predicted_class"] != right["predicted_class"]:
            return False
        if any(abs(left["probabilities"][k] - right["probabilities"][k]) > 1e-6 for k in left["probabilities"]):
            return False
    return True


def measure_ours(
    side: str, args: argparse.Namespace, workdir: Path, model_ref: str, bodies: dict[int, Path], plain: dict[str, Any]
) -> dict[str, Any]:
    """Deploy ours (1 replica, or autoscaled), check it answers as plain does, measure every point, shut it down."""
    from mlops_ray.serve import deploy_model

    max_replicas = 1 if side == "ours_1_replica" else args.max_replicas
    config = serving_config(args, workdir, free_port(), max_replicas)
    app_name = config.serve.app_name
    points: dict[int, dict[int, dict[str, Any]]] = {rows: {} for rows in args.rows}
    scale_up_s: dict[str, float] = {}
    endpoint = deploy_model(config, config.tracking.uri, model_ref)
    try:
        for rows in args.rows:
            if not same_predictions(plain["url"], endpoint.url, bodies[rows]):
                raise SystemExit(f"{side} and plain answered differently to the same {rows}-row body")
        for rows in args.rows:
            for concurrency in args.concurrency:
                if max_replicas > 1:
                    wanted = min(max_replicas, max(1, math.ceil(concurrency / args.target_ongoing)))
                    took = scale_up(endpoint.url, app_name, concurrency, wanted, args, bodies[rows])
                    scale_up_s[f"rows={rows},c={concurrency}"] = round(took, 1)
                with ReplicaPoller(app_name) as poller:
                    point = measure_point(endpoint.url, concurrency, args, bodies[rows], plain["pid"])
                seen = poller.window(args.warmup) or [replica_count(app_name)]
                point["replicas"] = {"min": min(seen), "max": max(seen)}
                points[rows][concurrency] = point
                print(f"rows {rows} {side} c={concurrency}: {describe(point)}; replicas {min(seen)}-{max(seen)}")
    finally:
        endpoint.shutdown()  # serve.shutdown(): the next deployment starts on a fresh proxy and port
    return {"points": points, "scale_up_s": scale_up_s}


def measure_floor(args: argparse.Namespace, body: Path, plain: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """Serve's floor: a no-op FastAPI ingress deployment, measured like ours.

    One replica with ours' CPUs and max_ongoing_requests; it reads the body and returns plain's answer to it
    unchanged: no parsing, no model, no batching, capture or metrics.
    """
    import requests
    from fastapi import FastAPI, Request
    from fastapi.responses import Response
    from ray import serve

    answer = requests.post(f"{plain['url']}/predict", data=body.read_bytes(), timeout=30).content
    api = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @serve.deployment(max_ongoing_requests=args.max_ongoing, ray_actor_options={"num_cpus": CPUS_PER_REPLICA})
    @serve.ingress(api)
    class NoOp:
        @api.post("/predict")
        async def predict(self, request: Request) -> Response:
            await request.body()
            return Response(answer, media_type="application/json")

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    points = {}
    try:
        serve.run(NoOp.bind(), name=FLOOR, route_prefix="/")
        for concurrency in args.concurrency:
            point = measure_point(f"http://127.0.0.1:{port}", concurrency, args, body, plain["pid"])
            point["replicas"] = {"min": 1, "max": 1}
            points[concurrency] = point
            print(f"rows {args.rows[0]} {FLOOR} c={concurrency}: {describe(point)}")
    finally:
        serve.shutdown()
    return points


def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from mlops_ray.runtime import quiet_library_logs, ray_session

    quiet_library_logs()
    config = serving_config(args, workdir, free_port(), 1)
    points: dict[int, dict[str, dict[int, dict[str, Any]]]] = {r: {s: {} for s in SIDES} for r in args.rows}
    extra: dict[str, Any] = {"scale_up_s": {}}
    with ray_session(config.ray):
        model_ref, data, test_metrics, train_s = train_and_register(config)
        extra |= {"model_ref": model_ref, "test_metrics": test_metrics, "train_and_register_s": round(train_s, 1)}
        bodies = request_bodies(data, args.rows, workdir)
        port, max_rows = free_port(), config.serve.max_rows_per_request
        with plain_server(port, config.tracking.uri, model_ref, max_rows, workdir / "plain.log", args.nice) as plain:
            extra["plain_torch_threads"] = plain["torch_threads"]
            for rows in args.rows:
                for concurrency in args.concurrency:
                    point = measure_point(plain["url"], concurrency, args, bodies[rows], plain["pid"])
                    points[rows]["plain"][concurrency] = point
                    print(f"rows {rows} plain c={concurrency}: {describe(point)}")
            if args.floor:
                points[args.rows[0]][FLOOR] = measure_floor(args, bodies[args.rows[0]], plain)
            for side in SIDES[1:]:
                ours = measure_ours(side, args, workdir, model_ref, bodies, plain)
                for rows in args.rows:
                    points[rows][side] = ours["points"][rows]
                extra["scale_up_s"] |= ours["scale_up_s"]
    extra["points"] = points
    extra["same_predictions"] = True  # measure_ours exits otherwise
    return extra


# --- the report ------------------------------------------------------------------------------------------------------


def git_state() -> str:
    """The commit measured, ``-dirty`` when the working tree had changes."""
    described = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return described.stdout.strip() or "unknown"


def rounded(point: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in point.items()}


def report(args: argparse.Namespace, measured: dict[str, Any], load: tuple[float, float]) -> dict[str, Any]:
    from rich.console import Console

    points = measured["points"]
    ratios: dict[int, dict[str, dict[int, float]]] = {}
    goals: dict[int, dict[str, Any]] = {}
    for rows in args.rows:
        plain = points[rows]["plain"]
        ratios[rows] = {
            side: {c: points[rows][side][c]["qps"] / plain[c]["qps"] for c in args.concurrency} for side in SIDES[1:]
        }
        goals[rows] = {}
        for concurrency, goal in ((1, GOAL_C1), (32, GOAL_C32)):
            if concurrency not in args.concurrency:
                continue
            best = max(SIDES[1:], key=lambda s, c=concurrency: ratios[rows][s][c])
            errors = sum(points[rows][s][concurrency]["errors"] for s in SIDES)
            met = ratios[rows][best][concurrency] >= goal and errors == 0
            goals[rows][f"c{concurrency}"] = {
                "goal": goal,
                "best": best,
                "ratio": round(ratios[rows][best][concurrency], 3),
                "met": met,
            }

        shown = [*SIDES, *([FLOOR] if FLOOR in points[rows] else [])]
        title = (
            f"rows={rows} per request, {args.seconds:g} s a point after {args.warmup:g} s warm-up; batch "
            f"{args.max_batch_size}, wait {args.batch_wait_ms:g} ms, max_ongoing {args.max_ongoing}, "
            f"capture {args.capture_rate:g}"
        )
        table = goal_table(title, [HEADERS[s] for s in shown])
        for concurrency in args.concurrency:
            row = [points[rows][s][concurrency] for s in shown]
            table.add_row(f"c={concurrency} QPS", *(f"{p['qps']:,.0f}" for p in row))
            table.add_row("  p50 / p99 ms", *(f"{p['p50_ms']:.1f} / {p['p99_ms']:.1f}" for p in row))
            table.add_row("  CPU ms / answer", *(f"{p['cpu_ms_per_answer']['total']:.2f}" for p in row))
            if any(p["errors"] for p in row):
                table.add_row("  errors", *(str(p["errors"]) for p in row))
            spans = [
                f"{r['min']}" if r["min"] == r["max"] else f"{r['min']}-{r['max']}"
                for r in (p["replicas"] for p in row[1:])
            ]
            table.add_row("  replicas", "", *spans)
            ratio_cells = ["1x", *(f"{p['qps'] / row[0]['qps']:.2f}x" for p in row[1:])]
            goal = goals[rows].get(f"c{concurrency}")
            if goal is None:
                table.add_row("  QPS vs plain", *ratio_cells)
            else:
                table.add_row("  QPS vs plain", *ratio_cells, f">= {goal['goal']}x (best ours)", verdict(goal["met"]))
        Console(width=140).print(table)

    print(f"load average {load[0]:.1f} -> {load[1]:.1f}; model {measured['model_ref']}")
    print(f"seconds of load before the autoscaled points reached their replica count: {measured['scale_up_s']}")
    all_met = all(g["met"] for per_rows in goals.values() for g in per_rows.values())
    return {
        "benchmark": "serve_latency",
        "rows": args.rows,
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "warmup_s": args.warmup,
        "settings": {
            "max_batch_size": args.max_batch_size,
            "batch_wait_timeout_s": args.batch_wait_ms / 1000,
            "max_ongoing_requests": args.max_ongoing,
            "cpus_per_replica": CPUS_PER_REPLICA,
            "ray_num_cpus": args.ray_cpus,
            "capture_sample_rate": args.capture_rate,
            "autoscaled": {
                "min_replicas": 1,
                "max_replicas": args.max_replicas,
                "target_ongoing_requests": args.target_ongoing,
                "upscale_delay_s": UPSCALE_DELAY_S,
                "look_back_period_s": LOOK_BACK_S,
                "downscale_delay_s": DOWNSCALE_DELAY_S,
                "scale_timeout_s": args.scale_timeout,
            },
            "plain": "uvicorn 1 worker, async route, no access log, OMP_NUM_THREADS=1",
            "plain_torch_threads": measured["plain_torch_threads"],
            "niceness_load_and_plain": args.nice,
        },
        "model": {
            "ref": measured["model_ref"],
            "trained_epochs": args.epochs,
            "test_metrics": {k: round(v, 4) for k, v in measured["test_metrics"].items()},
            "train_and_register_s": measured["train_and_register_s"],
        },
        "same_predictions": measured["same_predictions"],
        "points": {
            str(rows): {side: {str(c): rounded(p) for c, p in per_side.items()} for side, per_side in per_rows.items()}
            for rows, per_rows in points.items()
        },
        "serve_noop": f"measured at rows={args.rows[0]} only" if args.floor else "not measured (--no-floor)",
        "qps_ratio_vs_plain": {
            str(rows): {side: {str(c): round(v, 3) for c, v in per.items()} for side, per in per_rows.items()}
            for rows, per_rows in ratios.items()
        },
        "scale_up_s": measured["scale_up_s"],
        "goals": {str(rows): per_rows for rows, per_rows in goals.items()},
        "goal_met": all_met,
        "load_average_1min": {"before": round(load[0], 2), "after": round(load[1], 2)},
        **machine(),
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--load":  # URL CONCURRENCY SECONDS WARMUP BODY_FILE
        url, concurrency, seconds, warmup, body_file = sys.argv[2:7]
        print(json.dumps(run_load(url, int(concurrency), float(seconds), float(warmup), body_file)))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--plain-server":  # PORT TRACKING_URI MODEL_REF MAX_ROWS
        port, tracking_uri, model_ref, max_rows = sys.argv[2:6]
        run_plain_server(int(port), tracking_uri, model_ref, int(max_rows))
        return

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 32], help="records per request (one or more)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32], help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per point")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each point")
    parser.add_argument("--max-batch-size", type=int, default=16, help="serve.batching.max_batch_size")
    parser.add_argument("--batch-wait-ms", type=float, default=0.0, help="serve.batching.batch_wait_timeout_s, in ms")
    parser.add_argument("--max-ongoing", type=int, default=32, help="serve.max_ongoing_requests")
    parser.add_argument("--max-replicas", type=int, default=2, help="max_replicas of the autoscaled deployment")
    parser.add_argument("--target-ongoing", type=float, default=4.0, help="target_ongoing_requests when autoscaled")
    parser.add_argument("--scale-timeout", type=float, default=45.0, help="most seconds to wait for the scale-up")
    parser.add_argument("--capture-rate", type=float, default=1.0, help="serve.capture.sample_rate (ours only)")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs of the served model")
    parser.add_argument("--ray-cpus", type=float, default=4.0, help="logical CPUs of the embedded Ray")
    parser.add_argument(
        "--nice", type=int, default=15, help="niceness of the load generator and the plain server (Ray's workers: 15)"
    )
    parser.add_argument(
        "--no-floor", dest="floor", action="store_false", help="skip Serve's no-op deployment (its floor)"
    )
    parser.add_argument("--save", action="store_true", help="write the JSON to benchmarks/results/")
    args = parser.parse_args()
    if min(*args.rows, *args.concurrency, args.max_batch_size, args.max_ongoing, args.max_replicas, args.epochs) < 1:
        parser.error("--rows, --concurrency, --max-batch-size, --max-ongoing, --max-replicas, --epochs must be >= 1")
    if args.seconds <= 0 or args.warmup < 0 or args.batch_wait_ms < 0:
        parser.error("--seconds must be > 0; --warmup and --batch-wait-ms >= 0")

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    load_before = os.getloadavg()[0]  # the machine may be shared: say how busy it was
    with tempfile.TemporaryDirectory() as tmp:
        measured = measure(args, Path(tmp))
    record = report(args, measured, (load_before, os.getloadavg()[0]))
    emit(record, "serve_latency", args.save)


if __name__ == "__main__":
    main()
