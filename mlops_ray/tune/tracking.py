"""Every trial's MLflow child run, written by the sweep's driver alone.

Trials never touch MLflow: Tune hands each epoch's result to this callback in the
driver process, and one background thread of the driver does every write, in order.
A trial's params and epoch metrics are batched (handed over every ``WRITE_EVERY_S``
and when it ends), so a short trial costs three writes, not one per epoch: each
SQLite transaction holds the driver's GIL for milliseconds that Tune's loop waits.
A single writer, so four (or forty) concurrent trials cannot lock the default SQLite
store; and Tune's control loop does not wait for each write (a remote tracking server
answers in tens of milliseconds). ``flush()`` waits for the writes and re-raises the
first failed one. Child runs are found again by their ``mlops_ray.trial_id`` tag, so
a resumed sweep keeps logging into the same runs. The callback also prints one line
per finished trial, so long sweeps show progress.

A resumed sweep never takes a child run backwards. A driver killed outright (SIGKILL,
the OOM killer) leaves Tune's last saved state and the child runs disagreeing either
way, since Tune saves on its own schedule and these writes are batched: ``catch_up``
logs the epochs Tune recorded that never reached MLflow, and closes (then deletes) the
runs of trials started after Tune's last save, which Tune starts again; epochs a run
already holds are not logged twice when a restored trial trains them again; a trial an
earlier session saw end stays as it ended, even if Tune runs it again; and a trial
whose end Tune saved but MLflow never heard of is closed when the sweep resumes.
"""

from __future__ import annotations

import math
import numbers
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from ray.tune import Callback, Result, ResultGrid
from ray.tune.experiment import Trial
from rich.console import Console

from mlops_ray.tags import (
    MODEL_TAG,
    PARENT_TAG,
    STAGE_TAG,
    TRIAL_ERROR_TAG,
    TRIAL_NUMBER_TAG,
    TRIAL_STATUS_TAG,
    TRIAL_TAG,
)
from mlops_ray.train.loop import TIMING_METRICS
from mlops_ray.tune.strategies import trial_id_of

ENDED = frozenset({"completed", "early-stopped", "errored"})
WRITE_EVERY_S = 2.0  # a trial's epoch metrics are batched for at most this long (and written when it ends)
EPOCH_METRIC = "val_loss"  # every epoch reports it: its history says which epochs a child run holds


def is_model_metric(key: str) -> bool:
    """The loop's per-epoch metrics, without Tune's bookkeeping or wall-clock timings."""
    return (key.startswith(("train_", "val_")) or key == "lr") and key not in TIMING_METRICS


