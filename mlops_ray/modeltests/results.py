"""Behavioural test results of a version: running the declared cases and the data contract, recording them.

The cases (``checks.py``) run on the packaged model and its logged training reference;
the data contract check runs the data layer's own validation over the config's source
with Ray Data. Results go to an MLflow run (``model_tests/results.json``) and onto the
version as tags (``model_tests.passed``, ``model_tests.summary``, ``model_tests.run_id``).
``mlops-ray test-model``, the promotion gate's ``require_model_tests`` and ``mlops-ray
report`` all run them through here.
"""

from __future__ import annotations

import mlflow
from mlflow.tracking import MlflowClient
from rich.table import Table

from mlops_ray.config import Config
from mlops_ray.data.prepare import with_schema_roles
from mlops_ray.data.read_errors import readable_source_errors
from mlops_ray.data.reference import load_reference
from mlops_ray.data.schema import load_schema
from mlops_ray.data.sources import load_source
from mlops_ray.data.validation import validate
from mlops_ray.modeltests.checks import CaseResult, run_cases
from mlops_ray.reporting import StageReporter
from mlops_ray.serve.served_model import ServedModel, logged_schema
from mlops_ray.tags import (
    MODEL_TAG,
    RUN_KIND_TAG,
    STAGE_TAG,
    TESTS_PASSED_TAG,
    TESTS_RESULTS_ARTIFACT,
    TESTS_RUN_TAG,
    TESTS_SUMMARY_TAG,
    VERSION_TAG,
)


def behavioural_results(
    config: Config, client: MlflowClient, served: ServedModel, reporter: StageReporter
) -> list[CaseResult]:
    """The declared cases, then the data contract check; Ray must be up (``connected``)."""
    settings = config.model_tests
    results: list[CaseResult] = []
    if settings.declared:
        with reporter.stage("cases", f"{settings.declared} behavioural case(s)") as stage:
            reference = load_reference(client, served.lineage["run_id"], f"{served.name}/{served.version}")
            results = run_cases(settings, served.packaged, reference)
            stage.detail = _count(results)
    if settings.data_contract:
        with reporter.stage("contract", f"checking {config.data.source} against its schema") as stage:
            results.append(contract_check(config, client, served))
            stage.detail = results[-1].detail
    return results


def contract_check(config: Config, client: MlflowClient, served: ServedModel) -> CaseResult:
    """Every row of the config's source against ``data.schema_file``, else the schema logged with the version."""
    name = "training data contract"
    if config.data.schema_file:
        contract, origin = load_schema(config.data.schema_file), config.data.schema_file
    else:
        contract, origin = logged_schema(client, served.lineage.get("run_id", "")), "the version's logged schema"
    if contract is None:
        detail = "skipped: no data.schema_file and no schema logged with the version"
        return CaseResult("data_contract", name, True, detail, skipped=True)
    data_config = with_schema_roles(config.data, contract)
    with readable_source_errors(data_config.source):
        report = validate(load_source(data_config).dataset, contract).report
    if report.ok:
        return CaseResult("data_contract", name, True, f"all {report.rows} rows match {origin}", report.rows)
    broken = ", ".join(f"{v.column} {v.rule} ({v.count})" for v in report.violations[:5])
    examples = [{"column": v.column, "rule": v.rule, "rows": v.count} for v in report.violations[:3]]
    detail = f"{report.invalid_rows} of {report.rows} rows break {origin}: {broken}"
    return CaseResult("data_contract", name, False, detail, report.rows, report.invalid_rows, examples)


def log_results(client: MlflowClient, served: ServedModel, results: list[CaseResult]) -> str:
    """A ``model_tests`` run with the results, and the verdict as tags on the version; returns the run id."""
    passed = all(r.passed for r in results)
    tags = {RUN_KIND_TAG: "model_tests", STAGE_TAG: "model_tests", MODEL_TAG: served.name, VERSION_TAG: served.version}
    with mlflow.start_run(run_name=f"{served.name}-v{served.version}-model-tests", tags=tags) as run:
        failed = sum(not r.passed for r in results)
        mlflow.log_metrics({"model_tests.cases": len(results), "model_tests.failed": failed})
        model = f"{served.name}/{served.version}"
        mlflow.log_dict(
            {"model": model, "passed": passed, "results": [r.to_dict() for r in results]}, TESTS_RESULTS_ARTIFACT
        )
    version_tags = {
        TESTS_PASSED_TAG: str(passed).lower(),
        TESTS_SUMMARY_TAG: summary(results)[:4000],
        TESTS_RUN_TAG: run.info.run_id,
    }
    for key, value in version_tags.items():
        client.set_model_version_tag(served.name, served.version, key, value)
    return run.info.run_id


def summary(results: list[CaseResult]) -> str:
    failed = [r for r in results if not r.passed]
    text = _count(results)
    return text + (f"; failed: {', '.join(f'{r.kind} {r.name!r}' for r in failed)}" if failed else "")


def print_results(reporter: StageReporter, title: str, results: list[CaseResult]) -> None:
    table = Table(title=f"behavioural tests of {title}", title_justify="left")
    table.add_column("kind", no_wrap=True)
    table.add_column("test", ratio=1)
    table.add_column("result", no_wrap=True)
    table.add_column("detail", ratio=2)
    for r in results:
        mark = "[yellow]skipped[/]" if r.skipped else ("[green]pass[/]" if r.passed else "[red]FAIL[/]")
        table.add_row(r.kind, r.name, mark, r.detail)
    reporter.console.print(table)
    for r in results:  # in full, whatever the terminal's width (CI logs are narrow)
        if not r.passed:
            reporter.console.print(f"FAIL {r.kind} '{r.name}': {r.detail}", soft_wrap=True, highlight=False)
    if not results:
        reporter.console.print("No behavioural test is declared (model_tests in the config).", highlight=False)


def _count(results: list[CaseResult]) -> str:
    ran = [r for r in results if not r.skipped]
    return f"{sum(r.passed for r in ran)} of {len(ran)} passed" + (
        f", {len(results) - len(ran)} skipped" if len(ran) < len(results) else ""
    )
