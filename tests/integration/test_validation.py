"""Schema inference and row validation on real Ray Data: exact counts, examples, casts and quarantine."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray.data

from mlops_ray.data.schema import ColumnSchema, DataSchema, infer_schema, load_schema, save_schema
from mlops_ray.data.validation import (
    REASON,
    ValidationReport,
    ValidationResult,
    raise_for_violations,
    validate,
    write_quarantine,
)
from mlops_ray.errors import DataError

pytestmark = pytest.mark.usefixtures("ray_cluster")

NAN = float("nan")


def mixed_table() -> pa.Table:
    return pa.table(
        {
            "id": pa.array([1, 2, 3, 4, 5, 6], pa.int64()),
            "age": pa.array([30, None, 45, 50, 61, 22], pa.int32()),
            "score": [0.5, 1.5, -2.0, 3.25, 0.0, 1.0],
            "member": [True, False, None, True, False, True],
            "city": ["Paris", "Lyon", "Paris", "Nice", "Lyon", "Paris"],
            "name": ["ann", "bob", "cy", "dee", "eve", "fay"],
            "plan": pa.array(["free", "pro", "free", "free", "pro", "free"]).dictionary_encode(),
            "tags": [[1], [2, 3], [], None, [4], [5]],
            "label": [0, 1, 0, 1, 0, 1],
        }
    )


def test_infer_schema_describes_a_mixed_frame_and_accepts_its_own_data(tmp_path: Path) -> None:
    dataset = ray.data.from_arrow(mixed_table())
    schema = infer_schema(dataset, label="label", id_column="id", max_categories=3)
    assert schema.columns == (
        ColumnSchema(name="id", type="integer", role="id", nullable=False),
        ColumnSchema(name="age", type="integer", nullable=True, min=22, max=61),
        ColumnSchema(name="score", type="float", nullable=False, min=-2.0, max=3.25),
        ColumnSchema(name="member", type="boolean", nullable=True),
        ColumnSchema(name="city", type="string", nullable=False, categories=("Lyon", "Nice", "Paris")),
        ColumnSchema(name="name", type="string", nullable=False),  # 6 distinct > max_categories
        ColumnSchema(name="plan", type="string", nullable=False, categories=("free", "pro")),
        ColumnSchema(name="tags", type="other", role="ignore", nullable=True),
        ColumnSchema(name="label", type="integer", role="label", nullable=False, min=0, max=1),
    )
    assert load_schema(save_schema(schema, tmp_path / "schema.yaml")) == schema

    result = validate(dataset, schema)
    assert result.report.ok and result.report.violations == ()
    assert (result.report.rows, result.report.invalid_rows, result.rejected.count()) == (6, 0, 0)
    assert result.valid.count() == 6
    assert "tags" not in result.valid.schema().names
    assert write_quarantine(result.rejected, tmp_path / "quarantine") is None
    assert not (tmp_path / "quarantine").exists()


def test_infer_schema_names_a_missing_or_incomplete_label() -> None:
    dataset = ray.data.from_arrow(mixed_table())
    with pytest.raises(DataError, match=r"column 'target' not found; the columns are: id, age, score") as missing:
        infer_schema(dataset, label="target")
    assert missing.value.where == "data.label"
    with pytest.raises(DataError, match="column 'tags' holds list<item: int64> values, which cannot be checked"):
        infer_schema(dataset, label="tags")
    with pytest.raises(DataError, match="label column 'age' has 1 missing value"):
        infer_schema(dataset, label="age")


RULES_SCHEMA = DataSchema(
    columns=(
        ColumnSchema(name="id", type="integer", role="id", nullable=False),
        ColumnSchema(name="age", type="integer", nullable=False, min=0, max=120),
        ColumnSchema(name="score", type="float", min=0.0, max=1.0),
        ColumnSchema(name="city", type="string", categories=("Lyon", "Paris")),
        ColumnSchema(name="member", type="boolean"),
        ColumnSchema(name="tags", type="other", role="ignore"),
        ColumnSchema(name="label", type="string", role="label", nullable=False),
    )
)


@pytest.fixture(scope="module")
def rules_result(ray_cluster: None) -> ValidationResult:
    table = pa.table(
        {
            "id": pa.array(range(1, 9), pa.int64()),
            "age": pa.array([30, 150, None, 40, -1, 50, 60, 70], pa.int64()),
            "score": [0.5, 0.1, 0.2, NAN, 0.3, 2.0, 0.4, None],
            "city": ["Paris", "Lyon", "Paris", "Lyon", "Nice", "Paris", None, "Lyon"],
            "member": [True, False, True, False, True, False, None, True],
            "tags": [[1], [], [2], [3], [4], [5], [6], None],
            "label": ["yes", "no", "yes", "no", "yes", "no", None, "no"],
        }
    )
    return validate(ray.data.from_arrow(table), RULES_SCHEMA)


def test_each_rule_is_counted_exactly_with_examples(rules_result: ValidationResult) -> None:
    report = rules_result.report
    assert (report.rows, report.invalid_rows, report.ok) == (8, 6, False)
    found = {(v.column, v.rule): v for v in report.violations}
    counts = {key: v.count for key, v in found.items()}
    assert counts == {
        ("age", "range"): 2,
        ("age", "null"): 1,
        ("score", "type"): 1,
        ("score", "range"): 1,
        ("city", "category"): 1,
        ("label", "null"): 1,
    }
    assert (report.violations[0].column, report.violations[0].rule) == ("age", "range")  # largest count first
    assert sorted(e["age"] for e in found["age", "range"].examples) == [-1, 150]
    nan_row = found["score", "type"].examples[0]
    assert (nan_row["id"], nan_row["score"], nan_row[REASON]) == (4, "nan", "score:type")  # JSON-safe NaN
    assert found["city", "category"].examples[0][REASON] == "age:range; city:category"
    assert report.counts() == {
        "invalid_rows": 6,
        "invalid.age.range": 2,
        "invalid.age.null": 1,
        "invalid.score.type": 1,
        "invalid.score.range": 1,
        "invalid.city.category": 1,
        "invalid.label.null": 1,
    }
    assert json.loads(json.dumps(report.to_dict(), allow_nan=False))["invalid_rows"] == 6


def test_valid_rows_have_declared_types_without_ignored_columns(rules_result: ValidationResult) -> None:
    valid = rules_result.valid
    arrow = valid.schema().base_schema
    assert arrow.names == ["id", "age", "score", "city", "member", "label"]
    assert arrow.types == [pa.int64(), pa.int64(), pa.float64(), pa.string(), pa.bool_(), pa.string()]
    assert sorted(row["id"] for row in valid.take_all()) == [1, 8]


def test_rejected_rows_keep_original_values_and_reasons(rules_result: ValidationResult, tmp_path: Path) -> None:
    rows = {row["id"]: row for row in rules_result.rejected.take_all()}
    assert sorted(rows) == [2, 3, 4, 5, 6, 7]
    assert set(rows[2]) == {"id", "age", "score", "city", "member", "tags", "label", REASON}
    assert rows[3]["age"] is None and rows[3][REASON] == "age:null"
    assert math.isnan(rows[4]["score"])
    assert rows[7][REASON] == "label:null"

    target = tmp_path / "quarantine"
    target.mkdir()
    (target / "stale.parquet").write_text("from an earlier run")
    assert write_quarantine(rules_result.rejected, target) == target
    table = pq.read_table(target)
    assert sorted(table.column("id").to_pylist()) == [2, 3, 4, 5, 6, 7]
    assert REASON in table.column_names and not any(n.startswith("__") for n in table.column_names)
    assert sorted(ray.data.read_parquet(str(target)).unique(REASON)) == [
        "age:null",
        "age:range",
        "age:range; city:category",
        "label:null",
        "score:range",
        "score:type",
    ]
    assert not (target / "stale.parquet").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["quarantine"]  # no staging or old directory left


def test_error_message_names_column_rule_count_and_example(rules_result: ValidationResult) -> None:
    with pytest.raises(DataError) as error:
        raise_for_violations(rules_result.report, "rows.csv")
    message = error.value.message
    assert message.startswith("6 of 8 row(s) break the schema: column 'age' rule 'range': 2 row(s) (e.g. ")
    assert "{'id': 2, 'age': 150}" in message
    assert "column 'city' rule 'category': 1 row(s) (e.g. {'id': 5, 'city': 'Nice'})" in message
    assert error.value.where == "data.source='rows.csv'"
    assert "data.on_invalid: drop" in (error.value.hint or "")
    raise_for_violations(ValidationReport(rows=8, invalid_rows=0), "rows.csv")  # clean data passes silently


CSV = """\
id,amount,count,qty,label
1,1.5,1,1,a
2,abc,2,2,b
3,2.5,1.5,3,a
4,,3,4.5,b
5,3.0,x,5,a
6, 7 ,NA,6,b
"""


def test_csv_with_bad_numbers_rejects_exactly_those_rows(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(CSV)
    dataset = ray.data.read_csv(str(path))
    types = dict(zip(dataset.schema().names, dataset.schema().types, strict=True))
    assert (types["amount"], types["count"], types["qty"]) == (pa.string(), pa.string(), pa.float64())
    schema = DataSchema(
        columns=(
            ColumnSchema(name="id", type="integer", role="id", nullable=False),
            ColumnSchema(name="amount", type="float"),
            ColumnSchema(name="count", type="integer"),
            ColumnSchema(name="qty", type="integer"),
            ColumnSchema(name="label", type="string", role="label", nullable=False),
        )
    )
    result = validate(dataset, schema)
    found = {(v.column, v.rule): sorted(e["id"] for e in v.examples) for v in result.report.violations}
    assert found == {("amount", "type"): [2], ("count", "type"): [3, 5], ("qty", "type"): [4]}
    rejected = {row["id"]: row for row in result.rejected.take_all()}
    assert (rejected[2]["amount"], rejected[3]["count"], rejected[4]["qty"]) == ("abc", "1.5", 4.5)  # as read
    valid = sorted(result.valid.take_all(), key=lambda row: row["id"])
    # blank and NA cells are missing values, as the reader would have made them; "1.0" and " 7 " parse exactly
    assert [(r["id"], r["amount"], r["count"], r["qty"]) for r in valid] == [(1, 1.5, 1, 1), (6, 7.0, None, 6)]
    arrow = result.valid.schema().base_schema
    assert (arrow.field("amount").type, arrow.field("count").type, arrow.field("qty").type) == (
        pa.float64(),
        pa.int64(),
        pa.int64(),
    )


def test_missing_unexpected_and_incompatible_columns_fail_at_table_level() -> None:
    dataset = ray.data.from_arrow(pa.table({"id": [1, 2], "extra": ["a", "b"], "city": [1.5, 2.5], "label": [0, 1]}))
    schema = DataSchema(
        columns=(
            ColumnSchema(name="id", type="integer", role="id", nullable=False),
            ColumnSchema(name="age", type="integer"),
            ColumnSchema(name="income", type="float"),
            ColumnSchema(name="city", type="string"),
            ColumnSchema(name="label", type="integer", role="label", nullable=False),
        )
    )
    with pytest.raises(DataError) as error:
        validate(dataset, schema)
    message = error.value.message
    assert "missing column(s) 'age', 'income'" in message
    assert "unexpected column(s) 'extra'" in message
    assert "'city' is declared string but the data holds double" in message
    assert "role: ignore" in (error.value.hint or "")
