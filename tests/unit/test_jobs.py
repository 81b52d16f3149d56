"""The ``ray job submit`` entrypoints are thin: same config errors, same exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_pipeline_job_reports_a_bad_config_like_the_cli(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("serve:\n  prot: 1\n")
    done = subprocess.run(
        [sys.executable, str(ROOT / "jobs" / "pipeline.py"), "--config", str(bad)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "did you mean 'serve.port'" in done.stderr
    assert "Traceback" not in done.stderr


def test_pipeline_job_requires_a_config() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "jobs" / "pipeline.py")], capture_output=True, text=True)
    assert done.returncode == 2
    assert "--config" in done.stderr
