"""What every ``mlops-ray`` command shares: the consoles, argument types, and the preamble around a stage.

User mistakes arrive as ``MlopsError`` and are printed as one paragraph with the
error's exit code; a traceback is shown only for bugs (or with ``--debug``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from mlops_ray.config import Config, load_config
from mlops_ray.errors import MlopsError
from mlops_ray.reporting import StageReporter

console = Console()
err_console = Console(stderr=True)
T = TypeVar("T")

ConfigPath = Annotated[Path, typer.Argument(help="YAML config, e.g. configs/quickstart.yaml")]
Overrides = Annotated[
    list[str] | None, typer.Option("--set", help="Override a field: --set train.epochs=5 (repeatable)")
]


class DebugState:
    debug = False


def guard(action: Callable[[], T]) -> T:
    """Run ``action``; turn user errors into one paragraph and an exit code."""
    try:
        return action()
    except MlopsError as exc:
        if DebugState.debug:
            raise
        err_console.print(f"[bold red]{exc.kind}:[/] {exc.paragraph()}", soft_wrap=True, highlight=False)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err_console.print("Interrupted; shut down cleanly.")
        raise typer.Exit(130) from None


def load(path: Path, overrides: list[str] | None) -> Config:
    """The resolved config: the file, then the ``--set`` overrides."""
    return load_config(path, overrides or ())


def stage_command(config: Path, overrides: list[str] | None, module: str) -> tuple[Config, StageReporter, ModuleType]:
    """The preamble of every command that runs a stage: its config, then its stage module, then a reporter.

    In that order because the config is cheap and the stage is not: importing it pulls in Ray,
    torch and MLflow (about ten seconds on two cores), and a bad config, typed or submitted
    as a Ray job, should be reported in under a second. The libraries are quieted after the
    import, since Serve sets up its loggers when it is imported.
    """
    resolved = guard(lambda: load(config, overrides))
    return (resolved, *stage_module(module))


def stage_module(module: str) -> tuple[StageReporter, ModuleType]:
    """Import a stage, then quiet the libraries it brought in; a reporter on this console."""
    stage = importlib.import_module(module)
    return new_reporter(), stage


def new_reporter() -> StageReporter:
    """Stage lines on this console, with the libraries' own chatter turned down."""
    from mlops_ray.runtime import quiet_library_logs

    quiet_library_logs()
    return StageReporter(console)


def fail(error: Exception) -> None:
    """Raise ``error``: what ``guard`` takes when a command itself finds a user mistake."""
    raise error


ModelRefOption = Annotated[
    str | None, typer.Option("--model", help="name@alias or name/version; default: the config's model @challenger")
]
TrackingUri = Annotated[
    str | None,
    typer.Option("--tracking-uri", help="MLflow tracking URI; default $MLFLOW_TRACKING_URI, else ./mlflow.db"),
]
