"""The root ``Config``: every section, and the checks that span sections (a sweep's space against its fields).

A space dimension names any field of the ``model`` or ``train`` section by its dotted
path; every path and every boundary value is checked against the field itself (by
validating the whole config with it) before anything runs.
"""

from __future__ import annotations

import copy
import difflib
from typing import Any, get_args

from pydantic import BaseModel, ValidationError, model_validator

from mlops_ray.config.model_tests import ModelTestsConfig
from mlops_ray.config.monitor import MonitorConfig
from mlops_ray.config.sections import (
    DataConfig,
    EvaluateConfig,
    GateConfig,
    ModelConfig,
    RayConfig,
    RegistryConfig,
    Section,
    ServeConfig,
    TrackingConfig,
    TrainConfig,
)
from mlops_ray.config.tune import Dimension, TuneConfig


class Config(Section):
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    tune: TuneConfig | None = None
    evaluate: EvaluateConfig = EvaluateConfig()
    gate: GateConfig = GateConfig()
    registry: RegistryConfig = RegistryConfig()
    serve: ServeConfig = ServeConfig()
    monitor: MonitorConfig = MonitorConfig()
    model_tests: ModelTestsConfig = ModelTestsConfig()
    tracking: TrackingConfig = TrackingConfig()
    ray: RayConfig = RayConfig()

    @model_validator(mode="after")
    def _required_tests_exist(self) -> Config:
        tests = self.model_tests
        if self.gate.require_model_tests and not tests.declared and not tests.data_contract:
            raise ValueError(
                "'gate.require_model_tests' is true but model_tests declares no case and data_contract is off: "
                "the gate would require nothing"
            )
        return self

    @model_validator(mode="after")
    def _space_fits_fields(self) -> Config:
        """Every dimension names a tunable field, and every bound or value is valid for that field."""
        if self.tune is None:
            return self
        base = self.model_dump(mode="json", exclude={"tune"})
        for path, dimension in self.tune.space.items():
            _check_dimension(base, path, dimension)
        if self.tune.scheduler == "pbt":
            if self.train.num_workers not in (0, 1, "auto"):
                raise ValueError(
                    "'tune.scheduler' pbt copies checkpoints between trials, which needs one-worker trials "
                    f"(in-process); set train.num_workers: 1 (got {self.train.num_workers}) or use asha"
                )
            if not any(p.startswith("train.") or p == "model.dropout" for p in self.tune.space):
                raise ValueError(
                    "'tune.scheduler' pbt perturbs train.* fields (and model.dropout) while trials run; "
                    "the space has none"
                )
        return self


# Fixed for the whole sweep: they decide trial resources, the trial length the scheduler counts in, or storage.
UNTUNABLE = frozenset(
    {
        "train.num_workers",
        "train.use_gpu",
        "train.resources_per_worker",
        "train.placement_strategy",
        "train.epochs",
        "train.storage_path",
        "train.fault_injection",
        "train.checkpoint.metric",
        "train.checkpoint.mode",
    }
)


def _check_dimension(base: dict[str, Any], path: str, dimension: Dimension) -> None:
    where = f"tune.space.{path}"
    parts = path.split(".")
    if parts[0] not in ("model", "train") or len(parts) < 2:
        raise ValueError(f"'{where}': a sweep tunes model.* or train.* fields, not '{path}'")
    if path in UNTUNABLE:
        raise ValueError(f"'{where}': {path} is fixed for the whole sweep and cannot be tuned")
    valid = field_names_at(parts[:-1])
    if parts[:2] == ["model", "params"] and len(parts) == 3:
        valid = [parts[-1]]  # a builder's own keyword: any name; each value is validated with the config below
    if parts[-1] not in valid:
        close = difflib.get_close_matches(parts[-1], valid, n=1, cutoff=0.6)
        suggestion = f"did you mean '{'.'.join([*parts[:-1], close[0]])}'" if close else f"valid: {', '.join(valid)}"
        raise ValueError(f"'{where}': '{path}' is not a known field, {suggestion}")
    annotation = _field_annotation(parts) if parts[:2] != ["model", "params"] else None
    if dimension.type in ("uniform", "loguniform") and annotation is int:
        raise ValueError(f"'{where}': {path} is an integer; use randint or choice, not {dimension.type}")
    for value in dimension.candidates():
        candidate = _with_value(base, parts, value)
        try:
            Config.model_validate(candidate)
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
            raise ValueError(f"'{where}': value {value!r} is not valid for {path}: {reason}") from None


def _with_value(base: dict[str, Any], parts: list[str], value: object) -> dict[str, Any]:
    tree = copy.deepcopy(base)
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        node[part] = child = dict(child) if isinstance(child, dict) else {}
        node = child
    node[parts[-1]] = value
    return tree


def _field_annotation(parts: list[str]) -> object:
    model: type[BaseModel] = Config
    for part in parts[:-1]:
        model = nested_model(model.model_fields[part].annotation)  # type: ignore[assignment]
    return model.model_fields[parts[-1]].annotation


def nested_model(annotation: object) -> type[BaseModel] | None:
    for t in (annotation, *get_args(annotation)):
        if isinstance(t, type) and issubclass(t, BaseModel):
            return t
    return None


def field_names_at(loc: list[str]) -> list[str]:
    """The valid keys of the section reached by following ``loc`` from ``Config``."""
    model: type[BaseModel] = Config
    for part in loc:
        field = model.model_fields.get(part)
        if field is None:
            return []
        nested = nested_model(field.annotation)
        if nested is None:
            return []
        model = nested
    return sorted(model.model_fields)
