"""Tune's saved sweep state: written whole or not at all, and a damaged snapshot named on ``--resume``.

A driver killed while Tune copied its state to the storage path used to leave an empty
``basic-variant-state-*.json`` or ``experiment_state-*.json`` (found by the randomized
kill test in tests/integration/test_tune.py). The kill here is real: a child process
stops with ``os._exit`` in the middle of a write through the filesystem Tune is given.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from mlops_ray.errors import TrainingError
from mlops_ray.tune.atomic_storage import PARTIAL_SUFFIX, atomic_local_filesystem
from mlops_ray.tune.restore import check_saved_state

SESSION = "2026-12-05_08-51-05"

KILLED_MID_WRITE = """
import os, sys
from mlops_ray.tune.atomic_storage import atomic_local_filesystem
stream = atomic_local_filesystem().open_output_stream(sys.argv[1])
stream.write(b'{"trial_data": [')
stream.flush()
os._exit(9)  # as SIGKILL would: no close, no cleanup
"""


def test_a_writer_killed_mid_write_leaves_the_previous_file_whole(tmp_path: Path) -> None:
    state = tmp_path / f"experiment_state-{SESSION}.json"
    state.write_text('{"trial_data": []}')
    killed = subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, str(state)], check=False)
    assert killed.returncode == 9
    assert json.loads(state.read_text()) == {"trial_data": []}
    leftovers = list(tmp_path.glob(f".*{PARTIAL_SUFFIX}"))
    assert len(leftovers) == 1  # the cut-short write, under a name no Tune pattern matches

    check_saved_state(tmp_path)  # the snapshot reads, and the leftover is swept away
    assert not list(tmp_path.glob(f".*{PARTIAL_SUFFIX}"))


def test_copy_files_into_it_replaces_whole_files_and_the_filesystem_travels_by_pickle(tmp_path: Path) -> None:
    staging, storage = tmp_path / "staging", tmp_path / "storage"
    staging.mkdir()
    (staging / "a.json").write_text('{"new": 1}')
    (staging / "sub").mkdir()
    (staging / "sub" / "b.bin").write_bytes(bytes(range(256)) * 4096)
    storage.mkdir()
    (storage / "a.json").write_text('{"old": 0}')

    filesystem = pickle.loads(pickle.dumps(atomic_local_filesystem()))  # as trial actors receive it
    pafs.copy_files(str(staging), str(storage), destination_filesystem=filesystem)

    assert json.loads((storage / "a.json").read_text()) == {"new": 1}
    assert (storage / "sub" / "b.bin").read_bytes() == (staging / "sub" / "b.bin").read_bytes()
    assert not list(storage.rglob(f"*{PARTIAL_SUFFIX}"))
    filesystem.copy_file(str(storage / "a.json"), str(storage / "c.json"))
    assert (storage / "c.json").read_text() == '{"new": 1}'


@pytest.mark.parametrize(
    ("damaged", "content"),
    [
        (f"experiment_state-{SESSION}.json", b""),
        (f"experiment_state-{SESSION}.json", b'{"trial_data": [{"'),
        (f"basic-variant-state-{SESSION}.json", b""),  # a pickle, despite its name
        (f"basic-variant-state-{SESSION}.json", pickle.dumps({"_uuid_prefix": "ab", "_total_samples": 8})[:-5]),
        (f"callback-states-{SESSION}.pkl", pickle.dumps({0: {"trials": [1, 2, 3]}})[:12]),
    ],
)
def test_a_damaged_snapshot_is_named_not_restarted(tmp_path: Path, damaged: str, content: bytes) -> None:
    write_whole_snapshot(tmp_path)
    check_saved_state(tmp_path)
    (tmp_path / damaged).write_bytes(content)
    with pytest.raises(TrainingError, match=f"{damaged} is empty or cut short") as raised:
        check_saved_state(tmp_path)
    assert raised.value.where == str(tmp_path / damaged)
    assert "without --resume" in (raised.value.hint or "")


def write_whole_snapshot(folder: Path) -> None:
    """What Tune saves each time: experiment state as JSON, searcher and callback state as cloudpickles."""
    (folder / f"experiment_state-{SESSION}.json").write_text('{"trial_data": []}')
    (folder / f"basic-variant-state-{SESSION}.json").write_bytes(pickle.dumps({"_uuid_prefix": "ab"}))
    (folder / f"callback-states-{SESSION}.pkl").write_bytes(pickle.dumps({0: {"trials": []}}))
    (folder / "basic-variant-state-2026-12-05_08-50-48.json").write_text("")  # an older session's: not read


def test_no_saved_snapshot_at_all_says_so(tmp_path: Path) -> None:
    (tmp_path / "tuner.pkl").write_bytes(b"x")
    with pytest.raises(TrainingError, match="saved no experiment state"):
        check_saved_state(tmp_path)


def test_the_newest_file_of_each_kind_is_read_even_from_an_earlier_session(tmp_path: Path) -> None:
    """Tune reads the newest searcher state whatever session wrote it: a later session may have written none."""
    write_whole_snapshot(tmp_path)
    (tmp_path / "experiment_state-2026-12-05_09-00-00.json").write_text('{"trial_data": []}')  # a later session
    check_saved_state(tmp_path)
    (tmp_path / f"callback-states-{SESSION}.pkl").write_bytes(b"")
    with pytest.raises(TrainingError, match=f"callback-states-{SESSION}.pkl is empty"):
        check_saved_state(tmp_path)
