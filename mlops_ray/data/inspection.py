"""Library side of ``mlops-ray data fingerprint|profile``: open the source on Ray, measure it."""

from __future__ import annotations

from mlops_ray.config import Config
from mlops_ray.data.fingerprint import Fingerprint, fingerprint
from mlops_ray.data.profile import DatasetProfile, profile
from mlops_ray.data.read_errors import readable_source_errors
from mlops_ray.data.sources import load_source
from mlops_ray.runtime import ray_session


def fingerprint_source(config: Config) -> tuple[str, Fingerprint]:
    """The source's URI and its layout-independent content digest."""
    with ray_session(config.ray), readable_source_errors(config.data.source):
        source = load_source(config.data)
        return source.uri, fingerprint(source.dataset)


def profile_source(config: Config) -> tuple[str, DatasetProfile]:
    """The source's URI and its per-column profile."""
    with ray_session(config.ray), readable_source_errors(config.data.source):
        source = load_source(config.data)
        return source.uri, profile(source.dataset)
