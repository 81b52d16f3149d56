"""What every benchmark shares: the machine it ran on, the results table, printing / saving the JSON line.

Benchmarks run as scripts (``python benchmarks/<name>.py``), so this module is imported
from the script's own folder.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results"


def memory_gib() -> int:
    with open("/proc/meminfo") as meminfo:
        return round(int(meminfo.readline().split()[1]) / 2**20)


STAMPED_PACKAGES = ("torch", "ray", "mlflow", "pandas", "pyarrow")


def machine(gpu: str = "no GPU") -> dict[str, str]:
    """Where and with what a result was measured: the machine, the platform, the package versions, the date."""
    stamp = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {memory_gib()} GiB, {gpu} ({platform.node()})",
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    for package in STAMPED_PACKAGES:
        try:
            stamp[package] = version(package)
        except PackageNotFoundError:
            stamp[package] = "not installed"
    stamp["date"] = datetime.now(UTC).strftime("%Y-%m-%d")
    commit, dirty = git_commit()
    stamp["commit"] = commit + ("-dirty" if dirty else "")
    stamp["load_average"] = dict(zip(("1min", "5min", "15min"), (round(v, 2) for v in os.getloadavg()), strict=True))
    return stamp


def git_commit() -> tuple[str, bool]:
    """The checkout's commit, and whether its code differs from it (changed tracked files, untracked ones not ignored).

    ``benchmarks/results/`` is left out: those files are what benchmarks write, so
    ``make bench`` can save one result after another from the same clean commit.
    """
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", ".", ":(exclude)benchmarks/results"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)", True
    return head.stdout.strip(), bool(status.stdout.strip())


def emit(record: dict, name: str, save: bool) -> None:
    """Print the result as one JSON line; with ``save``, also keep it as ``results/<name>.json``.

    A saved result must name the code it measured, so saving from a checkout with
    uncommitted changes is refused (the line is still printed).
    """
    line = json.dumps(record)
    print(line)
    if not save:
        return
    commit, dirty = git_commit()
    if dirty:
        raise SystemExit(
            f"not saved: the checkout has uncommitted changes (HEAD {commit[:12]}), so the result would not name "
            "the code it measured; commit, then run the benchmark again with --save"
        )
    (RESULTS / f"{name}.json").write_text(line + "\n")


def goal_table(title: str, sides: Sequence[str]) -> Table:
    """The printed results: a label column, one column per side compared, the goal and whether it is met."""
    table = Table(title=title)
    for column in ("", *sides, "goal", "  "):
        table.add_column(column, justify="left" if not column.strip() else "right")
    return table


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"
