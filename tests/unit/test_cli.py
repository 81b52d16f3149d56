"""The CLI as a user meets it: exit codes and one readable paragraph, never a traceback.

The connection failures are checked against loopback ports where nothing listens;
they fail before any Ray is started, so these stay unit tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlops_ray.cli import app
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = str(ROOT / "configs" / "quickstart.yaml")
runner = CliRunner()


def test_config_show_prints_resolved_config_with_overrides() -> None:
    result = runner.invoke(app, ["config", "show", QUICKSTART, "--set", "train.epochs=3"])
    assert result.exit_code == 0, result.output
    assert "epochs: 3" in result.output
    assert "source: sklearn:breast_cancer" in result.output
    assert "# tracking URI in effect:" in result.output


def test_bad_config_exits_2_with_one_paragraph(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochz: 3\n")
    result = runner.invoke(app, ["run", str(bad)])
    assert result.exit_code == 2
    assert "did you mean 'train.epochs'" in result.output
    assert "Traceback" not in result.output


def test_missing_config_file() -> None:
    result = runner.invoke(app, ["config", "show", "no/such.yaml"])
    assert result.exit_code == 2
    assert "no/such.yaml: config file not found" in result.output


def test_unreachable_tracking_server_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["run", QUICKSTART, "--set", f"tracking.uri={uri}"])
    assert result.exit_code == 1
    assert f"tracking.uri={uri}" in result.output
    assert "does not answer" in result.output
    assert "Traceback" not in result.output


def test_unreachable_ray_address_fails_fast(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    address = f"127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["run", QUICKSTART, "--set", f"ray.address={address}"])
    assert result.exit_code == 1
    assert f"ray.address={address}: no Ray cluster answers" in result.output
    assert "Traceback" not in result.output


def test_no_arguments_shows_help() -> None:
    result = runner.invoke(app, [])
    assert "run" in result.output and "config" in result.output
