"""The tune section: bad spaces are refused before anything starts; good ones map onto Ray Tune's objects."""

from __future__ import annotations

import numpy as np
import pytest
from ray.tune.search.sample import Categorical, Float, Integer

from mlops_ray.config import validate_config
from mlops_ray.config.tune import TuneConfig
from mlops_ray.errors import ConfigError
from mlops_ray.tune import strategies
from mlops_ray.tune.trial import trial_config

LR = {"type": "loguniform", "low": 1e-4, "high": 1e-2}


def tune_section(space: dict, **settings: object) -> dict:
    return {"tune": {"space": space, **settings}}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (tune_section({"train.lrr": LR}), r"'train.lrr' is not a known field, did you mean 'train.lr'"),
        (tune_section({"model.widht": {"type": "choice", "values": [8]}}), r"did you mean 'model.width'"),
        (tune_section({"train.lr": {"type": "uniform", "low": 0.2, "high": 0.1}}), r"low \(0.2\) is greater"),
        (tune_section({"model.width": {"type": "choice", "values": []}}), r"non-empty 'values' list"),
        (tune_section({"model.width": {"type": "choice", "values": [8, 8]}}), r"repeats an entry"),
        (tune_section({"train.lr": {"type": "uniform", "low": 0.1}}), r"needs both low and high"),
        (tune_section({"train.lr": {"type": "loguniform", "low": 0, "high": 1}}), r"loguniform needs low > 0"),
        (tune_section({"model.depth": {"type": "randint", "low": 1.5, "high": 3}}), r"whole-number bounds"),
        (tune_section({"model.width": {"type": "uniform", "low": 8, "high": 64}}), r"integer; use randint"),
        (tune_section({"train.lr": {"type": "uniform", "low": -1, "high": 0.1}}), r"value -1.0 is not valid"),
        (tune_section({"model.activation": {"type": "choice", "values": ["relu", "swish"]}}), r"'swish' is not valid"),
        (tune_section({"data.source": {"type": "choice", "values": ["x"]}}), r"tunes model.\* or train.\* fields"),
        (tune_section({"train.epochs": {"type": "randint", "low": 1, "high": 5}}), r"fixed for the whole sweep"),
        (tune_section({"train.num_workers": {"type": "choice", "values": [1, 2]}}), r"fixed for the whole sweep"),
        (tune_section({}), r"'space' is empty"),
        (tune_section({"train.lr": LR}, searcher="grid"), r"grid searcher needs grid or choice values"),
        (tune_section({"model.width": {"type": "grid", "values": [8, 16]}}), r"use type: choice"),
        (
            tune_section({"model.width": {"type": "grid", "values": [8, 16]}}, searcher="grid", num_samples=3),
            r"num_samples is 3 but the grid has 2 combinations",
        ),
        (tune_section({"train.lr": LR}, scheduler="pbt", searcher="optuna"), r"use searcher random"),
        ({"train": {"num_workers": 2}, **tune_section({"train.lr": LR}, scheduler="pbt")}, r"needs one-worker trials"),
        (
            {
                "train": {"num_workers": 1},
                **tune_section({"model.width": {"type": "choice", "values": [8]}}, scheduler="pbt"),
            },
            r"the space has none",
        ),
        (tune_section({"train.lr": LR}, searcher="hyperopt"), r"'tune.searcher' Input should be"),
        (
            {
                "train": {"num_workers": 1},
                **tune_section({"train.lr": LR}, scheduler="pbt", pbt={"synchronous": True}, num_samples=4),
            },
            r"synchronous pbt waits for all 4 trials at each step, but only 2 may run at once",
        ),
    ],
)
def test_a_bad_space_is_a_config_error_naming_the_field(raw: dict, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        validate_config(raw)


def test_nested_fields_and_every_kind_of_dimension_are_accepted() -> None:
    config = validate_config(
        tune_section(
            {
                "train.lr": LR,
                "train.weight_decay": {"type": "uniform", "low": 0, "high": 0.1},
                "model.depth": {"type": "randint", "low": 1, "high": 3},
                "model.activation": {"type": "choice", "values": ["relu", "gelu"]},
                "train.early_stopping.patience": {"type": "randint", "low": 2, "high": 4},
            },
            num_samples=5,
        )
    )
    assert config.tune is not None and config.tune.total_trials() == 5


def test_defaults_eight_samples_and_a_grid_runs_every_combination_once() -> None:
    assert TuneConfig(space={"train.lr": LR}).total_trials() == 8
    grid = TuneConfig(
        searcher="grid",
        space={
            "model.width": {"type": "grid", "values": [8, 16, 32]},
            "train.optimizer": {"type": "choice", "values": ["adam", "sgd"]},
        },
    )
    assert grid.total_trials() == 6
    space = strategies.param_space(grid)
    assert space["model.width"] == {"grid_search": [8, 16, 32]}
    assert space["train.optimizer"] == {"grid_search": ["adam", "sgd"]}  # the grid searcher enumerates choices


def test_domains_match_the_yaml_and_randint_includes_its_upper_bound() -> None:
    settings = TuneConfig(
        space={
            "train.lr": LR,
            "model.depth": {"type": "randint", "low": 1, "high": 3},
            "model.width": {"type": "choice", "values": [8, 16]},
        }
    )
    space = strategies.param_space(settings)
    assert isinstance(space["train.lr"], Float) and (space["train.lr"].lower, space["train.lr"].upper) == (1e-4, 1e-2)
    assert isinstance(space["model.depth"], Integer) and (space["model.depth"].lower, space["model.depth"].upper) == (
        1,
        4,
    )
    assert isinstance(space["model.width"], Categorical) and space["model.width"].categories == [8, 16]
    samples = {space["model.depth"].sample() for _ in range(200)}
    assert samples == {1, 2, 3}


def test_pbt_mutates_train_fields_and_dropout_but_not_the_network_shape() -> None:
    settings = TuneConfig(
        scheduler="pbt",
        space={
            "train.lr": LR,
            "model.dropout": {"type": "uniform", "low": 0, "high": 0.5},
            "model.width": {"type": "choice", "values": [8, 16]},
        },
    )
    scheduler = strategies.make_scheduler(settings, epochs=10)
    assert set(scheduler._hyperparam_mutations) == {"train.lr", "model.dropout"}


def test_a_trial_config_sets_each_value_by_its_dotted_name_and_revalidates() -> None:
    base = validate_config({}).model_dump(mode="json", exclude={"tune"})
    config = trial_config(
        base, {"train.lr": np.float64(0.01), "model.depth": np.int64(3), "train.early_stopping.patience": 2}
    )
    assert (config.train.lr, config.model.depth, config.train.early_stopping.patience) == (0.01, 3, 2)
    assert base["train"]["lr"] == 0.001  # the shared base is not modified
    with pytest.raises(ConfigError, match=r"model\.depth"):
        trial_config(base, {"model.depth": 0})


@pytest.mark.parametrize(("mode", "values", "stops_at"), [("min", [0.5, 0.3, 0.1], 2), ("max", [0.5, 0.9, 0.95], 1)])
def test_the_target_stopper_stops_everything_once_one_trial_reaches_it(mode: str, values: list, stops_at: int) -> None:
    stopper = strategies.TargetReached("val_loss", mode, 0.2 if mode == "min" else 0.9)
    decisions = [stopper("t1", {"val_loss": v}) for v in values]
    assert decisions.index(True) == stops_at and stopper.stop_all()
    assert stopper("t2", {"epoch": 1}) is True  # every other trial stops too
