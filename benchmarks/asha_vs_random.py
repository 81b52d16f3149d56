"""ASHA against random search without early stopping: trial-epochs and wall time to reach the same best val_loss.

Why: the point of the ``asha`` scheduler is to spend the sweep's epochs on the trials
that look promising. It pays off only if it finds a model as good as the full random
search's with much less work; this measures how much less, on real training trials.

Problem: ``synthetic:classification`` through ``prepare_data`` (``--rows`` rows,
default 20,000; 16 numeric features, no string columns, ``--classes`` classes; the
usual 70/15/15 split). The config is built with ``validate_config``, exactly as a YAML
file would be: ``mlp`` network, one-worker trials holding ``{CPU: 0.5}`` each,
``--epochs`` epochs (default 12), batch size ``--batch-size``, a checkpoint every
epoch (two kept), and a ``tune`` section: random searcher, ``--samples`` trials
(default 16), ``--concurrent`` at a time (default 2), seed ``--seed``, the space

    train.lr     loguniform 1e-4 .. 3e-2
    model.width  choice 8, 32, 128
    model.depth  randint 1 .. 3

and metric ``val_loss`` (min). Both sweeps are the sweep of ``mlops-ray tune``:
the trainable from ``mlops_ray.tune.trial.make_trainable`` (what the sweep runs), the
Tuner from ``make_tuner``, our ``MlflowTrialLogger`` under a parent run (MLflow on a
temp SQLite file). They differ only in ``tune.scheduler``: ``asha`` (grace period and
reduction factor from ``--grace-period`` / ``--reduction-factor``, default the config's
1 and 3) against ``none`` (every trial runs every epoch). The same seed makes the random
searcher propose the same configs to both (checked: ``same_configs`` in the JSON), and
every trial trains under the same ``train.seed``. Random search runs first, then ASHA
(``--asha-first`` swaps them, to check that the order does not matter), in one embedded
Ray with ``--cpus`` CPUs and the prepared data shared by both.

Measured, per sweep: its trials' ``metrics_dataframe`` (every epoch reported: epoch,
val_loss) gives the trial-epochs run and the best val_loss; the wall time of
``tuner.fit()``. Tune's own ``timestamp`` has whole-second resolution, too coarse for
one-second epochs, so a small driver callback notes the time each report arrived
(seconds since ``fit()`` started) and orders the epochs by it; the dataframe rows and
the callback's reports must match one for one.

The comparison (goal <= 0.4x): a search has found its best model only once it has
run; so the trial-epochs and the wall time each sweep needs, in all, to return its best
model, ASHA / random, provided ASHA's best val_loss is within 1% of random search's
(else the goal is not met, whatever the ratios). Also printed, for information: the
trial-epochs and seconds until each sweep's running best first reached the worse of
the two bests, walking its reports in order of arrival. With one seed both sweeps
propose the same trials in the same order, so when an early trial is nearly the best
both reach that level at the same point; it shows search order, not the scheduler.

ASHA is asynchronous: a trial continues past a rung if it is in the top 1/reduction_factor
of the trials that reached the rung before it, so which trials it stops depends on the
order in which concurrent trials report; two runs with the same seed can differ. So
random search runs once and ASHA ``--repeats`` times (default 3); the median ASHA run
(by trial-epochs) is the one compared, and every run is in the JSON.

    python benchmarks/asha_vs_random.py [--rows N] [--epochs N] [--samples N] [--concurrent N] [--seed N]
                                        [--grace-period N] [--reduction-factor X] [--batch-size N] [--classes N]
                                        [--cpus N] [--asha-first] [--save]

Prints a table and one JSON line; ``--save`` also writes it to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import ray.data
from common import emit, goal_table, machine, verdict  # benchmarks/common.py, next to this script
from mlflow.tracking import MlflowClient
from ray import tune
from ray.tune import ResultGrid
from ray.tune.experiment import Trial
from rich.console import Console

from mlops_ray.config import Config, validate_config
from mlops_ray.config.tune import TuneConfig
from mlops_ray.data import PreparedData, prepare_data
from mlops_ray.runtime import WORKER_ENV_DEFAULTS, configure_ray_data, connect_tracking, quiet_library_logs
from mlops_ray.tune.strategies import make_tuner
from mlops_ray.tune.tracking import MlflowTrialLogger
from mlops_ray.tune.trial import make_trainable

GOAL_RATIO = 0.4
QUALITY_TOLERANCE = 0.01  # ASHA's best val_loss may be at most this much (relative) above random search's
FEATURES = 16
METRIC = "val_loss"
APPROACHES = ("random", "asha")  # in the order they run unless --asha-first
SCHEDULER = {"random": "none", "asha": "asha"}


@dataclass(frozen=True)
class Report:
    seconds: float  # since tuner.fit() started, as the driver received it
    trial_id: str
    epoch: int
    value: float


class ReportClock(tune.Callback):
    """Notes when each report reaches the driver: Tune's ``timestamp`` is whole seconds."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.arrived: dict[tuple[str, int], float] = {}

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict[str, Any], **info: Any
    ) -> None:
        self.arrived[(trial.trial_id, int(result["epoch"]))] = time.monotonic() - self.start


