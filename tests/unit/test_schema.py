"""The schema contract without Ray: validators, load/save round trip, and the ConfigError messages."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from mlops_ray.data.schema import ColumnSchema, DataSchema, load_schema, save_schema
from mlops_ray.errors import ConfigError


def make_schema(**age: object) -> DataSchema:
    return DataSchema(
        columns=(
            ColumnSchema(name="id", type="integer", role="id", nullable=False),
            ColumnSchema(name="age", type="integer", **{"min": 0, "max": 120, **age}),
            ColumnSchema(name="score", type="float", min=-0.5, max=2.25),
            ColumnSchema(name="city", type="string", categories=("Lyon", "Paris")),
            ColumnSchema(name="member", type="boolean"),
            ColumnSchema(name="tags", type="other", role="ignore"),
            ColumnSchema(name="label", type="string", role="label", nullable=False),
        )
    )


def test_roles_and_lookup() -> None:
    schema = make_schema()
    assert schema.label == "label"
    assert schema.id_column == "id"
    assert schema.features == ("age", "score", "city", "member")
    assert schema.column("city").categories == ("Lyon", "Paris")
    with pytest.raises(KeyError, match="no column 'nope'"):
        schema.column("nope")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"type": "integer", "min": 5, "max": 1}, r"min \(5\) is greater than max \(1\)"),
        ({"type": "string", "min": 0}, "min/max apply only to integer and float columns, not to type 'string'"),
        ({"type": "boolean", "max": 1}, "min/max apply only to integer and float columns"),
        ({"type": "integer", "categories": ["a"]}, "categories apply only to string columns"),
        ({"type": "string", "categories": []}, "categories must not be empty"),
        ({"type": "string", "categories": ["a", "b", "a"]}, "categories list 'a' more than once"),
        ({"type": "other"}, "type 'other' cannot be checked, so it needs role 'ignore', not 'feature'"),
        ({"type": "string", "role": "label"}, "role 'label' must be complete; set nullable: false"),
        ({"type": "integer", "role": "id"}, "role 'id' must be complete"),
        ({"type": "float", "min": float("nan")}, "finite number"),
        ({"type": "float", "colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_column_validators(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ColumnSchema(name="x", **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ([("a", "label"), ("a", "feature")], "column\\(s\\) 'a' declared more than once"),
        ([("a", "feature")], "exactly one column must have role 'label'; found none"),
        ([("a", "label"), ("b", "label")], "exactly one column must have role 'label'; found 'a', 'b'"),
        ([("a", "label"), ("b", "id"), ("c", "id")], "at most one column may have role 'id'; found 'b', 'c'"),
    ],
)
def test_schema_validators(columns: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DataSchema(columns=tuple(ColumnSchema(name=n, type="integer", role=r, nullable=False) for n, r in columns))  # type: ignore[arg-type]


def test_schema_needs_a_column() -> None:
    with pytest.raises(ValidationError, match="at least 1 item"):
        DataSchema(columns=())


def test_digest_is_stable_and_tracks_every_field() -> None:
    digest = make_schema().digest()
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert make_schema().digest() == digest
    assert DataSchema.model_validate(yaml.safe_load(yaml.safe_dump(make_schema().to_dict()))).digest() == digest
    assert make_schema(max=121).digest() != digest
    assert make_schema(nullable=False).digest() != digest
    assert make_schema(role="ignore").digest() != digest


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    schema = make_schema()
    path = save_schema(schema, tmp_path / "nested" / "schema.yaml")
    assert load_schema(path) == schema
    text = path.read_text()
    assert text.startswith("# mlops-ray data schema") and "data.schema_file: <path" in text
    assert "min: 0\n" in text and "max: 2.25\n" in text  # integer bounds read as integers, floats plainly
    assert "!!" not in text and "categories:\n  - Lyon\n  - Paris\n" in text
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert os.listdir(path.parent) == ["schema.yaml"]  # no temporary file left behind


def test_failed_save_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "schema.yaml"
    target.mkdir()  # os.replace cannot put a file over a directory
    with pytest.raises(OSError):
        save_schema(make_schema(), target)
    assert os.listdir(tmp_path) == ["schema.yaml"] and target.is_dir()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "schema.yaml"
    path.write_text(text)
    return path


COLUMNS = """\
columns:
  - {name: id, type: integer, role: id, nullable: false}
  - {name: age, type: integer, min: 0, max: 120}
  - {name: label, type: string, role: label, nullable: false}
"""


def test_load_missing_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="schema file not found") as missing:
        load_schema(tmp_path / "nope.yaml")
    assert missing.value.where == str(tmp_path / "nope.yaml")
    path = write(tmp_path, "columns: [\n  - {name: a")
    with pytest.raises(ConfigError, match="is not valid YAML") as bad:
        load_schema(path)
    assert bad.value.where == str(path)
    with pytest.raises(ConfigError, match="must be a YAML mapping with a 'columns' list, got list"):
        load_schema(write(tmp_path, "- a\n- b\n"))


def test_load_names_unknown_key_with_field_path_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, COLUMNS.replace("min: 0,", "mn: 0,") + "owner: me\n")
    with pytest.raises(ConfigError) as error:
        load_schema(path)
    message = error.value.message
    assert "2 problem(s)" in message
    assert "'columns[1].mn' (column 'age') is not a known key, did you mean 'min'" in message
    assert "'owner' is not a known key, valid keys: columns, version" in message
    assert error.value.where == str(path)


def test_load_names_min_above_max(tmp_path: Path) -> None:
    path = write(tmp_path, COLUMNS.replace("max: 120", "max: -1"))
    with pytest.raises(ConfigError, match=r"'columns\[1\]' \(column 'age'\) min \(0\) is greater than max \(-1\)"):
        load_schema(path)


def test_load_names_bad_value_with_field_path(tmp_path: Path) -> None:
    path = write(tmp_path, COLUMNS.replace("max: 120", "max: lots").replace("type: integer, min", "type: int, min"))
    with pytest.raises(ConfigError) as error:
        load_schema(path)
    assert "'columns[1].type' (column 'age') Input should be 'integer'" in error.value.message
    assert "'columns[1].max' (column 'age') Input should be a valid number" in error.value.message
    assert "(got 'lots')" in error.value.message


def test_load_refuses_two_labels(tmp_path: Path) -> None:
    path = write(tmp_path, COLUMNS.replace("role: id", "role: label"))
    with pytest.raises(ConfigError, match="exactly one column must have role 'label'; found 'id', 'label'"):
        load_schema(path)
