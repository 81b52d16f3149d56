"""What a person sees while a command runs: one line per stage, then a summary.

Stage timings are recorded here as well, because the same numbers feed the
summary, the MLflow run and the stage benchmark. The reporter knows no stage's
result: each stage hands it the rows of its own summary table.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from time import perf_counter

from rich.console import Console
from rich.table import Table


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

    def table(self, title: str, rows: dict[str, str], after_total: dict[str, str] | None = None) -> None:
        """A two-column summary: what was produced, the total time, then ``after_total`` (where to look next)."""
        table = Table(title=title, show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column()
        for name, value in rows.items():
            table.add_row(name, value)
        table.add_row("total time", f"{sum(self.seconds.values()):.1f}s")
        for name, value in (after_total or {}).items():
            table.add_row(name, value)
        self.console.print(table)
