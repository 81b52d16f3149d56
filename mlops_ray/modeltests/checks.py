"""The behavioural test kinds, run against a packaged model on plain pandas frames.

Each case becomes one ``CaseResult`` saying what was checked, how many rows broke the
expectation and a few of them as examples, so a failure reads like a bug report
("37 of 500 rows moved more than 0.05 when mean_radius changed by up to 1%"). The
rows that invariance and directional cases perturb are the version's own training
reference (logged with every model), so the tests need no data preparation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlops_ray.config.model_tests import DirectionalCase, InvarianceCase, MinimumFunctionalityCase, ModelTestsConfig
from mlops_ray.errors import ConfigError
from mlops_ray.registry.packaged_model import PackagedModel

EXAMPLES = 3


@dataclass(frozen=True)
class CaseResult:
    kind: str  # minimum_functionality, invariance, directional or data_contract
    name: str
    passed: bool
    detail: str
    checked: int = 0  # rows (or row x value pairs) the expectation was checked on
    failed: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Score = Callable[[pd.DataFrame], np.ndarray]


def run_cases(settings: ModelTestsConfig, model: PackagedModel, reference: pd.DataFrame) -> list[CaseResult]:
    """Every declared case of the three model kinds, in the order the config lists them."""
    base = _base_rows(reference, model, settings.rows, settings.seed)
    results = []
    for case in settings.minimum_functionality:
        score = _scorer(model, case.score_class, settings, case.min, case.max)
        results.append(minimum_functionality(case, model, score))
    for i, case in enumerate(settings.invariance):
        _feature(model, case.column, f"model_tests.invariance[{i}].column")
        results.append(invariance(case, base, _scorer(model, case.score_class, settings), settings.seed))
    for i, case in enumerate(settings.directional):
        where = f"model_tests.directional[{i}].column"
        _feature(model, case.column, where)
        if case.column not in {c.name for c in model.preprocessing.numeric}:
            raise ConfigError(f"'{case.column}' is not a numeric feature; only numbers can be raised", where=where)
        results.append(directional(case, base, _scorer(model, case.score_class, settings)))
    return results


def minimum_functionality(case: MinimumFunctionalityCase, model: PackagedModel, score: Score | None) -> CaseResult:
    unknown = [c for c in case.row if c not in model.preprocessing.features]
    if unknown:
        raise ConfigError(
            f"case '{case.name}' names column(s) the model does not take: {', '.join(unknown)}",
            where="model_tests.minimum_functionality",
            hint=f"Features: {', '.join(model.preprocessing.features)}.",
        )
    preprocessing = model.preprocessing
    frame = pd.DataFrame([{**preprocessing.typical_row(), **case.row}], columns=list(preprocessing.features))
    problems = []
    answer: dict[str, Any] = {}
    if case.predicted_class is not None:
        classes = list(model.target.classes)
        if case.predicted_class not in classes:
            raise ConfigError(
                f"case '{case.name}': '{case.predicted_class}' is not a class of this model ({', '.join(classes)})",
                where="model_tests.minimum_functionality.predicted_class",
            )
        got = str(model.predict(None, frame)["predicted_class"].iloc[0])
        answer["predicted_class"] = got
        if got != case.predicted_class:
            problems.append(f"predicted {got}, expected {case.predicted_class}")
    if score is not None:
        value = float(score(frame)[0])
        answer["score"] = value
        if case.min is not None and value < case.min:
            problems.append(f"score {value:.4g} < min {case.min:g}")
        if case.max is not None and value > case.max:
            problems.append(f"score {value:.4g} > max {case.max:g}")
    got = ", ".join(f"{k} {_short(v)}" for k, v in answer.items())
    detail = "; ".join(problems) if problems else f"as expected: {got}"
    examples = [{"row": case.row, **answer}] if problems else []
    return CaseResult("minimum_functionality", case.name, not problems, detail, 1, int(bool(problems)), examples)


def invariance(case: InvarianceCase, base: pd.DataFrame, score: Score | None, seed: int) -> CaseResult:
    assert score is not None
    before = score(base)
    rng = np.random.default_rng(seed)
    changes: list[tuple[np.ndarray, pd.DataFrame]] = []
    if case.replace_with is not None:
        for value in case.replace_with:
            changed = base.copy()
            changed[case.column] = value
            changes.append((score(changed), changed))
        how = f"set to {', '.join(case.replace_with)}"
    else:
        values = pd.to_numeric(base[case.column], errors="coerce").to_numpy(float)
        if case.relative is not None:
            moved = values * (1 + rng.uniform(-case.relative, case.relative, len(values)))
            how = f"scaled by up to ±{case.relative:.0%}"
        else:
            moved = values + rng.uniform(-case.absolute, case.absolute, len(values))  # type: ignore[operator]
            how = f"shifted by up to ±{case.absolute:g}"
        changed = base.copy()
        changed[case.column] = moved
        changes.append((score(changed), changed))
    deltas = np.concatenate([np.abs(after - before) for after, _ in changes])
    broken = deltas > case.tolerance
    checked, failed = len(deltas), int(broken.sum())
    examples = []
    for after, changed in changes:
        for position in np.flatnonzero(np.abs(after - before) > case.tolerance)[: EXAMPLES - len(examples)]:
            examples.append(_example(base, changed, case.column, position, before, after))
    largest = float(deltas.max()) if checked else 0.0
    if failed:
        detail = f"{failed} of {checked} rows moved more than {case.tolerance:g} when {case.column} was {how} "
        detail += f"(largest move {largest:.4g})"
    else:
        detail = f"largest move {largest:.4g} <= {case.tolerance:g} on {checked} rows, {case.column} {how}"
    return CaseResult("invariance", case.name, not failed, detail, checked, failed, examples)


def directional(case: DirectionalCase, base: pd.DataFrame, score: Score | None) -> CaseResult:
    assert score is not None
    values = pd.to_numeric(base[case.column], errors="coerce").to_numpy(float)
    step = case.increase if case.increase is not None else np.abs(values) * case.increase_relative  # type: ignore[operator]
    changed = base.copy()
    changed[case.column] = values + step
    before, after = score(base), score(changed)
    moved = after - before
    wrong = moved < -case.tolerance if case.expect == "not_lower" else moved > case.tolerance
    wrong &= ~np.isnan(values)
    checked, failed = int((~np.isnan(values)).sum()), int(wrong.sum())
    how = f"+{case.increase:g}" if case.increase is not None else f"+{case.increase_relative:.0%}"
    word = "fell" if case.expect == "not_lower" else "rose"
    examples = [_example(base, changed, case.column, p, before, after) for p in np.flatnonzero(wrong)[:EXAMPLES]]
    if failed:
        detail = f"the score {word} on {failed} of {checked} rows when {case.column} went {how}"
    else:
        detail = f"{case.expect.replace('_', ' ')} on all {checked} rows when {case.column} went {how}"
    return CaseResult("directional", case.name, not failed, detail, checked, failed, examples)


def _base_rows(reference: pd.DataFrame, model: PackagedModel, rows: int, seed: int) -> pd.DataFrame:
    features = list(model.preprocessing.features)
    missing = [c for c in features if c not in reference.columns]
    if missing:
        raise ConfigError(f"the version's training reference lacks feature column(s) {', '.join(missing)}")
    frame = reference[features]
    if len(frame) > rows:
        frame = frame.sample(n=rows, random_state=seed)
    return frame.reset_index(drop=True)


def _scorer(
    model: PackagedModel, case_class: str | None, settings: ModelTestsConfig, *bounds: float | None
) -> Score | None:
    """The score function for a case: the prediction (regression) or one class's probability (classification)."""
    if model.target.task == "regression":
        return lambda frame: model.predict(None, frame)["prediction"].to_numpy(float)
    if bounds and all(b is None for b in bounds):
        return None  # a class-only minimum functionality case needs no score
    chosen = case_class or settings.score_class
    classes = [str(c) for c in model.target.classes]
    if chosen is None:
        raise ConfigError(
            f"is not set, and a classification model's score is the probability of one class ({', '.join(classes)})",
            where="model_tests.score_class",
        )
    if chosen not in classes:
        raise ConfigError(f"'{chosen}' is not a class of this model ({', '.join(classes)})", where="score_class")
    column = f"probability_{chosen}"
    return lambda frame: model.predict(None, frame)[column].to_numpy(float)


def _feature(model: PackagedModel, column: str, where: str) -> None:
    if column not in model.preprocessing.features:
        features = ", ".join(model.preprocessing.features)
        raise ConfigError(f"'{column}' is not a feature of this model", where=where, hint=f"Features: {features}.")


def _example(
    base: pd.DataFrame, changed: pd.DataFrame, column: str, position: int, before: np.ndarray, after: np.ndarray
) -> dict[str, Any]:
    return {
        "column": column,
        "value": _short(base[column].iloc[position]),
        "changed_to": _short(changed[column].iloc[position]),
        "score_before": round(float(before[position]), 6),
        "score_after": round(float(after[position]), 6),
    }


def _short(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return round(float(value), 6)
    if isinstance(value, np.integer):
        return int(value)
    return value
