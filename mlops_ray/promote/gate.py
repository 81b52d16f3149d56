"""The promotion gate: a policy object that turns evaluations into a decision with reasons.

Every check the policy makes becomes a reason, passed or failed, so a rejected
challenger says exactly which bound it missed and by how much, and a promoted one
says what it was compared against. The comparison with the champion is a paired
bootstrap interval on the same test rows (computed by the caller), because two
models a point apart on a few hundred rows are often not different at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum

from mlops_ray.config import GateConfig
from mlops_ray.evaluate.bootstrap import Interval
from mlops_ray.evaluate.metrics import metric_direction
from mlops_ray.evaluate.slices import slice_regressions
from mlops_ray.evaluate.versions import ModelEvaluation


class Verdict(StrEnum):
    PROMOTE = "PROMOTE"
    REJECT = "REJECT"
    FIRST_MODEL = "FIRST_MODEL"


@dataclass(frozen=True)
class Check:
    passed: bool
    text: str

    def __str__(self) -> str:
        return f"{'pass' if self.passed else 'FAIL'}: {self.text}"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    checks: tuple[Check, ...]
    candidate_version: str
    champion_version: str | None
    metric: str
    improvement: Interval | None  # candidate minus champion, signed so that positive is better

    @property
    def promotes(self) -> bool:
        return self.verdict in (Verdict.PROMOTE, Verdict.FIRST_MODEL)

    @property
    def reasons(self) -> list[str]:
        return [str(c) for c in self.checks]

    def summary(self) -> str:
        """One line saying why: the failed checks for a rejection, else every check."""
        failed = [c.text for c in self.checks if not c.passed]
        because = "; ".join(failed or [c.text for c in self.checks]) or "no champion yet and no thresholds configured"
        return f"{self.verdict}: version {self.candidate_version}: {because}"

    def to_dict(self) -> dict[str, object]:
        return {
            "verdict": str(self.verdict),
            "candidate_version": self.candidate_version,
            "champion_version": self.champion_version,
            "metric": self.metric,
            "improvement": asdict(self.improvement) if self.improvement else None,
            "checks": [{"passed": c.passed, "text": c.text} for c in self.checks],
        }


@dataclass(frozen=True)
class PromotionPolicy:
    settings: GateConfig
    metric: str  # the compared metric, resolved for the task

    def decide(
        self,
        candidate: ModelEvaluation,
        champion: ModelEvaluation | None,
        improvement: Interval | None,
        extra: Sequence[Check] = (),
    ) -> Decision:
        """``extra``: checks made elsewhere that count like the policy's own (the behavioural tests)."""
        checks = [self._threshold(candidate, name, bound) for name, bound in self.settings.thresholds.items()]
        checks += extra
        if champion is not None:
            if improvement is None:
                raise ValueError("a champion needs the paired improvement interval")
            checks.append(self._versus_champion(candidate, champion, improvement))
            if self.settings.max_slice_regression is not None:
                checks.append(self._slices(candidate, champion, self.settings.max_slice_regression))
        passed = all(c.passed for c in checks)
        if champion is None:
            verdict = Verdict.FIRST_MODEL if passed else Verdict.REJECT
        else:
            verdict = Verdict.PROMOTE if passed else Verdict.REJECT
        return Decision(
            verdict,
            tuple(checks),
            candidate.version,
            champion.version if champion else None,
            self.metric,
            improvement,
        )

    def _threshold(self, candidate: ModelEvaluation, name: str, bound: float) -> Check:
        value = candidate.value(name)
        higher_is_better = metric_direction(name) > 0
        ok = value >= bound if higher_is_better else value <= bound
        return Check(ok, f"{name} {value:.4f} {'>=' if higher_is_better else '<='} {bound:g} (threshold)")

    def _versus_champion(self, candidate: ModelEvaluation, champion: ModelEvaluation, gain: Interval) -> Check:
        s = self.settings
        bound, value, need = {
            "not_worse": ("lower", gain.low, -s.margin),
            "not_shown_worse": ("upper", gain.high, -s.margin),
            "better": ("lower", gain.low, s.min_delta),
        }[s.rule]
        interval = f"{gain.confidence:.0%} interval {gain.low:+.4f} .. {gain.high:+.4f}"
        text = (
            f"{self.metric} {candidate.value(self.metric):.4f} vs champion version {champion.version} "
            f"{champion.value(self.metric):.4f}: gain {gain.estimate:+.4f}, {interval}; "
            f"rule {s.rule} needs the {bound} bound >= {need:+g}"
        )
        return Check(value >= need, text)

    def _slices(self, candidate: ModelEvaluation, champion: ModelEvaluation, allowed: float) -> Check:
        drops = slice_regressions(candidate.slices, champion.slices, metric_direction(self.metric))
        worst = sorted(drops, key=lambda d: d[2], reverse=True)
        over = [d for d in worst if d[2] > allowed]
        if not drops:
            return Check(True, "no slice to compare (evaluate.slices is empty or every slice is too small)")
        if over:
            named = ", ".join(f"{c.column}={c.value} -{drop:.4f}" for c, _, drop in over[:3])
            return Check(False, f"{len(over)} slice(s) dropped more than {allowed:g} in {self.metric}: {named}")
        top = worst[0]
        return Check(True, f"largest slice drop {max(top[2], 0):.4f} <= {allowed:g} ({top[0].column}={top[0].value})")
