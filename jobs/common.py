"""What every ``ray job submit`` entrypoint shares: ``--config`` / ``--set`` parsing and the CLI call.

An entrypoint only translates its arguments into the ``mlops-ray`` command of its stage,
so a job fails with the same message and exit code as the command typed by hand. Jobs
run from the uploaded working directory; ``jobs/runtime_env.yaml`` puts it on
``PYTHONPATH`` so this module and ``mlops_ray`` import on every node.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from mlops_ray.cli import app


def parser(description: str) -> argparse.ArgumentParser:
    found = argparse.ArgumentParser(description=description)
    found.add_argument("--config", required=True, help="YAML config path, relative to the working directory")
    found.add_argument("--set", dest="overrides", action="append", default=[], help="KEY.PATH=VALUE override")
    return found


def run(command: Sequence[str], args: argparse.Namespace, *extra: str) -> None:
    """``mlops-ray <command> CONFIG [extra...] [--set k=v ...]``; exits with the command's code."""
    argv = [*command, args.config, *extra]
    for override in args.overrides:
        argv += ["--set", override]
    app(argv)


def run_resumable(command: str, description: str, resume_help: str) -> None:
    """A stage whose only extra flag is ``--resume`` (train, tune)."""
    arguments = parser(description)
    arguments.add_argument("--resume", action="store_true", help=resume_help)
    args = arguments.parse_args()
    run([command], args, *(["--resume"] if args.resume else []))
