"""``mlops-ray run --serve`` exactly as a user types it: a subprocess with its own embedded Ray.

This is the one test that starts a second Ray. It waits for the summary, calls the
endpoint that ``--serve`` keeps up over real HTTP, presses Ctrl-C (SIGINT), and checks
the clean exit (0), that the endpoint is gone, and that the default tracking store landed
in the working directory. ``mlops-ray serve`` then serves the registered champion alone,
and a client probes its HTTP contract (metadata, predictions, malformed requests).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import requests
from mlflow.tracking import MlflowClient

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
READY = "press Ctrl-C to stop"
pytestmark = pytest.mark.slow


@contextlib.contextmanager
def serving(command: list[str], cwd: Path, env: dict[str, str], log: Path, timeout_s: float) -> Iterator[None]:
    """Run a serving command until it prints that it serves; on exit press Ctrl-C and require exit 0."""
    with log.open("w") as sink:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + timeout_s
            while READY not in log.read_text():
                assert process.poll() is None, log.read_text()[-4000:]
                assert time.monotonic() < deadline, f"no endpoint within {timeout_s:.0f} s"
                time.sleep(1)
            yield
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=120) == 0
        finally:
            if process.poll() is None:
                process.kill()


def test_mlops_ray_run_serve_from_a_fresh_directory_until_ctrl_c(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
    env["PYTHONUNBUFFERED"] = "1"
    port = free_port()
    cli = Path(sys.executable).with_name("mlops-ray")
    command = [
        str(cli), "run", str(ROOT / "configs" / "quickstart.yaml"), "--serve",
        "--set", "train.epochs=2", "--set", "train.num_workers=0",  # the command is under test, not DDP
        "--set", f"serve.port={port}", "--set", "ray.include_dashboard=false",
    ]  # fmt: skip
    log = tmp_path / "output.log"
    with serving(command, tmp_path, env, log, timeout_s=600):
        meta = requests.get(f"http://127.0.0.1:{port}/metadata", timeout=10).json()
        row = {feature["name"]: 0.0 for feature in meta["features"]}
        answer = requests.post(f"http://127.0.0.1:{port}/predict", json={"records": [row]}, timeout=10)
        assert answer.status_code == 200
        assert answer.json()["model_version"] == "1"
    output = log.read_text()
    assert "quickstart-breast-cancer version 1 @champion" in output
    assert "true:" in output and "Traceback" not in output
    assert "SIGINT received: stopping the endpoint." in output
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert str(client.get_model_version_by_alias("quickstart-breast-cancer", "champion").version) == "1"
    assert (tmp_path / "mlartifacts").is_dir()
    # Both predictions (the pipeline's own and this test's) were captured, and flushed when Serve shut down.
    captured = pq.read_table(tmp_path / ".mlops-ray" / "capture", partitioning="hive").to_pandas()
    assert len(captured) == 2 and set(captured["model_version"].astype(str)) == {"1"}

    # `mlops-ray serve` on the version that `run` registered: the endpoint alone, until Ctrl-C.
    serve_log = tmp_path / "serve.log"
    command = [
        str(cli), "serve", str(ROOT / "configs" / "quickstart.yaml"),
        "--set", f"serve.port={port}", "--set", "ray.include_dashboard=false",
    ]  # fmt: skip
    with serving(command, tmp_path, env, serve_log, timeout_s=300):
        assert_the_champion_contract(f"http://127.0.0.1:{port}", row)
    served = serve_log.read_text()
    assert "quickstart-breast-cancer version 1" in served and "SIGINT received" in served, served
    assert "Traceback" not in served


def assert_the_champion_contract(url: str, row: dict[str, float]) -> None:
    """What a client of the served quickstart champion gets: predictions, and a 422 for each malformed request."""
    assert requests.get(f"{url}/metadata", timeout=10).json()["model_version"] == "1"
    ok = requests.post(f"{url}/predict", json={"records": [row, row]}, timeout=10)
    assert ok.status_code == 200 and ok.json()["model_version"] == "1"
    assert len(ok.json()["predictions"]) == 2

    missing = {name: value for name, value in row.items() if name != "mean_radius"}
    bad = requests.post(f"{url}/predict", json={"records": [missing]}, timeout=10)
    assert bad.status_code == 422
    assert "mean_radius" in bad.text and "Traceback" not in bad.text
    extra = requests.post(f"{url}/predict", json={"records": [row], "x": 1}, timeout=10)
    assert extra.status_code == 422
    not_a_number = requests.post(f"{url}/predict", json={"records": [{**row, "mean_radius": "a"}]}, timeout=10)
    assert not_a_number.status_code == 422
    empty = requests.post(f"{url}/predict", json={"records": []}, timeout=10)
    assert empty.status_code == 422


def test_serve_with_an_unknown_model_fails_before_starting_ray(tmp_path: Path) -> None:
    cli = Path(sys.executable).with_name("mlops-ray")
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
    command = [str(cli), "serve", str(ROOT / "configs" / "quickstart.yaml"), "--model", "nope@champion"]
    finished = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 1, finished.stdout + finished.stderr
    assert "no registered model is named 'nope'" in finished.stderr and "Traceback" not in finished.stderr
    assert "connect" not in finished.stdout  # the registry was asked before any Ray started
