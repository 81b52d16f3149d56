"""The ``tune`` config section: the search space, searcher, scheduler and budgets.

Kept apart from ``mlops_ray.config`` so that module stays small; it imports nothing
from Ray, so loading a config never starts Ray. A space dimension names any field
of the ``model`` or ``train`` section by its dotted path (``train.lr``,
``model.width``, ``train.early_stopping.patience``); ``Config`` checks every path
and every boundary value against the field itself before anything runs.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from mlops_ray.config.sections import Section

SEARCHERS = ("random", "grid", "optuna")
SCHEDULERS = ("asha", "pbt", "none")
DEFAULT_SAMPLES = 8


class Dimension(Section):
    """One hyperparameter's distribution.

    ``uniform``/``loguniform`` sample floats in [low, high]; ``randint`` samples
    integers in [low, high], both ends included; ``choice`` samples one of
    ``values``; ``grid`` tries every one of ``values`` (grid searcher only).
    """

    type: Literal["uniform", "loguniform", "randint", "choice", "grid"]
    low: float | None = None
    high: float | None = None
    values: list[bool | int | float | str] | None = None

    @model_validator(mode="after")
    def _complete(self) -> Dimension:
        if self.type in ("choice", "grid"):
            if self.low is not None or self.high is not None:
                raise ValueError(f"a {self.type} dimension takes 'values', not low/high")
            if not self.values:
                raise ValueError(f"a {self.type} dimension needs a non-empty 'values' list")
            if len({repr(v) for v in self.values}) != len(self.values):
                raise ValueError(f"'values' repeats an entry: {self.values}")
            return self
        if self.values is not None:
            raise ValueError(f"a {self.type} dimension takes low and high, not 'values'")
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} dimension needs both low and high")
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError("low and high must be finite numbers")
        if self.low > self.high:
            raise ValueError(f"low ({self.low:g}) is greater than high ({self.high:g})")
        if self.type == "loguniform" and self.low <= 0:
            raise ValueError(f"loguniform needs low > 0 (got {self.low:g})")
        if self.type == "randint" and not (self.low.is_integer() and self.high.is_integer()):
            raise ValueError(f"randint needs whole-number bounds (got {self.low:g}, {self.high:g})")
        return self

    @property
    def is_numeric_range(self) -> bool:
        return self.type in ("uniform", "loguniform", "randint")

    def candidates(self) -> list[bool | int | float | str]:
        """Values that must all be valid for the field: the bounds, or every listed value."""
        if self.values is not None:
            return list(self.values)
        assert self.low is not None and self.high is not None
        if self.type == "randint":
            return [int(self.low), int(self.high)]
        return [self.low, self.high]


class AshaSettings(Section):
    """Asynchronous successive halving: stop the worse trials early, at epoch milestones."""

    grace_period: int = Field(1, ge=1, description="epochs every trial runs before it can be stopped")
    reduction_factor: float = Field(3.0, gt=1, description="keep 1/reduction_factor of trials at each milestone")


class PbtSettings(Section):
    """Population-based training: weak trials copy a strong trial's weights and perturb its train.* values."""

    perturbation_interval: int = Field(2, ge=1, description="epochs between exploit/explore steps")
    quantile_fraction: float = Field(0.25, gt=0, le=0.5, description="bottom share that copies the top share")
    resample_probability: float = Field(0.25, ge=0, le=1)
    synchronous: bool = Field(
        False, description="every trial waits at each step for the others (needs all trials running at once)"
    )


class TuneConfig(Section):
    """A sweep: ``mlops-ray tune CONFIG``; ``mlops-ray run`` sweeps instead of training once when set."""

    space: dict[str, Dimension] = Field(
        description="dotted model/train field -> distribution, e.g. {train.lr: {type: loguniform, low: 1e-4, "
        "high: 1e-2}}",
    )
    searcher: Literal["random", "grid", "optuna"] = "random"
    scheduler: Literal["asha", "pbt", "none"] = "asha"
    asha: AshaSettings = AshaSettings()
    pbt: PbtSettings = PbtSettings()
    num_samples: int | None = Field(
        None, ge=1, description=f"trials in the sweep; default {DEFAULT_SAMPLES}, or every combination for grid"
    )
    max_concurrent_trials: int = Field(2, ge=1)
    time_budget_s: float | None = Field(None, gt=0, description="stop starting and running trials after this long")
    stop_at: float | None = Field(None, description="stop the whole sweep once any trial's metric reaches this")
    metric: str = Field("val_loss", description="validation metric that ranks trials (reported every epoch)")
    mode: Literal["min", "max"] = "min"
    seed: int = Field(0, description="seeds the searcher: the same seed proposes the same trials")
    storage_path: str = Field(".mlops-ray/tune", description="Tune's experiment state and trial checkpoints")

    @model_validator(mode="after")
    def _consistent(self) -> TuneConfig:
        if not self.space:
            raise ValueError("'space' is empty; give at least one dimension, e.g. train.lr")
        kinds = {name: d.type for name, d in self.space.items()}
        if self.searcher == "grid":
            ranged = [n for n, t in kinds.items() if t not in ("grid", "choice")]
            if ranged:
                raise ValueError(f"the grid searcher needs grid or choice values; {', '.join(ranged)} is a range")
            combinations = self.grid_size()
            if self.num_samples is not None and self.num_samples != combinations:
                raise ValueError(
                    f"num_samples is {self.num_samples} but the grid has {combinations} combinations; "
                    "leave num_samples out to run each once"
                )
        else:
            grids = [n for n, t in kinds.items() if t == "grid"]
            if grids:
                raise ValueError(
                    f"{', '.join(grids)} is a grid, which only the grid searcher enumerates; "
                    f"use type: choice to sample it with the {self.searcher} searcher"
                )
        if self.scheduler == "pbt" and self.searcher != "random":
            raise ValueError(f"scheduler pbt proposes its own trials; use searcher random, not {self.searcher}")
        if self.scheduler == "pbt" and self.pbt.synchronous and self.max_concurrent_trials < self.total_trials():
            raise ValueError(
                f"synchronous pbt waits for all {self.total_trials()} trials at each step, but only "
                f"{self.max_concurrent_trials} may run at once; raise max_concurrent_trials or set synchronous: false"
            )
        return self

    def grid_size(self) -> int:
        return math.prod(len(d.values or ()) for d in self.space.values())

    def total_trials(self) -> int:
        if self.searcher == "grid":
            return self.grid_size()
        return self.num_samples or DEFAULT_SAMPLES
