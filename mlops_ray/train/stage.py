"""``mlops-ray train``: one training run (``training_run.py``), optionally registered, and its summary."""

from __future__ import annotations

from mlops_ray.config import Config, dump_config
from mlops_ray.reporting import StageReporter
from mlops_ray.runtime import connected
from mlops_ray.train.training_run import TrainingOutcome, register_challenger, train_and_log


def run_training(
    config: Config, reporter: StageReporter, resume: bool = False, register: bool = False
) -> TrainingOutcome:
    """``mlops-ray train``: connect, ``train_and_log``, with ``register`` a new version @challenger; a summary."""
    config_text = dump_config(config)
    with connected(config, reporter) as (tracking, _):
        outcome = train_and_log(config, reporter, tracking.uri, config_text, resume=resume)
        registered = register_challenger(config, reporter, outcome, config_text) if register else None
    best = outcome.trained.best_metrics
    model = f"{registered.name} version {registered.version} @{registered.alias}" if registered else None
    rows = {
        "MLflow run": outcome.run_id + (" (resumed)" if outcome.resumed else ""),
        "model": model or f"{outcome.model_uri} (logged, not registered)",
        "best epoch": f"{int(best['epoch'])} of {outcome.trained.epochs_run} run",
        **{name: f"{value:.4f}" for name, value in outcome.test_metrics.items()},
        "checkpoint": outcome.trained.checkpoint_path,
        "MLflow UI": tracking.ui_hint,
    }
    reporter.table("mlops-ray train", rows)
    return outcome
