"""Sweep overhead: our Tune layer (make_tuner + MLflow trial logger) against plain Ray Tune, on trials of known length.

Why: a sweep of many short trials should cost what its trials cost. Whatever the
layer adds (searcher set-up, actor reuse, the trial directory and checkpoint
settings, the driver writing every trial's MLflow child run) shows up as wall time
above the trials' own, and this measures it without any training noise.

The trial: a function trainable that, ``--epochs`` times, sleeps ``--sleep`` seconds
and reports ``{"epoch": e, "val_loss": ...}`` through ``ray.tune.report``; no
checkpoints, no data. Every trial lasts exactly ``epochs * sleep`` seconds of its own
work, so ``--trials`` of them, ``--concurrent`` at a time, need at least
``ceil(trials / concurrent) * epochs * sleep`` seconds: the theoretical minimum.
Each trial holds ``--cpus / --concurrent`` CPUs of an embedded Ray with ``--cpus``
CPUs, so Ray's resources and the searcher's limit agree on the concurrency.

Ours: ``mlops_ray.tune.strategies.make_tuner`` with a ``TuneConfig`` (random
searcher, scheduler ``none``, ``num_samples`` = trials, ``max_concurrent_trials`` =
concurrent, one ``train.lr`` loguniform dimension) and our ``MlflowTrialLogger`` on a
temp SQLite file, under a parent run made with ``MlflowClient``, as ``mlops-ray tune``
sets it up: a child run per trial, a batch of metrics per report. The logger's time
in the driver is measured too (``mlflow_driver_s``), and ours runs a second time
without the logger (``ours_no_mlflow``), which separates the MLflow cost from the rest.

Baseline: a plain ``ray.tune.Tuner`` in the same process: Tune's default
``BasicVariantGenerator``, the same trainable, resources, space, trial count and
``max_concurrent_trials``, no callbacks, and ``reuse_actors=True`` as ours has it,
so both sides start the same number of actors (``--baseline-no-reuse`` keeps Tune's
default of a fresh actor per function trial instead, and the JSON says which ran);
``verbose=0`` like ours, so neither prints a progress table.

Timing: the wall time of ``tuner.fit()`` alone (the Tuner is built and the MLflow
store created before it). A discarded warm-up fit comes first; then ``--rounds``
rounds of the three, rotating which goes first. Each side's figure is its fastest
round: another job on a shared machine only ever adds time. Every round is in the JSON.

- overhead = wall / minimum - 1 (goal: ours <= 10%);
- per-trial overhead = (wall - minimum) * concurrent / trials: the seconds each trial
  slot loses around one trial;
- in-trial overhead = a trial's ``time_total_s`` (its own clock, report round trips
  included) minus ``epochs * sleep``, averaged over the trials; the rest of the
  per-trial overhead is between trials (actor start or reuse, trial creation, the
  controller loop, callbacks);
- ours / plain: what our layer costs (or saves) over plain Tune.

    python benchmarks/tune_overhead.py [--trials N] [--epochs N] [--sleep S] [--concurrent N] [--cpus N]
                                       [--rounds N] [--baseline-no-reuse] [--save]

Prints a table and one JSON line; ``--save`` also writes it to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from common import emit, goal_table, machine, verdict  # benchmarks/common.py, next to this script
from mlflow.tracking import MlflowClient
from ray import tune
from ray.tune import ResultGrid, Tuner
from ray.tune.experiment import Trial
from rich.console import Console

from mlops_ray.config.tune import Dimension, TuneConfig
from mlops_ray.runtime import quiet_library_logs
from mlops_ray.tune.strategies import make_tuner
from mlops_ray.tune.tracking import MlflowTrialLogger

GOAL_OVERHEAD = 0.10
LR_LOW, LR_HIGH = 1e-4, 1e-1
SEED = 0
SIDES = ("plain", "ours", "ours_no_mlflow")


def make_trainable(epochs: int, sleep_s: float) -> Callable[[dict[str, Any]], None]:
    """A trial of known length: ``epochs`` x (sleep, report); its loss only depends on its lr."""

    def sleepy_trial(config: dict[str, Any]) -> None:
        started = time.time()  # reported so the start-up (fit() -> first trial running) can be told apart
        distance = abs(math.log10(float(config["train.lr"])) + 2.5)  # best near lr = 3e-3
        for epoch in range(1, epochs + 1):
            time.sleep(sleep_s)
            tune.report({"epoch": epoch, "val_loss": distance + 1.0 / epoch, "started_unix": started})

    return sleepy_trial


class TimedLogger(MlflowTrialLogger):
    """Our MLflow trial logger, adding up the driver's seconds inside it (every call Tune makes to it)."""

    seconds: float = 0.0

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        start = time.perf_counter()
        super().on_trial_start(iteration, trials, trial, **info)
        self.seconds += time.perf_counter() - start

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict[str, Any], **info: Any
    ) -> None:
        start = time.perf_counter()
        super().on_trial_result(iteration, trials, trial, result, **info)
        self.seconds += time.perf_counter() - start

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        start = time.perf_counter()
        super().on_trial_complete(iteration, trials, trial, **info)
        self.seconds += time.perf_counter() - start


