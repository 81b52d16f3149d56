"""A Ray Tune sweep whose trials run the training loop, tracked as MLflow parent and children.

``mlops-ray tune`` runs it (``stage.py``), and so does ``mlops-ray run`` with a ``tune`` section.

States of a sweep, as its MLflow parent run shows them: RUNNING while trials run;
KILLED when interrupted (Ctrl-C), which ``--resume`` reopens; FINISHED once every
trial has ended and the best trial's model is registered with alias ``challenger``.
A driver killed outright (SIGKILL, out of memory) leaves the parent RUNNING, and
``--resume`` reopens that too. Tune keeps the experiment state (searcher, scheduler,
finished trials, trial checkpoints) under ``tune.storage_path/sweep-<parent run id>``,
which is how a resumed sweep runs only what is left and ends with exactly
``num_samples`` trials. After a kill that state can be a little older or newer than
the child runs, and can name checkpoints Tune has since deleted: before the sweep
continues, the trial logger reconciles the child runs with it (``tracking.py``: no
child run loses or repeats an epoch) and such trials resume from a checkpoint that
still exists (``restore.py``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow
import torch
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from ray.tune import ResultGrid, Tuner

from mlops_ray.config import Config, TuneConfig, dump_config
from mlops_ray.data import PreparedData
from mlops_ray.data.prepare import prepare_stage
from mlops_ray.errors import ConfigError, DataError, SweepInterrupted, TrainingError
from mlops_ray.evaluate import score_test_split
from mlops_ray.models import ModelSpec
from mlops_ray.models.record import TrainResult
from mlops_ray.models.user import check_builder
from mlops_ray.registry import RegisteredModel, log_packaged_model, register_model
from mlops_ray.registry.lineage import version_tags
from mlops_ray.registry.runs import flatten, log_run_inputs, run_scope, unfinished_run
from mlops_ray.reporting import StageReporter
from mlops_ray.tags import (
    FINGERPRINT_TAG,
    SWEEP_BEST_RUN_TAG,
    SWEEP_BEST_TRIAL_TAG,
    SWEEP_PARENT_TAG,
    SWEEP_PATH_TAG,
    SWEEP_TRIAL_RUN_TAG,
    SWEEP_TRIAL_TAG,
    SWEEP_TRIALS_ARTIFACT,
)
from mlops_ray.train.state import WEIGHTS_FILE
from mlops_ray.train.trainer import check_selection_metric, selectable_metrics, storage_uri
from mlops_ray.tune import strategies, summary
from mlops_ray.tune.atomic_storage import atomic_local_filesystem
from mlops_ray.tune.restore import ForgetDeletedCheckpoints, check_saved_state
from mlops_ray.tune.tracking import MlflowTrialLogger
from mlops_ray.tune.trial import make_trainable, sweep_builders, trial_config


@dataclass(frozen=True)
class SweepOutcome:
    parent_run_id: str
    trials: list[summary.TrialSummary]
    best: summary.TrialSummary
    model_uri: str
    model: RegisteredModel
    test_metrics: dict[str, float]
    data: PreparedData
    resumed: bool
    stop_reason: str  # all trials ended | time budget | target reached


def sweep_and_register(
    config: Config, reporter: StageReporter, tracking_uri: str, config_text: str | None = None, resume: bool = False
) -> SweepOutcome:
    settings = _settings(config)
    config_text = config_text or dump_config(config)
    previous = find_resumable_sweep(config) if resume else None
    data = prepare_stage(config, reporter)
    if previous is not None and previous.data.tags.get(FINGERPRINT_TAG) != data.fingerprint.digest:
        raise DataError(
            f"the data changed since sweep {previous.info.run_id} started (fingerprint "
            f"{previous.data.tags.get(FINGERPRINT_TAG, '?')[:12]}, now {data.fingerprint.digest[:12]})",
            where=config.data.source,
            hint="A resumed sweep must see the same rows; run without --resume to start a new sweep.",
        )
    _check_metric(config, settings, data.task)
    for name in sweep_builders(config):  # the config's own network, and each one model.name may take
        check_builder(name, data.preprocessing.width, data.target.n_outputs, dict(config.model.params))
    workers = config.train.workers_for(data.row_counts["train"])
    if settings.scheduler == "pbt" and workers > 1:
        raise ConfigError(
            f"pbt needs one-worker trials, but train.num_workers {config.train.num_workers} means {workers} workers "
            f"for {data.row_counts['train']} training rows",
            where="train.num_workers",
            hint="Set train.num_workers: 1 (or 0), or use the asha scheduler.",
        )
    epochs = config.train.epochs
    with mlflow.start_run(
        run_id=previous.info.run_id if previous else None,
        run_name=None if previous else f"{config.registry.model_name}-sweep",
    ) as parent:
        parent_id = parent.info.run_id
        path = Path(storage_uri(settings.storage_path)) / f"sweep-{parent_id}"
        if previous is None:
            log_run_inputs(config, config_text, data, parent_id, reporter, stage="tune")
            mlflow.log_params(flatten(settings.model_dump(mode="json"), "tune."))
            mlflow.set_tag(SWEEP_PATH_TAG, str(path))  # the fingerprint is tagged by log_run_inputs
        logger = MlflowTrialLogger(
            tracking_uri,
            parent.info.experiment_id,
            parent_id,
            config.registry.model_name,
            epochs,
            settings.total_trials(),
            reporter.console,
            log_changing_params=settings.scheduler == "pbt",
        )
        doing = (
            f"{settings.total_trials()} trials, {settings.max_concurrent_trials} at a time, "
            f"{settings.searcher} search, {settings.scheduler} scheduler"
        )
        with reporter.stage("sweep", ("resuming: " if previous else "") + doing) as stage:
            try:
                results, stop_reason = _fit(config, settings, data, logger, path, restore=previous is not None)
            finally:
                logger.close()  # every child-run write done (or its error raised) before anything reads them
            trials = summary.summarize(
                results, settings, epochs, logger.runs, logger.numbers, logger.ended, _history(settings.metric)
            )
            unfinished = [t.trial_id for t in trials if t.trial_id not in logger.ended]
            if stop_reason == "all trials ended" and (unfinished or len(trials) < settings.total_trials()):
                stop_reason = "interrupted"
            stage.detail = _describe(trials, stop_reason)
        if stop_reason == "interrupted":
            logger.mark_unfinished(unfinished, "interrupted")
            mlflow.end_run(status="KILLED")
            raise SweepInterrupted(
                f"the sweep stopped after {len(logger.ended)} of {settings.total_trials()} trials; its state is saved",
                where=str(path),
                hint="Continue it with `mlops-ray tune CONFIG --resume`.",
            )
        logger.mark_unfinished(unfinished, "stopped")
        for trial in trials:
            if trial.status == "unfinished":
                trial.status = "stopped"  # by the time budget or the target: they will not continue
        for trial in trials:
            if trial.status == "errored":
                reporter.warn(f"trial {trial.number} failed (MLflow run {trial.run_id}): {trial.error}")
        best = _best_trial(trials, settings, stop_reason)
        summary.print_table(reporter.console, trials, settings, best.trial_id)
        _log_summary(trials, settings, best)
        challenger = config.registry.challenger_alias
        with reporter.stage("register", f"packaging trial {best.number}'s best checkpoint as @{challenger}") as stage:
            trained = _trained(results, best, settings, config, data)
            trial_run = mlflow.get_run(best.run_id).info
            with mlflow.start_run(run_id=best.run_id, nested=True):
                model_uri = log_packaged_model(trained, data)
                metric_names = config.evaluate.metrics_for(data.task)
                test_metrics = score_test_split(
                    model_uri, tracking_uri, data.test, data.features, data.target, metric_names
                )
                mlflow.log_metrics(test_metrics)
            # reopening the run to add the model must not make the trial look as if it ran until now
            MlflowClient().set_terminated(best.run_id, trial_run.status, end_time=trial_run.end_time)
            mlflow.log_metrics(test_metrics)
            tags = {
                **version_tags(data, config_text),
                SWEEP_PARENT_TAG: parent_id,
                SWEEP_TRIAL_TAG: best.trial_id,
                SWEEP_TRIAL_RUN_TAG: best.run_id or "",
            }
            model = register_model(model_uri, config.registry.model_name, challenger, tags)
            stage.detail = f"{model.name} version {model.version} @{challenger}; " + ", ".join(
                f"{k.removeprefix('test_')} {v:.3f}" for k, v in list(test_metrics.items())[:3]
            )
    resumed = previous is not None
    return SweepOutcome(parent_id, trials, best, model_uri, model, test_metrics, data, resumed, stop_reason)


def find_resumable_sweep(config: Config) -> Run:
    """The latest sweep of this model, if it did not finish and Tune's state for it is still on disk.

    KILLED (interrupted) and RUNNING (its driver was killed, or died) both qualify: nothing
    tells a dead driver from a live one elsewhere, so resuming a sweep that is still running
    is the user's call, as with any ``--resume``.
    """
    run = unfinished_run(config, "tune", "sweep", "start a new sweep")
    path = run.data.tags.get(SWEEP_PATH_TAG, "")
    if not path or not Tuner.can_restore(path):
        raise TrainingError(
            f"sweep {run.info.run_id} ({run.info.status}) left no Tune state to continue from",
            where=path or run_scope(config),
            hint="Run without --resume to start a new sweep.",
        )
    return run


def _settings(config: Config) -> TuneConfig:
    if config.tune is None:
        raise ConfigError("the config has no tune section; add one (see docs/tuning.md)", where="tune")
    return config.tune


def _check_metric(config: Config, settings: TuneConfig, task: str) -> None:
    check_selection_metric(config.train, task)
    allowed = selectable_metrics(task)
    if settings.metric not in allowed:
        raise ConfigError(
            f"'{settings.metric}' is not reported for {task}; choose one of {', '.join(allowed)}", where="tune.metric"
        )


def _fit(
    config: Config, settings: TuneConfig, data: PreparedData, logger: MlflowTrialLogger, path: Path, restore: bool
) -> tuple[ResultGrid, str]:
    trainable = make_trainable(config, data, str(path / "train-runs"))
    stopper = (
        strategies.TargetReached(settings.metric, settings.mode, settings.stop_at)
        if settings.stop_at is not None
        else None
    )
    if restore:
        check_saved_state(path)
        tuner = Tuner.restore(
            str(path.resolve()),
            trainable=trainable,
            resume_unfinished=True,
            resume_errored=False,
            storage_filesystem=atomic_local_filesystem(),
        )
        logger.catch_up(tuner.get_results())  # the trials and epochs of the state Tune resumes from
        run_config = tuner._local_tuner.get_run_config()  # restored from pickle: give it this session's callbacks
        run_config.callbacks = [ForgetDeletedCheckpoints(), logger]
        stopper = run_config.stop if isinstance(run_config.stop, strategies.TargetReached) else stopper
    else:
        tuner = strategies.make_tuner(
            settings, trainable, config.train.epochs, config.train.checkpoint.keep, path, [logger], stopper
        )
    _quiet_tune()
    started = time.monotonic()
    results = tuner.fit()
    if stopper is not None and stopper.reached_by is not None:
        return results, "target reached"
    if settings.time_budget_s is not None and time.monotonic() - started >= settings.time_budget_s:
        return results, "time budget"
    return results, "all trials ended"


def _quiet_tune() -> None:
    """Keep the terminal to our stage lines and trial lines (set only where the user has not chosen).

    Tune's output engine prints an experiment box and result paths even at ``verbose=0``; the
    legacy engine at verbosity 0 prints nothing. Tune snapshots its state whenever a trial has
    checkpointed ``num_to_keep`` times and warns about it on every short epoch; the snapshots
    are cheap next to real epochs.
    """
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Trials a budget left unstarted have no result files; the summary skips them, Tune lists each as a failure.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)


def _history(metric: str) -> Callable[[str], list[tuple[int, float]]]:
    """A child run's ``metric`` by epoch; an epoch logged twice (re-run after a resume) keeps its latest value."""
    client = MlflowClient()

    def curve(run_id: str) -> list[tuple[int, float]]:
        points = sorted(client.get_metric_history(run_id, metric), key=lambda m: m.timestamp)
        return sorted({m.step: m.value for m in points}.items())

    return curve


