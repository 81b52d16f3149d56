"""The workflow templates a user copies into their repository: valid for GitHub, every command run by a test.

Validation uses the GitHub workflow schema that ``check-jsonschema`` ships (offline).
Each ``run:`` step carries an ``id``; ``EXERCISED`` says which test runs it, and the
tests named there execute the step's own text (``tests/workflow_steps.py``). The
steps that need a Ray cluster and a tracking server run in
``tests/e2e/test_local_cluster.py`` against the local multi-node cluster.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from tests.workflow_steps import ROOT, TEMPLATES, Step, expressions, run_step, steps

CHECK_JSONSCHEMA = Path(sys.executable).with_name("check-jsonschema")
WORKFLOWS = ("model-pull-request.yml", "model-release.yml")
HERE = "tests/integration/test_ci_workflows.py"
CLUSTER_TEST = "tests/e2e/test_local_cluster.py::test_the_ci_workflow_steps_train_test_report_promote_and_roll_out"
# step id -> the test that executes it
EXERCISED = {
    "install": "make test itself (.ci/run): the same `make install` target creates the test environment",
    "lint": f"{HERE}::test_the_lint_step_passes_on_this_repository",
    "unit-tests": "make test itself: tests/unit is in the suite (see test_the_unit_test_step_selects_the_unit_tests)",
    "validate-data": f"{HERE}::test_the_data_validation_step_passes_on_the_quickstart_data",
    "train": CLUSTER_TEST,
    "test-model": CLUSTER_TEST,
    "report": CLUSTER_TEST,
    "comment": "tests/e2e/test_local_cluster.py (the report it posts fits a comment); gh itself needs GitHub",
    "promote": CLUSTER_TEST,
    "build-serve-config": CLUSTER_TEST,
    "rollout": CLUSTER_TEST,
}
# every ${{ }} expression the templates may use: what the cluster test gives each
KNOWN_EXPRESSIONS = {
    "github.event.pull_request.number",
    "github.event.pull_request.merged",
    "github.token",
    "vars.RAY_ADDRESS",
    "vars.MLFLOW_TRACKING_URI",
    "vars.CAPTURE_PATH",
    "secrets.RAY_AUTH_TOKEN",
    "secrets.MLFLOW_TRACKING_USERNAME",
    "secrets.MLFLOW_TRACKING_PASSWORD",
    "!cancelled() && steps.train.outcome == 'success'",
    "!cancelled() && steps.report.outcome == 'success'",
}


# the steps run here (no cluster) read none of these; the workflow env still names them
LOCAL_VALUES = {expression: "" for expression in KNOWN_EXPRESSIONS} | {
    "github.event.pull_request.number": "0",
    "secrets.RAY_AUTH_TOKEN": uuid.uuid4().hex,  # the embedded Ray of a step enables token auth with it
}


def all_steps() -> list[Step]:
    return [step for name in WORKFLOWS for step in steps(name)]


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("name", WORKFLOWS)
def test_the_template_is_a_valid_github_workflow(name: str) -> None:
    checked = check(TEMPLATES / name)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_broken_workflow_is_refused_by_the_same_check(tmp_path: Path) -> None:
    document = yaml.safe_load((TEMPLATES / WORKFLOWS[0]).read_text())
    del document["jobs"]["checks"]["runs-on"]  # every job needs a runner
    document["jobs"]["model"]["steps"][2]["run"] = ["make", "install"]  # run is a string, not a list
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump(document))
    checked = check(broken)
    assert checked.returncode != 0 and "runs-on" in checked.stdout + checked.stderr


def test_every_command_step_has_an_id_and_a_test_that_runs_it() -> None:
    found = all_steps()
    commands = [step for step in found if step.run is not None]
    assert all(step.id for step in commands), [step.run for step in commands if not step.id]
    assert {step.id for step in commands} == set(EXERCISED)
    for where in set(EXERCISED.values()):
        if where.startswith("tests/") and "::" in where:
            path, name = where.split("::")
            assert f"def {name}(" in (ROOT / path).read_text(), where
    # actions are pinned to a major version; expressions are the ones the tests can fill
    assert all("@v" in step.uses for step in found if step.uses)
    used = set().union(*(expressions((TEMPLATES / name).read_text()) for name in WORKFLOWS))
    assert used <= KNOWN_EXPRESSIONS, used - KNOWN_EXPRESSIONS


def test_the_release_rolls_out_only_after_the_gate() -> None:
    release = [step.id for step in steps("model-release.yml") if step.id]
    assert release == ["install", "promote", "build-serve-config", "rollout"]
    assert "jobs/promote.py" in next(s.run for s in steps("model-release.yml") if s.id == "promote")  # type: ignore[operator]


def step(step_id: str) -> Step:
    return next(s for s in all_steps() if s.id == step_id)


def test_the_lint_step_passes_on_this_repository() -> None:
    if shutil.which("make") is None:
        pytest.fail("make is needed: the template's lint step is `make lint`")
    done = run_step(step("lint"), LOCAL_VALUES, dict(os.environ), {}, timeout_s=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_unit_test_step_selects_the_unit_tests() -> None:
    command = step("unit-tests").run
    assert command == ".venv/bin/pytest tests/unit -q"
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "tests/unit", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert collected.returncode == 0 and " tests collected" in collected.stdout, collected.stdout[-2000:]


@pytest.mark.slow
def test_the_data_validation_step_passes_on_the_quickstart_data(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    done = run_step(step("validate-data"), LOCAL_VALUES, env, {}, timeout_s=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All 569 rows of sklearn:breast_cancer match configs/schemas/breast_cancer.yaml" in done.stdout
