"""Bad input everywhere: one clear message naming the field, column or value, and nothing half-written.

Data files that cannot be used, model references that name nothing, request bodies
the endpoint refuses, and command-line flags that do not exist. docs/reliability.md
lists every bad input the suite tries (here and in the tests it names) with what
the user gets; this module holds the cases that had no home elsewhere. Cases that
once ended in a traceback (an unparsable JSON line, a header-only CSV, a file holding
only the label, every row dropped by the contract) are kept as regular cases.
"""

from __future__ import annotations

import datetime
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.dataset as pads
import pytest
import requests
from mlflow.tracking import MlflowClient
from rich.console import Console
from typer.testing import CliRunner

from mlops_ray import pipeline
from mlops_ray.cli import app
from mlops_ray.config import Config, DataConfig, dump_config, load_config
from mlops_ray.data import prepare_data
from mlops_ray.data.schema import ColumnSchema, DataSchema, save_schema
from mlops_ray.errors import ConfigError, DataError
from mlops_ray.reporting import StageReporter
from mlops_ray.serve.deploy import Endpoint
from tests.integration.serving_models import MODEL_NAME, registered_listings, running_endpoint

pytestmark = pytest.mark.usefixtures("ray_cluster")
ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def one_line(text: str) -> str:
    """CLI output with Rich's line breaks and box borders undone, for substring checks."""
    return " ".join(text.replace("│", " ").split())


# ---------------------------------------------------------------------------------------------------------------
# Data files