class MlflowTrialLogger(Callback):
    def __init__(
        self,
        tracking_uri: str,
        experiment_id: str,
        parent_run_id: str,
        model_name: str,
        epochs: int,
        total_trials: int,
        console: Console | None = None,
        log_changing_params: bool = False,
    ):
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri)
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.model_name = model_name
        self.epochs = epochs
        self.total_trials = total_trials
        self.console = console
        self.log_changing_params = log_changing_params  # PBT changes values mid-trial: log them as metrics
        self.runs: dict[str, str] = {}  # trial id -> child run id (filled in by the writer thread)
        self.numbers: dict[str, int] = {}  # trial id -> 1, 2, ... in the order trials started
        self.ended: set[str] = set()  # trials that completed, were stopped early, or errored (any session)
        self.logged: dict[str, int] = {}  # trial id -> the last epoch its child run held when this session began
        self._logged_at: dict[str, int] = {}  # trial id -> when (ms) that epoch was logged
        for run in self._existing_child_runs():
            trial_id = run.data.tags[TRIAL_TAG]
            self.runs[trial_id] = run.info.run_id
            self.numbers[trial_id] = int(run.data.tags.get(TRIAL_NUMBER_TAG, 0))
            if run.data.tags.get(TRIAL_STATUS_TAG) in ENDED:
                self.ended.add(trial_id)
                if run.info.status == "RUNNING":  # killed between tagging its end and closing it
                    failed = run.data.tags[TRIAL_STATUS_TAG] == "errored"
                    self.client.set_terminated(run.info.run_id, status="FAILED" if failed else "FINISHED")
            else:
                history = self.client.get_metric_history(run.info.run_id, EPOCH_METRIC)
                self.logged[trial_id] = max((m.step for m in history), default=0)
                self._logged_at[trial_id] = max((m.timestamp for m in history), default=0)
        self.ended_before = frozenset(self.ended)  # closed by an earlier session: left exactly as they are
        self._reconciled = False
        self.finished = 0
        self._pending: dict[str, list[Metric | Param]] = {}  # trial id -> not yet written (params, then metrics)
        self._written_at: dict[str, float] = {}  # trial id -> when its pending entries were last handed over
        self._start_writer()

    def _start_writer(self) -> None:
        self._writes: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._failure: BaseException | None = None
        self._writer = threading.Thread(target=self._write_loop, name="mlflow-trial-writer", daemon=True)
        self._writer.start()

    def _write_loop(self) -> None:
        while (write := self._writes.get()) is not None:
            try:
                if self._failure is None:
                    write()
            except BaseException as exc:  # kept, and raised by flush() in the driver's thread
                self._failure = exc
            finally:
                self._writes.task_done()
        self._writes.task_done()

    def _submit(self, write: Callable[[], None]) -> None:
        self._writes.put(write)

    def _hand_over(self, trial_id: str) -> None:
        """Queue a trial's buffered params and metrics as one ``log_batch``."""
        pending = self._pending.pop(trial_id, [])
        self._written_at[trial_id] = time.monotonic()
        if pending:
            self._submit(lambda: self.client.log_batch(self.runs[trial_id], **_split(pending)))

    def flush(self) -> None:
        """Hand over every buffered entry, wait until every write so far is done; raise the first that failed."""
        for trial_id in list(self._pending):
            self._hand_over(trial_id)
        self._writes.join()
        if self._failure is not None:
            raise self._failure

    def close(self) -> None:
        """Flush, then stop the writer thread."""
        if self._writer.is_alive():
            for trial_id in list(self._pending):
                self._hand_over(trial_id)
            self._writes.put(None)
            self._writer.join()
        if self._failure is not None:
            raise self._failure

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles its run config (this callback included) into the experiment state: keep plain fields only."""
        skip = ("client", "console", "_writes", "_writer", "_failure", "_pending", "_written_at")
        return {k: v for k, v in self.__dict__.items() if k not in skip}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.client = MlflowClient(state["tracking_uri"])
        self.console = None
        self._pending, self._written_at = {}, {}  # a snapshot's buffer was written (or lost) by its own process
        self._start_writer()

    def catch_up(self, results: ResultGrid) -> None:
        """Before a resumed sweep runs: bring the child runs level with the Tune state it resumes from.

        ``results`` are Tune's own records of that state (``Tuner.restore(...).get_results()``).
        A trial resumes after its last saved checkpoint and does not report those epochs again,
        so any its child run lacks (batched writes a killed driver never sent) are logged from
        Tune's records here (result files, last result and checkpoint results: ``_saved_epochs``);
        a trial Tune saved whose child run the killed driver had not yet created gets it here,
        with every epoch Tune holds. A child run whose trial Tune's state
        does not know was started after Tune last saved: Tune starts that trial afresh (the
        random searcher under the same id), so the run is closed as ``lost`` and deleted, and a
        new one records the trial.
        """
        known = set()
        for result in results:
            trial_id = trial_id_of(result)
            known.add(trial_id)
            rows = _saved_epochs(result)
            if trial_id in self.ended or not rows:
                continue
            if trial_id not in self.runs:  # Tune saved the trial's epochs; the killed driver never created its run
                self._run_creator(trial_id)()
                params = [Param(k, str(v)) for k, v in (result.config or {}).items()]
                self.client.log_batch(self.runs[trial_id], params=params)
            metrics = []
            for row in rows:
                step = int(row["epoch"])
                if step <= self.logged.get(trial_id, 0):
                    continue
                # Tune stamps results in whole seconds: keep the history in epoch order after what it holds
                stamp = int(row.get("timestamp", time.time()) * 1000)
                at = self._logged_at[trial_id] = max(stamp, self._logged_at.get(trial_id, 0) + 1)
                for key, value in row.items():
                    name = f"param.{key[7:]}" if key.startswith("config/") and self.log_changing_params else key
                    if (is_model_metric(name) or name.startswith("param.")) and (number := _number(value)) is not None:
                        metrics.append(Metric(name, number, at, step))
                self.logged[trial_id] = step
            if metrics:
                self.client.log_batch(self.runs[trial_id], metrics=metrics)
        for trial_id in [t for t in self.runs if t not in known]:
            run_id = self.runs.pop(trial_id)
            self.numbers.pop(trial_id, None)
            self.logged.pop(trial_id, None)
            self._logged_at.pop(trial_id, None)
            self.client.set_tag(run_id, TRIAL_STATUS_TAG, "lost")
            self.client.set_terminated(run_id, status="KILLED")
            self.client.delete_run(run_id)

    def _run_creator(self, trial_id: str) -> Callable[[], None]:
        """Number the trial and return the write that creates its child run (the writer thread's, or catch-up's)."""
        number = self.numbers[trial_id] = max(self.numbers.values(), default=0) + 1
        tags = {
            PARENT_TAG: self.parent_run_id,
            STAGE_TAG: "trial",
            MODEL_TAG: self.model_name,
            TRIAL_TAG: trial_id,
            TRIAL_NUMBER_TAG: str(number),
        }
        started = int(time.time() * 1000)  # when Tune started the trial, not when the writer got to it

        def create() -> None:
            run = self.client.create_run(
                self.experiment_id, start_time=started, run_name=f"trial-{number:03d}", tags=tags
            )
            self.runs[trial_id] = run.info.run_id

        return create

    def on_step_begin(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        """Once, before anything runs: close the runs of trials Tune's saved state has ended but MLflow does not."""
        if self._reconciled:
            return
        self._reconciled = True
        for trial in trials:
            if trial.trial_id in self.runs and trial.trial_id not in self.ended:
                if trial.status == Trial.TERMINATED:
                    self._finish(trial, self._completion(trial), "FINISHED", announce=False)
                elif trial.status == Trial.ERROR:
                    self._finish(trial, "errored", "FAILED", announce=False)

    def _existing_child_runs(self) -> list[Any]:
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{self.parent_run_id}'", max_results=10_000
        )
        return [r for r in runs if TRIAL_TAG in r.data.tags]

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        trial_id = trial.trial_id
        if trial_id in self.ended_before:  # ended after Tune's last save: Tune reruns its tail, MLflow keeps its end
            return
        if trial_id in self.numbers:  # resumed (after an interrupted sweep), or a PBT trial restarted
            self._submit(lambda: self.client.update_run(self.runs[trial_id], status="RUNNING"))
            return
        self._submit(self._run_creator(trial_id))
        self._pending[trial_id] = [Param(k, str(v)) for k, v in trial.config.items()]
        self._written_at[trial_id] = time.monotonic()

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict[str, Any], **info: Any
    ) -> None:
        trial_id = trial.trial_id
        step, now = int(result.get("epoch", 0)), int(time.time() * 1000)
        if trial_id in self.ended_before or (trial_id in self.logged and step <= self.logged[trial_id]):
            return  # an epoch an earlier session logged, trained again from the checkpoint Tune had saved
        metrics = [Metric(k, float(v), now, step) for k, v in result.items() if is_model_metric(k) and v is not None]
        if self.log_changing_params:
            metrics += [
                Metric(f"param.{k}", float(v), now, step)
                for k, v in trial.config.items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            ]
        self._pending.setdefault(trial_id, []).extend(metrics)
        if time.monotonic() - self._written_at.get(trial_id, 0.0) >= WRITE_EVERY_S:
            self._hand_over(trial_id)

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._finish(trial, self._completion(trial), "FINISHED")

    def _completion(self, trial: Trial) -> str:
        epochs = int((trial.last_result or {}).get("epoch", 0))
        return "completed" if epochs >= self.epochs else "early-stopped"

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._finish(trial, "errored", "FAILED")

    def mark_unfinished(self, trial_ids: list[str], status: str) -> None:
        """Close the child runs of trials the sweep left running or paused (interrupted, or out of budget)."""
        self.flush()
        for trial_id in trial_ids:
            if run_id := self.runs.get(trial_id):
                self.client.set_tag(run_id, TRIAL_STATUS_TAG, status)
                self.client.set_terminated(run_id, status="KILLED")

    def _finish(self, trial: Trial, status: str, run_status: str, announce: bool = True) -> None:
        trial_id = trial.trial_id
        if trial_id not in self.numbers or trial_id in self.ended_before:
            return
        tags = [RunTag(TRIAL_STATUS_TAG, status)]
        if status == "errored" and trial.error_file:
            tags.append(RunTag(TRIAL_ERROR_TAG, _last_line(trial.error_file)))
        ended = int(time.time() * 1000)

        pending = self._pending.pop(trial_id, [])

        def close_run() -> None:
            run_id = self.runs[trial_id]
            self.client.log_batch(run_id, tags=tags, **_split(pending))
            self.client.set_terminated(run_id, status=run_status, end_time=ended)

        self._submit(close_run)
        self.ended.add(trial_id)
        if not announce:
            return
        self.finished += 1
        if self.console is not None:
            last = trial.last_result or {}
            detail = ", ".join(f"{k} {last[k]:.4f}" for k in sorted(last) if k.startswith("val_"))
            self.console.print(
                f"  trial {self.numbers[trial_id]:>3} {status:<13} epochs {int(last.get('epoch', 0)):>3}  "
                f"{detail}  [{self.finished} finished this session; sweep of {self.total_trials}]",
                highlight=False,
            )


