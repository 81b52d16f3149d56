"""Turn the ``tune`` section into Ray Tune objects: the space, searcher, scheduler, stopper and Tuner.

Each is the library's own implementation (Ray's BasicVariantGenerator, OptunaSearch,
ASHAScheduler, PopulationBasedTraining); this module only maps config onto them.
Schedulers count in epochs (the loop reports ``epoch``), so a trial's budget is
``train.epochs`` whether it reports every epoch or resumes mid-way.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune import Result, Tuner
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, PopulationBasedTraining, TrialScheduler
from ray.tune.search import BasicVariantGenerator, Searcher
from ray.tune.stopper import Stopper

from mlops_ray.config.tune import Dimension, TuneConfig
from mlops_ray.tune.atomic_storage import atomic_local_filesystem

# Fields PBT may change while a trial runs: they do not change the network's shape, so weights carry over.
PBT_MUTABLE_MODEL_FIELDS = frozenset({"model.dropout"})


# A trial id (random searcher ``<prefix>_00005``, others 8 hex digits) with the ``_xxxx`` Tune adds to a taken name.
_TUNE_SUFFIX = re.compile(r"^(.+_\d{5}|[0-9a-f]{8})_[0-9a-f]{4}$")
TRIAL_DIR_PREFIX = "trial-"  # a trial's directory is this and its id (``make_tuner``'s trial_dirname_creator)


def trial_id_of(result: Result) -> str:
    """The id of the trial a Tune result belongs to: the one Tune adds to every report, else its directory's name.

    The directory's name is not enough: Tune appends ``_<4 hex>`` when the name is taken in
    the driver's staging area, which is what a trial gets that a killed driver had started
    but not yet saved, when the resumed sweep creates it again (same Ray session).
    """
    reported = (result.metrics or {}).get("trial_id")
    if isinstance(reported, str) and reported:
        return reported
    return _TUNE_SUFFIX.sub(r"\1", Path(result.path).name.removeprefix(TRIAL_DIR_PREFIX))


def param_space(settings: TuneConfig) -> dict[str, Any]:
    """Tune's domains, keyed by the dotted field name; the grid searcher enumerates choices too."""
    return {name: _domain(d, enumerate_choices=settings.searcher == "grid") for name, d in settings.space.items()}


def _domain(dimension: Dimension, enumerate_choices: bool) -> Any:
    low, high, values = dimension.low, dimension.high, dimension.values
    if dimension.type == "uniform":
        return tune.uniform(low, high)
    if dimension.type == "loguniform":
        return tune.loguniform(low, high)
    if dimension.type == "randint":
        return tune.randint(int(low or 0), int(high or 0) + 1)  # Tune's upper bound is exclusive; ours is not
    if dimension.type == "grid" or enumerate_choices:
        return tune.grid_search(list(values or ()))
    return tune.choice(list(values or ()))


def make_searcher(settings: TuneConfig) -> Searcher | BasicVariantGenerator:
    if settings.searcher == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        return OptunaSearch(seed=settings.seed)
    return BasicVariantGenerator(random_state=settings.seed, max_concurrent=settings.max_concurrent_trials)


def make_scheduler(settings: TuneConfig, epochs: int) -> TrialScheduler:
    if settings.scheduler == "asha":
        return ASHAScheduler(
            time_attr="epoch",
            max_t=epochs,
            grace_period=min(settings.asha.grace_period, epochs),
            reduction_factor=settings.asha.reduction_factor,
        )
    if settings.scheduler == "pbt":
        mutations = {
            name: _domain(d, enumerate_choices=False)
            for name, d in settings.space.items()
            if name.startswith("train.") or name in PBT_MUTABLE_MODEL_FIELDS
        }
        return PopulationBasedTraining(
            time_attr="epoch",
            perturbation_interval=settings.pbt.perturbation_interval,
            hyperparam_mutations=mutations,
            quantile_fraction=settings.pbt.quantile_fraction,
            resample_probability=settings.pbt.resample_probability,
            synch=settings.pbt.synchronous,
        )
    return FIFOScheduler()


def make_tuner(
    settings: TuneConfig,
    trainable: Any,
    epochs: int,
    checkpoints_kept: int,
    path: Path,
    callbacks: list[tune.Callback],
    stopper: TargetReached | None = None,
) -> Tuner:
    """The Tuner of a sweep, for any trainable (the benchmarks time it with trials of known length)."""
    return Tuner(
        trainable,
        param_space=param_space(settings),
        tune_config=tune.TuneConfig(
            metric=settings.metric,
            mode=settings.mode,
            search_alg=make_searcher(settings),
            scheduler=make_scheduler(settings, epochs),
            num_samples=1 if settings.searcher == "grid" else settings.total_trials(),
            # BasicVariantGenerator takes the limit itself (Tune ignores this for it); Optuna gets a limiter.
            max_concurrent_trials=settings.max_concurrent_trials if settings.searcher == "optuna" else None,
            time_budget_s=settings.time_budget_s,
            reuse_actors=True,
            trial_dirname_creator=lambda trial: f"{TRIAL_DIR_PREFIX}{trial.trial_id}",
        ),
        run_config=tune.RunConfig(
            name=path.name,
            storage_path=str(path.parent.resolve()),
            storage_filesystem=atomic_local_filesystem(),  # local disk: a killed driver leaves no half-written file
            stop=stopper,
            callbacks=callbacks,
            verbose=0,
            checkpoint_config=tune.CheckpointConfig(
                # PBT may copy any trial's latest checkpoint: deleting old ones could pull one from under it.
                num_to_keep=None if settings.scheduler == "pbt" else checkpoints_kept,
                checkpoint_score_attribute=settings.metric,
                checkpoint_score_order=settings.mode,
            ),
        ),
    )


class TargetReached(Stopper):
    """Stop the whole sweep once any trial's metric reaches ``target`` (``tune.stop_at``)."""

    def __init__(self, metric: str, mode: str, target: float):
        self.metric, self.mode, self.target = metric, mode, target
        self.reached_by: str | None = None

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        value = result.get(self.metric)
        if value is not None and (value <= self.target if self.mode == "min" else value >= self.target):
            self.reached_by = self.reached_by or trial_id
        return self.reached_by is not None

    def stop_all(self) -> bool:
        return self.reached_by is not None
