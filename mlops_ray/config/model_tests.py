"""The ``model_tests`` section: behavioural tests a model version must pass, declared next to the pipeline.

Metrics on a test split say how often a model is right, not whether it behaves: a
model can score well and still flip its answer when a measurement moves by 1%, or
rate a larger tumour as less suspicious. These tests (after Ribeiro et al., *Beyond
Accuracy: Behavioral Testing of NLP Models with CheckList*, 2020) state such
expectations as data:

- ``minimum_functionality``: given rows must get a given class, or a score in a range;
- ``invariance``: perturbing one column (a small relative or absolute change, or a
  swap to other categories) must not move the score by more than ``tolerance``;
- ``directional``: raising one column must not lower (or raise) the score;
- ``data_contract``: the training data still satisfies the schema contract.

The *score* is the predicted number for regression and, for classification, the
probability of ``score_class``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from mlops_ray.config.sections import Section


class MinimumFunctionalityCase(Section):
    name: str = Field(min_length=1)
    row: dict[str, Any] = Field(
        min_length=1, description="feature values; features left out take their training mean or most frequent value"
    )
    predicted_class: str | None = Field(None, description="classification: the class the row must get")
    min: float | None = Field(None, description="lowest allowed score")
    max: float | None = Field(None, description="highest allowed score")
    score_class: str | None = Field(None, description="classification: whose probability min/max bound")

    @model_validator(mode="after")
    def _expects_something(self) -> MinimumFunctionalityCase:
        if self.predicted_class is None and self.min is None and self.max is None:
            raise ValueError(f"case '{self.name}' expects nothing: give predicted_class, min or max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"case '{self.name}': min {self.min} is above max {self.max}")
        return self


class InvarianceCase(Section):
    name: str = Field(min_length=1)
    column: str = Field(min_length=1)
    relative: float | None = Field(None, gt=0, lt=1, description="numeric: scale each value by 1 ± up to this")
    absolute: float | None = Field(None, gt=0, description="numeric: shift each value by ± up to this")
    replace_with: tuple[str, ...] | None = Field(
        None, min_length=1, description="categorical: set the column to each of these values in turn"
    )
    tolerance: float = Field(0.05, ge=0, description="largest allowed change of the score")
    score_class: str | None = None

    @model_validator(mode="after")
    def _one_perturbation(self) -> InvarianceCase:
        given = [k for k in ("relative", "absolute", "replace_with") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"case '{self.name}' needs exactly one of relative, absolute or replace_with (got {given or 'none'})"
            )
        return self


class DirectionalCase(Section):
    name: str = Field(min_length=1)
    column: str = Field(min_length=1, description="a numeric feature")
    increase: float | None = Field(None, gt=0, description="raise every value by this much")
    increase_relative: float | None = Field(None, gt=0, description="... or by this share of its absolute value")
    expect: Literal["not_lower", "not_higher"] = Field(description="what raising the column may do to the score")
    tolerance: float = Field(1e-6, ge=0, description="score moves smaller than this in the wrong way are allowed")
    score_class: str | None = None

    @model_validator(mode="after")
    def _one_step(self) -> DirectionalCase:
        if (self.increase is None) == (self.increase_relative is None):
            raise ValueError(f"case '{self.name}' needs exactly one of increase or increase_relative")
        return self


class ModelTestsConfig(Section):
    score_class: str | None = Field(
        None, description="classification: the class whose probability is the score, unless a case names its own"
    )
    rows: int = Field(
        500, ge=1, le=100_000, description="training-reference rows that invariance and directional cases perturb"
    )
    seed: int = 0
    data_contract: bool = Field(
        True, description="check the training data against the schema contract (data.schema_file or the version's)"
    )
    minimum_functionality: tuple[MinimumFunctionalityCase, ...] = ()
    invariance: tuple[InvarianceCase, ...] = ()
    directional: tuple[DirectionalCase, ...] = ()

    @property
    def declared(self) -> int:
        return len(self.minimum_functionality) + len(self.invariance) + len(self.directional)

    @model_validator(mode="after")
    def _unique_names(self) -> ModelTestsConfig:
        names = [c.name for c in (*self.minimum_functionality, *self.invariance, *self.directional)]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"test names must be unique; repeated: {', '.join(repeated)}")
        return self
