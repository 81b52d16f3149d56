"""Training on real Ray Train and MLflow: fault tolerance, resume, determinism, early stopping, checkpoints.

Every run is small (a generated table of 600 rows, a few epochs) so the behaviours,
not the accuracy, are what the tests look at. Faults are injected deterministically
with ``train.fault_injection``: one rank raises once at the start of an epoch.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from rich.console import Console
from typer.testing import CliRunner

from mlops_ray.cli import app
from mlops_ray.config import Config, load_config
from mlops_ray.errors import TrainingError
from mlops_ray.reporting import StageReporter
from mlops_ray.tags import TRAIN_WORKERS_TAG
from mlops_ray.train.loop import TIMING_METRICS
from mlops_ray.train.stage import run_training
from mlops_ray.train.training_run import TrainingOutcome

pytestmark = pytest.mark.usefixtures("ray_cluster")
ROOT = Path(__file__).resolve().parents[2]


def config_for(tmp_path: Path, *overrides: str) -> Config:
    return load_config(
        ROOT / "configs" / "quickstart.yaml",
        [
            "data.source=synthetic:classification",
            "data.synthetic={rows: 600, features: 4, categoricals: 1, seed: 2}",
            "train.num_workers=2",
            "train.resources_per_worker={CPU: 0.5}",
            "train.epochs=5",
            "train.batch_size=64",
            f"train.storage_path={tmp_path / 'ray_results'}",
            f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
            f"tracking.artifact_location={tmp_path / 'artifacts'}",
            "registry.model_name=training-test",
            *overrides,
        ],
    )


def train(config: Config, resume: bool = False) -> TrainingOutcome:
    return run_training(config, StageReporter(Console(file=io.StringIO())), resume=resume)


def steps(config: Config, run_id: str, metric: str = "val_loss") -> list[int]:
    client = MlflowClient(config.tracking.uri)
    return sorted(m.step for m in client.get_metric_history(run_id, metric))


def test_a_worker_failing_at_epoch_3_resumes_from_its_checkpoint_in_the_same_run(tmp_path: Path) -> None:
    config = config_for(tmp_path, "train.max_failures=1", "train.fault_injection={epoch: 3, rank: 1}")
    outcome = train(config)
    run = MlflowClient(config.tracking.uri).get_run(outcome.run_id)
    assert run.info.status == "FINISHED"
    assert list((tmp_path / "ray_results").glob("*/fault-injected-epoch-3")), "the fault never fired"
    assert steps(config, outcome.run_id) == [1, 2, 3, 4, 5]  # epochs 1-2 were not trained again
    assert outcome.trained.epochs_run == 5


def test_past_the_failure_limit_the_run_is_failed_then_resume_continues_it(tmp_path: Path) -> None:
    # one worker: a worker group restarting is the test above; this one is about the run across sessions
    config = config_for(
        tmp_path, "train.num_workers=1", "train.max_failures=0", "train.fault_injection={epoch: 3, rank: 0}"
    )
    with pytest.raises(TrainingError, match=r"failed after 0 restart\(s\): rank 0: .*injected fault at epoch 3"):
        train(config)
    client = MlflowClient(config.tracking.uri)
    (failed,) = client.search_runs([client.get_experiment_by_name(config.tracking.experiment).experiment_id])
    assert failed.info.status == "FAILED"
    assert steps(config, failed.info.run_id) == [1, 2]

    resumed = train(config, resume=True)  # the marker file remembers the fault fired: no second failure
    assert resumed.resumed and resumed.run_id == failed.info.run_id
    assert client.get_run(resumed.run_id).info.status == "FINISHED"
    assert steps(config, resumed.run_id) == [1, 2, 3, 4, 5]
    with pytest.raises(TrainingError, match="finished; there is nothing to resume"):
        train(config, resume=True)


def test_the_same_seed_gives_identical_metrics(tmp_path: Path) -> None:
    # local mode, the default for data this small: the loop is what must be deterministic (that local mode and
    # one worker agree is checked below, and worker groups restarting in the tests above)
    runs = [train(config_for(tmp_path / str(i), "train.num_workers=0", "train.epochs=3")) for i in range(2)]
    first, second = ({k: v for k, v in r.trained.best_metrics.items() if k not in TIMING_METRICS} for r in runs)
    assert first == second and "val_loss" in first
    assert runs[0].test_metrics == runs[1].test_metrics


def test_early_stopping_checkpoint_cadence_and_every_option_together(tmp_path: Path) -> None:
    config = config_for(
        tmp_path,
        "model={name: resmlp, depth: 2, width: 16, normalization: batch, activation: gelu}",
        "train.optimizer=sgd",
        "train.lr_schedule=cosine",
        "train.warmup_epochs=1",
        "train.grad_clip_norm=1.0",
        "train.precision=bf16",
        "train.epochs=10",
        "train.early_stopping={patience: 2, min_delta: 1000000}",  # no epoch can improve by that much
        "train.checkpoint={every_epochs: 2, keep: 2}",
        "train.num_workers=0",  # the options are under test, not the worker group
    )
    outcome = train(config)
    assert outcome.trained.epochs_run == 3  # epoch 1 sets the best, 2 and 3 do not improve: stop
    assert steps(config, outcome.run_id) == [1, 2, 3]
    (run_dir,) = (tmp_path / "ray_results").iterdir()
    assert len([p for p in run_dir.glob("checkpoint_*") if p.is_dir()]) == 2  # epoch 2 (cadence), 3 (the stop)
    learning_rates = [m.value for m in MlflowClient(config.tracking.uri).get_metric_history(outcome.run_id, "lr")]
    assert learning_rates[0] < learning_rates[1]  # warm-up, then the cosine decay


def test_train_command_explains_when_there_is_nothing_to_resume(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"tracking: {{uri: 'sqlite:///{tmp_path / 'mlflow.db'}'}}\nregistry: {{model_name: nothing}}\n")
    result = CliRunner().invoke(app, ["train", str(config), "--resume"])
    assert result.exit_code == 1, result.output
    assert "there is no training run to resume" in result.output


def test_local_mode_trains_in_process_like_one_worker_and_auto_chooses_it_for_small_data(tmp_path: Path) -> None:
    """Ray Train's local mode (auto picks it below train.local_below_rows): same loop, metrics, checkpoints."""
    local_config = config_for(tmp_path / "local", "train.num_workers=auto", "train.epochs=3")
    worker_config = config_for(tmp_path / "worker", "train.num_workers=1", "train.epochs=3")
    local, worker = train(local_config), train(worker_config)

    run = MlflowClient(local_config.tracking.uri).get_run(local.run_id)
    assert run.data.tags[TRAIN_WORKERS_TAG] == "0" and run.data.params["train.num_workers"] == "auto"
    assert steps(local_config, local.run_id) == [1, 2, 3]
    kept = sorted(p.name for p in (tmp_path / "local" / "ray_results" / f"train-{local.run_id}").glob("checkpoint_*"))
    assert kept == ["checkpoint_epoch_000002", "checkpoint_epoch_000003"]  # keep 2: the best two (and the newest)
    assert local.trained.epochs_run == worker.trained.epochs_run == 3
    for name in ("val_loss", "val_accuracy", "train_loss"):  # the same seed and rows; batch order may differ
        assert local.trained.final_metrics[name] == pytest.approx(worker.trained.final_metrics[name], abs=0.05), name
    assert local.test_metrics["test_accuracy"] == pytest.approx(worker.test_metrics["test_accuracy"], abs=0.05)


def test_a_local_mode_failure_fails_the_run_and_resume_continues_from_its_checkpoint(tmp_path: Path) -> None:
    config = config_for(tmp_path, "train.num_workers=0", "train.fault_injection={epoch: 3, rank: 0}")
    with pytest.raises(TrainingError, match="local mode restarts nothing") as failed:
        train(config)
    assert "injected fault at epoch 3" in str(failed.value)
    client = MlflowClient(config.tracking.uri)
    (run,) = client.search_runs([client.get_experiment_by_name(config.tracking.experiment).experiment_id])
    assert run.info.status == "FAILED" and steps(config, run.info.run_id) == [1, 2]
    resumed = train(config, resume=True)
    assert resumed.run_id == run.info.run_id and resumed.resumed
    assert steps(config, resumed.run_id) == [1, 2, 3, 4, 5]
