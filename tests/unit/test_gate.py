"""The promotion policy on hand-built evaluations: every verdict, and the reasons it gives."""

from __future__ import annotations

import pytest

from mlops_ray.config import GateConfig
from mlops_ray.errors import ConfigError, ModelRefError
from mlops_ray.evaluate.bootstrap import Interval
from mlops_ray.evaluate.slices import SliceResult
from mlops_ray.evaluate.versions import ModelEvaluation
from mlops_ray.promote.gate import PromotionPolicy, Verdict
from mlops_ray.registry.refs import ModelRef, parse_model_ref


def evaluation(version: str, f1: float, slices: list[SliceResult] | None = None) -> ModelEvaluation:
    return ModelEvaluation("m", version, {"test_f1_macro": f1, "test_log_loss": 1 - f1}, slices or [])


def gain(low: float, high: float) -> Interval:
    return Interval((low + high) / 2, low, high, 0.95, 1000)


def policy(**settings: object) -> PromotionPolicy:
    return PromotionPolicy(GateConfig(**settings), "f1_macro")


def test_a_first_model_that_meets_every_threshold_is_first_model() -> None:
    decision = policy(thresholds={"f1_macro": 0.8, "log_loss": 0.3}).decide(evaluation("1", 0.9), None, None)
    assert decision.verdict == Verdict.FIRST_MODEL and decision.promotes
    assert [c.text for c in decision.checks] == [
        "f1_macro 0.9000 >= 0.8 (threshold)",
        "log_loss 0.1000 <= 0.3 (threshold)",  # lower is better: the bound is a maximum
    ]


def test_a_first_model_below_a_threshold_is_rejected_with_that_threshold_as_reason() -> None:
    decision = policy(thresholds={"f1_macro": 0.95}).decide(evaluation("1", 0.9), None, None)
    assert decision.verdict == Verdict.REJECT and not decision.promotes
    assert decision.summary() == "REJECT: version 1: f1_macro 0.9000 >= 0.95 (threshold)"
    assert decision.reasons == ["FAIL: f1_macro 0.9000 >= 0.95 (threshold)"]


def test_not_worse_promotes_within_the_margin_and_rejects_beyond_it() -> None:
    within = policy(margin=0.02).decide(evaluation("2", 0.89), evaluation("1", 0.9), gain(-0.015, 0.01))
    beyond = policy(margin=0.02).decide(evaluation("2", 0.85), evaluation("1", 0.9), gain(-0.08, -0.02))
    assert within.verdict == Verdict.PROMOTE
    assert beyond.verdict == Verdict.REJECT
    assert "vs champion version 1" in beyond.checks[0].text and "lower bound >= -0.02" in beyond.checks[0].text


def test_not_shown_worse_promotes_an_uncertain_challenger_and_rejects_a_clearly_worse_one() -> None:
    settings = {"rule": "not_shown_worse", "margin": 0.01}
    uncertain = policy(**settings).decide(evaluation("2", 0.91), evaluation("1", 0.9), gain(-0.06, 0.08))
    worse = policy(**settings).decide(evaluation("2", 0.8), evaluation("1", 0.9), gain(-0.15, -0.05))
    assert uncertain.verdict == Verdict.PROMOTE and "upper bound >= -0.01" in uncertain.checks[0].text
    assert worse.verdict == Verdict.REJECT
    strict = policy(margin=0.01).decide(evaluation("2", 0.91), evaluation("1", 0.9), gain(-0.06, 0.08))
    assert strict.verdict == Verdict.REJECT  # not_worse, the default, needs confidence, which this interval lacks


def test_better_needs_the_whole_interval_above_min_delta() -> None:
    settings = {"rule": "better", "min_delta": 0.01}
    unsure = policy(**settings).decide(evaluation("2", 0.92), evaluation("1", 0.9), gain(-0.01, 0.05))
    sure = policy(**settings).decide(evaluation("2", 0.95), evaluation("1", 0.9), gain(0.02, 0.08))
    assert unsure.verdict == Verdict.REJECT and sure.verdict == Verdict.PROMOTE


def test_a_slice_that_drops_more_than_allowed_rejects_an_otherwise_better_model() -> None:
    champion = evaluation("1", 0.9, [SliceResult("region", "north", 50, 0.9), SliceResult("region", "south", 50, 0.9)])
    candidate = evaluation(
        "2", 0.93, [SliceResult("region", "north", 50, 0.99), SliceResult("region", "south", 50, 0.8)]
    )
    decision = policy(max_slice_regression=0.05).decide(candidate, champion, gain(0.01, 0.05))
    assert decision.verdict == Verdict.REJECT
    (failed,) = [c for c in decision.checks if not c.passed]
    assert "region=south -0.1000" in failed.text


def test_a_champion_without_an_interval_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="improvement interval"):
        policy().decide(evaluation("2", 0.9), evaluation("1", 0.9), None)


def test_the_decision_record_holds_verdict_versions_interval_and_checks() -> None:
    record = policy().decide(evaluation("2", 0.95), evaluation("1", 0.9), gain(0.01, 0.09)).to_dict()
    assert record["verdict"] == "PROMOTE" and record["candidate_version"] == "2" and record["champion_version"] == "1"
    assert record["improvement"]["low"] == 0.01 and record["checks"][0]["passed"] is True


def test_gate_metrics_of_the_other_task_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="rmse do not apply to classification"):
        GateConfig(thresholds={"rmse": 3.0}).metric_for("classification")
    assert GateConfig().metric_for("regression") == "rmse"


@pytest.mark.parametrize(
    ("text", "ref"),
    [("m@champion", ModelRef("m", alias="champion")), ("my.model-2/13", ModelRef("my.model-2", version="13"))],
)
def test_model_refs_parse(text: str, ref: ModelRef) -> None:
    assert parse_model_ref(text) == ref and str(ref) == text


@pytest.mark.parametrize("text", ["m", "m@", "m/x", "@champion", "m@1a/2"])
def test_malformed_model_refs_say_how_to_write_one(text: str) -> None:
    with pytest.raises(ModelRefError, match=r"name@alias .* or name/version"):
        parse_model_ref(text)
