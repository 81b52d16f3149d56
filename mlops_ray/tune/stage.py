"""``mlops-ray tune``: a sweep (``sweep.py``), its best trial registered @challenger, and a summary."""

from __future__ import annotations

from mlops_ray.config import Config
from mlops_ray.reporting import StageReporter
from mlops_ray.runtime import connected
from mlops_ray.tune.sweep import SweepOutcome, sweep_and_register


def run_tuning(config: Config, reporter: StageReporter, resume: bool = False) -> SweepOutcome:
    """``mlops-ray tune``: connect, sweep, register the best trial; print the trial table and where things are."""
    with connected(config, reporter) as (tracking, _):
        outcome = sweep_and_register(config, reporter, tracking.uri, resume=resume)
    rows = {
        "MLflow sweep run": outcome.parent_run_id + (" (resumed)" if outcome.resumed else ""),
        "trials": f"{len(outcome.trials)} ({outcome.stop_reason})",
        "best trial": f"{outcome.best.number}: " + ", ".join(f"{k}={v}" for k, v in outcome.best.params.items()),
        "model": f"{outcome.model.name} version {outcome.model.version} @{outcome.model.alias}",
        **{name: f"{value:.4f}" for name, value in outcome.test_metrics.items()},
        "MLflow UI": tracking.ui_hint,
    }
    reporter.table("mlops-ray tune", rows)
    return outcome
