"""The ``mlops-ray`` command line: parse arguments, call one library function each.

User mistakes arrive as ``MlopsError`` and are printed as one paragraph with the
error's exit code; a traceback is shown only for bugs (or with ``--debug``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from mlops_ray import settings
from mlops_ray.config import Config, dump_config, load_config
from mlops_ray.errors import ConfigError, MlopsError
from mlops_ray.reporting import StageReporter

app = typer.Typer(help="Train, register and serve models on Ray, tracked in MLflow.", no_args_is_help=True)
config_app = typer.Typer(help="Inspect configs.", no_args_is_help=True)
app.add_typer(config_app, name="config")
data_app = typer.Typer(help="Inspect a config's data source.", no_args_is_help=True)
app.add_typer(data_app, name="data")

console = Console()
err_console = Console(stderr=True)
T = TypeVar("T")

ConfigPath = Annotated[Path, typer.Argument(help="YAML config, e.g. configs/quickstart.yaml")]
Overrides = Annotated[
    list[str] | None, typer.Option("--set", help="Override a field: --set train.epochs=5 (repeatable)")
]


class _State:
    debug = False


@app.callback()
def main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for every error.")] = False) -> None:
    _State.debug = debug


def _guard(action: Callable[[], T]) -> T:
    """Run ``action``; turn user errors into one paragraph and an exit code."""
    try:
        return action()
    except MlopsError as exc:
        if _State.debug:
            raise
        err_console.print(f"[bold red]{exc.kind}:[/] {exc.paragraph()}", soft_wrap=True, highlight=False)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err_console.print("Interrupted; shut down cleanly.")
        raise typer.Exit(130) from None


def _load(path: Path, overrides: list[str] | None) -> Config:
    """The resolved config, loaded before a command imports its stage.

    The stage pulls in Ray, torch and MLflow (about ten seconds on two cores); loading first
    reports a bad config, by hand or as a job, in under a second.
    """
    return load_config(path, overrides or ())


def _stage_command(config: Path, overrides: list[str] | None) -> tuple[Config, StageReporter]:
    """The preamble of every command that runs a stage: the config first, then quiet libraries and a reporter.

    Call it before importing the stage: that import pulls in Ray, torch and MLflow (about
    ten seconds on two cores), and a bad config, typed or submitted as a Ray job, should
    be reported in under a second.
    """
    resolved = _guard(lambda: _load(config, overrides))
    return resolved, _reporter()


def _reporter() -> StageReporter:
    """Stage lines on this console, with the libraries' own chatter turned down."""
    from mlops_ray.runtime import quiet_library_logs

    quiet_library_logs()
    return StageReporter(console)


@config_app.command("show")
def config_show(config: ConfigPath, set_: Overrides = None) -> None:
    """Print the resolved config: the file, the overrides and every default."""
    resolved = _guard(lambda: _load(config, set_))
    console.print(dump_config(resolved), end="", highlight=False, markup=False)
    console.print(f"# tracking URI in effect: {settings.tracking_uri(resolved.tracking.uri)}", highlight=False)
    address = settings.ray_address(resolved.ray.address) or "embedded local Ray"
    console.print(f"# Ray in effect: {address}", highlight=False)


@data_app.command("fingerprint")
def data_fingerprint(config: ConfigPath, set_: Overrides = None) -> None:
    """Content digest of the source: same rows in any files or order give the same digest."""
    resolved, _ = _stage_command(config, set_)
    from mlops_ray.data.stage import fingerprint_source

    uri, result = _guard(lambda: fingerprint_source(resolved))
    table = Table(title=f"fingerprint of {uri}", show_header=False, title_justify="left")
    table.add_row("digest", result.digest)
    table.add_row("rows", str(result.rows))
    table.add_row("columns", ", ".join(result.columns))
    console.print(table)


@data_app.command("profile")
def data_profile(config: ConfigPath, set_: Overrides = None) -> None:
    """Per-column counts, nulls, min/max/mean and most frequent categories."""
    resolved, _ = _stage_command(config, set_)
    from mlops_ray.data.stage import profile_source

    uri, result = _guard(lambda: profile_source(resolved))
    table = Table(title=f"profile of {uri}: {result.rows} rows", title_justify="left")
    for heading in ("column", "kind", "non-null", "nulls", "min", "max", "mean", "top values"):
        text = heading in ("column", "kind", "top values")
        table.add_column(heading, justify="left" if text else "right", no_wrap=heading != "top values")
    for c in result.columns:
        numbers = [f"{v:.4g}" if v is not None else "" for v in (c.min, c.max, c.mean)]
        top = ", ".join(f"{value} ({count})" for value, count in c.top)
        table.add_row(c.name, c.kind, str(c.count), str(c.nulls), *numbers, top)
    console.print(table)


