"""Read the GitHub workflow templates of ``cluster/ci/github/`` as the steps a runner would execute.

The tests run those steps' own ``run:`` text with bash, after replacing each
``${{ ... }}`` expression with a value for this machine, so a template cannot call a
command (or read an input) that no test executes: an expression without a value fails.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "cluster" / "ci" / "github"
EXPRESSION = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")


@dataclass(frozen=True)
class Step:
    workflow: str  # file name
    job: str
    id: str | None
    run: str | None
    uses: str | None
    env: dict[str, str]  # the workflow's env, then the job's, then the step's (later wins)


def steps(name: str) -> list[Step]:
    document = yaml.safe_load((TEMPLATES / name).read_text())
    found = []
    for job_name, job in document["jobs"].items():
        for step in job["steps"]:
            env = {**document.get("env", {}), **job.get("env", {}), **step.get("env", {})}
            strings = {k: str(v) for k, v in env.items()}
            found.append(Step(name, job_name, step.get("id"), step.get("run"), step.get("uses"), strings))
    return found


def expressions(text: str) -> set[str]:
    return set(EXPRESSION.findall(text))


def expand(text: str, values: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        if match.group(1) not in values:
            raise KeyError(f"no test value for the expression ${{{{ {match.group(1)} }}}}")
        return values[match.group(1)]

    return EXPRESSION.sub(value, text)


def run_step(
    step: Step, values: dict[str, str], env: dict[str, str], overrides: dict[str, str], timeout_s: float
) -> subprocess.CompletedProcess[str]:
    """Run the step's ``run`` text with bash from the repository root, as a runner would (env: its ``env`` block).

    ``values`` fills the ``${{ }}`` expressions; ``overrides`` replaces workflow variables the
    test must set differently here (a shorter training, this machine's port).
    """
    assert step.run is not None, step
    variables = {k: expand(v, values) for k, v in step.env.items()} | overrides
    return subprocess.run(
        ["bash", "-eo", "pipefail", "-c", expand(step.run, values)],
        cwd=ROOT,
        env={**env, **variables, "GITHUB_RUN_ID": "1", "GITHUB_RUN_ATTEMPT": "1"},
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
