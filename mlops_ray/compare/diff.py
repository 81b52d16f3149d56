"""What changed between two versions' inputs: their schema contracts and their lineage.

A metric delta means little without knowing whether the two models saw the same
data: a new column, a widened range or a dropped category explains many "regressions".
The schema comes from the contract each training run logged; a version without one is
compared by what its preprocessing takes (feature names, kinds and categories).
"""

from __future__ import annotations

from mlops_ray.data.preprocessing import Preprocessing
from mlops_ray.data.schema import ColumnSchema, DataSchema
from mlops_ray.tags import CONFIG_DIGEST_TAG, FINGERPRINT_TAG, GIT_COMMIT_TAG, SCHEMA_DIGEST_TAG, SOURCE_TAG

LINEAGE_ROWS = (
    ("data fingerprint", FINGERPRINT_TAG),
    ("data source", SOURCE_TAG),
    ("schema sha256", SCHEMA_DIGEST_TAG),
    ("config sha256", CONFIG_DIGEST_TAG),
    ("git commit", GIT_COMMIT_TAG),
    ("MLflow run", "run_id"),
)


def schema_changes(
    old: DataSchema | None, new: DataSchema | None, old_features: Preprocessing, new_features: Preprocessing
) -> list[str]:
    """One line per changed column, old -> new; empty when nothing changed."""
    if old is not None and new is not None:
        return _contract_changes(old, new)
    return _feature_changes(old_features, new_features)


def _contract_changes(old: DataSchema, new: DataSchema) -> list[str]:
    before = {c.name: c for c in old.columns}
    after = {c.name: c for c in new.columns}
    changes = [f"{name}: added ({after[name].type}, {after[name].role})" for name in after if name not in before]
    changes += [f"{name}: removed (was {before[name].type})" for name in before if name not in after]
    for name in (n for n in before if n in after):
        changes += [f"{name}: {change}" for change in _column_changes(before[name], after[name])]
    return changes


def _column_changes(old: ColumnSchema, new: ColumnSchema) -> list[str]:
    changes = []
    for field in ("type", "role", "nullable"):
        if getattr(old, field) != getattr(new, field):
            changes.append(f"{field} {getattr(old, field)} -> {getattr(new, field)}")
    if (old.min, old.max) != (new.min, new.max):
        changes.append(f"range {_range(old)} -> {_range(new)}")
    if (old.categories or ()) != (new.categories or ()):
        changes.append(_categories(old.categories or (), new.categories or ()))
    return changes


def _feature_changes(old: Preprocessing, new: Preprocessing) -> list[str]:
    kinds = {c.name: "numeric" for c in old.numeric} | {c.name: "categorical" for c in old.categorical}
    now = {c.name: "numeric" for c in new.numeric} | {c.name: "categorical" for c in new.categorical}
    changes = [f"{name}: added ({now[name]})" for name in now if name not in kinds]
    changes += [f"{name}: removed (was {kinds[name]})" for name in kinds if name not in now]
    changes += [f"{n}: {kinds[n]} -> {now[n]}" for n in kinds if n in now and kinds[n] != now[n]]
    old_categories = {c.name: c.categories for c in old.categorical}
    for column in new.categorical:
        before = old_categories.get(column.name)
        if before is not None and before != column.categories:
            changes.append(f"{column.name}: {_categories(before, column.categories)}")
    return changes


def _range(column: ColumnSchema) -> str:
    low = "-inf" if column.min is None else f"{column.min:g}"
    high = "inf" if column.max is None else f"{column.max:g}"
    return f"{low} .. {high}"


def _categories(old: tuple[str, ...], new: tuple[str, ...]) -> str:
    added = [c for c in new if c not in old]
    removed = [c for c in old if c not in new]
    parts = ([f"+{', +'.join(added)}"] if added else []) + ([f"-{', -'.join(removed)}"] if removed else [])
    return "categories " + ("; ".join(parts) if parts else "reordered")
