"""The data stage: source -> schema contract -> checked columns -> task -> split -> fitted preprocessing.

Splitting happens before any statistic is computed, so nothing about the
validation or test rows leaks into the scaler or the target scaling. Every split
stays a Ray Dataset: train and val as tensors that Ray Train shards per worker, test
as the raw rows, so evaluation streams them through the packaged model exactly as
served. Only aggregates reach the driver.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import ray.data
from ray.data.aggregate import Mean, Std

from mlops_ray.config import Config, DataConfig
from mlops_ray.data.fingerprint import Fingerprint, fingerprint
from mlops_ray.data.labels import decide_task, summarize_label
from mlops_ray.data.preprocessing import Preprocessing
from mlops_ray.data.profile import DatasetProfile, is_categorical, is_numeric, profile
from mlops_ray.data.read_errors import readable_source_errors
from mlops_ray.data.reference import sample_reference
from mlops_ray.data.schema import DataSchema, load_schema
from mlops_ray.data.sources import LoadedSource, load_source
from mlops_ray.data.splits import resolve_method, split_dataset
from mlops_ray.data.target import Target
from mlops_ray.data.validation import ValidationReport, raise_for_violations, validate
from mlops_ray.errors import ConfigError, DataError
from mlops_ray.reporting import StageReporter


@dataclass(frozen=True)
class PreparedData:
    train: ray.data.Dataset  # {"x": features, "y": target} rows, ready for Ray Train
    val: ray.data.Dataset
    test: ray.data.Dataset  # raw rows as read, evaluated through the packaged model
    preprocessing: Preprocessing
    target: Target
    source_uri: str
    row_counts: dict[str, int]
    fingerprint: Fingerprint
    profile: DatasetProfile
    schema: ray.data.Schema
    split_method: str
    id_column: str | None = None
    warnings: tuple[str, ...] = ()
    contract: DataSchema | None = None  # the schema file the rows were checked against
    validation: ValidationReport | None = None
    rejected: ray.data.Dataset | None = None  # rows dropped under on_invalid: drop, with their reasons
    reference: pd.DataFrame | None = None  # raw training rows (features) that monitoring compares traffic with

    @property
    def features(self) -> tuple[str, ...]:
        return self.preprocessing.features

    @property
    def label(self) -> str:
        return self.target.column

    @property
    def task(self) -> str:
        return self.target.task

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.target.classes

    def test_rows(self, limit: int) -> pd.DataFrame:
        """The first ``limit`` raw test rows, for input examples and the smoke prediction."""
        return self.test.limit(limit).to_pandas()


def prepare_data(config: DataConfig) -> PreparedData:
    with readable_source_errors(config.source):
        return _prepare(config)


def _prepare(config: DataConfig) -> PreparedData:
    contract = load_schema(config.schema_file) if config.schema_file else None
    if contract is not None:
        config = with_schema_roles(config, contract)
    source = load_source(config)
    chosen = _chosen_columns(source, config)
    # Read the files once: checks, splits, fingerprint and profile all pass over the data,
    # and each pass would otherwise re-read the source (Ray spills to disk past memory).
    raw = source.dataset.materialize()
    dataset, validation = raw, None
    if contract is not None:
        validation = validate(raw, contract)
        if config.on_invalid == "fail":
            raise_for_violations(validation.report, config.source)
        dataset = validation.valid.materialize()
    schema = dataset.schema()
    if schema is None or dataset.count() == 0:
        dropped = validation.report.invalid_rows if validation is not None else 0
        why = (
            f"all {dropped} rows broke the schema contract and were dropped (data.on_invalid: drop)"
            if dropped
            else ("it has no rows")
        )
        raise DataError(f"nothing to train on: {why}", where=f"data.source={config.source!r}")
    numeric, categorical = _feature_columns(schema, source.label, config.id_column, config.source, chosen)
    if contract is not None:  # the contract, not the reader's guess, says which columns are strings
        features = list(contract.features)
        if chosen is not None:  # the contract's features, narrowed the same way (an ignored column is refused)
            features = chosen_features(features, config, list(schema.names))
        categorical = [n for n in features if contract.column(n).type == "string"]
        numeric = [n for n in features if n not in categorical]
    summary = summarize_label(dataset, source.label)
    task = decide_task(summary, config.task, source.task, f"data.label (source {config.source})")
    data_profile = profile(dataset)
    _check_id_column(data_profile, config.id_column)
    method = resolve_method(config.split, task, config.id_column)
    classes = (summary.values or ()) if task == "classification" else ()
    splits = split_dataset(
        dataset, config.split, method, label=source.label, classes=classes, id_column=config.id_column
    )
    row_counts = {"train": splits.train.count(), "val": splits.val.count(), "test": splits.test.count()}
    if min(row_counts.values()) == 0:
        shown = ", ".join(f"{k} {v}" for k, v in row_counts.items())
        raise DataError(f"too few rows to split ({shown}); every split needs rows", where="data.split")
    target = _target(task, source.label, classes, source.class_names, splits.train)
    preprocessing = Preprocessing.fit(
        splits.train,
        numeric,
        categorical,
        standardize=config.standardize,
        encoding=config.categorical_encoding,
        max_categories=config.max_categories,
    )
    to_tensors = _TensorColumns(preprocessing, target)
    return PreparedData(
        train=splits.train.map_batches(to_tensors, batch_format="pandas").materialize(),
        val=splits.val.map_batches(to_tensors, batch_format="pandas").materialize(),
        test=splits.test.materialize(),
        preprocessing=preprocessing,
        target=target,
        source_uri=source.uri,
        row_counts=row_counts,
        fingerprint=fingerprint(raw),
        profile=data_profile,
        schema=schema,
        split_method=splits.method,
        id_column=config.id_column,
        warnings=tuple(_constant_columns(data_profile, preprocessing.features)),
        contract=contract,
        validation=validation.report if validation else None,
        rejected=validation.rejected if validation and not validation.report.ok else None,
        reference=sample_reference(splits.train, row_counts["train"], preprocessing.features, config.split.seed),
    )


def with_schema_roles(config: DataConfig, contract: DataSchema) -> DataConfig:
    """Label and id come from the schema; a config that names different ones is a mistake."""
    for field, declared in (("label", contract.label), ("id_column", contract.id_column)):
        given = getattr(config, field)
        if given is not None and given != declared:
            raise ConfigError(
                f"is '{given}' but the schema {config.schema_file} declares '{declared}'; remove one of them",
                where=f"data.{field}",
            )
    return config.model_copy(update={"label": contract.label, "id_column": contract.id_column})


def _target(
    task: str,
    label: str,
    values: tuple[object, ...],
    names: tuple[str, ...] | None,
    train: ray.data.Dataset,
) -> Target:
    if task == "classification":
        return Target("classification", label, names or tuple(str(v) for v in values), values)
    stats = train.aggregate(Mean(on=label), Std(on=label, ddof=0))
    std = float(stats[f"std({label})"] or 1.0)
    return Target("regression", label, mean=float(stats[f"mean({label})"]), std=std if std > 0 else 1.0)


def _check_id_column(data_profile: DatasetProfile, id_column: str | None) -> None:
    if id_column is None:
        return
    column = next(c for c in data_profile.columns if c.name == id_column)
    if column.nulls:
        raise DataError(f"id column '{id_column}' has {column.nulls} missing value(s)", where="data.id_column")


def _constant_columns(data_profile: DatasetProfile, features: tuple[str, ...]) -> list[str]:
    """Warnings for features that hold one value (or none): they cannot help the model."""
    warnings = []
    for column in data_profile.columns:
        if column.name not in features:
            continue
        if column.count == 0:
            warnings.append(f"feature '{column.name}' is empty in every row")
        elif (column.kind == "numeric" and column.min == column.max) or (
            column.kind == "categorical" and len(column.top) == 1 and column.nulls == 0
        ):
            value = column.min if column.kind == "numeric" else column.top[0][0]
            warnings.append(f"feature '{column.name}' is constant ({value!r} in every row)")
    return warnings


def _chosen_columns(source: LoadedSource, config: DataConfig) -> list[str] | None:
    """The features ``data.features`` / ``data.exclude`` leave; None when neither is set (all but label and id).

    Read from the source's schema before its rows are, so a misspelled column fails at once.
    """
    if config.features is None and not config.exclude:
        return None
    columns = list(source.dataset.schema().names)
    return chosen_features([c for c in columns if c not in (source.label, config.id_column)], config, columns)


def chosen_features(candidates: list[str], config: DataConfig, columns: list[str]) -> list[str]:
    """``data.features`` (in the file's column order) or every candidate, less ``data.exclude``.

    A name in either list that is not a column of the source is an error naming it, as is
    a label or id column listed as a feature: nothing is silently ignored.
    """
    for field, names in (("features", config.features or []), ("exclude", config.exclude)):
        unknown = [n for n in names if n not in columns]
        if unknown:
            raise ConfigError(
                f"no column(s) {', '.join(map(repr, unknown))} in {config.source}; "
                f"the columns are: {', '.join(columns)}",
                where=f"data.{field}",
            )
    if config.features is not None:
        roles = [n for n in config.features if n not in candidates]
        if roles:
            raise ConfigError(
                f"{', '.join(map(repr, roles))} cannot be a feature: the label, the id column, "
                "or a column the schema file does not make a feature",
                where="data.features",
            )
        candidates = [n for n in candidates if n in config.features]
    chosen = [n for n in candidates if n not in config.exclude]
    if not chosen:
        where = "data.features" if config.features is not None and not config.features else "data.exclude"
        raise ConfigError("no feature columns left after data.features and data.exclude", where=where)
    return chosen


def _feature_columns(
    schema: ray.data.Schema, label: str, id_column: str | None, source: str, chosen: list[str] | None
) -> tuple[list[str], list[str]]:
    """Split the chosen columns (None: all but label and id) into numeric and categorical (string) features."""
    names = list(schema.names)
    for role, name, field in (("label", label, "data.label"), ("id", id_column, "data.id_column")):
        if name is not None and name not in names:
            raise DataError(
                f"{role} column '{name}' not found; the columns are: {', '.join(names)}",
                where=f"{field} (source {source})",
            )
    if id_column == label:
        raise DataError("the id column cannot be the label", where="data.id_column")
    types = dict(zip(schema.names, schema.types, strict=True))
    features = [n for n in names if n not in (label, id_column) and (chosen is None or n in chosen)]
    if not features:
        raise DataError(
            f"no feature columns: the only column(s) are {', '.join(names)} (label and id are not features)",
            where=f"data.source={source!r}",
        )
    unsupported = [f"{n} ({types[n]})" for n in features if not (is_numeric(types[n]) or is_categorical(types[n]))]
    if unsupported:
        raise DataError(
            f"feature columns must be numbers or strings; unsupported: {', '.join(unsupported)}",
            where=f"data.source={source!r}",
            hint="Leave such columns out with data.exclude (or list the ones to use in data.features).",
        )
    return [n for n in features if is_numeric(types[n])], [n for n in features if is_categorical(types[n])]


class _TensorColumns:
    """Ray Data batch function: raw columns -> {'x': float32 matrix, 'y': class index or scaled number}."""

    def __init__(self, preprocessing: Preprocessing, target: Target):
        self.preprocessing = preprocessing
        self.target = target

    def __call__(self, batch: pd.DataFrame) -> dict[str, np.ndarray]:
        return {"x": self.preprocessing.transform(batch), "y": self.target.encode(batch[self.target.column])}


def prepare_stage(config: Config, reporter: StageReporter) -> PreparedData:
    """The data stage of every command that trains: read, validate, split, fit preprocessing; warn."""
    with reporter.stage("data", f"reading {config.data.source}, splitting, fitting preprocessing") as stage:
        data = prepare_data(config.data)
        counts = ", ".join(f"{k} {v}" for k, v in data.row_counts.items())
        stage.detail = (
            f"{data.task}, {data.fingerprint.rows} rows -> {counts} ({data.split_method} split); "
            f"fingerprint {data.fingerprint.digest[:12]}"
        )
    for warning in data.warnings:
        reporter.warn(warning)
    return data
