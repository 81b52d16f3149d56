"""Preprocessing throughput and peak memory: Ray Data fit + transform against one plain pandas process.

Data: a generated Parquet data set, ``--rows`` (default 10 million) x 20 columns: 16
float64 columns (different location and scale each, about 1% nulls) and 4 string
columns (20 values each with Zipf-like frequencies, about 2% nulls). There is no
label column: both sides preprocess features only, and a label would be passed
through untouched anyway. It is written once, in files of 500,000 rows, to
``--data-dir`` (default ``<tmp>/mlops-ray-bench/<rows>``) and reused while its
``_COMPLETE`` marker matches the row count and seed.

Ours: an embedded Ray with every CPU of the machine (its start-up is reported apart,
not in the totals), ``ray.data.read_parquet`` -> ``Preprocessing.fit`` (Ray Data
aggregations for means and stds, ``top_values`` for the string columns) -> ``map_batches``
applying ``Preprocessing.transform`` once per block (no ``batch_size``, as the data
stage does; a block is one 500,000-row file) -> the float32 matrices streamed to the
driver with ``iter_batches``, which adds up each column. Nothing is materialised or
collected on the driver: ``fit`` and the transform each read the files again.

Baseline: one process without Ray (a spawned child of this invocation, so its memory
is its own): ``pd.read_parquet`` of the whole table, the same statistics from pandas
(``mean``/``std(ddof=0)`` skipping nulls, ``value_counts`` ranked by count then value),
the same ``Preprocessing.transform`` on slices of 500,000 rows, the size of ours'
blocks (one call on the whole table would need over 10 GB of float64 intermediates at
10M rows, which would measure numpy, not the design), and the same column sums. Both
sides end with identical work: every output row produced and summed, nothing written.
The two fitted ``Preprocessing`` objects and the column sums must agree (within float
tolerance) before anything is reported.

Memory: a thread reads ``/proc/<pid>/smaps_rollup`` every 0.2 s (~15 ms a sample on
a 2-CPU machine) and sums PSS (proportional set size) over a process tree: for ours
this driver plus every process Ray started (raylet, GCS, agents, workers); for the
baseline its child process. PSS splits each shared page among the processes mapping
it, so the object store's shared memory in /dev/shm, which the workers and the driver
all map, is counted once; plain summed RSS counts it once per process (reported too,
as an upper bound). The split at the peak (anonymous / shmem / file) and the
baseline's exact kernel high-water mark (``VmHWM``) go in the JSON; sampling can miss
a spike shorter than 0.2 s on either side.

    python benchmarks/data_preprocessing.py [--rows N] [--data-dir DIR] [--max-categories N] [--save]

Prints a table and one JSON line; ``--save`` also writes it to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import ray
import ray.data
from common import emit, machine  # benchmarks/common.py, next to this script

from mlops_ray.data.preprocessing import CategoricalColumn, NumericColumn, Preprocessing
from mlops_ray.runtime import configure_ray_data

ROOT = Path(__file__).resolve().parents[1]
NUMERIC = [f"x{i:02d}" for i in range(16)]
CATEGORICAL = [f"c{i}" for i in range(4)]
VALUES_PER_CATEGORICAL = 20
NUMERIC_NULLS = 0.01
CATEGORICAL_NULLS = 0.02
ROWS_PER_FILE = 500_000
SEED = 20240601
MARKER = "_COMPLETE"  # leading underscore: pyarrow and Ray both skip it when reading the directory
GIB = 2**30


# --- data ---------------------------------------------------------------------------------------------------------


def dataset_dir(rows: int, data_dir: str | None) -> Path:
    """Outside the repository on purpose: 10M rows are ~1.3 GB of Parquet (random floats do not compress)."""
    return Path(data_dir) if data_dir else Path(tempfile.gettempdir()) / "mlops-ray-bench" / str(rows)


def ensure_dataset(directory: Path, rows: int) -> Path:
    """Write the data set unless a complete one is there; the marker is written last, so a crash leaves none."""
    expected = {"rows": rows, "seed": SEED, "rows_per_file": ROWS_PER_FILE, "columns": NUMERIC + CATEGORICAL}
    marker = directory / MARKER
    if marker.exists() and json.loads(marker.read_text()) == expected:
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("part-*.parquet"):  # only our own files: --data-dir may name any directory
        stale.unlink()
    start = time.perf_counter()
    for index, first in enumerate(range(0, rows, ROWS_PER_FILE)):
        chunk = _chunk(index, min(ROWS_PER_FILE, rows - first))
        pq.write_table(chunk, directory / f"part-{index:05d}.parquet")
    marker.write_text(json.dumps(expected))
    print(f"wrote {rows:,} rows to {directory} in {time.perf_counter() - start:.1f}s", file=sys.stderr)
    return directory


def _chunk(index: int, rows: int) -> pa.Table:
    """One file's rows, seeded by its index so a chunk never depends on the ones before it."""
    rng = np.random.default_rng([SEED, index])
    columns: dict[str, pa.Array] = {}
    for j, name in enumerate(NUMERIC):
        values = rng.normal(loc=j - 8.0, scale=1.0 + j / 4, size=rows)
        columns[name] = pa.array(values, mask=rng.random(rows) < NUMERIC_NULLS)
    for j, name in enumerate(CATEGORICAL):
        values, probabilities = _categories(j)
        codes = np.searchsorted(np.cumsum(probabilities), rng.random(rows), side="right").clip(max=len(values) - 1)
        indices = pa.array(codes.astype(np.int32), mask=rng.random(rows) < CATEGORICAL_NULLS)
        columns[name] = pa.array(values).take(indices)
    return pa.table(columns)


