"""Where the tracking store and Ray come from: config, then environment, then default."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_ray import settings
from mlops_ray.errors import ConfigError


def test_tracking_defaults_to_sqlite_in_cwd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv(settings.RAY_JOB_MARKER, raising=False)
    monkeypatch.chdir(tmp_path)
    assert settings.tracking_uri(None) == f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_tracking_env_beats_default_config_beats_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert settings.tracking_uri(None) == "http://127.0.0.1:5999"
    assert settings.tracking_uri("sqlite:///x.db") == "sqlite:///x.db"


def test_a_ray_job_without_a_tracking_server_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Inside ``ray job submit`` the working directory is a temporary copy: a SQLite file there would vanish."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv(settings.RAY_JOB_MARKER, '{"runtime_env": {}}')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as refused:
        settings.tracking_uri(None)
    assert "runs as a Ray job" in str(refused.value) and "MLFLOW_TRACKING_URI" in str(refused.value)
    assert not (tmp_path / "mlflow.db").exists()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")  # named by the cluster: used
    assert settings.tracking_uri(None) == "http://mlflow:5000"
    assert settings.tracking_uri("sqlite:////shared/mlflow.db") == "sqlite:////shared/mlflow.db"


def test_ray_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert settings.ray_address(None) is None
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    assert settings.ray_address(None) == "127.0.0.1:6379"
    assert settings.ray_address("auto") == "auto"
