"""The drift actions fail loudly and by name: no webhook, an unreachable one, a config the job cannot see."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_ray.config.monitor import MonitorConfig
from mlops_ray.errors import ConfigError, ServiceUnavailableError
from mlops_ray.monitor.actions import WEBHOOK_ENV, post_alert, submit_retraining
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_an_alert_without_a_webhook_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WEBHOOK_ENV, raising=False)
    with pytest.raises(ConfigError, match="no webhook is configured") as refused:
        post_alert(MonitorConfig(on_drift="alert"), {"drifted": True})
    assert WEBHOOK_ENV in str(refused.value)


def test_an_undeliverable_alert_is_an_error_not_silence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WEBHOOK_ENV, f"http://127.0.0.1:{free_port()}/hook")  # nobody listens there
    with pytest.raises(ServiceUnavailableError, match="could not be delivered"):
        post_alert(MonitorConfig(on_drift="alert"), {"drifted": True})


def test_a_webhook_must_be_http() -> None:
    with pytest.raises(ValueError, match="webhook_url must be an http"):
        MonitorConfig(webhook_url="ftp://example.org/x")


def test_retraining_refuses_a_config_outside_the_uploaded_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(ROOT)
    outside = tmp_path / "elsewhere.yaml"
    with pytest.raises(ConfigError, match="is outside it"):
        submit_retraining(MonitorConfig(on_drift="retrain"), str(outside), [], {})


def test_retraining_needs_the_job_files_in_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"jobs/runtime_env\.yaml"):
        submit_retraining(MonitorConfig(on_drift="retrain"), "configs/quickstart.yaml", [], {})