def _categories(column: int) -> tuple[list[str], np.ndarray]:
    """Zipf-like frequencies over a shuffled value order, so the most frequent value is not the first by name."""
    names = [f"{CATEGORICAL[column]}_v{k:02d}" for k in range(VALUES_PER_CATEGORICAL)]
    order = np.random.default_rng([SEED, 1000 + column]).permutation(VALUES_PER_CATEGORICAL)
    weights = 1.0 / (np.arange(VALUES_PER_CATEGORICAL) + 1.0)
    return [names[i] for i in order], weights / weights.sum()


# --- memory -------------------------------------------------------------------------------------------------------


@dataclass
class PeakMemory:
    """Peak summed PSS (and summed RSS) of a process and all its descendants, sampled from /proc.

    At the peak it also keeps the PSS split the kernel reports: anonymous (heaps, numpy
    and Arrow buffers), shmem (Ray's object store lives in /dev/shm) and file (mapped
    libraries), so a result can say where the memory went.
    """

    root: int
    interval_s: float = 0.2
    peak_pss: int = 0
    peak_rss: int = 0
    at_peak: dict[str, int] = field(default_factory=dict)
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        self._thread = threading.Thread(target=self._run, name="peak-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.sample()  # one last look, in case the run was shorter than an interval

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        total: dict[str, int] = dict.fromkeys(_ROLLUP_KEYS, 0)
        tree = _process_tree(self.root)
        for pid in tree:
            for key, kib in _smaps_rollup(pid).items():
                total[key] += kib * 1024
        if total["Pss"] > self.peak_pss:
            self.peak_pss = total["Pss"]
            self.at_peak = {"processes": len(tree), **{k.lower(): v for k, v in total.items() if k.startswith("Pss_")}}
        self.peak_rss = max(self.peak_rss, total["Rss"])
        self.samples += 1


_ROLLUP_KEYS = ("Rss", "Pss", "Pss_Anon", "Pss_File", "Pss_Shmem")


def _smaps_rollup(pid: int) -> dict[str, int]:
    """The process's memory totals in KiB; empty when it has exited, since it holds no memory any more."""
    found: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as lines:
            for line in lines:
                key, _, rest = line.partition(":")
                if key in _ROLLUP_KEYS:
                    found[key] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        return {}
    return found


def _process_tree(root: int) -> list[int]:
    """``root`` and every live descendant, from the parent pids in /proc/<pid>/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                parent = int(stat.read().rpartition(")")[2].split()[1])  # the name in (...) may hold spaces
        except (OSError, ValueError, IndexError):
            continue  # exited between listing and reading
        children.setdefault(parent, []).append(int(entry.name))
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(children.get(pid, []))
    return tree


def _proc_kib(path: str, key: str) -> int:
    try:
        with open(path) as lines:
            for line in lines:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass  # the process exited: it holds no memory any more
    return 0


# --- the two sides ------------------------------------------------------------------------------------------------


@dataclass
class SideResult:
    seconds: dict[str, float]
    preprocessing_json: str
    rows: int
    column_sums: list[float]
    extra: dict[str, float] = field(default_factory=dict)


class _Transform:
    """Ray Data batch function, shaped like the data stage's: raw columns -> {'x': float32 matrix}."""

    def __init__(self, preprocessing: Preprocessing):
        self.preprocessing = preprocessing

    def __call__(self, batch: pd.DataFrame) -> dict[str, np.ndarray]:
        return {"x": self.preprocessing.transform(batch)}


def run_ours(directory: Path, max_categories: int) -> SideResult:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    start = time.perf_counter()
    ray.init(
        address="local",  # never someone else's cluster: its processes would escape the memory count
        num_cpus=os.cpu_count(),
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    configure_ray_data()  # the shuffle strategy and quiet progress that mlops-ray itself runs with
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    ray_start_s = time.perf_counter() - start
    try:
        start = time.perf_counter()
        dataset = ray.data.read_parquet(str(directory))
        preprocessing = Preprocessing.fit(dataset, NUMERIC, CATEGORICAL, max_categories=max_categories)
        fit_s = time.perf_counter() - start

        start = time.perf_counter()
        matrices = dataset.map_batches(_Transform(preprocessing), batch_format="pandas")
        rows, sums = 0, np.zeros(preprocessing.width)
        for batch in matrices.iter_batches(batch_size=None, batch_format="numpy"):
            rows += len(batch["x"])
            sums += batch["x"].sum(axis=0, dtype=np.float64)
        transform_s = time.perf_counter() - start
    finally:
        ray.shutdown()
    return SideResult(
        {"fit": fit_s, "transform": transform_s, "total": fit_s + transform_s},
        preprocessing.to_json(),
        rows,
        sums.tolist(),
        {"ray_start_s": ray_start_s},
    )


def run_baseline(directory: Path, max_categories: int) -> tuple[SideResult, PeakMemory]:
    """In a spawned child, so that its peak memory is its own and not this process's Ray or imports."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_baseline_child, args=(directory, max_categories, send))
    child.start()
    send.close()
    with PeakMemory(child.pid or 0) as memory:
        result = SideResult(**receive.recv())
        child.join()
    if child.exitcode != 0:
        raise SystemExit(f"baseline process failed with exit code {child.exitcode}")
    return result, memory


def _baseline_child(directory: Path, max_categories: int, send: Connection) -> None:
    import_rss = _proc_kib("/proc/self/status", "VmHWM:") * 1024

    start = time.perf_counter()
    frame = pd.read_parquet(directory)  # the whole table in memory: the obvious single-process way
    read_s = time.perf_counter() - start

    start = time.perf_counter()
    numeric = []
    for name in NUMERIC:
        mean, std = frame[name].mean(), frame[name].std(ddof=0)  # both skip nulls, like ignore_nulls=True
        fill = 0.0 if pd.isna(mean) else float(mean)
        numeric.append(NumericColumn(name, fill, fill, float(std) if pd.notna(std) and std else 1.0))
    categorical = []
    for name in CATEGORICAL:
        counts = frame[name].value_counts(dropna=True).rename_axis("value").reset_index(name="count")
        counts["value"] = counts["value"].astype(str)
        ranked = counts.sort_values(["count", "value"], ascending=[False, True], kind="stable")
        categorical.append(CategoricalColumn(name, tuple(ranked["value"].head(max_categories))))
    preprocessing = Preprocessing(tuple(numeric), tuple(categorical), "onehot")
    fit_s = time.perf_counter() - start

    start = time.perf_counter()
    rows, sums = 0, np.zeros(preprocessing.width)
    for first in range(0, len(frame), ROWS_PER_FILE):
        x = preprocessing.transform(frame.iloc[first : first + ROWS_PER_FILE])
        rows += len(x)
        sums += x.sum(axis=0, dtype=np.float64)
    transform_s = time.perf_counter() - start

    # VmHWM, not ru_maxrss: Linux carries the forking parent's RSS into a spawned child's ru_maxrss across exec.
    peak_rss = _proc_kib("/proc/self/status", "VmHWM:") * 1024
    seconds = {"read": read_s, "fit": fit_s, "transform": transform_s, "total": read_s + fit_s + transform_s}
    extra = {"import_rss_gib": import_rss / GIB, "peak_rss_gib": peak_rss / GIB}
    send.send(asdict(SideResult(seconds, preprocessing.to_json(), rows, sums.tolist(), extra)))  # plain data: picklable
    send.close()


# --- checks and report --------------------------------------------------------------------------------------------


def check_agreement(ours: SideResult, baseline: SideResult, expected_rows: int) -> None:
    """Refuse to report speed for outputs that differ: a faster wrong answer is not a result."""
    mine, theirs = json.loads(ours.preprocessing_json), json.loads(baseline.preprocessing_json)
    problems = []
    if ours.rows != expected_rows or baseline.rows != expected_rows:
        problems.append(f"rows: ours {ours.rows}, baseline {baseline.rows}, expected {expected_rows}")
    for a, b in zip(mine["numeric"], theirs["numeric"], strict=True):
        for key in ("fill", "mean", "std"):
            if not np.isclose(a[key], b[key], rtol=1e-9, atol=1e-12):
                problems.append(f"{a['name']}.{key}: ours {a[key]!r}, baseline {b[key]!r}")
    for a, b in zip(mine["categorical"], theirs["categorical"], strict=True):
        if a["categories"] != b["categories"]:
            problems.append(f"{a['name']} categories: ours {a['categories']}, baseline {b['categories']}")
    sums_a, sums_b = np.array(ours.column_sums), np.array(baseline.column_sums)
    if sums_a.shape != sums_b.shape or not np.allclose(sums_a, sums_b, rtol=1e-6, atol=1e-6 * expected_rows):
        problems.append(f"output column sums differ by up to {np.max(np.abs(sums_a - sums_b)):.3g}")
    if problems:
        raise SystemExit("ours and the baseline disagree:\n  " + "\n  ".join(problems))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--data-dir", help="where the generated Parquet lives (default: <tmp>/mlops-ray-bench/<rows>)")
    parser.add_argument("--max-categories", type=int, default=16, help="fewer than the 20 values: 'unknown' is used")
    parser.add_argument("--save", action="store_true", help="write the JSON to benchmarks/results/")
    args = parser.parse_args()

    directory = ensure_dataset(dataset_dir(args.rows, args.data_dir), args.rows)
    load_before = os.getloadavg()[0]  # the machine may be shared: say how busy it was
    # Ours first: spawning the baseline leaves multiprocessing's resource tracker in this process tree.
    with PeakMemory(os.getpid()) as ours_memory:
        ours = run_ours(directory, args.max_categories)
    baseline, baseline_memory = run_baseline(directory, args.max_categories)
    load_after = os.getloadavg()[0]
    check_agreement(ours, baseline, args.rows)

    from rich.console import Console
    from rich.table import Table

    throughput = {"ours": args.rows / ours.seconds["total"], "baseline": args.rows / baseline.seconds["total"]}
    peak = {"ours": ours_memory.peak_pss / GIB, "baseline": baseline_memory.peak_pss / GIB}
    table = Table(title=f"preprocessing {args.rows:,} rows x 20 columns ({os.cpu_count()} CPUs)")
    for column in ("", "ours", "baseline", "ours / baseline"):
        table.add_column(column, justify="left" if not column else "right")
    table.add_row("read (s)", "-", f"{baseline.seconds['read']:.1f}", "")
    table.add_row("fit (s)", f"{ours.seconds['fit']:.1f}", f"{baseline.seconds['fit']:.1f}", "")
    table.add_row("transform (s)", f"{ours.seconds['transform']:.1f}", f"{baseline.seconds['transform']:.1f}", "")
    table.add_row("total (s)", f"{ours.seconds['total']:.1f}", f"{baseline.seconds['total']:.1f}", "")
    ratio = throughput["ours"] / throughput["baseline"]
    table.add_row("rows/s", f"{throughput['ours']:,.0f}", f"{throughput['baseline']:,.0f}", f"{ratio:.2f}x")
    memory_ratio = peak["ours"] / peak["baseline"]
    table.add_row("peak memory (GiB)", f"{peak['ours']:.2f}", f"{peak['baseline']:.2f}", f"{memory_ratio:.2f}x")
    Console().print(table)
    print(f"ours also spent {ours.extra['ray_start_s']:.1f}s starting Ray (not in the totals)")

    record = {
        "benchmark": "data_preprocessing",
        "rows": args.rows,
        "columns": len(NUMERIC) + len(CATEGORICAL),
        "output_width": len(ours.column_sums),
        "rows_per_transform_call": ROWS_PER_FILE,
        "max_categories": args.max_categories,
        "ours_s": {k: round(v, 2) for k, v in ours.seconds.items()},
        "ours_ray_start_s": round(ours.extra["ray_start_s"], 2),
        "baseline_s": {k: round(v, 2) for k, v in baseline.seconds.items()},
        "rows_per_s": {k: round(v) for k, v in throughput.items()},
        "throughput_ratio": round(ratio, 2),
        "peak_pss_gib": {k: round(v, 2) for k, v in peak.items()},
        "memory_ratio": round(memory_ratio, 2),
        "ours_peak_summed_rss_gib": round(ours_memory.peak_rss / GIB, 2),
        "ours_at_peak_gib": {k: v if k == "processes" else round(v / GIB, 2) for k, v in ours_memory.at_peak.items()},
        "baseline_at_peak_gib": {
            k: v if k == "processes" else round(v / GIB, 2) for k, v in baseline_memory.at_peak.items()
        },
        "baseline_peak_rss_gib": round(baseline.extra["peak_rss_gib"], 2),
        "baseline_rss_after_imports_gib": round(baseline.extra["import_rss_gib"], 2),
        "load_average_1min": {"before": round(load_before, 2), "after": round(load_after, 2)},
        **machine(),
    }
    emit(record, "data_preprocessing", args.save)


if __name__ == "__main__":
    main()
