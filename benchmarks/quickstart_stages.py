"""Wall time of each quickstart stage, against a plain single-process PyTorch baseline.

Ours: ``mlops_ray.pipeline.run`` on the quickstart config (embedded Ray, MLflow on a
temp SQLite file, Ray Serve, one HTTP request), twice in one run: as configured
(``train.num_workers: auto``, which is Ray Train's local mode on these 398 training
rows) and with ``train.num_workers=2`` (a worker group of two).
Baseline: the same split, standardisation, network, epochs and batch size trained
in this process with a bare PyTorch loop and scored with the same metrics; no Ray,
no MLflow, no serving. The ratio says what the distributed machinery costs on a
dataset this small (it is meant to pay off on large data and many workers, not here).

    python benchmarks/quickstart_stages.py [--epochs N] [--save]

Prints a table and one JSON line; ``--save`` also writes it to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import io
import socket
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import emit, machine  # benchmarks/common.py, next to this script
from rich.console import Console
from rich.table import Table
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from mlops_ray import pipeline
from mlops_ray.config import ModelConfig, load_config
from mlops_ray.models import ModelSpec, build_model
from mlops_ray.reporting import StageReporter
from mlops_ray.runtime import quiet_library_logs

ROOT = Path(__file__).resolve().parents[1]


def run_ours(epochs: int, workdir: Path, *overrides: str) -> dict[str, float]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = load_config(
        ROOT / "configs" / "quickstart.yaml",
        [
            f"train.epochs={epochs}",
            f"train.storage_path={workdir / 'ray_results'}",
            f"tracking.uri=sqlite:///{workdir / 'mlflow.db'}",
            f"tracking.artifact_location={workdir / 'artifacts'}",
            f"serve.port={port}",
            *overrides,
        ],
    )
    quiet_library_logs()
    reporter = StageReporter(Console(file=io.StringIO()))
    result = pipeline.run(config, reporter)
    return {**result.stage_seconds, "test_accuracy": result.test_metrics["test_accuracy"]}


def run_baseline(epochs: int, batch_size: int, lr: float) -> dict[str, float]:
    start = time.perf_counter()
    x, y = load_breast_cancer(return_X_y=True)
    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=0.15, random_state=42)
    x_train, _, y_train, _ = train_test_split(x_rest, y_rest, test_size=0.15 / 0.85, random_state=42)
    scaler = StandardScaler().fit(x_train)
    data_s = time.perf_counter() - start

    start = time.perf_counter()
    torch.manual_seed(42)
    model = build_model(ModelSpec.from_config(ModelConfig(), x.shape[1], 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    xt = torch.tensor(scaler.transform(x_train), dtype=torch.float32)
    yt = torch.tensor(y_train)
    for _ in range(epochs):
        order = torch.randperm(len(yt))
        for i in range(0, len(yt), batch_size):
            idx = order[i : i + batch_size]
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    train_s = time.perf_counter() - start
    with torch.no_grad():
        predicted = model(torch.tensor(scaler.transform(x_test), dtype=torch.float32)).argmax(1).numpy()
    return {"data": data_s, "train": train_s, "test_accuracy": float(np.mean(predicted == y_test))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=load_config(ROOT / "configs" / "quickstart.yaml").train.epochs)
    parser.add_argument("--save", action="store_true", help="write the JSON to benchmarks/results/")
    args = parser.parse_args()
    quickstart = load_config(ROOT / "configs" / "quickstart.yaml")

    with tempfile.TemporaryDirectory() as tmp:
        ours = run_ours(args.epochs, Path(tmp))
    with tempfile.TemporaryDirectory() as tmp:
        workers = run_ours(args.epochs, Path(tmp), "train.num_workers=2")
    baseline = run_baseline(args.epochs, quickstart.train.batch_size, quickstart.train.lr)

    stages = [k for k in ours if k != "test_accuracy"]
    table = Table(title=f"quickstart stages ({args.epochs} epochs)")
    for column in ("stage", "ours: local mode (s)", "ours: 2 workers (s)", "baseline (s)", "local / baseline"):
        table.add_column(column, justify="right" if column != "stage" else "left")
    for stage in stages:
        base = baseline.get(stage)
        ratio = f"{ours[stage] / base:.1f}x" if base else "-"
        table.add_row(stage, f"{ours[stage]:.2f}", f"{workers[stage]:.2f}", f"{base:.2f}" if base else "-", ratio)
    total = sum(ours[s] for s in stages)
    workers_total = sum(workers[s] for s in stages)
    table.add_row("total", f"{total:.2f}", f"{workers_total:.2f}", f"{baseline['data'] + baseline['train']:.2f}", "")
    Console().print(table)

    record = {
        "benchmark": "quickstart_stages",
        "epochs": args.epochs,
        "ours_s": {s: round(ours[s], 3) for s in stages},
        "ours_total_s": round(total, 3),
        "ours_2_workers_s": {s: round(workers[s], 3) for s in stages},
        "ours_2_workers_total_s": round(workers_total, 3),
        "baseline_s": {"data": round(baseline["data"], 3), "train": round(baseline["train"], 3)},
        "train_ratio": round(ours["train"] / baseline["train"], 1),
        "train_ratio_2_workers": round(workers["train"] / baseline["train"], 1),
        "test_accuracy": {
            "ours": round(ours["test_accuracy"], 4),
            "ours_2_workers": round(workers["test_accuracy"], 4),
            "baseline": round(baseline["test_accuracy"], 4),
        },
        **machine(),
    }
    emit(record, "quickstart_stages", args.save)


if __name__ == "__main__":
    main()
