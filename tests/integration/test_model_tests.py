"""Behavioural model tests, the gate that requires them, and the comparison report, on versions built to pass or fail.

The versions are real packaged models of the listing-prices regression
(``serving_models``: preprocessing fitted by Ray Data, logged and registered in a
temp SQLite MLflow, with the schema contract and the monitoring reference); their
one-unit network is set by hand to a known linear function of the standardised
features, so each is built to break exactly one expectation:

- ``good``: price rises with size, moderately; passes everything;
- ``cheap``: the same slope, everything 500 lower: fails minimum functionality;
- ``jumpy``: 30 times the slope: 1% size noise moves the price far: fails invariance;
- ``backwards``: bigger flats cost less (shifted up to stay expensive enough): fails the directional expectation.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
from pathlib import Path

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient
from rich.console import Console
from typer.testing import CliRunner

from mlops_ray.cli import app
from mlops_ray.compare.stage import run_report
from mlops_ray.config import Config, dump_config, load_config
from mlops_ray.config.model_tests import ModelTestsConfig
from mlops_ray.data import PreparedData
from mlops_ray.errors import ModelRefError
from mlops_ray.models import ModelSpec, build_model
from mlops_ray.modeltests.stage import run_model_tests
from mlops_ray.promote.stage import run_promotion
from mlops_ray.reporting import StageReporter
from tests.integration.serving_models import MODEL_NAME, listing_rows, prepare, register_version, serving_config

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_cluster")]

MODEL_TESTS = {
    "minimum_functionality": [
        {"name": "a large central flat costs at least 600", "row": {"size_m2": 190, "rooms": 4, "district": "centre"},
         "min": 600},
    ],
    "invariance": [
        {"name": "1% size noise moves the price by at most 10", "column": "size_m2", "relative": 0.01,
         "tolerance": 10},
    ],
    "directional": [
        {"name": "10 more square metres never cost less", "column": "size_m2", "increase": 10,
         "expect": "not_lower"},
    ],
}  # fmt: skip
# alias -> (weights on the standardised features, output bias in standard deviations of the price)
VERSIONS = {
    "good": ({"size_m2": 0.9, "rooms": 0.15, "district=centre": 0.5, "district=south": -0.3}, 0.0),
    "cheap": ({"size_m2": 0.9, "rooms": 0.15, "district=centre": 0.5, "district=south": -0.3}, -3.0),
    "jumpy": ({"size_m2": 30.0, "rooms": 0.15}, 0.0),
    "backwards": ({"size_m2": -0.9, "rooms": 0.15}, 3.0),  # shifted up so the large flat still costs enough
}
FAILS = {"good": None, "cheap": "minimum_functionality", "jumpy": "invariance", "backwards": "directional"}


@dataclasses.dataclass(frozen=True)
class Registry:
    tmp: Path
    config: Config
    data: PreparedData

    def config_with(self, *overrides: str) -> Config:
        """The fixture's config plus ``--set`` overrides, validated like the file."""
        text = dump_config(self.config)
        path = self.tmp / f"config-{abs(hash(overrides))}.yaml"
        path.write_text(text)
        return load_config(path, list(overrides))


