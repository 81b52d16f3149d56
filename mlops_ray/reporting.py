"""What a person sees while a command runs: one line per stage, then a summary.

Stage timings are recorded here as well, because the same numbers feed the
summary, the MLflow run and the stage benchmark.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from mlops_ray.pipeline import PipelineResult


@dataclass
class Stage:
    """Handle a running stage uses to say what it did, e.g. '569 rows'."""

    detail: str = ""


class StageReporter:
    def __init__(self, console: Console | None = None):
        self.console = console or Console()
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str, doing: str) -> Iterator[Stage]:
        stage = Stage()
        start = perf_counter()
        try:
            with self.console.status(f"[bold]{name}[/]: {doing}…"):
                yield stage
        except BaseException:
            self.console.print(f"[red]✗[/] {name:<9} {perf_counter() - start:6.1f}s  failed while {doing}")
            raise
        self.seconds[name] = perf_counter() - start
        self.console.print(f"[green]✓[/] {name:<9} {self.seconds[name]:6.1f}s  {stage.detail}")

    def warn(self, message: str) -> None:
        """A problem worth reading that does not stop the run (e.g. a constant column)."""
        self.console.print(f"[yellow]![/] {'warning':<9} {'':>7}  {message}", highlight=False)

    def table(self, title: str, rows: dict[str, str]) -> None:
        """A two-column summary: what was produced and where to find it."""
        table = Table(title=title, show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column()
        for name, value in rows.items():
            table.add_row(name, value)
        table.add_row("total time", f"{sum(self.seconds.values()):.1f}s")
        self.console.print(table)

    def summary(self, result: PipelineResult) -> None:
        table = Table(title="mlops-ray run", show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column()
        table.add_row("MLflow run", result.run_id)
        table.add_row("new model", f"{result.challenger.name} version {result.challenger.version}")
        for name, value in result.test_metrics.items():  # the new model's, whether or not it is served
            table.add_row(f"  {name}", f"{value:.4f}")
        decision = result.promotion.decision
        table.add_row("gate", decision.summary() if decision else "already the champion")
        table.add_row("served", f"{result.model.name} version {result.model.version} @{result.model.alias}")
        table.add_row("endpoint", f"{result.endpoint_url}/predict")
        table.add_row("prediction", result.prediction_text)
        table.add_row("total time", f"{sum(self.seconds.values()):.1f}s")
        table.add_row("MLflow UI", result.tracking_ui)
        table.add_row("Ray dashboard", result.ray_dashboard or "not started")
        self.console.print(table)
