"""``mlops-ray test-model``: run the config's behavioural tests on a registered version and record them on it.

What runs and how it is recorded is ``results.py``; this entry loads the version,
prints the table, and exits 3 when a test fails, so CI can stop a pull request on it.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlflow.tracking import MlflowClient

from mlops_ray.config import Config
from mlops_ray.modeltests.checks import CaseResult
from mlops_ray.modeltests.results import behavioural_results, log_results, print_results
from mlops_ray.registry.refs import parse_model_ref
from mlops_ray.reporting import StageReporter
from mlops_ray.runtime import connected
from mlops_ray.serve.served_model import ServedModel

EXIT_FAILED = 3


@dataclass(frozen=True)
class ModelTestOutcome:
    name: str
    version: str
    results: list[CaseResult]
    run_id: str

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else EXIT_FAILED


def run_model_tests(config: Config, reporter: StageReporter, model_ref: str) -> ModelTestOutcome:
    with connected(config, reporter) as (tracking, _):
        client = MlflowClient(tracking.uri)
        with reporter.stage("load", f"loading {model_ref} and its training reference") as stage:
            served = ServedModel.load(parse_model_ref(model_ref), client, max_rows=1_000_000)
            stage.detail = f"{served.name} version {served.version}"
        results = behavioural_results(config, client, served, reporter)
        run_id = log_results(client, served, results)
    print_results(reporter, f"{served.name} version {served.version}", results)
    return ModelTestOutcome(served.name, served.version, results, run_id)