@dataclass
class Run:
    side: str  # one of SIDES
    wall_s: float
    trial_s: float  # the trials' mean time_total_s
    startup_s: float  # from fit() to the first trial's function starting: actor processes, imports, setup
    extra: dict[str, Any] = field(default_factory=dict)


def ours_tuner(
    args: argparse.Namespace, trainable: Any, path: Path, tracking_uri: str, experiment_id: str, with_mlflow: bool
) -> tuple[Tuner, TimedLogger]:
    """``make_tuner`` as the sweep calls it; the parent run and the logger exist before the timing starts."""
    settings = TuneConfig(
        space={"train.lr": Dimension(type="loguniform", low=LR_LOW, high=LR_HIGH)},
        searcher="random",
        scheduler="none",
        num_samples=args.trials,
        max_concurrent_trials=args.concurrent,
        seed=SEED,
    )
    parent = MlflowClient(tracking_uri).create_run(experiment_id, run_name=f"{path.name}-sweep")
    logger = TimedLogger(tracking_uri, experiment_id, parent.info.run_id, "tune-overhead", args.epochs, args.trials)
    callbacks: list[tune.Callback] = [logger] if with_mlflow else []
    if not with_mlflow:
        logger.close()  # its writer process would otherwise run beside a sweep that does not use it
    tuner = make_tuner(settings, trainable, args.epochs, checkpoints_kept=1, path=path, callbacks=callbacks)
    return tuner, logger


def plain_tuner(args: argparse.Namespace, trainable: Any, path: Path, trials: int) -> Tuner:
    return Tuner(
        trainable,
        param_space={"train.lr": tune.loguniform(LR_LOW, LR_HIGH)},
        tune_config=tune.TuneConfig(
            metric="val_loss",
            mode="min",
            num_samples=trials,
            max_concurrent_trials=args.concurrent,
            reuse_actors=not args.baseline_no_reuse,
        ),
        run_config=tune.RunConfig(name=path.name, storage_path=str(path.parent), verbose=0),
    )


def timed_fit(tuner: Tuner) -> tuple[ResultGrid, float, float]:
    """The results, the wall time of ``fit()``, and the seconds until the first trial's function started."""
    start, start_unix = time.perf_counter(), time.time()
    results = tuner.fit()
    wall = time.perf_counter() - start
    first = min((float(r.metrics["started_unix"]) for r in results if "started_unix" in r.metrics), default=start_unix)
    return results, wall, first - start_unix


def trial_seconds(results: ResultGrid, trials: int, epochs: int, side: str) -> float:
    """Every trial ran every epoch, or the timing means nothing; returns the trials' mean ``time_total_s``."""
    if results.num_errors:
        raise SystemExit(f"{side}: {results.num_errors} trial(s) failed: {results.errors[0]}")
    epochs_run = [int(r.metrics.get("epoch", 0)) for r in results]
    if len(results) != trials or any(e != epochs for e in epochs_run):
        raise SystemExit(f"{side}: expected {trials} trials of {epochs} epochs, got epochs {epochs_run}")
    return sum(float(r.metrics["time_total_s"]) for r in results) / trials


