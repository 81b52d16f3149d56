"""The result tables of benchmarks/README.md, generated from the JSON files in benchmarks/results/.

Each benchmark's section holds a block between ``<!-- results: NAME -->`` and
``<!-- /results -->``; this script rewrites every block from ``results/NAME.json``, so a
figure in a table is always the one its record holds (``make bench`` runs it last).
``tests/unit/test_benchmark_records.py`` fails when a block and its JSON disagree.

    python benchmarks/report.py           # rewrite the blocks in benchmarks/README.md
    python benchmarks/report.py --check   # exit 1, naming the blocks, if any is stale
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import RESULTS, verdict  # benchmarks/common.py, next to this script

README = Path(__file__).resolve().parent / "README.md"
BLOCK = re.compile(r"(<!-- results: (?P<name>[a-z_]+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.DOTALL)

Record = dict[str, Any]


def load(name: str) -> Record:
    return json.loads((RESULTS / f"{name}.json").read_text())


def table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def met(ok: bool | None) -> str:
    """``verdict``'s word, bold when a goal is missed; empty where a figure has no goal."""
    return "" if ok is None else (verdict(ok) if ok else f"**{verdict(ok)}**")


def stamp(record: Record) -> str:
    load = record.get("load_average", {})
    load_text = f", load {load['1min']}/{load['5min']}/{load['15min']} (1/5/15 min)" if isinstance(load, dict) else ""
    return (
        f"Recorded {record['date']} at commit `{record['commit'][:10]}` on {record['machine']}; "
        f"Python {record['python']}, Ray {record['ray']}, torch {record.get('torch', '-')}, "
        f"MLflow {record.get('mlflow', '-')}{load_text}."
    )


def quickstart_stages(r: Record) -> str:
    base = r["baseline_s"]
    rows: list[list[object]] = [
        [stage, f"{seconds:.2f}", f"{r['ours_2_workers_s'][stage]:.2f}", f"{base[stage]:.2f}" if stage in base else "-"]
        for stage, seconds in r["ours_s"].items()
    ]
    rows.append(["**total**", f"{r['ours_total_s']:.2f}", f"{r['ours_2_workers_total_s']:.2f}", ""])
    stages = table(["stage", "local mode (s)", "2 workers (s)", "bare PyTorch (s)"], rows)
    figures = {
        "stages_s": ("whole pipeline, stages (s)", r["ours_total_s"]),
        "make_run_wall_s": ("`mlops-ray run` installed, wall (s)", r["make_run_wall_s"]),
        "train_ratio": ("train stage / bare loop, local mode", r["train_ratio"]),
        "train_ratio_2_workers": ("train stage / bare loop, 2 workers", r["train_ratio_2_workers"]),
        "serve_s": ("serve stage, deploy to first answer (s)", r["ours_s"]["serve"]),
    }
    goals = table(
        ["figure", "measured", "goal", ""],
        [[label, value, f"<= {r['goals'][key]}", met(r["goals_met"][key])] for key, (label, value) in figures.items()],
    )
    accuracy = r["test_accuracy"]
    return (
        f"{stages}\n\n{goals}\n\nTest accuracy: local mode {accuracy['ours']}, 2 workers "
        f"{accuracy['ours_2_workers']}, bare loop {accuracy['baseline']} ({r['epochs']} epochs)."
    )


def data_preprocessing(r: Record) -> str:
    ours, base = r["ours_s"], r["baseline_s"]
    return table(
        ["", "ours (Ray Data)", "baseline (pandas)", "ours / baseline"],
        [
            ["rows", f"{r['rows']:,}", f"{r['rows']:,}", ""],
            ["fit (s)", ours["fit"], base["fit"], ""],
            ["transform (s)", ours["transform"], base["transform"], ""],
            ["read (s)", "(in fit and transform)", base["read"], ""],
            ["total (s)", ours["total"], base["total"], ""],
            ["rows/s", f"{r['rows_per_s']['ours']:,}", f"{r['rows_per_s']['baseline']:,}", f"{r['throughput_ratio']}x"],
            ["peak PSS (GiB)", r["peak_pss_gib"]["ours"], r["peak_pss_gib"]["baseline"], f"{r['memory_ratio']}x"],
            ["Ray start-up (s, outside the totals)", r["ours_ray_start_s"], "", ""],
        ],
    )


def training_throughput(r: Record) -> str:
    speed, startup, share = r["steady_samples_per_s"], r["startup_s"], r["mlflow_share"]
    goals, ok = r["goals"], r["goals_met"]
    rows: list[list[object]] = [
        ["samples/s, plain loop (baseline)", f"{speed['baseline']:,}", "", "", ""],
        [
            "samples/s, 1 worker",
            f"{speed['ours_1w']:,}",
            f"{r['ratio_1w_vs_baseline']}x",
            f">= {goals['ratio_1w']}x",
            met(ok["ratio_1w"]),
        ],
    ]
    if "ours_0w" in speed:
        rows.append(["samples/s, local mode", f"{speed['ours_0w']:,}", f"{r['ratio_local_vs_baseline']}x", "", ""])
    if "ours_2w" in speed:
        rows.append(["samples/s, 2 workers", f"{speed['ours_2w']:,}", f"{r['ratio_2w_vs_1w']}x of 1 worker", "", ""])
    for workers, seconds in startup.items():
        goal = goals["startup_s"].get(workers)
        within = None if goal is None else seconds <= goal
        row = [f"start-up to first batch (s), {_side(workers)}", seconds, "", f"<= {goal}" if goal else "", met(within)]
        rows.append(row)
    for workers, fraction in share.items():
        goal = f"<= {goals['mlflow_share']:.0%}"
        rows.append(
            [f"MLflow share of train time, {_side(workers)}", f"{fraction:.2%}", "", goal, met(ok["mlflow_share"])]
        )
    return table(["", "measured", "ratio", "goal", ""], rows) + (
        f"\n\n{r['train_rows']:,} train rows x {r['features']}, resmlp {r['model']['width']}x{r['model']['depth']} "
        f"({r['model']['parameters']:,} parameters), batch {r['batch_size']}, {r['epochs']} epochs x {r['rounds']} "
        f"rounds, {r['precision']}, {r['torch_threads_baseline_and_1w']} torch threads; GPU: {r['gpu_part']}"
    )