def linear_state(spec: ModelSpec, data: PreparedData, weights: dict[str, float], bias: float) -> dict:
    """A depth-1, width-1 MLP computing ``sum(w * x) + bias``: the hidden unit is offset far into ReLU's linear part."""
    preprocessing = data.preprocessing
    columns = [c.name for c in preprocessing.numeric]
    for column in preprocessing.categorical:  # one-hot: the categories, then the unknown bucket
        columns += [f"{column.name}={value}" for value in column.categories] + [f"{column.name}=?"]
    assert len(columns) == preprocessing.width
    state = {k: torch.zeros_like(v) for k, v in build_model(spec).state_dict().items()}
    first, last = sorted(k for k in state if k.endswith(".weight"))
    for name, weight in weights.items():
        state[first][0, columns.index(name)] = weight
    state[first.replace("weight", "bias")][0] = 1000.0
    state[last][0, 0] = 1.0
    state[last.replace("weight", "bias")][0] = bias - 1000.0
    return state


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    tmp = tmp_path_factory.mktemp("model-tests")
    shape = ["model.depth=1", "model.width=1", "model.dropout=0.0", "gate.bootstrap_samples=200"]
    config = serving_config(tmp, f"sqlite:///{tmp / 'mlflow.db'}", shape)
    config = config.model_copy(update={"model_tests": ModelTestsConfig.model_validate(MODEL_TESTS)})
    data = prepare(config)
    spec = ModelSpec.from_config(config.model, data.preprocessing.width, 1)
    for seed, (alias, (weights, bias)) in enumerate(VERSIONS.items()):
        register_version(config, data, seed, alias, linear_state(spec, data, weights, bias))
    return Registry(tmp, config, data)


def quiet() -> StageReporter:
    return StageReporter(Console(file=io.StringIO(), width=200))


@pytest.mark.parametrize("alias", list(VERSIONS))
def test_each_kind_catches_the_model_built_to_fail_it_and_passes_the_good_one(registry: Registry, alias: str) -> None:
    outcome = run_model_tests(registry.config, quiet(), f"{MODEL_NAME}@{alias}")
    failed = {r.kind for r in outcome.results if not r.passed}
    assert failed == ({FAILS[alias]} if FAILS[alias] else set()), [r.detail for r in outcome.results]
    assert outcome.exit_code == (3 if FAILS[alias] else 0)
    kinds = [r.kind for r in outcome.results]
    assert kinds == ["minimum_functionality", "invariance", "directional", "data_contract"]
    assert next(r for r in outcome.results if r.kind == "data_contract").detail.startswith("all ")
    if FAILS[alias]:
        broken = next(r for r in outcome.results if not r.passed)
        assert broken.failed > 0 and broken.examples, broken
    # recorded on the version and in a model_tests run
    client = MlflowClient(registry.config.tracking.uri)
    version = client.get_model_version(MODEL_NAME, outcome.version)
    assert version.tags["model_tests.passed"] == ("false" if FAILS[alias] else "true")
    assert version.tags["model_tests.run_id"] == outcome.run_id
    logged = json.loads(Path(client.download_artifacts(outcome.run_id, "model_tests/results.json")).read_text())
    assert [r["passed"] for r in logged["results"]] == [r.passed for r in outcome.results]


def test_the_data_contract_check_catches_rows_that_break_the_schema(registry: Registry) -> None:
    folder = registry.tmp / "listings-with-bad-rows"
    folder.mkdir()
    rows = listing_rows(50, seed=3)
    rows.loc[0, "size_m2"] = -5.0  # below the schema's range
    rows.loc[1, "district"] = "harbour"  # not one of its categories
    rows.to_parquet(folder / "part-0.parquet", index=False)
    config = registry.config_with(f"data.source={folder}")
    outcome = run_model_tests(config, quiet(), f"{MODEL_NAME}@good")
    contract = outcome.results[-1]
    assert contract.kind == "data_contract" and not contract.passed and outcome.exit_code == 3
    assert contract.failed == 2 and "size_m2" in contract.detail and "district" in contract.detail


def test_the_command_line_exits_3_on_a_failed_test_and_names_it(registry: Registry) -> None:
    path = registry.tmp / "with-tests.yaml"
    path.write_text(dump_config(registry.config))
    runner = CliRunner()
    bad = runner.invoke(app, ["test-model", str(path), "--model", f"{MODEL_NAME}@backwards"])
    assert bad.exit_code == 3, bad.output
    assert "FAIL" in bad.output and "10 more square metres" in bad.output
    good = runner.invoke(app, ["test-model", str(path), "--model", f"{MODEL_NAME}@good"])
    assert good.exit_code == 0, good.output
    wrong = yaml.safe_load(path.read_text())
    wrong["model_tests"]["directional"][0]["column"] = "size"
    path.write_text(yaml.safe_dump(wrong))
    typo = runner.invoke(app, ["test-model", str(path), "--model", f"{MODEL_NAME}@good"])
    assert typo.exit_code == 2 and "model_tests.directional[0].column" in typo.output
    assert "'size' is not a feature" in typo.output.replace("\n", " ")


