"""Provenance without Ray: the tags every version carries, and the config a reproduction starts from.

MLflow is real (a SQLite file in a temp folder); no Ray is started.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from mlops_ray.config import dump_config, load_config
from mlops_ray.errors import ReproduceError
from mlops_ray.registry.lineage import provenance_tags, ray_job_submission_id
from mlops_ray.train.reproduce import recorded_config

ROOT = Path(__file__).resolve().parents[2]


def test_a_ray_job_entrypoint_is_tagged_with_its_submission_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR", raising=False)
    assert ray_job_submission_id() is None and "ray.job_submission_id" not in provenance_tags()
    job_config = {"runtime_env": {}, "metadata": {"job_submission_id": "raysubmit_abc123"}}
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps(job_config))  # what Ray's job supervisor sets
    assert provenance_tags()["ray.job_submission_id"] == "raysubmit_abc123"
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", "not json")
    assert ray_job_submission_id() is None


def test_versions_record_packages_and_the_git_commit_of_the_working_directory() -> None:
    tags = provenance_tags()
    for package in ("mlops-ray", "ray", "mlflow", "torch", "scikit-learn", "pyarrow", "python"):
        assert tags[f"{package}.version"][0].isdigit(), package
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    if head.returncode != 0:
        pytest.skip("the checkout is not a git repository")
    assert tags["git.commit"] == head.stdout.strip() and tags["git.dirty"] in ("true", "false")


def test_a_trial_is_reproduced_from_its_sweeps_config_with_its_parameters_and_epochs(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("x", artifact_location=(tmp_path / "artifacts").as_uri())
    sweep_config = load_config(ROOT / "configs" / "sweep.yaml")
    parent = client.create_run(experiment, tags={"mlops_ray.stage": "tune"}).info.run_id
    client.log_text(parent, dump_config(sweep_config), "config.yaml")
    tags = {"mlops_ray.stage": "trial", "mlflow.parentRunId": parent}
    trial = client.create_run(experiment, tags=tags).info.run_id
    client.log_param(trial, "train.lr", "0.0042")
    client.log_param(trial, "model.width", "16")
    for epoch in (1, 2, 3):  # stopped by ASHA after 3 of the sweep's epochs
        client.log_metric(trial, "val_loss", 1.0 / epoch, step=epoch)
    mlflow.set_tracking_uri(uri)
    config = recorded_config(client, client.get_run(trial), uri)
    assert config.tune is None and config.train.lr == 0.0042 and config.model.width == 16
    assert config.train.epochs == 3 and config.tracking.uri == uri
    assert config.data == sweep_config.data


def test_a_run_without_a_recorded_config_cannot_be_reproduced(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("x", artifact_location=(tmp_path / "artifacts").as_uri())
    run = client.create_run(experiment).info.run_id
    with pytest.raises(ReproduceError, match=r"has no config\.yaml artifact"):
        recorded_config(client, client.get_run(run), uri)