def _side(workers: str) -> str:
    return "local mode" if workers == "0w" else f"{workers[:-1]} worker(s)"


def tune_overhead(r: Record) -> str:
    sides = ("ours", "ours_no_mlflow", "plain")
    rows = [
        [
            side,
            r["reuse_actors"][side],
            r["wall_s"][side],
            f"{r['overhead'][side]:.1%}",
            r["startup_s"][side],
            r["per_trial_after_startup_s"][side],
        ]
        for side in sides
    ]
    return table(["side", "reuses actors", "wall (s)", "overhead", "start-up (s)", "s per further trial"], rows) + (
        f"\n\n{r['trials']} trials x {r['epochs']} reports x {r['sleep_s']} s, {r['concurrent']} at a time: "
        f"minimum {r['theoretical_min_s']} s. Ours / plain: {r['ratio_ours_vs_plain']}x. Goal for ours: overhead "
        f"<= {r['goal_overhead']:.0%}: {met(r['goal_met'])}."
    )


def asha_vs_random(r: Record) -> str:
    asha, rand = r["asha_run"], r["random_run"]
    goal = f"<= {r['goal_ratio']}x"
    rows = [
        [
            "trial-epochs, whole search",
            asha["trial_epochs_total"],
            rand["trial_epochs_total"],
            f"{r['ratio_trial_epochs_total']}x",
            goal,
            met(r["goals_met"]["trial_epochs"]),
        ],
        [
            "wall (s), whole search",
            asha["wall_s"],
            rand["wall_s"],
            f"{r['ratio_wall_total']}x",
            goal,
            met(r["goals_met"]["wall_s"]),
        ],
        ["best val_loss", asha["best_val_loss"], rand["best_val_loss"], "", f"within {r['quality_tolerance']:.0%}", ""],
    ]
    repeats = ", ".join(str(run["trial_epochs_total"]) for run in r.get("asha_repeats", []))
    return table(["", "asha (median run)", "random", "asha / random", "goal", ""], rows) + (
        f"\n\nASHA's runs used {repeats} trial-epochs; same configs in both sweeps: {r['same_configs']}."
    )


SERVE_SIDES = ("ours, 1 replica", "ours, autoscaled", "Serve no-op")


def serve_latency(r: Record) -> str:
    sides = ("plain", "ours_1_replica", "ours_autoscaled", "serve_noop")
    rows = []
    for rows_per_request, by_side in r["points"].items():
        for concurrency in r["concurrency"]:
            plain = by_side["plain"][str(concurrency)]["qps"]
            cells: list[object] = [rows_per_request, concurrency]
            for side in sides:
                point = by_side.get(side, {}).get(str(concurrency))
                cells.append("" if point is None else f"{point['qps']:.0f} ({point['qps'] / plain:.2f}x)")
            goal = r["goals"].get(rows_per_request, {}).get(f"c{concurrency}")
            cells.append("" if goal is None else f">= {goal['goal']}x: {met(goal['met'])}")
            rows.append(cells)
    header = [
        "rows / request",
        "concurrency",
        "plain QPS",
        "ours, 1 replica",
        "ours, autoscaled",
        "Serve no-op",
        "goal",
    ]
    return table(header, rows)


def monitor_window(r: Record) -> str:
    return (
        table(
            [
                "captured rows",
                "ours (Ray Data, s)",
                "baseline (pandas, s)",
                "speed ours / baseline",
                "peak PSS ours / baseline",
            ],
            [
                [
                    f"{r['rows']:,}",
                    r["ours_s"],
                    r["baseline_s"],
                    f"{r['speed_ratio']}x",
                    f"{r['ours_peak_pss_gib']} / {r['baseline_peak_pss_gib']} GiB ({r['memory_ratio']}x)",
                ]
            ],
        )
        + f"\n\nDrifted columns found by both: {', '.join(r['drifted'])}. Ray start-up {r['ours_ray_start_s']} s."
    )


RENDERERS: dict[str, Callable[[Record], str]] = {
    "quickstart_stages": quickstart_stages,
    "data_preprocessing": data_preprocessing,
    "training_throughput": training_throughput,
    "tune_overhead": tune_overhead,
    "asha_vs_random": asha_vs_random,
    "serve_latency": serve_latency,
    "monitor_window": monitor_window,
}


def render(name: str) -> str:
    record = load(name)
    return f"{RENDERERS[name](record)}\n\n{stamp(record)}\n"


def rewritten(text: str) -> str:
    return BLOCK.sub(lambda m: f"{m.group(1)}{render(m['name'])}{m.group(4)}", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale blocks")
    args = parser.parse_args()
    text = README.read_text()
    new = rewritten(text)
    if args.check:
        stale = [m["name"] for m in BLOCK.finditer(text) if m["body"] != render(m["name"])]
        if stale:
            sys.exit(f"stale result tables in {README.name}: {', '.join(stale)} (run python benchmarks/report.py)")
        return
    README.write_text(new)
    print(f"{README}: {len(BLOCK.findall(new))} result tables written from {RESULTS}/")


if __name__ == "__main__":
    main()
