"""The commands that run a stage: each loads its config, imports its stage, and calls its one entry."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from mlops_ray import settings
from mlops_ray.cli.common import (
    ConfigPath,
    ModelRefOption,
    Overrides,
    TrackingUri,
    console,
    fail,
    guard,
    load,
    stage_command,
    stage_module,
)
from mlops_ray.errors import ConfigError


def train(
    config: ConfigPath,
    set_: Overrides = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the latest unfinished training run from its last checkpoint.")
    ] = False,
    register: Annotated[
        bool, typer.Option("--register", help="Register the model as a new version @registry.challenger_alias.")
    ] = False,
) -> None:
    """Train one model: data -> Ray Train -> packaged model and test metrics in an MLflow run; --register: a version."""
    resolved, reporter, stage = stage_command(config, set_, "mlops_ray.train.stage")
    guard(lambda: stage.run_training(resolved, reporter, resume=resume, register=register))


def tune(
    config: ConfigPath,
    set_: Overrides = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue the latest unfinished sweep: finished trials are not run again."),
    ] = False,
) -> None:
    """Sweep hyperparameters with Ray Tune; register the best trial's model as @challenger."""
    resolved, reporter, stage = stage_command(config, set_, "mlops_ray.tune.stage")
    guard(lambda: stage.run_tuning(resolved, reporter, resume=resume))


def run(
    config: ConfigPath,
    set_: Overrides = None,
    serve: Annotated[bool, typer.Option("--serve", help="Keep the endpoint up until Ctrl-C.")] = False,
) -> None:
    """Run the whole chain: data -> train (or sweep) -> register -> gate -> promote -> serve @champion -> predict."""
    resolved, reporter, stage = stage_command(config, set_, "mlops_ray.pipeline")
    guard(lambda: stage.run(resolved, reporter, keep_serving=serve))


def evaluate(
    config: ConfigPath,
    model: Annotated[str, typer.Option("--model", help="name@alias or name/version, e.g. my-model@champion")],
    set_: Overrides = None,
) -> None:
    """Score a registered version on the test split: metrics, slices (worst flagged), plots in an MLflow run."""
    resolved, reporter, stage = stage_command(config, set_, "mlops_ray.evaluate.stage")
    guard(lambda: stage.run_evaluation(resolved, reporter, model))


def promote(
    config: ConfigPath,
    model: ModelRefOption = None,
    rollback: Annotated[
        bool, typer.Option("--rollback", help="Point @champion back at the previous champion instead.")
    ] = False,
    set_: Overrides = None,
) -> None:
    """Run the promotion gate on a challenger; move @champion only on PROMOTE or FIRST_MODEL. Exit 3 on REJECT."""
    resolved, reporter, stage = stage_command(config, set_, "mlops_ray.promote.stage")
    if rollback:
        if model is not None:
            guard(lambda: fail(ConfigError("--rollback takes no --model: it restores the previous champion")))
        guard(lambda: stage.run_rollback(resolved, reporter))
        return
    outcome = guard(lambda: stage.run_promotion(resolved, reporter, model))
    if outcome.decision is not None and not outcome.decision.promotes:
        raise typer.Exit(3)


def test_model(
    config: ConfigPath,
    model: Annotated[str, typer.Option("--model", help="name@alias or name/version, e.g. my-model@challenger")],
    set_: Overrides = None,
) -> None:
    """Run the config's behavioural tests (model_tests) and data contract on a version. Exit 3 if one fails."""
    resolved, reporter, stage = stage_command(config, set_, "mlops_ray.modeltests.stage")
    outcome = guard(lambda: stage.run_model_tests(resolved, reporter, model))
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


def report(
    config: ConfigPath,
    model: Annotated[str, typer.Option("--model", help="name@alias or name/version, e.g. my-model@pr-42")],
    against: Annotated[
        str, typer.Option("--against", help="an alias of the same model, a version number, or a full MODEL_REF")
    ] = "champion",
    fmt: Annotated[
        str, typer.Option("--format", help="markdown (fits a pull-request comment; plots beside it) or html")
    ] = "markdown",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Where to write it; default model-report.md or .html")
    ] = None,
    set_: Overrides = None,
) -> None:
    """Compare a version with another (default @champion): metrics and slices with intervals, tests, lineage."""
    if fmt not in ("markdown", "html"):
        guard(lambda: fail(ConfigError(f"'{fmt}' is not a format; use markdown or html", where="--format")))
    resolved, reporter, stage = stage_command(config, set_, "mlops_ray.compare.stage")
    target = output or Path("model-report.md" if fmt == "markdown" else "model-report.html")
    guard(lambda: stage.run_report(resolved, reporter, model, against, fmt, target))  # type: ignore[arg-type]


