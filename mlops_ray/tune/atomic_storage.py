"""A local filesystem for Tune's storage path whose files appear whole or not at all.

Tune (Ray 2.60) writes the experiment state to a staging directory and copies it to the
storage path with ``pyarrow.fs.copy_files``, which truncates each destination file and
then writes it. A driver killed inside that copy (the OOM killer, a lost node) leaves an
empty or half-written ``experiment_state-*.json`` or ``basic-variant-state-*.json`` on
storage, and ``--resume`` then cannot read the sweep: Tune logs "Failed to restore the run
state" and starts the sweep over, or cannot list its results at all.

``atomic_local_filesystem()`` is pyarrow's local filesystem with one change: a state file
(``.json``, ``.pkl``) opened for writing is written beside its destination under a hidden
temporary name and renamed over it when closed, so a reader sees the previous whole file or the new whole file. A
kill leaves at most a stray ``.*.partial`` file, which no Tune pattern matches. Tune takes
the filesystem through its public ``RunConfig(storage_filesystem=...)``; it also carries
trial checkpoints, whose other files keep pyarrow's native stream (no Python call per
write; a checkpoint is registered only after all its files are written, so it needs no
rename).

What it cannot give: two files of one snapshot are renamed one after the other, so a kill
between them leaves one file a snapshot newer than the other; and a writer that raises
while it writes (not one that is killed) closes its stream, which publishes what it
wrote, as pyarrow's local filesystem would have left it. A write that fails, and a
failed ``copy_file``, publish nothing.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from typing import Any

import pyarrow
import pyarrow.fs as pafs

PARTIAL_SUFFIX = ".partial"
# What Tune's state is written as (experiment state JSON; searcher, callback and tuner pickles), and what is
# renamed into place; other files (checkpoint payloads) are written by pyarrow's own local stream.
STATE_SUFFIXES = (".json", ".pkl")


def atomic_local_filesystem() -> pafs.PyFileSystem:
    """The filesystem to give Tune for a storage path on local (or network-mounted) disk."""
    return pafs.PyFileSystem(AtomicLocalHandler())


class _RenameOnClose:
    """A binary file written under a temporary name and renamed to ``path`` by a clean close."""

    def __init__(self, path: str) -> None:
        self._path = path
        folder, name = os.path.split(path)
        self._partial = os.path.join(folder, f".{name}.{uuid.uuid4().hex}{PARTIAL_SUFFIX}")
        self._file = open(self._partial, "wb")  # noqa: SIM115 - closed (and renamed) by close()

    @property
    def closed(self) -> bool:
        return self._file.closed

    def write(self, data: Any) -> int:
        try:
            return self._file.write(data)
        except BaseException:
            self.abort()  # a failed write never replaces the previous file
            raise

    def flush(self) -> None:
        self._file.flush()

    def tell(self) -> int:
        return self._file.tell()

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        if self._file.closed:
            return
        self._file.close()  # no fsync: a killed process's writes survive it; a power cut is out of scope
        os.replace(self._partial, self._path)

    def abort(self) -> None:
        """Drop what was written: the destination keeps its previous content (or stays absent)."""
        if not self._file.closed:
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._partial)


class AtomicLocalHandler(pafs.FileSystemHandler):
    """``pyarrow.fs.LocalFileSystem`` for everything but writes, which rename into place on close."""

    def __init__(self) -> None:
        self._local = pafs.LocalFileSystem()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AtomicLocalHandler)

    def __hash__(self) -> int:
        return hash(AtomicLocalHandler)

    def __reduce__(self) -> tuple[type[AtomicLocalHandler], tuple[()]]:
        return AtomicLocalHandler, ()  # trial actors and restored sweeps rebuild it from the class

    def get_type_name(self) -> str:
        return "atomic-local"

    def normalize_path(self, path: str) -> str:
        return self._local.normalize_path(path)

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return self._local.get_file_info(paths)

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        return self._local.get_file_info(selector)

    def create_dir(self, path: str, recursive: bool) -> None:
        self._local.create_dir(path, recursive=recursive)

    def delete_dir(self, path: str) -> None:
        self._local.delete_dir(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self._local.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        raise OSError("refusing to delete the contents of the filesystem root")

    def delete_file(self, path: str) -> None:
        self._local.delete_file(path)

    def move(self, src: str, dest: str) -> None:
        self._local.move(src, dest)

    def copy_file(self, src: str, dest: str) -> None:
        if not dest.endswith(STATE_SUFFIXES):
            self._local.copy_file(src, dest)
            return
        sink = _RenameOnClose(dest)
        try:
            with self._local.open_input_stream(src) as source:
                while chunk := source.read(1 << 20):
                    sink.write(chunk)
        except BaseException:
            sink.abort()
            raise
        sink.close()

    def open_input_stream(self, path: str) -> pyarrow.NativeFile:
        return self._local.open_input_stream(path)

    def open_input_file(self, path: str) -> pyarrow.NativeFile:
        return self._local.open_input_file(path)

    def open_output_stream(self, path: str, metadata: dict[str, str] | None) -> pyarrow.NativeFile:
        if not path.endswith(STATE_SUFFIXES):  # checkpoint payloads: pyarrow's native stream, no Python per write
            return self._local.open_output_stream(path, metadata=metadata)
        return pyarrow.PythonFile(_RenameOnClose(path), mode="w")

    def open_append_stream(self, path: str, metadata: dict[str, str] | None) -> pyarrow.NativeFile:
        return self._local.open_append_stream(path, metadata=metadata)
