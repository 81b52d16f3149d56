"""``mlops-ray run`` exactly as a user types it: a subprocess with its own embedded Ray.

This is the one test that starts a second Ray; it checks the exit code, the printed
summary and that the default tracking store lands in the working directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_mlops_ray_run_quickstart_from_a_fresh_directory(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
    cli = Path(sys.executable).with_name("mlops-ray")
    command = [
        str(cli), "run", str(ROOT / "configs" / "quickstart.yaml"),
        "--set", "train.epochs=2", "--set", f"serve.port={free_port()}", "--set", "ray.include_dashboard=false",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "quickstart-breast-cancer version 1 @champion" in output
    assert "prediction" in output and "true:" in output
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert str(client.get_model_version_by_alias("quickstart-breast-cancer", "champion").version) == "1"
    assert (tmp_path / "mlartifacts").is_dir()