@dataclass(frozen=True)
class Sweep:
    approach: str
    wall_s: float
    reports: list[Report]  # every trial-epoch, in order of arrival
    trials: int
    full_length: int  # trials that ran every epoch
    errored: int
    configs: list[tuple[tuple[str, Any], ...]]  # every trial's values, sorted

    @property
    def best(self) -> Report:
        return min(self.reports, key=lambda r: r.value)

    def reach(self, target: float) -> tuple[int, float]:
        """Trial-epochs and seconds until the running best is at or below ``target``."""
        for count, report in enumerate(self.reports, start=1):
            if report.value <= target:
                return count, report.seconds
        raise ValueError(f"{self.approach} never reached {target}")  # cannot happen: target is the worse best


def make_config(args: argparse.Namespace, workdir: Path) -> Config:
    """The config a user would write, validated the same way (the tune section checked against its fields)."""
    return validate_config(
        {
            "data": {
                "source": "synthetic:classification",
                "synthetic": {"rows": args.rows, "features": FEATURES, "categoricals": 0, "classes": args.classes},
            },
            "model": {"name": "mlp"},
            "train": {
                "num_workers": 1,
                "resources_per_worker": {"CPU": 0.5},
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "storage_path": str(workdir / "ray_results"),
            },
            "tune": {
                "space": {
                    "train.lr": {"type": "loguniform", "low": 1e-4, "high": 3e-2},
                    "model.width": {"type": "choice", "values": [8, 32, 128]},
                    "model.depth": {"type": "randint", "low": 1, "high": 3},
                },
                "searcher": "random",
                "scheduler": "asha",
                "asha": {"grace_period": args.grace_period, "reduction_factor": args.reduction_factor},
                "num_samples": args.samples,
                "max_concurrent_trials": args.concurrent,
                "metric": METRIC,
                "mode": "min",
                "seed": args.seed,
                "storage_path": str(workdir / "tune"),
            },
            "registry": {"model_name": "asha-vs-random"},
            "tracking": {
                "uri": f"sqlite:///{workdir / 'mlflow.db'}",
                "experiment": "asha-vs-random",
                "artifact_location": str(workdir / "artifacts"),
            },
        },
        source="benchmarks/asha_vs_random.py",
    )


def run_sweep(
    approach: str,
    config: Config,
    data: PreparedData,
    tracking_uri: str,
    experiment_id: str,
    workdir: Path,
    repeat: int = 0,
) -> Sweep:
    """One sweep as ``mlops_ray.tune.sweep._fit`` runs it, with the scheduler of ``approach``."""
    assert config.tune is not None
    settings = TuneConfig.model_validate({**config.tune.model_dump(), "scheduler": SCHEDULER[approach]})
    path = workdir / "tune" / f"sweep-{approach}-{repeat}"
    trainable = make_trainable(config, data, str(path / "train-runs"))
    parent = MlflowClient(tracking_uri).create_run(experiment_id, run_name=f"{approach}-sweep")
    epochs = config.train.epochs
    logger = MlflowTrialLogger(
        tracking_uri, experiment_id, parent.info.run_id, config.registry.model_name, epochs, settings.total_trials()
    )
    clock = ReportClock()
    tuner = make_tuner(settings, trainable, epochs, config.train.checkpoint.keep, path, [logger, clock])
    clock.start = start = time.monotonic()
    results = tuner.fit()
    wall = time.monotonic() - start
    MlflowClient(tracking_uri).set_terminated(parent.info.run_id)
    return collect(approach, results, clock, wall, epochs)


