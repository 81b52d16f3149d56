"""The ``monitor`` section: which window of captured traffic, what counts as drift, what to do about it.

Defaults follow common practice: PSI 0.1 means "watch", 0.2 "act" (Siddiqi, *Credit
Risk Scorecards*); p-values of the KS and chi-squared tests are Bonferroni-corrected
over the features tested, so a 30-feature model does not raise a false alarm on one
window in four. The tests run on at most ``sample_rows`` current rows: with millions of
rows every negligible shift is "significant", and PSI is the effect size that matters.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from mlops_ray.config.sections import Section


class DriftThresholds(Section):
    psi: float = Field(0.2, gt=0, description="a feature drifted when its PSI reaches this (0.1 watch, 0.2 act)")
    p_value: float = Field(
        0.01, gt=0, lt=1, description="... or its KS / chi-squared p-value falls below this over the features tested"
    )
    unknown_share: float = Field(
        0.01, ge=0, le=1, description="... or more than this share of its values is a category training never saw"
    )
    missing_increase: float = Field(
        0.05, ge=0, le=1, description="... or its share of missing values rose by more than this (absolute)"
    )
    prediction_psi: float = Field(0.2, gt=0, description="the predictions drifted when their PSI reaches this")
    prediction_p_value: float = Field(0.01, gt=0, lt=1, description="... or their KS / chi-squared p-value this")


class RetrainConfig(Section):
    config: str | None = Field(None, description="config file the retraining job runs; default: the monitor's own")
    overrides: tuple[str, ...] = Field((), description="KEY=VALUE overrides passed to the job as --set")
    address: str | None = Field(None, description="Ray job server (http://head:8265); else $RAY_ADDRESS")


class MonitorConfig(Section):
    window_hours: float = Field(24.0, gt=0, description="captured traffic of the last N hours (or --since/--until)")
    min_rows: int = Field(200, ge=10, description="fewer captured rows in the window: too few to judge, exit 4")
    bins: int = Field(10, ge=2, le=100, description="quantile bins of the reference, per numeric feature, for PSI")
    sample_rows: int = Field(5000, ge=100, description="current rows (uniform sample) the KS / chi-squared tests see")
    thresholds: DriftThresholds = DriftThresholds()
    on_drift: Literal["none", "alert", "retrain"] = Field(
        "none", description="alert: POST the summary to webhook_url; retrain: submit the pipeline as a Ray job"
    )
    webhook_url: str | None = Field(None, description="where alerts go; else $MLOPS_RAY_ALERT_WEBHOOK")
    retrain: RetrainConfig = RetrainConfig()
    report_dir: str = Field(".mlops-ray/monitoring", description="a local copy of every report (JSON + HTML)")

    @model_validator(mode="after")
    def _webhook_is_http(self) -> MonitorConfig:
        if self.webhook_url is not None and not self.webhook_url.startswith(("http://", "https://")):
            raise ValueError(f"webhook_url must be an http(s) URL, got '{self.webhook_url}'")
        return self