def serve(
    target: Annotated[str, typer.Argument(metavar="CONFIG | build", help="A config to serve, or `build`.")],
    build_config: Annotated[
        Path | None, typer.Argument(metavar="[CONFIG]", help="With `build`: the config to write out.")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="name@alias (followed as it moves) or name/version; default @champion")
    ] = None,
    canary: Annotated[
        float | None,
        typer.Option("--canary", min=0, max=100, help="Percent of requests answered by @challenger, e.g. 10."),
    ] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="With `build`: the file to write.")] = None,
    detach: Annotated[
        bool, typer.Option("--detach", help="Deploy into the Ray cluster and return; the endpoint keeps running.")
    ] = False,
    set_: Overrides = None,
) -> None:
    """Serve the champion on an autoscaling endpoint until Ctrl-C (or `serve build CONFIG -o FILE`).

    `serve build` writes the same endpoint as a Serve config for `serve deploy` or a KubeRay RayService.
    """
    if target == "build":
        if build_config is None or output is None:
            guard(lambda: fail(ConfigError("usage: mlops-ray serve build CONFIG -o serve.yaml", where="serve build")))
        resolved = guard(lambda: load(build_config, set_))  # type: ignore[arg-type]
        from mlops_ray.serve.stage import build_serve_file

        written = guard(lambda: build_serve_file(resolved, output, model, canary))  # type: ignore[arg-type]
        console.print(f"Wrote {written}: `serve deploy {written}` or a RayService's serveConfigV2.", highlight=False)
        return
    if build_config is not None or output is not None:
        guard(lambda: fail(ConfigError("-o and a second CONFIG go with `serve build` only", where="serve")))
    resolved, reporter, stage = stage_command(Path(target), set_, "mlops_ray.serve.stage")
    guard(lambda: stage.run_serving(resolved, reporter, model, canary, detach))


def _timestamp(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 time; without a zone it is UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"'{value}' is not an ISO 8601 time, e.g. 2026-11-30T08:00", where=option) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def monitor(
    config: ConfigPath,
    model: Annotated[
        str | None, typer.Option("--model", help="name@alias or name/version; default: the config's model @champion")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Window start, ISO 8601 (UTC unless zoned); default: monitor.window_hours back"),
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Window end, ISO 8601; default: now.")] = None,
    set_: Overrides = None,
) -> None:
    """Compare captured traffic with the model's training data. Exit 0 no drift, 3 drift, 4 too little traffic."""
    resolved, reporter, stage = stage_command(config, set_, "mlops_ray.monitor.stage")
    start, end = guard(lambda: (_timestamp(since, "--since"), _timestamp(until, "--until")))
    if start and end and start >= end:
        guard(lambda: fail(ConfigError(f"--since {since} is not before --until {until}", where="--since")))
    outcome = guard(lambda: stage.run_monitor(resolved, reporter, str(config), set_ or [], model, start, end))
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


def lineage(
    model: Annotated[str | None, typer.Argument(help="name@alias or name/version")] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="List the versions trained on this data fingerprint (or prefix).")
    ] = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Where a version came from (data -> sweep -> trial -> run -> version -> aliases), or what a dataset fed."""
    import mlflow

    from mlops_ray.registry.trace import trace_version, versions_trained_on

    if (model is None) == (dataset is None):
        guard(lambda: fail(ConfigError("give either MODEL_REF or --dataset DIGEST", where="lineage")))
    mlflow.set_tracking_uri(settings.tracking_uri(tracking_uri))
    if dataset is not None:
        versions = guard(lambda: versions_trained_on(dataset))
        if not versions:
            console.print(f"No registered version was trained on data {dataset}.", highlight=False)
            return
        console.print(f"[bold]versions trained on data {dataset}[/]", highlight=False)
        for v in versions:  # plain lines, never truncated: ids are meant to be copied
            aliases = " ".join(f"@{a}" for a in v.aliases)
            line = f"{v.name}/{v.version}  run {v.run_id}  data {v.fingerprint}  {aliases}".rstrip()
            console.print(line, soft_wrap=True, highlight=False, markup=False)
        return
    chain = guard(lambda: trace_version(model or ""))
    console.print(f"[bold]lineage of {model}[/] (oldest first)", highlight=False)
    for link in chain:  # plain lines, never wrapped, so digests and run ids can be copied and grepped
        console.print(f"{link.kind:<10} {link.ident}", soft_wrap=True, highlight=False, markup=False)
        for key, value in link.facts.items():
            console.print(f"{'':<10}   {key}: {value}", soft_wrap=True, highlight=False, markup=False)


def reproduce(
    run_id: Annotated[str, typer.Argument(help="An MLflow run id of a training run or a sweep trial.")],
    tracking_uri: TrackingUri = None,
    tolerance: Annotated[
        float, typer.Option("--tolerance", help="Largest accepted absolute difference of a metric.")
    ] = 0.02,
    set_: Overrides = None,
) -> None:
    """Verify the data fingerprint, train again from the run's recorded config, compare metrics. Exit 1 if off."""
    reporter, stage = stage_module("mlops_ray.train.reproduce")
    uri = settings.tracking_uri(tracking_uri)
    result = guard(lambda: stage.run_reproduce(run_id, reporter, uri, tuple(set_ or ()), tolerance))
    if not result.matches:
        raise typer.Exit(1)