def collect(approach: str, results: ResultGrid, clock: ReportClock, wall: float, epochs: int) -> Sweep:
    """Every trial's reported epochs from its ``metrics_dataframe``, ordered by when the driver received them."""
    reports: list[Report] = []
    configs, full_length, errored = [], 0, 0
    for result in results:
        if result.error is not None:
            errored += 1
        configs.append(tuple(sorted((k, _plain(v)) for k, v in result.config.items())))
        frame = result.metrics_dataframe
        if frame is None or frame.empty:
            continue
        rows = frame.dropna(subset=["epoch", METRIC])
        full_length += int(rows["epoch"].max()) >= epochs
        for trial_id, epoch, value in zip(rows["trial_id"], rows["epoch"], rows[METRIC], strict=True):
            key = (str(trial_id), int(epoch))
            if key not in clock.arrived:
                raise SystemExit(f"{approach}: trial {key[0]} epoch {key[1]} is in its results but never reached us")
            reports.append(Report(clock.arrived[key], key[0], key[1], float(value)))
    if len(reports) != len(clock.arrived):
        raise SystemExit(f"{approach}: {len(clock.arrived)} reports arrived but the results hold {len(reports)}")
    if not reports:
        raise SystemExit(f"{approach}: no trial reported {METRIC}")
    reports.sort(key=lambda r: r.seconds)
    return Sweep(approach, wall, reports, len(results), full_length, errored, sorted(configs))


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def report(
    args: argparse.Namespace, sweeps: dict[str, Sweep], train_rows: int, load: tuple[float, float]
) -> dict[str, Any]:
    random, asha = sweeps["random"], sweeps["asha"]
    target = max(random.best.value, asha.best.value)  # the level both reached
    reached = {name: sweep.reach(target) for name, sweep in sweeps.items()}
    epochs_ratio = reached["asha"][0] / reached["random"][0]
    seconds_ratio = reached["asha"][1] / reached["random"][1]
    total_epochs_ratio = len(asha.reports) / len(random.reports)
    wall_ratio = asha.wall_s / random.wall_s
    quality_ok = asha.best.value <= random.best.value * (1 + QUALITY_TOLERANCE)
    met = {
        "trial_epochs": quality_ok and total_epochs_ratio <= GOAL_RATIO,
        "wall_s": quality_ok and wall_ratio <= GOAL_RATIO,
    }
    same_configs = random.configs == asha.configs

    title = (
        f"ASHA vs random search: {args.samples} trials x {args.epochs} epochs, {args.concurrent} at a time, "
        f"{train_rows:,} train rows x {FEATURES}, seed {args.seed}"
    )
    table = goal_table(title, ("ASHA", "random", "ASHA / random"))
    table.add_row(
        f"best {METRIC}",
        f"{asha.best.value:.4f}",
        f"{random.best.value:.4f}",
        f"{asha.best.value / random.best.value - 1:+.2%}",
        f"<= +{QUALITY_TOLERANCE:.0%}",
        verdict(quality_ok),
    )
    table.add_row(
        "trial-epochs, whole sweep",
        str(len(asha.reports)),
        str(len(random.reports)),
        f"{total_epochs_ratio:.3f}x",
        f"<= {GOAL_RATIO}x",
        verdict(met["trial_epochs"]),
    )
    table.add_row(
        "tuner.fit() s, whole sweep",
        f"{asha.wall_s:.1f}",
        f"{random.wall_s:.1f}",
        f"{wall_ratio:.3f}x",
        f"<= {GOAL_RATIO}x",
        verdict(met["wall_s"]),
    )
    table.add_row(
        "trials run to the last epoch", f"{asha.full_length}/{asha.trials}", f"{random.full_length}/{random.trials}"
    )
    table.add_row(
        f"info: trial-epochs until {METRIC} <= {target:.4f}",
        str(reached["asha"][0]),
        str(reached["random"][0]),
        f"{epochs_ratio:.3f}x",
    )
    table.add_row(
        "info: seconds until then", f"{reached['asha'][1]:.1f}", f"{reached['random'][1]:.1f}", f"{seconds_ratio:.3f}x"
    )
    Console().print(table)
    quality = asha.best.value - random.best.value
    print(
        f"best {METRIC}: ASHA {asha.best.value:.4f} (trial {asha.best.trial_id}, epoch {asha.best.epoch}), "
        f"random {random.best.value:.4f} (trial {random.best.trial_id}, epoch {random.best.epoch}); "
        + ("ASHA lost " if quality > 0 else "ASHA lost nothing: ")
        + f"{quality:+.4f}; same proposed configs: {same_configs}; errored trials: ASHA {asha.errored}, "
        f"random {random.errored}; load average {load[0]:.1f} -> {load[1]:.1f}"
    )
    print(
        f"ASHA / random: {total_epochs_ratio:.3f}x trial-epochs and {wall_ratio:.3f}x wall time for the whole search, "
        f"best {METRIC} {asha.best.value / random.best.value - 1:+.2%} (goal <= {GOAL_RATIO}x within "
        f"+{QUALITY_TOLERANCE:.0%})"
    )

    def side(sweep: Sweep, name: str) -> dict[str, Any]:
        return {
            "best_val_loss": round(sweep.best.value, 6),
            "best_at": {"trial_id": sweep.best.trial_id, "epoch": sweep.best.epoch},
            "trial_epochs_to_target": reached[name][0],
            "seconds_to_target": round(reached[name][1], 2),
            "trial_epochs_total": len(sweep.reports),
            "wall_s": round(sweep.wall_s, 2),
            "trials": sweep.trials,
            "trials_full_length": sweep.full_length,
            "trials_errored": sweep.errored,
        }

    return {
        "benchmark": "asha_vs_random",
        "rows": args.rows,
        "train_rows": train_rows,
        "features": FEATURES,
        "classes": args.classes,
        "epochs": args.epochs,
        "samples": args.samples,
        "concurrent": args.concurrent,
        "cpus": args.cpus,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "asha": {"grace_period": args.grace_period, "reduction_factor": args.reduction_factor},
        "space": {"train.lr": "loguniform 1e-4..3e-2", "model.width": "choice 8,32,128", "model.depth": "randint 1..3"},
        "metric": METRIC,
        "target_val_loss": round(target, 6),
        "asha_run": side(asha, "asha"),
        "random_run": side(random, "random"),
        "ratio_trial_epochs_to_target": round(epochs_ratio, 4),
        "ratio_seconds_to_target": round(seconds_ratio, 4),
        "ratio_trial_epochs_total": round(total_epochs_ratio, 4),
        "ratio_wall_total": round(wall_ratio, 4),
        "best_val_loss_gap_asha_minus_random": round(quality, 6),
        "same_configs": same_configs,
        "order": list(sweeps),
        "goal_ratio": GOAL_RATIO,
        "quality_tolerance": QUALITY_TOLERANCE,
        "goals_met": met,
        "load_average_1min": {"before": round(load[0], 2), "after": round(load[1], 2)},
        **machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="generated rows before the 70/15/15 split")
    parser.add_argument("--classes", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=12, help="train.epochs: every trial's full length")
    parser.add_argument("--samples", type=int, default=16, help="tune.num_samples of both sweeps")
    parser.add_argument("--repeats", type=int, default=3, help="ASHA sweeps run; the median one is compared")
    parser.add_argument("--concurrent", type=int, default=2, help="tune.max_concurrent_trials")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0, help="tune.seed: both sweeps get the same proposals")
    parser.add_argument("--grace-period", type=int, default=1, help="tune.asha.grace_period")
    parser.add_argument("--reduction-factor", type=float, default=3.0, help="tune.asha.reduction_factor")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the embedded Ray (each trial holds 0.5)")
    parser.add_argument("--asha-first", action="store_true", help="run the ASHA sweep before the random one")
    parser.add_argument("--save", action="store_true", help="write the JSON to benchmarks/results/")
    args = parser.parse_args()
    if min(args.rows, args.epochs, args.samples, args.concurrent, args.cpus) < 1:
        parser.error("--rows, --epochs, --samples, --concurrent and --cpus must be >= 1")
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")

    quiet_library_logs()
    logging.getLogger("ray.tune").setLevel(logging.WARNING)
    for key, value in WORKER_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    # As the sweep does: Tune warns about its experiment-state snapshots on every short checkpointed epoch.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    load_before = os.getloadavg()[0]  # the machine may be shared: say how busy it was
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    configure_ray_data()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            config = make_config(args, workdir)
            tracking = connect_tracking(config.tracking)
            data = prepare_data(config.data)
            order = APPROACHES[::-1] if args.asha_first else APPROACHES
            runs: dict[str, list[Sweep]] = {}
            for approach in order:  # ASHA decides by arrival order, so it runs --repeats times
                times = args.repeats if approach == "asha" else 1
                runs[approach] = [
                    run_sweep(approach, config, data, tracking.uri, tracking.experiment_id, workdir, repeat)
                    for repeat in range(times)
                ]
            asha_runs = sorted(runs["asha"], key=lambda sweep: len(sweep.reports))
            sweeps = {"random": runs["random"][0], "asha": asha_runs[len(asha_runs) // 2]}  # the median ASHA run
            train_rows = data.row_counts["train"]
    finally:
        ray.shutdown()
    record = report(args, sweeps, train_rows, (load_before, os.getloadavg()[0]))
    record["asha_repeats"] = [
        {"trial_epochs_total": len(r.reports), "wall_s": round(r.wall_s, 2), "best_val_loss": round(r.best.value, 6)}
        for r in runs["asha"]
    ]
    print(
        "every ASHA run (trial-epochs, wall s): "
        + "; ".join(f"{len(r.reports)}, {r.wall_s:.1f}" for r in runs["asha"])
        + f" against random {len(runs['random'][0].reports)}, {runs['random'][0].wall_s:.1f}; the median run is shown"
    )
    emit(record, "asha_vs_random", args.save)


if __name__ == "__main__":
    main()