def measure(args: argparse.Namespace, workdir: Path) -> tuple[list[Run], float]:
    """Warm-up, then ``--rounds`` rounds of the three sides, rotating which runs first."""
    tracking_uri = f"sqlite:///{workdir / 'mlflow.db'}"
    client = MlflowClient(tracking_uri)  # the first call creates the SQLite schema: outside any timing
    experiment_id = client.create_experiment("tune-overhead", artifact_location=(workdir / "artifacts").as_uri())
    resources = {"CPU": args.cpus / args.concurrent}
    trainable = tune.with_resources(make_trainable(args.epochs, args.sleep), resources)
    warm_up = tune.with_resources(make_trainable(1, args.sleep), resources)
    warm_up_s = timed_fit(plain_tuner(args, warm_up, workdir / "warm-up", args.concurrent))[1]

    runs: list[Run] = []
    for round_ in range(args.rounds):
        shift = round_ % len(SIDES)
        for side in SIDES[shift:] + SIDES[:shift]:
            path = workdir / f"{side}-{round_}"
            extra: dict[str, Any] = {}
            if side == "plain":
                results, wall, startup = timed_fit(plain_tuner(args, trainable, path, args.trials))
            else:
                with_mlflow = side == "ours"
                tuner, logger = ours_tuner(args, trainable, path, tracking_uri, experiment_id, with_mlflow)
                results, wall, startup = timed_fit(tuner)
                closing = time.perf_counter()
                logger.close()  # the sweep waits for the last MLflow writes too: part of its time
                wall += time.perf_counter() - closing
                if with_mlflow:
                    extra = {"mlflow_driver_s": logger.seconds, "child_runs": len(logger.runs)}
            runs.append(Run(side, wall, trial_seconds(results, args.trials, args.epochs, side), startup, extra))
            print(f"round {round_ + 1} {side}: {wall:.2f} s")
    return runs, warm_up_s