def _describe(trials: list[summary.TrialSummary], stop_reason: str) -> str:
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.status] = counts.get(t.status, 0) + 1
    return f"{len(trials)} trials: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + f" ({stop_reason})"


def _best_trial(trials: list[summary.TrialSummary], settings: TuneConfig, stop_reason: str) -> summary.TrialSummary:
    scored = [t for t in trials if t.best is not None]
    if not scored and stop_reason == "time budget":
        raise TrainingError(
            f"the time budget ended before any trial finished an epoch ({len(trials)} trial(s) started)",
            where="tune.time_budget_s",
            hint=f"Raise it above {settings.time_budget_s:g} s: a trial's first epoch includes its start-up.",
        )
    if not scored:
        raise TrainingError(
            "no trial reported a metric; every trial failed",
            where="the sweep's trials",
            hint="Each child run in MLflow carries its error (tag mlops_ray.trial_error).",
        )
    pick = min if settings.mode == "min" else max
    return pick(scored, key=lambda t: t.best or 0.0)


def _log_summary(trials: list[summary.TrialSummary], settings: TuneConfig, best: summary.TrialSummary) -> None:
    mlflow.log_dict({"trials": [t.to_dict() for t in trials]}, SWEEP_TRIALS_ARTIFACT)
    mlflow.log_figure(summary.learning_curves(trials, settings.metric), "sweep/learning_curves.png")
    mlflow.log_figure(summary.metric_versus_params(trials, settings), "sweep/metric_vs_params.png")
    mlflow.log_metrics({f"best_{settings.metric}": best.best or 0.0, "trials": float(len(trials))})
    mlflow.set_tags({SWEEP_BEST_TRIAL_TAG: best.trial_id, SWEEP_BEST_RUN_TAG: best.run_id or ""})


