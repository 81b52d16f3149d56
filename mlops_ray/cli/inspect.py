"""``mlops-ray config show`` and ``mlops-ray data fingerprint|profile|infer-schema|validate``: look before training."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mlops_ray import settings
from mlops_ray.cli.common import ConfigPath, Overrides, console, fail, guard, load, stage_command
from mlops_ray.config import dump_config
from mlops_ray.errors import ConfigError


def config_show(config: ConfigPath, set_: Overrides = None) -> None:
    """Print the resolved config: the file, the overrides and every default."""
    resolved = guard(lambda: load(config, set_))
    console.print(dump_config(resolved), end="", highlight=False, markup=False)
    console.print(f"# tracking URI in effect: {settings.tracking_uri(resolved.tracking.uri)}", highlight=False)
    address = settings.ray_address(resolved.ray.address) or "embedded local Ray"
    console.print(f"# Ray in effect: {address}", highlight=False)


def data_fingerprint(config: ConfigPath, set_: Overrides = None) -> None:
    """Content digest of the source: same rows in any files or order give the same digest."""
    resolved, _, stage = stage_command(config, set_, "mlops_ray.data.stage")
    uri, result = guard(lambda: stage.fingerprint_source(resolved))
    table = Table(title=f"fingerprint of {uri}", show_header=False, title_justify="left")
    table.add_row("digest", result.digest)
    table.add_row("rows", str(result.rows))
    table.add_row("columns", ", ".join(result.columns))
    console.print(table)


def data_profile(config: ConfigPath, set_: Overrides = None) -> None:
    """Per-column counts, nulls, min/max/mean and most frequent categories."""
    resolved, _, stage = stage_command(config, set_, "mlops_ray.data.stage")
    uri, result = guard(lambda: stage.profile_source(resolved))
    table = Table(title=f"profile of {uri}: {result.rows} rows", title_justify="left")
    for heading in ("column", "kind", "non-null", "nulls", "min", "max", "mean", "top values"):
        text = heading in ("column", "kind", "top values")
        table.add_column(heading, justify="left" if text else "right", no_wrap=heading != "top values")
    for c in result.columns:
        numbers = [f"{v:.4g}" if v is not None else "" for v in (c.min, c.max, c.mean)]
        top = ", ".join(f"{value} ({count})" for value, count in c.top)
        table.add_row(c.name, c.kind, str(c.count), str(c.nulls), *numbers, top)
    console.print(table)


def data_infer_schema(
    config: ConfigPath,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the schema YAML.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    set_: Overrides = None,
) -> None:
    """Write the source's schema (types, nullability, ranges, categories, roles) for review and reuse."""
    resolved, _, stage = stage_command(config, set_, "mlops_ray.data.stage")
    from mlops_ray.data.schema import save_schema

    if output.exists() and not force:
        guard(lambda: fail(ConfigError("already exists; pass --force to overwrite it", where=str(output))))
    uri, schema = guard(lambda: stage.infer_source_schema(resolved))
    save_schema(schema, output)
    table = Table(title=f"schema of {uri} -> {output}", title_justify="left")
    for heading in ("column", "type", "role", "nullable", "range or categories"):
        table.add_column(heading, no_wrap=heading != "range or categories")
    for c in schema.columns:
        allowed = ", ".join(c.categories) if c.categories else (f"{c.min:g} .. {c.max:g}" if c.min is not None else "")
        table.add_row(c.name, c.type, c.role, "yes" if c.nullable else "no", allowed)
    console.print(table)
    console.print(f"Review it, then set `data.schema_file: {output}` in {config}.", highlight=False)


def data_validate(
    config: ConfigPath,
    quarantine: Annotated[
        Path | None, typer.Option("--quarantine", help="Write the rows that break the schema here, as Parquet.")
    ] = None,
    set_: Overrides = None,
) -> None:
    """Check every row against data.schema_file; exit 1 if any row breaks it."""
    resolved, _, stage = stage_command(config, set_, "mlops_ray.data.stage")
    result = guard(lambda: stage.validate_source(resolved, quarantine))
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
