"""One sweep trial: the sweep's config with the trial's values, trained by the one training loop.

A one-worker trial runs the loop inside the Tune trial's own process (starting a
worker group would cost more than a small trial trains), reporting epochs and
checkpoints to Tune directly, which is also what lets PBT copy checkpoints between
trials. A multi-worker trial starts the same TorchTrainer as ``mlops-ray train``,
named after the trial so that a resumed sweep continues its checkpoints, and
forwards each epoch's report to Tune so schedulers can stop it early.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import ray.tune
from ray.tune.integration.ray_train import TuneReportCallback

from mlops_ray.config import Config, validate_config
from mlops_ray.config.sections import is_builder_name
from mlops_ray.models import ModelSpec
from mlops_ray.models.user import search_dir_of
from mlops_ray.train.loop import run_loop
from mlops_ray.train.session import TuneTrialSession
from mlops_ray.train.trainer import build_trainer, loop_config

if TYPE_CHECKING:  # trial processes import this module; the data layer (scikit-learn) would slow them down
    from mlops_ray.data import PreparedData


@dataclass(frozen=True)
class TrialSetup:
    """Everything a trial needs besides its own values; shipped once through the object store."""

    base: dict[str, Any]  # the resolved config, without the tune section
    datasets: dict[str, Any]  # the prepared, materialised train and val Ray Datasets
    input_width: int
    n_outputs: int
    task: str
    target_std: float
    storage: str  # where multi-worker trials keep their Ray Train runs
    data_key: str  # names these prepared splits: a reused actor keeps their tensors for its next trial
    train_rows: int  # what `train.num_workers: auto` decides on
    builder_dirs: dict[str, str | None] = field(default_factory=dict)  # own networks: where the driver found each


def trial_config(base: dict[str, Any], params: dict[str, Any]) -> Config:
    """The sweep's config with this trial's values set by their dotted field names."""
    raw = copy.deepcopy(base)
    for name, value in params.items():
        *sections, field = name.split(".")
        node = raw
        for section in sections:
            node[section] = node = dict(node.get(section) or {})
        node[field] = value.item() if hasattr(value, "item") else value  # numpy scalars from the searchers
    return validate_config(raw, source="trial config")


def run_trial(params: dict[str, Any], setup: TrialSetup) -> None:
    config = trial_config(setup.base, params)
    spec = ModelSpec.from_config(config.model, setup.input_width, setup.n_outputs)
    builder_dir = setup.builder_dirs.get(config.model.name)  # found by the driver, which imported it
    cfg = loop_config(config, spec, setup.task, setup.target_std, None, None, builder_dir)
    workers = config.train.workers_for(setup.train_rows)
    if workers <= 1:  # local mode and one worker alike: the loop in the trial's own process
        run_loop(cfg, TuneTrialSession(setup.datasets, config.train.use_gpu, setup.data_key))
        return
    name = f"trial-{ray.tune.get_context().get_trial_id()}"
    callbacks = (TuneReportCallback(),)
    trainer = build_trainer(config.train, workers, cfg, setup.datasets, name, setup.storage, callbacks)
    trainer.fit()


def make_trainable(config: Config, data: PreparedData, train_runs: str) -> Any:
    """The sweep's Tune trainable: ``run_trial`` with the prepared data attached once, and its resources."""
    setup = TrialSetup(
        base=config.model_dump(mode="json", exclude={"tune"}),
        datasets={"train": data.train, "val": data.val},
        input_width=data.preprocessing.width,
        n_outputs=data.target.n_outputs,
        task=data.target.task,
        target_std=data.target.std,
        storage=train_runs,
        data_key=hashlib.sha256(f"{data.fingerprint.digest} {config.data.model_dump_json()}".encode()).hexdigest(),
        train_rows=data.row_counts["train"],
        builder_dirs={name: search_dir_of(name) for name in sweep_builders(config)},
    )
    resources = trial_resources(config, setup.train_rows)
    return ray.tune.with_resources(ray.tune.with_parameters(run_trial, setup=setup), resources)


def trial_resources(config: Config, train_rows: int) -> dict[str, float]:
    """What Tune reserves for a trial: one worker's share in-process; a token CPU for a trainer's driver."""
    if config.train.workers_for(train_rows) <= 1:
        resources = dict(config.train.resources_per_worker)
        if config.train.use_gpu:
            resources.setdefault("GPU", 1.0)
        return resources
    return {"CPU": 0.01}  # the TorchTrainer's workers reserve their own resources


def sweep_builders(config: Config) -> list[str]:
    """The ``module.path:builder`` networks a sweep can train: the config's, and any ``model.name`` choice."""
    names = [config.model.name]
    if config.tune is not None and "model.name" in config.tune.space:
        names += [str(value) for value in config.tune.space["model.name"].candidates()]
    return sorted({name for name in names if is_builder_name(name)})
