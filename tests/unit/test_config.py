"""Config loading, overrides and the error messages a user sees for mistakes."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from mlops_ray.config import Config, dump_config, load_config, validate_config
from mlops_ray.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_quickstart_config_loads_with_its_values() -> None:
    config = load_config(QUICKSTART)
    assert config.data.source == "sklearn:breast_cancer"
    assert config.train.num_workers == "auto"
    assert config.registry.alias == "champion"
    assert config.ray.num_cpus == 4


def test_empty_file_gives_all_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "")) == Config()


def test_unknown_key_names_path_and_suggests_closest(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, "train:\n  epochz: 3\n"))
    assert "'train.epochz' is not a known key" in str(err.value)
    assert "did you mean 'train.epochs'" in str(err.value)
    assert err.value.where == str(tmp_path / "config.yaml")


def test_unknown_section_suggests_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'trian' is not a known key.*did you mean 'train'"):
        load_config(write(tmp_path, "trian:\n  epochs: 3\n"))


def test_unknown_key_without_close_match_lists_valid_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"valid keys: .*normalization"):
        load_config(write(tmp_path, "model:\n  zzzzzz: 1\n"))


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, "train:\n  epochs: 0\n  lr: -1\n"))
    assert "2 problem(s)" in str(err.value)
    assert "'train.epochs'" in str(err.value) and "'train.lr'" in str(err.value)
    assert "(got 0)" in str(err.value)


def test_override_is_typed_from_yaml() -> None:
    config = load_config(QUICKSTART, ["train.epochs=3", "model.width=8", "ray.include_dashboard=false"])
    assert config.train.epochs == 3
    assert config.model.width == 8
    assert config.ray.include_dashboard is False


def test_override_with_wrong_type_names_the_override() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(QUICKSTART, ["train.epochs=many"])
    assert "'train.epochs'" in str(err.value)
    assert "(from --set train.epochs=many)" in str(err.value)


def test_override_of_unknown_key_suggests() -> None:
    with pytest.raises(ConfigError, match=r"'serve.prot'.*from --set serve.prot=1.*did you mean 'serve.port'"):
        load_config(QUICKSTART, ["serve.prot=1"])


@pytest.mark.parametrize("override", ["train.epochs", "=3", "train..epochs=3"])
def test_malformed_override(override: str) -> None:
    with pytest.raises(ConfigError, match=r"expected KEY\.PATH=VALUE"):
        load_config(QUICKSTART, [override])


def test_override_into_a_value_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"'train\.epochs' is a value, not a section"):
        load_config(QUICKSTART, ["train.epochs.x=1"])


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found") as err:
        load_config(tmp_path / "nope.yaml")
    assert err.value.exit_code == 2


def test_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(write(tmp_path, "train: [unclosed\n"))


def test_top_level_must_be_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must be a YAML mapping of sections, got list"):
        load_config(write(tmp_path, "- 1\n- 2\n"))


def test_split_must_leave_training_rows() -> None:
    with pytest.raises(ConfigError, match="leaves less than 10% of rows for training"):
        validate_config({"data": {"split": {"val_fraction": 0.5, "test_fraction": 0.45}}})


def test_unknown_metric_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"evaluate\.metrics\.0"):
        validate_config({"evaluate": {"metrics": ["accuracyy"]}})


def test_config_is_frozen() -> None:
    config = Config()
    with pytest.raises(ValidationError):
        config.train.epochs = 5  # type: ignore[misc]


def test_dump_round_trips() -> None:
    config = load_config(QUICKSTART, ["train.epochs=7"])
    import yaml

    assert validate_config(yaml.safe_load(dump_config(config))) == config


def test_split_method_needs_what_it_splits_on() -> None:
    from mlops_ray.config import SplitConfig
    from mlops_ray.data.splits import resolve_method
    from mlops_ray.errors import DataError

    assert resolve_method(SplitConfig(), "classification", None) == "stratified"
    assert resolve_method(SplitConfig(), "regression", None) == "random"
    assert resolve_method(SplitConfig(), "regression", "user") == "hash"
    with pytest.raises(DataError, match=r"a hash split needs data\.id_column"):
        resolve_method(SplitConfig(method="hash"), "classification", None)
    with pytest.raises(DataError, match="stratified split needs a classification label"):
        resolve_method(SplitConfig(method="stratified"), "regression", None)


def test_metrics_must_fit_the_task() -> None:
    assert validate_config({}).evaluate.metrics_for("regression") == ("rmse", "mae", "r2")
    config = validate_config({"evaluate": {"metrics": ["accuracy", "rmse"]}})
    with pytest.raises(ConfigError, match="rmse do not apply to classification"):
        config.evaluate.metrics_for("classification")


def test_training_options_are_checked_together() -> None:
    with pytest.raises(ConfigError, match="precision fp16 needs use_gpu"):
        validate_config({"train": {"precision": "fp16"}})
    with pytest.raises(ConfigError, match="use_gpu is true but resources_per_worker gives no GPU"):
        validate_config({"train": {"use_gpu": True, "resources_per_worker": {"CPU": 1, "GPU": 0}}})
    with pytest.raises(ConfigError, match=r"'train\.fault_injection\.epoch'"):
        validate_config({"train": {"fault_injection": {"rank": 1}}})
    config = validate_config({"train": {"early_stopping": {"patience": 3}, "checkpoint": {"keep": 1}}})
    assert config.train.early_stopping is not None and config.train.early_stopping.min_delta == 0.0


def test_num_workers_takes_0_for_local_mode_and_auto_decides_by_the_training_rows() -> None:
    from mlops_ray.config import TrainConfig

    assert TrainConfig(num_workers=0).workers_for(10**9) == 0
    assert TrainConfig(num_workers=3).workers_for(10) == 3
    auto = TrainConfig(num_workers="auto", local_below_rows=1000, auto_workers=4)
    assert (auto.workers_for(999), auto.workers_for(1000)) == (0, 4)
    restarting = TrainConfig(num_workers="auto", local_below_rows=1000, max_failures=2)
    assert restarting.workers_for(10) == 2  # local mode restarts nothing: asking for restarts means workers


@pytest.mark.parametrize("value", ["-1", "many"])
def test_a_bad_num_workers_names_the_field(tmp_path: Path, value: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("{}")
    with pytest.raises(ConfigError, match=r"train\.num_workers"):
        load_config(path, [f"train.num_workers={value}"])
