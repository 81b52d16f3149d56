"""Sweeps on real Ray Tune and MLflow: parent and child runs, challenger, resume, every searcher and scheduler.

Trials are tiny (600 generated rows, a few epochs); the tests look at what the sweep
records and decides, not at accuracy. The resumed sweep's first driver is the real CLI
in a subprocess, killed with SIGKILL; the resumed one is stopped with SIGINT as Ctrl-C
would, then resumed again.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import ray
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from rich.console import Console
from typer.testing import CliRunner

from mlops_ray.cli import app
from mlops_ray.config import Config, load_config
from mlops_ray.reporting import StageReporter
from mlops_ray.tune.stage import run_tuning
from mlops_ray.tune.sweep import SweepOutcome

pytestmark = [pytest.mark.usefixtures("ray_cluster"), pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
SPACE = "{train.lr: {type: loguniform, low: 0.001, high: 0.05}, model.width: {type: choice, values: [8, 32]}}"


def overrides(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "data.source=synthetic:classification",
        "data.synthetic={rows: 600, features: 4, categoricals: 1, seed: 2}",
        "model.depth=1",
        "train.num_workers=1",
        "train.resources_per_worker={CPU: 0.5}",
        "train.epochs=4",
        "train.batch_size=64",
        f"train.storage_path={tmp_path / 'ray_results'}",
        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
        f"tracking.artifact_location={tmp_path / 'artifacts'}",
        "registry.model_name=tune-test",
        f"tune={{space: {SPACE}, num_samples: 6, max_concurrent_trials: 2, storage_path: {tmp_path / 'tune'}}}",
        *extra,
    ]


def sweep_config(tmp_path: Path, *extra: str) -> Config:
    return load_config(ROOT / "configs" / "quickstart.yaml", overrides(tmp_path, *extra))


def sweep(config: Config, resume: bool = False) -> SweepOutcome:
    return run_tuning(config, StageReporter(Console(file=io.StringIO(), width=200)), resume=resume)


def runs_of(config: Config) -> tuple[Run, list[Run]]:
    client = MlflowClient(config.tracking.uri)
    experiment = client.get_experiment_by_name(config.tracking.experiment)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    (parent,) = [r for r in runs if r.data.tags.get("mlops_ray.stage") == "tune"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return parent, sorted(children, key=lambda r: int(r.data.tags["mlops_ray.trial_number"]))


def steps(config: Config, run_id: str) -> list[int]:
    return [m.step for m in MlflowClient(config.tracking.uri).get_metric_history(run_id, "val_loss")]


def most_at_once(config: Config, children: list[Run]) -> int:
    """Trials running at the same moment: each spans from Tune starting it to Tune ending it (driver clock).

    Epoch reports are too short a span for this: three epochs of a small model can
    finish inside one driver loop, so trials that ran side by side looked sequential.
    """
    spans = [(r.info.start_time, r.info.end_time) for r in children]
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak


def test_a_sweep_logs_parent_and_child_runs_and_registers_the_best_trial_as_challenger(tmp_path: Path) -> None:
    config = sweep_config(tmp_path)
    outcome = sweep(config)
    client = MlflowClient(config.tracking.uri)
    parent, children = runs_of(config)
    assert parent.info.run_id == outcome.parent_run_id and parent.info.status == "FINISHED"
    assert len(children) == 6 == len(outcome.trials)
    assert len({c.data.tags["mlops_ray.trial_id"] for c in children}) == 6
    for child in children:
        assert set(child.data.params) == {"train.lr", "model.width"}
        assert child.data.tags["mlops_ray.trial_status"] in ("completed", "early-stopped")
        trained = steps(config, child.info.run_id)
        assert trained == list(range(1, len(trained) + 1)) and trained  # one point per epoch, no repeats
    statuses = [c.data.tags["mlops_ray.trial_status"] for c in children]
    assert "completed" in statuses and "early-stopped" in statuses  # ASHA, the default, stopped some trials
    assert most_at_once(config, children) <= 2  # tune.max_concurrent_trials

    best_loss = min(t.best for t in outcome.trials if t.best is not None)
    assert outcome.best.best == best_loss
    version = client.get_model_version_by_alias("tune-test", "challenger")
    assert str(version.version) == outcome.model.version == "1"
    assert version.tags["sweep.parent_run_id"] == parent.info.run_id
    assert version.tags["sweep.trial_run_id"] == outcome.best.run_id == version.run_id
    assert version.tags["data.fingerprint"] == outcome.data.fingerprint.digest
    assert "test_accuracy" in client.get_run(outcome.best.run_id).data.metrics

    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "sweep")}
    assert artifacts == {"sweep/learning_curves.png", "sweep/metric_vs_params.png", "sweep/trials.json"}
    record = json.loads(
        Path(client.download_artifacts(parent.info.run_id, "sweep/trials.json", str(tmp_path))).read_text()
    )
    assert len(record["trials"]) == 6


def cli_args(tmp_path: Path, *extra: str) -> list[str]:
    args = ["tune", str(ROOT / "configs" / "quickstart.yaml")]
    for override in overrides(tmp_path, *extra):
        args += ["--set", override]
    return args


def progress(config: Config) -> dict[str, list[int]]:
    """The trials MLflow records as completed, each with the epochs of its metric history."""
    _, children = runs_of(config)
    completed = [c for c in children if c.data.tags.get("mlops_ray.trial_status") == "completed"]
    return {c.info.run_id: steps(config, c.info.run_id) for c in completed if c.info.status == "FINISHED"}


def completed_tags(config: Config) -> int:
    return sum(c.data.tags.get("mlops_ray.trial_status") == "completed" for c in runs_of(config)[1])


def assert_kept(before: dict[str, list[int]], after: dict[str, list[int]], why: str) -> None:
    """Progress never goes backwards: every completed trial is still completed, with the very same history."""
    assert len(after) >= len(before), why
    for run_id, history in before.items():
        assert after.get(run_id) == history, f"{why}: trial run {run_id} changed or was run again"


def press_ctrl_c_when(ready: Callable[[], bool]) -> threading.Thread:
    """A thread that sends this process SIGINT, as Ctrl-C in its terminal would, once ``ready()`` holds."""

    def watch() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if ready():
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    return watcher


def test_a_sweep_whose_driver_is_killed_then_interrupted_resumes_to_exactly_num_samples_trials(
    tmp_path: Path,
) -> None:
    """SIGKILL the first driver at a random point, Ctrl-C the resumed one, resume again: nothing is lost or repeated.

    The first driver is ``mlops-ray tune`` in a subprocess on this session's Ray, which
    ends the trials of a driver that dies, as a cluster does. The kill point (completed
    trials, then an extra delay) comes from a seeded generator: ``SWEEP_KILL_SEED=<seed>``
    replays a failing run. The resumed sweep runs the CLI in this process and gets SIGINT
    once it completes a trial: exit 130 and the ``--resume`` hint. The last resume
    finishes the sweep.
    """
    seed = int(os.environ.get("SWEEP_KILL_SEED", random.SystemRandom().randrange(2**32)))
    chooser = random.Random(seed)
    after_trials, extra_delay_s = chooser.randint(1, 3), round(chooser.uniform(0.0, 0.5), 2)
    why = f"SWEEP_KILL_SEED={seed}: SIGKILL after {after_trials} completed trial(s) + {extra_delay_s} s"
    print(why)
    extra = ("tune.scheduler=none", "tune.num_samples=8", "train.epochs=50")  # trials long enough to be caught
    config = sweep_config(tmp_path, *extra)

    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env |= {"RAY_ADDRESS": ray.get_runtime_context().gcs_address, "PYTHONUNBUFFERED": "1"}  # this session's Ray
    log = tmp_path / "first.log"
    with log.open("w") as sink:
        first = subprocess.Popen(
            [str(Path(sys.executable).with_name("mlops-ray")), *cli_args(tmp_path, *extra)],
            cwd=tmp_path,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # reaped below with anything it started, whatever the kill leaves
        )
    try:
        deadline = time.monotonic() + 300
        while log.read_text().count(" completed ") < after_trials:  # the driver prints a line per finished trial
            assert first.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"{why}: no {after_trials} completed trial(s) within 300 s"
            time.sleep(0.2)
        time.sleep(extra_delay_s)
        first.send_signal(signal.SIGKILL)  # the driver alone, as the OOM killer would: no chance to save anything
        assert first.wait(timeout=60) == -signal.SIGKILL, why
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=60)
    parent, _ = runs_of(config)
    assert parent.info.status == "RUNNING", why  # the kill caught the sweep mid-way, and nothing closed the run
    killed = progress(config)
    assert len(killed) < 8, why

    tagged = completed_tags(config)  # a run killed between its tag and its end is closed before the sweep starts
    watcher = press_ctrl_c_when(lambda: completed_tags(config) > tagged)
    interrupted_cli = CliRunner().invoke(app, [*cli_args(tmp_path, *extra), "--resume"])
    watcher.join(timeout=60)
    assert interrupted_cli.exit_code == 130, f"{why}\n{interrupted_cli.output[-3000:]}"
    assert "mlops-ray tune CONFIG --resume" in interrupted_cli.output, why
    parent, _ = runs_of(config)
    assert parent.info.status == "KILLED", why
    interrupted = progress(config)
    assert_kept(killed, interrupted, why)
    assert len(interrupted) > len(killed), why  # the resumed sweep completed a trial of its own

    outcome = sweep(config, resume=True)
    assert outcome.resumed and outcome.parent_run_id == parent.info.run_id, why
    parent, after = runs_of(config)
    assert parent.info.status == "FINISHED", why
    assert len(after) == 8 == len(outcome.trials), why  # exactly num_samples, counting the earlier sessions'
    assert len({c.data.tags["mlops_ray.trial_id"] for c in after}) == 8, why
    finished = progress(config)
    assert_kept(interrupted, finished, why)
    assert len(finished) == 8, why
    for child in after:  # every epoch once, in order: nothing logged twice after a restore, nothing lost
        assert steps(config, child.info.run_id) == list(range(1, 51)), f"{why}: {child.data.tags}"
    with pytest.raises(Exception, match="finished; there is nothing to resume"):
        sweep(config, resume=True)


def test_optuna_runs_four_trials_at_once_on_the_default_sqlite_store_without_lock_errors(tmp_path: Path) -> None:
    config = sweep_config(
        tmp_path,
        "tune.searcher=optuna",
        "tune.scheduler=none",
        "tune.num_samples=8",
        "tune.max_concurrent_trials=4",
        "train.resources_per_worker={CPU: 0.25}",
        "train.epochs=3",
    )
    outcome = sweep(config)
    _, children = runs_of(config)
    assert len(children) == 8 and all(c.info.status == "FINISHED" for c in children)
    assert all(steps(config, c.info.run_id) == [1, 2, 3] for c in children)  # every epoch of every trial logged
    assert 2 < most_at_once(config, children) <= 4
    assert outcome.model.alias == "challenger"


def test_grid_search_with_two_worker_trials_registers_a_ray_train_checkpoint(tmp_path: Path) -> None:
    config = sweep_config(
        tmp_path,
        "tune.searcher=grid",
        "tune.space={model.width: {type: grid, values: [16]}, train.optimizer: {type: choice, values: [adam, sgd]}}",
        "tune.num_samples=null",
        "train.num_workers=2",
        "train.resources_per_worker={CPU: 0.25}",
        "train.epochs=2",
        "tune.scheduler=none",
    )
    outcome = sweep(config)
    _, children = runs_of(config)
    combos = {(c.data.params["model.width"], c.data.params["train.optimizer"]) for c in children}
    assert len(children) == 2 and combos == {("16", "adam"), ("16", "sgd")}  # the grid enumerates the choice too
    assert all(steps(config, c.info.run_id) == [1, 2] for c in children)
    assert outcome.model.version == "1" and outcome.test_metrics["test_accuracy"] > 0
    assert list((tmp_path / "tune").glob("sweep-*/train-runs/trial-*/checkpoint_*"))  # Ray Train's own runs


def test_pbt_copies_good_trials_and_perturbs_their_learning_rate(tmp_path: Path) -> None:
    config = sweep_config(
        tmp_path,
        "tune.scheduler=pbt",
        "tune.pbt={perturbation_interval: 1, quantile_fraction: 0.5, resample_probability: 0.5, synchronous: true}",
        "tune.num_samples=4",
        "tune.max_concurrent_trials=4",
        "train.resources_per_worker={CPU: 0.25}",
        "train.epochs=5",
    )
    outcome = sweep(config)
    client = MlflowClient(config.tracking.uri)
    _, children = runs_of(config)
    assert len(children) == 4 and outcome.model.version == "1"
    learning_rates = [{m.value for m in client.get_metric_history(c.info.run_id, "param.train.lr")} for c in children]
    assert any(len(rates) > 1 for rates in learning_rates), learning_rates  # some trial ran with a perturbed lr


def test_a_reached_target_stops_the_whole_sweep_and_the_stopped_trials_are_closed(tmp_path: Path) -> None:
    config = sweep_config(
        tmp_path,
        "tune.scheduler=none",
        "tune.stop_at=100.0",  # any val_loss reaches it: the first report stops everything
        "tune.num_samples=6",
        "train.epochs=20",
    )
    outcome = sweep(config)
    assert outcome.stop_reason == "target reached"
    parent, children = runs_of(config)
    assert parent.info.status == "FINISHED" and outcome.model.alias == "challenger"
    assert len(children) < 6  # trials not yet started were never created
    assert all(max(steps(config, c.info.run_id), default=0) < 20 for c in children)
    assert {c.data.tags["mlops_ray.trial_status"] for c in children} <= {"early-stopped", "stopped"}
    assert all(c.info.status in ("FINISHED", "KILLED") for c in children)


def test_the_time_budget_stops_running_trials_and_the_best_epoch_so_far_is_registered(tmp_path: Path) -> None:
    config = sweep_config(tmp_path, "tune.scheduler=none", "tune.time_budget_s=20", "train.epochs=1000")
    outcome = sweep(config)
    assert outcome.stop_reason == "time budget"
    parent, children = runs_of(config)
    assert parent.info.status == "FINISHED" and outcome.model.alias == "challenger"
    assert children and all(c.data.tags["mlops_ray.trial_status"] == "stopped" for c in children)
    trained = [len(steps(config, c.info.run_id)) for c in children]
    assert max(trained) > 0 and all(n < 1000 for n in trained)  # a trial started just before the end may have none
    assert {t.status for t in outcome.trials} == {"stopped"}