@data_app.command("infer-schema")
def data_infer_schema(
    config: ConfigPath,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the schema YAML.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    set_: Overrides = None,
) -> None:
    """Write the source's schema (types, nullability, ranges, categories, roles) for review and reuse."""
    resolved, _ = _stage_command(config, set_)
    from mlops_ray.data.schema import save_schema
    from mlops_ray.data.stage import infer_source_schema

    if output.exists() and not force:
        _guard(lambda: _raise(ConfigError("already exists; pass --force to overwrite it", where=str(output))))
    uri, schema = _guard(lambda: infer_source_schema(resolved))
    save_schema(schema, output)
    table = Table(title=f"schema of {uri} -> {output}", title_justify="left")
    for heading in ("column", "type", "role", "nullable", "range or categories"):
        table.add_column(heading, no_wrap=heading != "range or categories")
    for c in schema.columns:
        allowed = ", ".join(c.categories) if c.categories else (f"{c.min:g} .. {c.max:g}" if c.min is not None else "")
        table.add_row(c.name, c.type, c.role, "yes" if c.nullable else "no", allowed)
    console.print(table)
    console.print(f"Review it, then set `data.schema_file: {output}` in {config}.", highlight=False)


@data_app.command("validate")
def data_validate(
    config: ConfigPath,
    quarantine: Annotated[
        Path | None, typer.Option("--quarantine", help="Write the rows that break the schema here, as Parquet.")
    ] = None,
    set_: Overrides = None,
) -> None:
    """Check every row against data.schema_file; exit 1 if any row breaks it."""
    resolved, _ = _stage_command(config, set_)
    from mlops_ray.data.stage import validate_source

    result = _guard(lambda: validate_source(resolved, quarantine))
    report = result.report
    if report.ok:
        console.print(f"All {report.rows} rows of {result.uri} match {result.schema_file}.", highlight=False)
        return
    table = Table(title=f"{report.invalid_rows} of {report.rows} rows break {result.schema_file}", title_justify="left")
    for heading in ("column", "rule", "rows", "examples"):
        table.add_column(heading, justify="right" if heading == "rows" else "left", no_wrap=heading != "examples")
    for v in report.violations:
        examples = "; ".join(str({k: e.get(k) for k in (report.id_column, v.column) if k}) for e in v.examples)
        table.add_row(v.column, v.rule, str(v.count), examples)
    console.print(table)
    if result.quarantine:
        console.print(f"Rejected rows written to {result.quarantine}", highlight=False)
    raise typer.Exit(1)


def _raise(error: Exception) -> None:
    raise error


@app.command()
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
    resolved, reporter = _stage_command(config, set_)
    from mlops_ray.train.stage import run_training

    _guard(lambda: run_training(resolved, reporter, resume=resume, register=register))


@app.command()
def tune(
    config: ConfigPath,
    set_: Overrides = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue the latest unfinished sweep: finished trials are not run again."),
    ] = False,
) -> None:
    """Sweep hyperparameters with Ray Tune; register the best trial's model as @challenger."""
    resolved, reporter = _stage_command(config, set_)
    from mlops_ray.tune.stage import run_tuning

    _guard(lambda: run_tuning(resolved, reporter, resume=resume))


@app.command()
def run(
    config: ConfigPath,
    set_: Overrides = None,
    serve: Annotated[bool, typer.Option("--serve", help="Keep the endpoint up until Ctrl-C.")] = False,
) -> None:
    """Run the whole chain: data -> train (or sweep) -> register -> gate -> promote -> serve @champion -> predict."""
    resolved, reporter = _stage_command(config, set_)
    from mlops_ray import pipeline

    _guard(lambda: pipeline.run(resolved, reporter, keep_serving=serve))


ModelRefOption = Annotated[
    str | None, typer.Option("--model", help="name@alias or name/version; default: the config's model @challenger")
]
TrackingUri = Annotated[
    str | None,
    typer.Option("--tracking-uri", help="MLflow tracking URI; default $MLFLOW_TRACKING_URI, else ./mlflow.db"),
]


@app.command()
def evaluate(
    config: ConfigPath,
    model: Annotated[str, typer.Option("--model", help="name@alias or name/version, e.g. my-model@champion")],
    set_: Overrides = None,
) -> None:
    """Score a registered version on the test split: metrics, slices (worst flagged), plots in an MLflow run."""
    resolved, reporter = _stage_command(config, set_)
    from mlops_ray.evaluate.stage import run_evaluation

    _guard(lambda: run_evaluation(resolved, reporter, model))


@app.command()
def promote(
    config: ConfigPath,
    model: ModelRefOption = None,
    rollback: Annotated[
        bool, typer.Option("--rollback", help="Point @champion back at the previous champion instead.")
    ] = False,
    set_: Overrides = None,
) -> None:
    """Run the promotion gate on a challenger; move @champion only on PROMOTE or FIRST_MODEL. Exit 3 on REJECT."""
    resolved, reporter = _stage_command(config, set_)
    from mlops_ray.promote.stage import run_promotion, run_rollback

    if rollback:
        if model is not None:
            _guard(lambda: _raise(ConfigError("--rollback takes no --model: it restores the previous champion")))
        _guard(lambda: run_rollback(resolved, reporter))
        return
    outcome = _guard(lambda: run_promotion(resolved, reporter, model))
    if outcome.decision is not None and not outcome.decision.promotes:
        raise typer.Exit(3)


