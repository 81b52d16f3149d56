"""Where the tracking store and Ray come from: config, then environment, then default."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_ray import settings


def test_tracking_defaults_to_sqlite_in_cwd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert settings.tracking_uri(None) == f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_tracking_env_beats_default_config_beats_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert settings.tracking_uri(None) == "http://127.0.0.1:5999"
    assert settings.tracking_uri("sqlite:///x.db") == "sqlite:///x.db"


def test_ray_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert settings.ray_address(None) is None
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    assert settings.ray_address(None) == "127.0.0.1:6379"
    assert settings.ray_address("auto") == "auto"
