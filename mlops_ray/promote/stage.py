"""``mlops-ray promote``: run the gate on a challenger and move ``@champion`` only when it passes.

The challenger and the current champion are scored together on the same test rows;
the policy (``promote/gate.py``) decides; the decision is kept twice, as a JSON
artifact of a ``promote`` MLflow run and as tags on the challenger's version, so the
registry alone says why a version is (or is not) in production. Every move of the
champion alias is appended to a history tag on the registered model
(``registry/aliases.py``), which is what ``--rollback`` walks back. Promoting the
version that is already champion changes nothing.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient
from rich.console import Console

from mlops_ray.config import Config
from mlops_ray.data import PreparedData
from mlops_ray.data.prepare import prepare_stage
from mlops_ray.errors import PromotionError
from mlops_ray.evaluate.bootstrap import Interval, paired_bootstrap
from mlops_ray.evaluate.metrics import metric_direction
from mlops_ray.evaluate.scoring import ScoredRows
from mlops_ray.evaluate.versions import evaluate_versions, log_evaluation, print_evaluation, warn_if_other_data
from mlops_ray.modeltests.results import behavioural_results, log_results
from mlops_ray.modeltests.results import summary as model_tests_summary
from mlops_ray.promote.gate import Check, Decision, PromotionPolicy, Verdict
from mlops_ray.registry.aliases import move_champion, roll_back
from mlops_ray.registry.refs import ModelRef, alias_version, resolve_model_ref
from mlops_ray.reporting import StageReporter
from mlops_ray.runtime import connect_tracking, connected
from mlops_ray.serve.served_model import ServedModel
from mlops_ray.tags import (
    AGAINST_CHAMPION_TAG,
    DECIDED_AT_TAG,
    DECISION_ARTIFACT,
    MODEL_TAG,
    PROMOTION_RUN_TAG,
    REASONS_TAG,
    STAGE_TAG,
    VERDICT_TAG,
    VERSION_TAG,
)


@dataclass(frozen=True)
class PromotionOutcome:
    decision: Decision | None  # None when the candidate already was the champion
    champion_version: str | None  # after the gate
    moved: bool
    run_id: str | None


def run_promotion(config: Config, reporter: StageReporter, model_ref: str | None = None) -> PromotionOutcome:
    """``mlops-ray promote``: gate ``model_ref`` (default: the model's @challenger) against @champion."""
    registry = config.registry
    with connected(config, reporter) as (tracking, _):
        candidate = resolve_model_ref(model_ref or str(ModelRef(registry.model_name, registry.challenger_alias)))
        if candidate.name != registry.model_name:
            raise PromotionError(
                f"{candidate.name} is not the config's model; the gate moves @{registry.alias} of "
                f"registry.model_name '{registry.model_name}'",
                where=model_ref,
                hint="Pass a version of that model, or set registry.model_name.",
            )
        if str(candidate.version) == alias_version(MlflowClient(), candidate.name, registry.alias):
            reporter.console.print(
                f"{candidate.name} version {candidate.version} already is @{registry.alias}: nothing to do.",
                highlight=False,
            )
            return PromotionOutcome(None, str(candidate.version), False, None)
        data = prepare_stage(config, reporter)
        return gate_and_promote(config, reporter, tracking.uri, data, candidate)


def gate_and_promote(
    config: Config,
    reporter: StageReporter,
    tracking_uri: str,
    data: PreparedData,
    candidate: ModelVersion,
    show_metrics: bool = True,
) -> PromotionOutcome:
    """Evaluate ``candidate`` with the champion, decide, record, and move the alias on a pass.

    ``show_metrics`` prints the candidate's metric and slice tables before the
    decision (``mlops-ray run`` prints its metrics in its own summary instead).
    """
    client = MlflowClient()
    alias = config.registry.alias
    champion_version = alias_version(client, candidate.name, alias)
    if champion_version == str(candidate.version):
        return PromotionOutcome(None, champion_version, False, None)
    versions = {"candidate": candidate}
    if champion_version is not None:
        versions["champion"] = client.get_model_version(candidate.name, champion_version)
    warn_if_other_data(candidate, data, reporter)
    against = f"champion version {champion_version}" if champion_version else "the thresholds (no champion yet)"
    with reporter.stage("gate", f"version {candidate.version} against {against}") as stage:
        evaluated = evaluate_versions(config, data, tracking_uri, versions)
        metric = config.gate.metric_for(data.task)
        improvement = None
        if champion_version is not None:
            improvement = _paired_gain(evaluated.scored, metric, config)
        extra = [_model_tests_check(config, candidate)] if config.gate.require_model_tests else []
        policy = PromotionPolicy(config.gate, metric)
        decision = policy.decide(evaluated.results["candidate"], evaluated.results.get("champion"), improvement, extra)
        with mlflow.start_run(run_name=f"{candidate.name}-v{candidate.version}-promote") as run:
            mlflow.set_tags(
                {
                    STAGE_TAG: "promote",
                    MODEL_TAG: candidate.name,
                    VERSION_TAG: str(candidate.version),
                    VERDICT_TAG: str(decision.verdict),
                    AGAINST_CHAMPION_TAG: champion_version or "",
                }
            )
            log_evaluation(evaluated, "candidate", data)
            if "champion" in evaluated.results:
                log_evaluation(evaluated, "champion", data, prefix="champion_")
            mlflow.log_dict(decision.to_dict(), DECISION_ARTIFACT)
        _tag_version(client, candidate, decision, run.info.run_id)
        if decision.promotes:
            move_champion(client, candidate.name, alias, str(candidate.version), champion_version)
        stage.detail = decision.summary()
    if show_metrics:
        print_evaluation(reporter, evaluated.results["candidate"], f"version {candidate.version} on the test split")
    _print_decision(reporter, decision, alias)
    now = str(candidate.version) if decision.promotes else champion_version
    return PromotionOutcome(decision, now, decision.promotes, run.info.run_id)


def run_rollback(config: Config, reporter: StageReporter) -> str:
    """``mlops-ray promote --rollback``: point @champion at the version it pointed at before."""
    tracking = connect_tracking(config.tracking)
    client = MlflowClient(tracking.uri)
    name, alias = config.registry.model_name, config.registry.alias
    current = alias_version(client, name, alias)
    if current is None:
        raise PromotionError(f"model '{name}' has no @{alias}; there is nothing to roll back", where=name)
    previous = roll_back(client, name, alias, current, _now())
    moved = f"@{alias} of {name}: version {current} -> version {previous} (rolled back)"
    reporter.console.print(moved, highlight=False)
    return previous


def _paired_gain(scored: ScoredRows, metric: str, config: Config) -> Interval:
    """Bootstrap interval of (candidate - champion) on resampled test rows, signed so that positive is better."""
    candidate, champion = scored.scorer("candidate", metric), scored.scorer("champion", metric)
    sign = metric_direction(metric)
    gate = config.gate
    return paired_bootstrap(
        lambda rows: sign * (candidate(rows) - champion(rows)),
        len(scored.frame),
        gate.bootstrap_samples,
        gate.confidence,
        gate.seed,
    )


def _model_tests_check(config: Config, candidate: ModelVersion) -> Check:
    """``gate.require_model_tests``: the behavioural tests run on the candidate now, recorded as test-model does."""
    client = MlflowClient()
    served = ServedModel.load(ModelRef(candidate.name, version=str(candidate.version)), client, max_rows=1_000_000)
    results = behavioural_results(config, client, served, StageReporter(Console(file=io.StringIO())))
    log_results(client, served, results)
    passed = all(r.passed for r in results)
    failed = "; ".join(f"{r.kind} '{r.name}': {r.detail}" for r in results if not r.passed)
    text = f"behavioural tests: {model_tests_summary(results)}" + (f" ({failed})" if failed else "")
    return Check(passed, text[:1000])


def _tag_version(client: MlflowClient, version: ModelVersion, decision: Decision, run_id: str) -> None:
    tags = {
        VERDICT_TAG: str(decision.verdict),
        REASONS_TAG: " | ".join(decision.reasons)[:4000],
        PROMOTION_RUN_TAG: run_id,
        AGAINST_CHAMPION_TAG: decision.champion_version or "",
        DECIDED_AT_TAG: _now(),
    }
    for key, value in tags.items():
        client.set_model_version_tag(version.name, str(version.version), key, value)


def _print_decision(reporter: StageReporter, decision: Decision, alias: str) -> None:
    colour = "green" if decision.promotes else "red"
    reporter.console.print(f"[bold {colour}]{decision.verdict}[/] version {decision.candidate_version}", end="")
    if decision.verdict == Verdict.REJECT:
        kept = decision.champion_version
        reporter.console.print(f"; @{alias} stays on version {kept}" if kept else f"; no @{alias} is set")
    else:
        reporter.console.print(f"; @{alias} now points at version {decision.candidate_version}")
    for check in decision.checks:
        mark = "[green]pass[/]" if check.passed else "[red]FAIL[/]"
        reporter.console.print(f"  {mark} {check.text}", highlight=False)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
