"""The ``mlops-ray`` command line: parse arguments, call one stage entry each.

``common.py`` holds what every command shares (errors as one paragraph and an exit
code, the config loaded before any heavy import); ``inspect.py`` the commands that look
at a config or its data; ``stages.py`` the commands that run a stage.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from mlops_ray.cli import inspect, stages
from mlops_ray.cli.common import DebugState

app = typer.Typer(help="Train, register and serve models on Ray, tracked in MLflow.", no_args_is_help=True)
config_app = typer.Typer(help="Inspect configs.", no_args_is_help=True)
app.add_typer(config_app, name="config")
data_app = typer.Typer(help="Inspect a config's data source.", no_args_is_help=True)
app.add_typer(data_app, name="data")

config_app.command("show")(inspect.config_show)
data_app.command("fingerprint")(inspect.data_fingerprint)
data_app.command("profile")(inspect.data_profile)
data_app.command("infer-schema")(inspect.data_infer_schema)
data_app.command("validate")(inspect.data_validate)
for command in (stages.train, stages.tune, stages.run, stages.evaluate, stages.promote):
    app.command()(command)
app.command("test-model")(stages.test_model)
for command in (stages.report, stages.serve, stages.monitor, stages.lineage, stages.reproduce):
    app.command()(command)


@app.callback()
def main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for every error.")] = False) -> None:
    DebugState.debug = debug


def entrypoint() -> None:
    """Console-script entry point."""
    sys.exit(app())


__all__ = ["app", "entrypoint"]