def test_the_gate_can_require_the_behavioural_tests(registry: Registry) -> None:
    config = registry.config_with("gate.require_model_tests=true", "registry.alias=production")
    rejected = run_promotion(config, quiet(), f"{MODEL_NAME}@backwards")
    assert rejected.decision is not None and not rejected.decision.promotes and not rejected.moved
    failed = [c.text for c in rejected.decision.checks if not c.passed]
    assert len(failed) == 1 and failed[0].startswith("behavioural tests: 3 of 4 passed") and "directional" in failed[0]
    accepted = run_promotion(config, quiet(), f"{MODEL_NAME}@good")
    assert accepted.moved and accepted.decision is not None
    assert any(c.passed and c.text.startswith("behavioural tests: 4 of 4") for c in accepted.decision.checks)


def test_the_report_renders_both_formats_with_real_numbers(registry: Registry) -> None:
    config = registry.config_with("evaluate.slices=[district]", "evaluate.min_slice_rows=5")
    markdown = registry.tmp / "report" / "jumpy.md"
    report = run_report(config, quiet(), f"{MODEL_NAME}@jumpy", "good", "markdown", markdown)
    assert report.against is not None and report.against.label.startswith("@good (version")
    rows = {m.name: m for m in report.metrics}
    assert set(rows) == {"rmse", "mae", "r2"}
    # the jumpy model is far worse on every metric, and the intervals say so
    assert rows["rmse"].candidate > rows["rmse"].against and rows["rmse"].verdict == "worse"  # type: ignore[operator]
    assert rows["r2"].delta is not None and rows["r2"].delta.high < 0
    assert {s.column for s in report.slices} == {"district"} and all(s.delta for s in report.slices)
    text = markdown.read_text()
    assert len(text) < 65_536 and text.startswith(f"### {MODEL_NAME}: version")
    assert f"{rows['rmse'].candidate:.4f}" in text and "**worse**" in text
    assert re.search(r"\| invariance \| 1% size noise .* \| FAIL \| pass \|", text)
    assert "(same)" in text  # both were trained on the same data fingerprint
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (markdown.parent / link).stat().st_size > 1000
    page = registry.tmp / "report" / "jumpy.html"
    run_report(config, quiet(), f"{MODEL_NAME}@jumpy", "good", "html", page)
    html = page.read_text()
    assert html.count("<img") >= 2 and f"{rows['rmse'].candidate:.4f}" in html and "<td class='fail'>FAIL</td>" in html
    client = MlflowClient(config.tracking.uri)
    experiment = client.get_experiment_by_name(config.tracking.experiment)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], "tags.`mlops_ray.run_kind` = 'comparison'")
    assert len(runs) == 2
    logged = {a.path for a in client.list_artifacts(runs[0].info.run_id, "report")}
    assert {"report/report.md", "report/report.html", "report/report.json"} <= logged


def test_the_report_refuses_a_version_compared_with_itself_and_reports_alone_without_a_champion(
    registry: Registry,
) -> None:
    with pytest.raises(ModelRefError, match="itself"):
        run_report(registry.config, quiet(), f"{MODEL_NAME}@good", "good", "markdown", registry.tmp / "x.md")
    alone = run_report(registry.config, quiet(), f"{MODEL_NAME}@good", "nobody", "markdown", registry.tmp / "a.md")
    assert alone.against is None and all(m.delta is None for m in alone.metrics)
    assert "nothing to compare against" in (registry.tmp / "a.md").read_text()