def _trained(
    results: ResultGrid, best: summary.TrialSummary, settings: TuneConfig, config: Config, data: PreparedData
) -> TrainResult:
    """The best trial's best kept checkpoint, as the training stage would have returned it."""
    result = next(r for r in results if strategies.trial_id_of(r) == best.trial_id)
    candidates = [(Path(c.path), m) for c, m in result.best_checkpoints]  # one-worker trials checkpoint via Tune
    if not candidates and result.metrics_dataframe is not None:
        # A trial stopped on the very report that carried its checkpoint (tune.stop_at) has it on disk but not
        # registered; a multi-worker trial's checkpoints are its Ray Train run's, named in checkpoint_path.
        for _, row in result.metrics_dataframe.iterrows():
            for name in (row.get("checkpoint_dir_name"), row.get("checkpoint_path")):
                if isinstance(name, str) and name and (Path(result.path) / name / WEIGHTS_FILE).is_file():
                    candidates.append((Path(result.path) / name, row.to_dict()))  # an absolute name stays itself
    if not candidates:
        raise TrainingError(f"trial {best.number} kept no checkpoint", where=result.path)
    pick = min if settings.mode == "min" else max
    path, metrics = pick(candidates, key=lambda pair: pair[1][settings.metric])
    trial = trial_config(config.model_dump(mode="json", exclude={"tune"}), best.params)
    spec = ModelSpec.from_config(trial.model, data.preprocessing.width, data.target.n_outputs)
    state_dict = torch.load(Path(path) / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    numbers = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
    return TrainResult(spec, state_dict, numbers, str(path), best.epochs, numbers)
