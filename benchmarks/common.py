"""What every benchmark shares: the machine's memory for its description, and printing / saving the JSON line.

Benchmarks run as scripts (``python benchmarks/<name>.py``), so this module is imported
from the script's own folder.
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def memory_gib() -> int:
    with open("/proc/meminfo") as meminfo:
        return round(int(meminfo.readline().split()[1]) / 2**20)


def emit(record: dict, name: str, save: bool) -> None:
    """Print the result as one JSON line; with ``save``, also keep it as ``results/<name>.json``."""
    line = json.dumps(record)
    print(line)
    if save:
        (RESULTS / f"{name}.json").write_text(line + "\n")
