"""Drift over a big window of captured traffic: Ray Data (``summarize_window``) against one pandas process.

Data: ``--rows`` (default 2 million) captured rows in Serve's capture layout
(``date=<today>/model_version=1/part-*.parquet``, 100,000 rows a file): ``captured_at``
spread over the last 12 hours, ``request_id``, 8 float features (a quarter of them
shifted, so the comparison has drift to find), 2 string features of 12 values (one
with values training never saw), and the prediction columns Serve writes. The
reference is 10,000 rows of the unshifted generator, as training would log it.

Ours: ``mlops_ray.monitor.window.summarize_window`` on an embedded Ray with every CPU
(start-up reported apart): only the overlapping ``date=`` partitions listed, blocks
normalised and reduced to bin counts by Ray Data tasks, a ``random_sample`` for the
tests; then ``compare`` per column. Baseline: one process without Ray (a spawned
child, so its memory is its own) doing the same thing the obvious way:
``pd.read_parquet`` of every file, the window filter, the same ``numeric_counts`` /
``categorical_counts`` on whole columns, ``DataFrame.sample`` for the tests, the same
``compare``. The two must find the same drifted columns with the same counts before
anything is reported.

Memory: peak summed PSS over the process tree, sampled every 0.2 s (see
``data_preprocessing.py``): for ours this driver and every Ray process; for the
baseline its child.

    python benchmarks/monitor_window.py [--rows N] [--data-dir DIR] [--save]

Prints a table and one JSON line; ``--save`` also writes it to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import ray
from common import emit, machine
from data_preprocessing import PeakMemory
from rich.console import Console
from rich.table import Table

from mlops_ray.config.monitor import DriftThresholds
from mlops_ray.monitor.stats import (
    CurrentCounts,
    Reference,
    categorical_counts,
    categorical_reference,
    compare,
    numeric_counts,
    numeric_reference,
)
from mlops_ray.monitor.window import PREDICTION, Window, summarize_window
from mlops_ray.runtime import configure_ray_data

ROWS_PER_FILE = 100_000
NUMERIC = [f"num_{i}" for i in range(8)]
SHIFTED = {"num_1": 0.5, "num_6": -0.8}  # mean shifts, in standard deviations
CATEGORICAL = ["cat_0", "cat_1"]
PREDICTION_COLUMN = "prediction.predicted_class"
SAMPLE_ROWS = 5000
GIB = 2**30


def frame(rows: int, seed: int, drifted: bool, now: datetime) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data: dict[str, object] = {}
    for i, name in enumerate(NUMERIC):
        data[name] = rng.normal(loc=(SHIFTED.get(name, 0.0) if drifted else 0.0) + i, size=rows)
    for j, name in enumerate(CATEGORICAL):
        values = np.array([f"{name}_v{k}" for k in range(12)] + ([f"{name}_new"] if drifted and j == 1 else []))
        weights = np.ones(len(values))
        if drifted and j == 1:
            weights[-1] = 1.5  # about 11 % unseen
        data[name] = rng.choice(values, size=rows, p=weights / weights.sum())
    score = data["num_0"] - np.mean(data["num_0"])  # type: ignore[operator]
    data[PREDICTION_COLUMN] = np.where(score > 0, "yes", "no")
    result = pd.DataFrame(data)
    if drifted:
        minutes = rng.uniform(0, 12 * 60, size=rows)
        result.insert(0, "captured_at", pd.to_datetime(now, utc=True) - pd.to_timedelta(minutes, unit="min"))
        result.insert(1, "request_id", [f"r{seed}-{k // 50}" for k in range(rows)])
    return result


def ensure_dataset(directory: Path, rows: int, now: datetime) -> Path:
    marker = directory / "_COMPLETE"
    if marker.exists() and marker.read_text() == f"{rows} {now.date()}":
        return directory
    folder = directory / f"date={now.date().isoformat()}" / "model_version=1"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.parquet"):
        old.unlink()
    for index, start in enumerate(range(0, rows, ROWS_PER_FILE)):
        part = frame(min(ROWS_PER_FILE, rows - start), 100 + index, drifted=True, now=now)
        pq.write_table(pa.Table.from_pandas(part, preserve_index=False), folder / f"part-{index:05d}.parquet")
    marker.write_text(f"{rows} {now.date()}")
    return directory


def references() -> dict[str, Reference]:
    reference = frame(10_000, 0, drifted=False, now=datetime.now(UTC))
    found: dict[str, Reference] = {n: numeric_reference(n, reference[n].to_numpy(float), 10) for n in NUMERIC}
    found |= {n: categorical_reference(n, reference[n].to_numpy(object)) for n in CATEGORICAL}
    found[PREDICTION] = categorical_reference(PREDICTION, reference[PREDICTION_COLUMN].to_numpy(object))
    return found


def verdicts(refs: dict[str, Reference], counts: dict[str, CurrentCounts], sample: pd.DataFrame) -> dict[str, tuple]:
    features = [n for n in refs if n != PREDICTION]
    found = {}
    for name, reference in refs.items():
        present = sample[name].dropna().to_numpy()
        drift = compare(reference, counts[name], present, DriftThresholds(), tests=len(features))
        found[name] = (drift.drifted, tuple(int(c) for c in counts[name].counts), round(drift.psi, 4))
    return found


def run_ours(directory: Path, window: Window, refs: dict[str, Reference]) -> tuple[dict, float, float]:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    start = time.perf_counter()
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, logging_level=logging.WARNING)
    configure_ray_data()
    ray_start = time.perf_counter() - start
    try:
        start = time.perf_counter()
        summary = summarize_window(str(directory), window, refs, PREDICTION_COLUMN, "1", SAMPLE_ROWS)
        assert summary is not None
        found = verdicts(refs, summary.counts, summary.sample)
        return found, time.perf_counter() - start, ray_start
    finally:
        ray.shutdown()


def _baseline_child(directory: str, window: Window, send: Connection) -> None:
    start = time.perf_counter()
    refs = references()
    table = pd.read_parquet(directory)  # every file, with the date / model_version partition columns
    at = pd.to_datetime(table["captured_at"], utc=True)
    table = table[(at >= pd.Timestamp(window.since)) & (at < pd.Timestamp(window.until))]
    table = table.rename(columns={PREDICTION_COLUMN: PREDICTION})
    counts = {}
    for name, reference in refs.items():
        present = table[name].dropna()
        if name in NUMERIC:
            bins = numeric_counts(present.to_numpy(float), reference.edges)  # type: ignore[union-attr]
        else:
            bins = categorical_counts(present.astype(str).to_numpy(), reference.categories)  # type: ignore[union-attr]
        counts[name] = CurrentCounts(bins, len(table) - len(present), len(table))
    sample = table.sample(n=min(SAMPLE_ROWS, len(table)), random_state=0)
    found = verdicts(refs, counts, sample)
    send.send((found, time.perf_counter() - start))


def run_baseline(directory: Path, window: Window) -> tuple[dict, float, PeakMemory]:
    receive, send = multiprocessing.Pipe(duplex=False)
    child = multiprocessing.get_context("spawn").Process(target=_baseline_child, args=(str(directory), window, send))
    child.start()
    with PeakMemory(child.pid) as memory:  # type: ignore[arg-type]
        found, seconds = receive.recv()
        child.join()
    return found, seconds, memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--data-dir", help="where the generated capture lives (default: <tmp>/mlops-ray-bench/capture)")
    parser.add_argument("--save", action="store_true", help="write the JSON to benchmarks/results/")
    args = parser.parse_args()

    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    base = Path(args.data_dir or Path(tempfile.gettempdir()) / "mlops-ray-bench" / f"capture-{args.rows}")
    directory = ensure_dataset(base, args.rows, now)
    window = Window(now - timedelta(hours=24), now + timedelta(minutes=1))
    refs = references()
    load_before = os.getloadavg()[0]
    with PeakMemory(os.getpid()) as ours_memory:
        ours, ours_s, ray_start = run_ours(directory, window, refs)
    baseline, baseline_s, baseline_memory = run_baseline(directory, window)
    load_after = os.getloadavg()[0]
    # bin counts must agree exactly; the verdicts too (the tests see different samples, the drift is not subtle)
    disagree = {n: (ours[n], baseline[n]) for n in ours if ours[n][:2] != baseline[n][:2]}
    if disagree:
        raise SystemExit(f"ours and the baseline disagree: {disagree}")

    speed = baseline_s / ours_s
    memory = ours_memory.peak_pss / baseline_memory.peak_pss
    table = Table(title=f"drift over {args.rows:,} captured rows x 11 columns ({os.cpu_count()} CPUs)")
    for column in ("", "ours (Ray Data)", "baseline (pandas)", "ours vs baseline"):
        table.add_column(column, justify="left" if not column else "right")
    table.add_row("seconds", f"{ours_s:.1f}", f"{baseline_s:.1f}", f"{speed:.2f}x as fast")
    table.add_row("peak memory (GiB)", f"{ours_memory.peak_pss / GIB:.2f}", f"{baseline_memory.peak_pss / GIB:.2f}",
                  f"{memory:.2f}x")  # fmt: skip
    Console().print(table)
    drifted = sorted(n for n, (flag, _, _) in ours.items() if flag)
    print(f"drifted: {drifted}; ours also spent {ray_start:.1f}s starting Ray (not in the totals)")
    emit(
        {
            "benchmark": "monitor_window",
            "rows": args.rows,
            "files": -(-args.rows // ROWS_PER_FILE),
            "ours_s": round(ours_s, 2),
            "ours_ray_start_s": round(ray_start, 2),
            "baseline_s": round(baseline_s, 2),
            "speed_ratio": round(speed, 3),
            "ours_peak_pss_gib": round(ours_memory.peak_pss / GIB, 3),
            "baseline_peak_pss_gib": round(baseline_memory.peak_pss / GIB, 3),
            "memory_ratio": round(memory, 3),
            "drifted": drifted,
            "load_average": [round(load_before, 2), round(load_after, 2)],
            **machine(),
        },
        "monitor_window",
        args.save,
    )


if __name__ == "__main__":
    sys.exit(main())
