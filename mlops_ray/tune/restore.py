"""Resuming a sweep whose driver was killed: trial checkpoints Tune's saved state names but has deleted.

Tune saves the experiment state, with each trial's latest and best checkpoints, every
``num_to_keep`` checkpoints of a trial (or every few seconds), while its retention
(``num_to_keep``, ranked by the sweep metric) deletes a trial's previous checkpoint the
moment a better-ranked one arrives. A driver killed in between leaves a saved state that
names checkpoints no longer on storage, and Tune (Ray 2.60) then fails those trials on
``--resume``: "Could not recover from checkpoint as it does not exist on storage anymore".
Interrupting (Ctrl-C) cannot cause this: Tune saves its state as it stops.

``ForgetDeletedCheckpoints`` rewrites such a trial's checkpoint record before Tune
restores anything, keeping only the checkpoints still on storage: the trial resumes from
the newest of them, which is never newer than the saved state (so the epochs it trains
again are ones Tune's records, and MLflow, already hold), or from its first epoch when
none is left. The record is Tune's own ``_CheckpointManager``, which has no public
setter; a trial that names no missing checkpoint is left as Tune restored it.

``check_saved_state`` reads the newest saved snapshot before Tune does: a state file a
killed driver left half-written (sweeps from before ``atomic_storage.py``) is reported by
name, instead of Tune's restarting the sweep or failing with "experiment has not been run".
"""

from __future__ import annotations

import json
import logging
import pickletools
import re
from pathlib import Path
from typing import Any

from pyarrow.fs import FileType
from ray.train import Checkpoint
from ray.train._internal.checkpoint_manager import _CheckpointManager
from ray.tune import Callback
from ray.tune.experiment import Trial

from mlops_ray.errors import TrainingError
from mlops_ray.tune.atomic_storage import PARTIAL_SUFFIX

EXPERIMENT_STATE = "experiment_state"  # Tune's TuneController.CKPT_FILE_TMPL kind, the one JSON state file
# Every state file Tune writes per driver session: <kind>-<YYYY-MM-DD_HH-MM-SS>.json|pkl
_STATE_FILE = re.compile(r"^(?P<kind>[\w-]+?)-\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}\.(json|pkl)$")

logger = logging.getLogger(__name__)


class ForgetDeletedCheckpoints(Callback):
    """Once, at a resumed sweep's first step: point unfinished trials at checkpoints that exist."""

    def __init__(self) -> None:
        self._done = False

    def on_step_begin(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        if self._done:  # Tune restores trials after this first step begins: once is enough
            return
        self._done = True
        for trial in trials:
            if trial.status not in (Trial.TERMINATED, Trial.ERROR) and _forget_deleted(trial):
                logger.warning(
                    "trial %s: its saved checkpoint was deleted after Tune last saved the sweep; resuming from %s",
                    trial.trial_id,
                    trial.checkpoint.path if trial.checkpoint else "its first epoch",
                )


def _forget_deleted(trial: Trial) -> bool:
    """Rebuild the trial's checkpoint record from what is on storage; False when nothing was missing."""
    manager = trial.run_metadata.checkpoint_manager
    if manager is None:
        return False
    named = list(manager.best_checkpoint_results)
    if manager.latest_checkpoint_result is not None:
        named.append(manager.latest_checkpoint_result)
    existing = {result.checkpoint.path: result for result in named if _exists(result.checkpoint)}
    if len(existing) == len({result.checkpoint.path for result in named}):
        return False
    rebuilt = _CheckpointManager(manager.checkpoint_config)
    for result in sorted(existing.values(), key=lambda r: r.metrics.get("epoch", 0)):
        rebuilt.register_checkpoint(result)  # the newest, registered last, becomes the one to resume from
    trial.run_metadata.checkpoint_manager = rebuilt
    trial.invalidate_json_state()
    return True


def _exists(checkpoint: Checkpoint) -> bool:
    return checkpoint.filesystem.get_file_info(checkpoint.path).type != FileType.NotFound


def check_saved_state(experiment: Path) -> None:
    """Fail with the file's name if a state file Tune would resume from cannot be read.

    Tune reads the newest file of each kind on its own (``experiment_state-<session>.json``,
    the searcher's ``basic-variant-state-<session>.json`` or ``searcher-state-<session>.pkl``,
    ``callback-states-<session>.pkl``), so the newest of each kind is read here. Leftover
    ``.partial`` files of a killed write are removed: nothing reads them.
    """
    for leftover in experiment.glob(f".*{PARTIAL_SUFFIX}"):
        leftover.unlink(missing_ok=True)
    newest: dict[str, Path] = {}
    for path in sorted(experiment.iterdir()):  # session stamps sort by time, as Tune's max() reads them
        kind = _STATE_FILE.match(path.name)
        if kind is not None:
            newest[kind["kind"]] = path
    if EXPERIMENT_STATE not in newest:
        raise TrainingError(
            "Tune saved no experiment state for this sweep before its driver stopped",
            where=str(experiment),
            hint="Run without --resume to start a new sweep.",
        )
    for kind, part in newest.items():
        if _unreadable(part, as_json=kind == EXPERIMENT_STATE):
            raise TrainingError(
                f"Tune's saved sweep state {part.name} is empty or cut short "
                "(its driver was killed while writing it), so the sweep cannot be resumed",
                where=str(part),
                hint="Run without --resume to start a new sweep; the finished trials' runs stay in MLflow.",
            )


def _unreadable(part: Path, as_json: bool) -> bool:
    """Cut short: the experiment state is JSON; the searcher's and callbacks' are pickles, whatever their suffix."""
    content = part.read_bytes()
    try:
        if as_json:
            json.loads(content)
        else:
            for _ in pickletools.genops(content):  # walks the opcodes to STOP without running any of them
                pass
    except ValueError:
        return True
    return not content