BAD_FILES = {
    "empty.csv": ("", "Empty CSV file"),
    "ragged.csv": ("a,b,y\n1,2,0\n3,4\n5,6,1\n", "Expected 3 columns, got 2"),
    "corrupt.parquet": ("PAR1 this is not parquet", "Parquet magic bytes not found"),
    "no_label.csv": ("a,b\n1,2\n3,4\n", "label column 'y' not found; the columns are: a, b"),
    "one_class.csv": ("a,y\n1,0\n2,0\n", "single class"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_gives_one_clear_error(tmp_path: Path, name: str) -> None:
    text, reason = BAD_FILES[name]
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DataError) as err:
        prepare_data(DataConfig(source=str(path), label="y"))
    assert reason in err.value.paragraph()
    assert str(path) in err.value.paragraph()
    assert "Traceback" not in err.value.paragraph()


def test_column_of_unsupported_type_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nested.parquet"
    pd.DataFrame({"a": [1.0, 2.0], "tags": [[1, 2], [3]], "y": [0, 1]}).to_parquet(path)
    with pytest.raises(DataError, match=r"must be numbers or strings; unsupported: tags \(list<"):
        prepare_data(DataConfig(source=str(path), label="y"))


def test_data_features_and_exclude_choose_columns_and_an_unknown_name_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "mixed.parquet"
    rows = 40
    frame = pd.DataFrame(
        {
            "a": [float(i) for i in range(rows)],
            "signup": [datetime.date(2026, 1, 1 + i % 28) for i in range(rows)],  # date32: not a feature type (yet)
            "colour": ["red", "blue"] * (rows // 2),
            "b": [i % 3 for i in range(rows)],
            "y": [0, 1] * (rows // 2),
        }
    )
    frame.to_parquet(path)
    excluded = prepare_data(DataConfig(source=str(path), label="y", exclude=["signup"]))
    assert excluded.preprocessing.features == ("a", "b", "colour")
    chosen = prepare_data(DataConfig(source=str(path), label="y", features=["colour", "a"]))
    assert chosen.preprocessing.features == ("a", "colour")  # the file's order, numbers first
    both = prepare_data(DataConfig(source=str(path), label="y", features=["a", "b", "signup"], exclude=["signup"]))
    assert both.preprocessing.features == ("a", "b")

    with pytest.raises(DataError, match=r"unsupported: signup \(date32") as unsupported:
        prepare_data(DataConfig(source=str(path), label="y"))
    assert "data.exclude" in unsupported.value.paragraph()
    for field, names, message in [
        ("exclude", ["sigup"], r"no column\(s\) 'sigup' in .*; the columns are: a, signup, colour, b, y"),
        ("features", ["a", "colour", "size"], r"no column\(s\) 'size'"),
        ("features", ["a", "y"], "'y' cannot be a feature: the label, the id column"),
        ("exclude", ["a", "b", "colour", "signup"], "no feature columns left"),
    ]:
        with pytest.raises(ConfigError, match=message) as raised:
            prepare_data(DataConfig(source=str(path), label="y", **{field: names}))
        assert raised.value.where == f"data.{field}"


def test_a_directory_of_mixed_formats_names_the_formats_found(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0], "y": [0, 1]})
    frame.to_csv(tmp_path / "part-0.csv", index=False)
    frame.to_parquet(tmp_path / "part-1.parquet")
    with pytest.raises(DataError) as err:
        prepare_data(DataConfig(source=str(tmp_path), label="y"))
    assert err.value.where == f"data.source={str(tmp_path)!r}"
    assert "cannot tell the file format (found: csv, parquet); name it in data.format" in err.value.paragraph()


SCHEMA = DataSchema(
    columns=(
        ColumnSchema(name="x", type="float", nullable=False),
        ColumnSchema(name="y", type="integer", role="label", nullable=False),
    )
)

# Inputs that once ended in a traceback, or passed unremarked: each now gets one DataError naming the source.
EMPTY_OR_UNPARSABLE = {
    "broken.jsonl": ('{"x": 1.0, "y": 0}\n{"x": 2.0, "y": \n', "cannot be read"),
    "header_only.csv": ("x,y\n", "nothing to train on: it has no rows"),
    "label_only.csv": (
        "y\n" + "\n".join(f"{i * 0.37:.2f}" for i in range(60)) + "\n",
        "no feature columns: the only column(s) are y",
    ),
    "all_rows_invalid.csv": ("x,y\nlots,0\nmany,1\n", "all 2 rows broke the schema contract and were dropped"),
}


@pytest.mark.parametrize("name", sorted(EMPTY_OR_UNPARSABLE))
def test_an_empty_or_unparsable_file_is_one_clear_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    content, expected = EMPTY_OR_UNPARSABLE[name]
    path.write_text(content)
    if name == "all_rows_invalid.csv":
        config = DataConfig(
            source=str(path), schema_file=str(save_schema(SCHEMA, tmp_path / "s.yaml")), on_invalid="drop"
        )
    else:
        config = DataConfig(source=str(path), label="y")
    with pytest.raises(DataError) as err:
        prepare_data(config)
    assert str(path) in err.value.paragraph() and expected in err.value.paragraph(), err.value.paragraph()


def test_a_file_source_needs_a_label(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("a,y\n1,0\n2,1\n")
    with pytest.raises(DataError) as err:
        prepare_data(DataConfig(source=str(path)))
    assert err.value.paragraph() == "data.label: a file source needs its label column named in data.label"


def test_failed_pipeline_leaves_nothing_registered(tmp_path: Path) -> None:
    bad = tmp_path / "ragged.csv"
    bad.write_text(BAD_FILES["ragged.csv"][0])
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = load_config(
        ROOT / "configs" / "quickstart.yaml",
        [f"data.source={bad}", "data.label=y", f"tracking.uri={tracking}", f"tracking.artifact_location={tmp_path}"],
    )
    with pytest.raises(DataError, match="Expected 3 columns"):
        pipeline.run(config, StageReporter(Console(file=io.StringIO())))
    client = MlflowClient(tracking)
    assert client.search_registered_models() == []
    experiment = client.get_experiment_by_name(config.tracking.experiment)
    assert client.search_runs([experiment.experiment_id]) == []


# ---------------------------------------------------------------------------------------------------------------
# Command-line flags: refused before anything is read, connected or written


BAD_FLAGS = {  # id -> (arguments, the sentence the user must read)
    "unknown option": (["train", "{config}", "--epochs", "3"], "No such option: --epochs"),
    "missing --model": (["evaluate", "{config}"], "Missing option '--model'"),
    "--canary over 100": (["serve", "{config}", "--canary", "150"], "Invalid value for '--canary'"),
    "--tolerance not a number": (["reproduce", "0123abcd", "--tolerance", "lots"], "Invalid value for '--tolerance'"),
    "unknown command": (["frobnicate"], "No such command 'frobnicate'"),
    "unknown --format": (
        ["report", "{config}", "--model", "m@pr", "--format", "pdf"],
        "--format: 'pdf' is not a format",
    ),
    "--since not a time": (["monitor", "{config}", "--since", "yesterday"], "--since: 'yesterday' is not an ISO 8601"),
    "--since after --until": (
        ["monitor", "{config}", "--since", "2026-01-02", "--until", "2026-01-01"],
        "--since 2026-01-02 is not before --until 2026-01-01",
    ),
    "--rollback with --model": (["promote", "{config}", "--rollback", "--model", "m/1"], "--rollback takes no --model"),
    "serve build without -o": (["serve", "build", "{config}"], "usage: mlops-ray serve build CONFIG -o serve.yaml"),
    "serve -o without build": (["serve", "{config}", "-o", "x.yaml"], "-o and a second CONFIG go with `serve build`"),
    "lineage without a target": (["lineage"], "give either MODEL_REF or --dataset DIGEST"),
    "unknown config key": (["run", "{bad}"], "'train.epochz' is not a known key, did you mean 'train.epochs'"),
}


@pytest.mark.parametrize("case", list(BAD_FLAGS))
def test_a_bad_flag_exits_2_naming_it_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    arguments, message = BAD_FLAGS[case]
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochz: 3\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    config = str(ROOT / "configs" / "quickstart.yaml")
    result = runner.invoke(app, [a.replace("{config}", config).replace("{bad}", str(bad)) for a in arguments])
    assert result.exit_code == 2, result.output
    assert message in one_line(result.output), result.output
    assert "Traceback" not in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["bad.yaml"]  # no mlflow.db, no report, no serve.yaml


# ---------------------------------------------------------------------------------------------------------------
# Model references: one registered version; every bad MODEL_REF names what exists, and changes nothing


@dataclass
class Registry:
    config: Config
    config_file: Path
    tracking_uri: str
    tmp: Path

    def state(self) -> tuple[list[str], dict[str, str], int]:
        """Versions, aliases and the number of MLflow runs: what a refused command must leave as it was."""
        client = MlflowClient(self.tracking_uri)
        versions = sorted(str(v.version) for v in client.search_model_versions(f"name = '{MODEL_NAME}'"))
        aliases = {a: str(v) for a, v in client.get_registered_model(MODEL_NAME).aliases.items()}
        experiments = [e.experiment_id for e in client.search_experiments()]
        return versions, aliases, len(client.search_runs(experiments))


@pytest.fixture(scope="module")
def registry(ray_cluster: None, tmp_path_factory: pytest.TempPathFactory) -> Registry:
    tmp = tmp_path_factory.mktemp("bad-refs")
    overrides = ["serve.autoscaling.min_replicas=1", "serve.autoscaling.max_replicas=1"]
    config, uri, _ = registered_listings(tmp, [*overrides, "serve.capture.flush_interval_s=0.5"], {"champion": 1})
    config_file = tmp / "config.yaml"
    config_file.write_text(dump_config(config))
    return Registry(config, config_file, uri, tmp)


BAD_REFS = {  # id -> (arguments, the sentence the user must read)
    "syntax (lineage)": (["lineage", "not a ref"], "MODEL_REF: 'not a ref' is not a model reference Write name@alias"),
    "syntax (test-model)": (
        ["test-model", "{config}", "--model", "listing prices@champion"],
        "'listing prices@champion' is not a model reference",
    ),
    "unknown model (evaluate)": (
        ["evaluate", "{config}", "--model", "nobody/1"],
        "nobody/1: no registered model is named 'nobody' Registered models: listing-prices.",
    ),
    "unknown alias (promote)": (
        ["promote", "{config}", "--model", f"{MODEL_NAME}@nope"],
        f"{MODEL_NAME}@nope: model '{MODEL_NAME}' has no alias 'nope' (aliases: @champion -> version 1)",
    ),
    "no challenger (promote)": (["promote", "{config}"], f"{MODEL_NAME}@challenger: model '{MODEL_NAME}' has no alias"),
    "unknown version (serve)": (
        ["serve", "{config}", "--model", f"{MODEL_NAME}/99"],
        f"{MODEL_NAME}/99: model '{MODEL_NAME}' has no version 99 (latest: 1)",
    ),
    "canary without challenger (serve)": (
        ["serve", "{config}", "--canary", "10"],
        f"{MODEL_NAME}@challenger: model '{MODEL_NAME}' has no alias 'challenger'",
    ),
    "unknown version (lineage)": (["lineage", f"{MODEL_NAME}/99"], "has no version 99 (latest: 1)"),
    "not a digest (lineage --dataset)": (
        ["lineage", "--dataset", "zzzz"],
        "--dataset: 'zzzz' is not a dataset digest Give 8 or more hex characters of it.",
    ),
    "unknown run (reproduce)": (["reproduce", "0123456789abcdef"], "RUN_ID: no run '0123456789abcdef' in the tracking"),
    "unknown alias (monitor)": (["monitor", "{config}", "--model", f"{MODEL_NAME}@nope"], "has no alias 'nope'"),
    "against itself (report)": (
        ["report", "{config}", "--model", f"{MODEL_NAME}@champion", "--against", "champion", "-o", "{tmp}/r.md"],
        "--against champion: is listing-prices version 1 itself; a report compares two different versions",
    ),
    "unknown against (report)": (
        ["report", "{config}", "--model", f"{MODEL_NAME}@champion", "--against", "nope/2", "-o", "{tmp}/r.md"],
        "nope/2: no registered model is named 'nope'",
    ),
}


@pytest.mark.parametrize("case", list(BAD_REFS))
def test_a_bad_model_ref_names_what_exists_and_changes_nothing(registry: Registry, case: str) -> None:
    arguments, message = BAD_REFS[case]
    args = [a.replace("{config}", str(registry.config_file)).replace("{tmp}", str(registry.tmp)) for a in arguments]
    if args[0] in ("lineage", "reproduce"):
        args += ["--tracking-uri", registry.tracking_uri]
    before = registry.state()
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert message in one_line(result.output), result.output
    assert "Traceback" not in result.output
    assert registry.state() == before  # no version, no alias move, no MLflow run
    assert not (registry.tmp / "r.md").exists()


# ---------------------------------------------------------------------------------------------------------------
# Request bodies the endpoint's contract tests do not send (tests/integration/test_serving.py has the per-field ones)


@pytest.fixture(scope="module")
def endpoint(registry: Registry) -> Iterator[Endpoint]:
    with running_endpoint(registry.config, registry.tracking_uri) as served:
        yield served


GOOD_ROW = '{"size_m2": 80.0, "rooms": 3, "district": "north"}'
BAD_BODIES = {  # id -> (body, status, field, message)
    "empty body": (b"", 422, "body", "Invalid JSON: EOF while parsing a value"),
    "a JSON array": (b"[]", 422, "body", "Input should be an object"),
    "JSON null": (b"null", 422, "body", "Input should be an object"),
    "records null": (b'{"records": null}', 422, "records", "Input should be a valid array"),
    "a form body": (b"records=1", 422, "body", "Invalid JSON"),
    "not UTF-8": (b"\xff\xfe\x00", 422, "body", "Invalid JSON"),
    "a row as a string": (
        b'{"records": ["' + GOOD_ROW.replace('"', '\\"').encode() + b'"]}',
        422,
        "records[0]",
        "object",
    ),
}


@pytest.mark.slow
def test_refused_bodies_name_the_field_and_are_never_captured(registry: Registry, endpoint: Endpoint) -> None:
    url = f"{endpoint.url}/predict"
    for case, (body, status, field, message) in BAD_BODIES.items():
        answer = requests.post(url, data=body, headers={"content-type": "application/json"}, timeout=30)
        assert answer.status_code == status, (case, answer.text)
        assert "Traceback" not in answer.text and 'File "' not in answer.text, (case, answer.text)
        (detail,) = answer.json()["detail"]
        assert detail["field"] == field and message in detail["message"], (case, detail)
    wrong_method = requests.get(url, timeout=30)
    assert (wrong_method.status_code, wrong_method.json()) == (405, {"detail": "Method Not Allowed"})

    good = requests.post(url, data=f'{{"records": [{GOOD_ROW}]}}'.encode(), timeout=30)  # after all the refused ones
    assert good.status_code == 200, good.text
    capture = Path(registry.config.serve.capture.path)
    deadline = time.monotonic() + 30
    while not list(capture.rglob("*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.5)
    captured = pads.dataset(capture, format="parquet", partitioning="hive").to_table().to_pandas()
    assert len(captured) == 1 and captured["size_m2"].tolist() == [80.0]  # only the accepted row, no refused one