def report(args: argparse.Namespace, runs: list[Run], warm_up_s: float, load: tuple[float, float]) -> dict[str, Any]:
    minimum = math.ceil(args.trials / args.concurrent) * args.epochs * args.sleep
    trial_work = args.epochs * args.sleep
    fastest = {side: min((r for r in runs if r.side == side), key=lambda r: r.wall_s) for side in SIDES}
    wall = {side: r.wall_s for side, r in fastest.items()}
    overhead = {side: w / minimum - 1 for side, w in wall.items()}
    per_trial = {side: (w - minimum) * args.concurrent / args.trials for side, w in wall.items()}
    in_trial = {side: r.trial_s - trial_work for side, r in fastest.items()}
    startup = {side: r.startup_s for side, r in fastest.items()}
    # What is left once the one-off start-up is paid: the cost of each further trial.
    steady = {side: (w - startup[side] - minimum) * args.concurrent / args.trials for side, w in wall.items()}
    ratio = wall["ours"] / wall["plain"]
    ratio_no_mlflow = wall["ours_no_mlflow"] / wall["plain"]
    mlflow_s = fastest["ours"].extra["mlflow_driver_s"]
    met = overhead["ours"] <= GOAL_OVERHEAD

    title = (
        f"sweep overhead: {args.trials} trials x {args.epochs} epochs x {args.sleep:g} s, "
        f"{args.concurrent} at a time, {args.cpus} CPUs (fastest of {args.rounds} round(s))"
    )
    table = goal_table(title, ("ours", "ours, no MLflow", "plain Tune"))
    table.add_row("tuner.fit() s", *(f"{wall[s]:.2f}" for s in ("ours", "ours_no_mlflow", "plain")))
    table.add_row("theoretical minimum s", *[f"{minimum:.2f}"] * 3)
    table.add_row(
        "overhead",
        *(f"{overhead[s]:.1%}" for s in ("ours", "ours_no_mlflow", "plain")),
        f"<= {GOAL_OVERHEAD:.0%}",
        verdict(met),
    )
    table.add_row("overhead s per trial", *(f"{per_trial[s]:.3f}" for s in ("ours", "ours_no_mlflow", "plain")))
    table.add_row("  of which in the trial", *(f"{in_trial[s]:.3f}" for s in ("ours", "ours_no_mlflow", "plain")))
    table.add_row("start-up s (fit -> 1st trial)", *(f"{startup[s]:.2f}" for s in ("ours", "ours_no_mlflow", "plain")))
    table.add_row("per trial after start-up s", *(f"{steady[s]:.3f}" for s in ("ours", "ours_no_mlflow", "plain")))
    table.add_row("vs plain Tune", f"{ratio:.3f}x", f"{ratio_no_mlflow:.3f}x", "1x")
    Console().print(table)
    walls = {side: [round(r.wall_s, 3) for r in runs if r.side == side] for side in SIDES}
    print(
        "rounds (s): "
        + "; ".join(f"{side} " + ", ".join(f"{w:.2f}" for w in values) for side, values in walls.items())
        + f"; warm-up {warm_up_s:.2f}; MLflow logger in the driver {mlflow_s:.2f} s in ours' fastest round;"
        + f" load average {load[0]:.1f} -> {load[1]:.1f}"
    )
    print(f"ours / plain Tune: {ratio:.3f}x wall; ours overhead {overhead['ours']:.1%} (goal <= 10%)")
    return {
        "benchmark": "tune_overhead",
        "trials": args.trials,
        "epochs": args.epochs,
        "sleep_s": args.sleep,
        "concurrent": args.concurrent,
        "cpus": args.cpus,
        "cpu_per_trial": args.cpus / args.concurrent,
        "rounds": args.rounds,
        "reuse_actors": {"ours": True, "ours_no_mlflow": True, "plain": not args.baseline_no_reuse},
        "theoretical_min_s": round(minimum, 3),
        "wall_s": {side: round(v, 3) for side, v in wall.items()},
        "overhead": {side: round(v, 4) for side, v in overhead.items()},
        "overhead_s_per_trial": {side: round(v, 4) for side, v in per_trial.items()},
        "in_trial_overhead_s": {side: round(v, 4) for side, v in in_trial.items()},
        "startup_s": {side: round(v, 3) for side, v in startup.items()},
        "per_trial_after_startup_s": {side: round(v, 4) for side, v in steady.items()},
        "ratio_ours_vs_plain": round(ratio, 4),
        "ratio_ours_no_mlflow_vs_plain": round(ratio_no_mlflow, 4),
        "mlflow_driver_s": round(mlflow_s, 3),
        "goal_overhead": GOAL_OVERHEAD,
        "goal_met": met,
        "runs": {
            "wall_s": walls,
            "mlflow_driver_s": [round(r.extra["mlflow_driver_s"], 3) for r in runs if r.side == "ours"],
            "order": [r.side for r in runs],
            "warm_up_s": round(warm_up_s, 3),
        },
        "load_average_1min": {"before": round(load[0], 2), "after": round(load[1], 2)},
        **machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=64, help="num_samples of every sweep")
    parser.add_argument("--epochs", type=int, default=4, help="reports per trial")
    parser.add_argument("--sleep", type=float, default=0.25, help="seconds of 'work' before each report")
    parser.add_argument("--concurrent", type=int, default=2, help="max_concurrent_trials of every sweep")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the embedded Ray; a trial holds cpus/concurrent")
    parser.add_argument("--rounds", type=int, default=2, help="every side this often; its fastest round counts")
    parser.add_argument(
        "--baseline-no-reuse", action="store_true", help="plain Tune with its default: a new actor per trial"
    )
    parser.add_argument("--save", action="store_true", help="write the JSON to benchmarks/results/")
    args = parser.parse_args()
    if min(args.trials, args.epochs, args.concurrent, args.rounds, args.cpus) < 1 or args.sleep <= 0:
        parser.error("--trials, --epochs, --concurrent, --rounds and --cpus must be >= 1; --sleep > 0")

    quiet_library_logs()
    logging.getLogger("ray.tune").setLevel(logging.WARNING)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # as `mlops-ray tune` does: no experiment box per fit()
    load_before = os.getloadavg()[0]  # the machine may be shared: say how busy it was
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            runs, warm_up_s = measure(args, Path(tmp))
    finally:
        ray.shutdown()
    record = report(args, runs, warm_up_s, (load_before, os.getloadavg()[0]))
    emit(record, "tune_overhead", args.save)


if __name__ == "__main__":
    main()
