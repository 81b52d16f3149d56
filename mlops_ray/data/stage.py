"""``mlops-ray data fingerprint|profile|infer-schema|validate``: open the source on Ray, measure it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlops_ray.config import Config
from mlops_ray.data.fingerprint import Fingerprint, fingerprint_of_source
from mlops_ray.data.prepare import with_schema_roles
from mlops_ray.data.profile import DatasetProfile, profile
from mlops_ray.data.read_errors import readable_source_errors
from mlops_ray.data.schema import DataSchema, infer_schema, load_schema
from mlops_ray.data.sources import load_source
from mlops_ray.data.validation import ValidationReport, validate, write_quarantine
from mlops_ray.errors import ConfigError
from mlops_ray.runtime import ray_session


def fingerprint_source(config: Config) -> tuple[str, Fingerprint]:
    """The source's URI and its layout-independent content digest."""
    with ray_session(config.ray):
        return fingerprint_of_source(config.data)


def profile_source(config: Config) -> tuple[str, DatasetProfile]:
    """The source's URI and its per-column profile."""
    with ray_session(config.ray), readable_source_errors(config.data.source):
        source = load_source(config.data)
        return source.uri, profile(source.dataset)


def infer_source_schema(config: Config) -> tuple[str, DataSchema]:
    """The source's URI and a schema describing it as it is now (the config's label and id roles)."""
    with ray_session(config.ray), readable_source_errors(config.data.source):
        source = load_source(config.data)
        schema = infer_schema(source.dataset, source.label, config.data.id_column, config.data.max_categories)
        return source.uri, schema


@dataclass(frozen=True)
class SourceValidation:
    uri: str
    schema_file: str
    report: ValidationReport
    quarantine: Path | None


def validate_source(config: Config, quarantine: Path | None = None) -> SourceValidation:
    """Check every row against ``data.schema_file``; optionally write the rejected rows to ``quarantine``."""
    if config.data.schema_file is None:
        raise ConfigError(
            "is not set, so there is no contract to check the rows against",
            where="data.schema_file",
            hint="Write one with `mlops-ray data infer-schema CONFIG -o schema.yaml`, review it, "
            "and point data.schema_file at it.",
        )
    contract = load_schema(config.data.schema_file)
    data_config = with_schema_roles(config.data, contract)
    with ray_session(config.ray), readable_source_errors(data_config.source):
        source = load_source(data_config)
        result = validate(source.dataset, contract)
        written = write_quarantine(result.rejected, quarantine) if quarantine and not result.report.ok else None
        return SourceValidation(source.uri, config.data.schema_file, result.report, written)
