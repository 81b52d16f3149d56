"""The ``ray job submit`` entrypoints are thin: same config errors, same exit codes; the upload stays small."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from ray.runtime_env import RuntimeEnv

ROOT = Path(__file__).resolve().parents[2]
STAGES = ["pipeline", "train", "tune", "promote", "deploy", "monitor"]


@pytest.mark.parametrize("stage", STAGES)
def test_job_reports_a_bad_config_like_the_cli(tmp_path: Path, stage: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("serve:\n  prot: 1\n")
    done = subprocess.run(
        [sys.executable, str(ROOT / "jobs" / f"{stage}.py"), "--config", str(bad)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "did you mean 'serve.port'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("stage", STAGES)
def test_job_requires_a_config(stage: str) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "jobs" / f"{stage}.py")], capture_output=True, text=True)
    assert done.returncode == 2
    assert "--config" in done.stderr


def test_runtime_env_uploads_the_code_and_not_the_local_state() -> None:
    spec = yaml.safe_load((ROOT / "jobs" / "runtime_env.yaml").read_text())
    env = RuntimeEnv(**spec)  # Ray's own validation of the fields
    assert env["working_dir"] == "." and env["env_vars"]["PYTHONPATH"] == "."
    for heavy in (".venv", ".git", "mlflow.db", "mlartifacts", ".mlops-ray", "benchmarks"):
        assert heavy in spec["excludes"], heavy


def test_the_job_upload_holds_what_a_job_runs_and_stays_small(tmp_path: Path) -> None:
    """Packed by Ray's own code, as ``ray job submit`` packs the working directory."""
    from ray._private.runtime_env.packaging import create_package

    spec = yaml.safe_load((ROOT / "jobs" / "runtime_env.yaml").read_text())
    package = tmp_path / "upload.zip"
    create_package(str(ROOT), package, include_parent_dir=False, excludes=spec["excludes"], include_gitignore=True)
    names = set(zipfile.ZipFile(package).namelist())
    assert {"mlops_ray/cli/__init__.py", "jobs/common.py", "jobs/pipeline.py", "configs/quickstart.yaml"} <= names
    assert not {name for name in names if name.split("/")[0] in ("tests", "benchmarks", "docs", ".venv", ".git")}
    # Ray stores the files uncompressed: the source itself (~520 kB); twice that means something heavy came along
    assert package.stat().st_size < 1_000_000, package.stat().st_size