def _split(entries: list[Metric | Param]) -> dict[str, list[Any]]:
    return {
        "metrics": [e for e in entries if isinstance(e, Metric)],
        "params": [e for e in entries if isinstance(e, Param)],
    }


def _number(value: Any) -> float | None:
    """A finite number from Tune's result table (NumPy scalars too), else None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        return None
    return float(value)


def _last_line(path: str) -> str:
    try:
        with open(path) as handle:
            lines = [line.strip() for line in handle if line.strip()]
    except OSError:
        return "see the trial's error file"
    return lines[-1][:500] if lines else "unknown error"


def _saved_epochs(result: Result) -> list[dict[str, Any]]:
    """Every epoch Tune's saved state holds for a trial, in epoch order (a repeated epoch: its first report).

    The result files (``metrics_dataframe``) can lag the state a killed driver saved: the
    trial's last result and its checkpoints' results are in the experiment state itself, and
    the trial resumes after its latest checkpoint, so an epoch only they hold is logged too.
    """
    frame = result.metrics_dataframe
    rows = frame.to_dict("records") if frame is not None and "epoch" in frame else []
    rows += [metrics for _, metrics in result.best_checkpoints or []]
    rows.append(result.metrics or {})
    return sorted((row for row in rows if _number(row.get("epoch")) is not None), key=lambda row: int(row["epoch"]))