@app.command("test-model")
def test_model(
    config: ConfigPath,
    model: Annotated[str, typer.Option("--model", help="name@alias or name/version, e.g. my-model@challenger")],
    set_: Overrides = None,
) -> None:
    """Run the config's behavioural tests (model_tests) and data contract on a version. Exit 3 if one fails."""
    resolved, reporter = _stage_command(config, set_)
    from mlops_ray.modeltests.stage import run_model_tests

    outcome = _guard(lambda: run_model_tests(resolved, reporter, model))
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


@app.command()
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
        _guard(lambda: _raise(ConfigError(f"'{fmt}' is not a format; use markdown or html", where="--format")))
    resolved, reporter = _stage_command(config, set_)
    from mlops_ray.compare.stage import run_report

    target = output or Path("model-report.md" if fmt == "markdown" else "model-report.html")
    _guard(lambda: run_report(resolved, reporter, model, against, fmt, target))  # type: ignore[arg-type]


@app.command()
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
    from mlops_ray.serve.stage import build_serve_file, run_serving

    if target == "build":
        if build_config is None or output is None:
            _guard(
                lambda: _raise(ConfigError("usage: mlops-ray serve build CONFIG -o serve.yaml", where="serve build"))
            )
        resolved = _guard(lambda: _load(build_config, set_))  # type: ignore[arg-type]
        written = _guard(lambda: build_serve_file(resolved, output, model, canary))  # type: ignore[arg-type]
        console.print(f"Wrote {written}: `serve deploy {written}` or a RayService's serveConfigV2.", highlight=False)
        return
    if build_config is not None or output is not None:
        _guard(lambda: _raise(ConfigError("-o and a second CONFIG go with `serve build` only", where="serve")))
    resolved, reporter = _stage_command(Path(target), set_)
    _guard(lambda: run_serving(resolved, reporter, model, canary, detach))


def _timestamp(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 time; without a zone it is UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"'{value}' is not an ISO 8601 time, e.g. 2026-11-30T08:00", where=option) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@app.command()
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
    resolved, reporter = _stage_command(config, set_)
    from mlops_ray.monitor.stage import run_monitor

    start, end = _guard(lambda: (_timestamp(since, "--since"), _timestamp(until, "--until")))
    if start and end and start >= end:
        _guard(lambda: _raise(ConfigError(f"--since {since} is not before --until {until}", where="--since")))
    outcome = _guard(lambda: run_monitor(resolved, reporter, str(config), set_ or [], model, start, end))
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


@app.command()
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
        _guard(lambda: _raise(ConfigError("give either MODEL_REF or --dataset DIGEST", where="lineage")))
    mlflow.set_tracking_uri(settings.tracking_uri(tracking_uri))
    if dataset is not None:
        versions = _guard(lambda: versions_trained_on(dataset))
        if not versions:
            console.print(f"No registered version was trained on data {dataset}.", highlight=False)
            return
        console.print(f"[bold]versions trained on data {dataset}[/]", highlight=False)
        for v in versions:  # plain lines, never truncated: ids are meant to be copied
            aliases = " ".join(f"@{a}" for a in v.aliases)
            line = f"{v.name}/{v.version}  run {v.run_id}  data {v.fingerprint}  {aliases}".rstrip()
            console.print(line, soft_wrap=True, highlight=False, markup=False)
        return
    chain = _guard(lambda: trace_version(model or ""))
    console.print(f"[bold]lineage of {model}[/] (oldest first)", highlight=False)
    for link in chain:  # plain lines, never wrapped, so digests and run ids can be copied and grepped
        console.print(f"{link.kind:<10} {link.ident}", soft_wrap=True, highlight=False, markup=False)
        for key, value in link.facts.items():
            console.print(f"{'':<10}   {key}: {value}", soft_wrap=True, highlight=False, markup=False)


@app.command()
def reproduce(
    run_id: Annotated[str, typer.Argument(help="An MLflow run id of a training run or a sweep trial.")],
    tracking_uri: TrackingUri = None,
    tolerance: Annotated[
        float, typer.Option("--tolerance", help="Largest accepted absolute difference of a metric.")
    ] = 0.02,
    set_: Overrides = None,
) -> None:
    """Verify the data fingerprint, train again from the run's recorded config, compare metrics. Exit 1 if off."""
    reporter = _reporter()
    from mlops_ray.train.reproduce import run_reproduce

    uri = settings.tracking_uri(tracking_uri)
    result = _guard(lambda: run_reproduce(run_id, reporter, uri, tuple(set_ or ()), tolerance))
    if not result.matches:
        raise typer.Exit(1)


def entrypoint() -> None:
    """Console-script entry point."""
    sys.exit(app())
