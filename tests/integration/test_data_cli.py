"""``mlops-ray data fingerprint|profile`` on the shared Ray, as a user reads them."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlops_ray.cli import app
from mlops_ray.config import load_config
from mlops_ray.data.stage import fingerprint_source

pytestmark = pytest.mark.usefixtures("ray_cluster")
QUICKSTART = str(Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml")
runner = CliRunner()


def test_fingerprint_command_prints_the_digest() -> None:
    _, expected = fingerprint_source(load_config(QUICKSTART))
    result = runner.invoke(app, ["data", "fingerprint", QUICKSTART])
    assert result.exit_code == 0, result.output
    assert expected.digest in result.output
    assert "569" in result.output


def test_profile_command_lists_every_column() -> None:
    result = runner.invoke(app, ["data", "profile", QUICKSTART, "--set", "data.source=synthetic:classification"])
    assert result.exit_code == 0, result.output
    for column in ("num_0", "cat_1", "label", "categorical"):
        assert column in result.output


def test_data_command_on_missing_file_is_one_paragraph() -> None:
    result = runner.invoke(app, ["data", "profile", QUICKSTART, "--set", "data.source=nope.csv"])
    assert result.exit_code == 1
    assert "data.source='nope.csv': no such file or directory" in result.output
    assert "Traceback" not in result.output
