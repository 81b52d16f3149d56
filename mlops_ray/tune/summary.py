"""What a finished sweep tried and how each trial did: the table, the JSON record and two PNG plots.

Built from Tune's results and the child runs' metric histories (every epoch of every
trial, this session's and earlier ones' after a resume), so the summary is the same
whether the sweep ran in one go or was interrupted and resumed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from matplotlib.figure import Figure  # the object API needs no display backend (servers, CI)
from ray.tune import ResultGrid
from rich.console import Console
from rich.table import Table

from mlops_ray.config.tune import TuneConfig
from mlops_ray.tune.strategies import trial_id_of


@dataclass
class TrialSummary:
    number: int
    trial_id: str
    run_id: str | None
    status: str  # completed | early-stopped | errored | unfinished
    params: dict[str, Any]
    epochs: int
    best: float | None  # the sweep metric's best value over the trial's epochs
    best_epoch: int | None
    curve: list[tuple[int, float]] = field(default_factory=list)  # (epoch, metric)
    error: str | None = None  # the last line of an errored trial's exception

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "curve"}


def summarize(
    results: ResultGrid,
    settings: TuneConfig,
    epochs: int,
    runs: dict[str, str],
    numbers: dict[str, int],
    ended: set[str],
    history: Callable[[str], list[tuple[int, float]]],
) -> list[TrialSummary]:
    """One row per trial Tune knows of; a trial that has not ended (interrupted, out of budget) is 'unfinished'.

    Learning curves come from ``history(run_id)``, the child run's metric in MLflow: it
    holds every session's epochs, where Tune's per-trial result files may not (a PBT
    trial that took over another's checkpoint starts a fresh ``result.json``).
    """
    mode = settings.mode
    trials = []
    for result in results:
        if result.config is None:  # created by the searcher, never started (a budget or Ctrl-C came first)
            continue
        trial_id = trial_id_of(result)
        run_id = runs.get(trial_id)
        curve = history(run_id) if run_id else []
        best = (min if mode == "min" else max)(curve, key=lambda p: p[1]) if curve else None
        last_epoch = curve[-1][0] if curve else 0
        if result.error:
            status = "errored"
        elif trial_id not in ended:
            status = "unfinished"
        else:
            status = "completed" if last_epoch >= epochs else "early-stopped"
        params = {name: result.config.get(name) for name in settings.space}
        trials.append(
            TrialSummary(
                numbers.get(trial_id, 0),
                trial_id,
                run_id,
                status,
                params,
                last_epoch,
                best[1] if best else None,
                best[0] if best else None,
                curve,
                str(result.error).strip().splitlines()[-1][:300] if result.error else None,
            )
        )
    return sorted(trials, key=lambda t: (t.number, t.trial_id))


def print_table(console: Console, trials: list[TrialSummary], settings: TuneConfig, best_id: str | None) -> None:
    table = Table(title=f"sweep: {len(trials)} trials, ranked by {settings.metric} ({settings.mode})")
    for heading in ("trial", "status", *settings.space, "epochs", f"best {settings.metric}", "at epoch"):
        table.add_column(heading, justify="left" if heading in ("trial", "status") else "right")
    for t in trials:
        values = [_show(t.params.get(name)) for name in settings.space]
        best = "" if t.best is None else f"{t.best:.4f}"
        marker = " ★" if t.trial_id == best_id else ""
        table.add_row(f"{t.number}{marker}", t.status, *values, str(t.epochs), best, str(t.best_epoch or ""))
    console.print(table)


def learning_curves(trials: list[TrialSummary], metric: str) -> Figure:
    figure = Figure(figsize=(8, 5))
    axes = figure.subplots()
    for t in trials:
        if t.curve:
            epochs, values = zip(*t.curve, strict=True)
            axes.plot(epochs, values, marker=".", linewidth=1, label=f"trial {t.number} ({t.status})")
    axes.set_xlabel("epoch")
    axes.set_ylabel(metric)
    axes.set_title(f"{metric} of every trial")
    if len(trials) <= 20:
        axes.legend(fontsize="x-small", ncol=2)
    figure.tight_layout()
    return figure


def metric_versus_params(trials: list[TrialSummary], settings: TuneConfig) -> Figure:
    names = list(settings.space)
    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    figure = Figure(figsize=(4 * columns, 3.2 * rows))
    grid = figure.subplots(rows, columns, squeeze=False)
    scored = [t for t in trials if t.best is not None]
    for axes, name in zip(grid.flat, names, strict=False):
        dimension = settings.space[name]
        xs = [t.params.get(name) for t in scored]
        ys = [t.best for t in scored]
        if dimension.is_numeric_range:
            axes.scatter(xs, ys)
            if dimension.type == "loguniform":
                axes.set_xscale("log")
        else:  # choices: one column of points per value
            labels = [str(v) for v in dimension.values or ()]
            axes.scatter([labels.index(str(x)) if str(x) in labels else -1 for x in xs], ys)
            axes.set_xticks(range(len(labels)), labels)
        axes.set_xlabel(name)
        axes.set_ylabel(f"best {settings.metric}")
    for axes in list(grid.flat)[len(names) :]:
        axes.set_visible(False)
    figure.suptitle(f"best {settings.metric} of each trial against each hyperparameter")
    figure.tight_layout()
    return figure


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)
