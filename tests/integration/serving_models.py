"""Registered model versions for the serving tests, without spending a minute training each.

The versions are real mlops-ray packaged models (preprocessing fitted by Ray Data on
real rows, a network built by the model builder, logged and registered by the same
functions the pipeline uses, with the schema contract in the run); only the weights
are a seeded initialisation instead of a training run, because what these tests
check is the serving path, not model quality.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import ray
import requests
import torch

from mlops_ray.config import Config, load_config
from mlops_ray.data import PreparedData, prepare_data
from mlops_ray.data.schema import ColumnSchema, DataSchema, save_schema
from mlops_ray.models import ModelSpec, build_model
from mlops_ray.models.record import TrainResult
from mlops_ray.registry.lineage import version_tags
from mlops_ray.registry.model_store import RegisteredModel, log_packaged_model, register_model
from mlops_ray.runtime import connect_tracking
from mlops_ray.serve import Endpoint, deploy_model
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
MODEL_NAME = "listing-prices"
SCHEMA = DataSchema(
    columns=(
        ColumnSchema(name="listing", type="integer", role="id", nullable=False),
        ColumnSchema(name="size_m2", type="float", nullable=False, min=10.0, max=500.0),
        ColumnSchema(name="rooms", type="integer", nullable=True, min=1, max=10),
        ColumnSchema(name="district", type="string", nullable=True, categories=("north", "south", "centre")),
        ColumnSchema(name="price", type="float", role="label", nullable=False),
    )
)


def listing_rows(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    size = rng.uniform(20, 200, rows)
    rooms = rng.integers(1, 7, rows).astype(float)
    district = rng.choice(["north", "south", "centre"], rows)
    bonus = pd.Series(district).map({"north": 50, "south": 0, "centre": 150}).to_numpy()
    frame = pd.DataFrame(
        {
            "listing": np.arange(rows),
            "size_m2": size,
            "rooms": rooms,
            "district": pd.Series(district, dtype=object),
            "price": 3.0 * size + 15.0 * rooms + bonus + rng.normal(0, 10, rows),
        }
    )
    frame.loc[rng.random(rows) < 0.05, "rooms"] = None
    frame.loc[rng.random(rows) < 0.05, "district"] = None
    return frame


def serving_config(tmp_path: Path, tracking_uri: str, overrides: list[str]) -> Config:
    folder = tmp_path / "listings"
    folder.mkdir(exist_ok=True)
    listing_rows(600).to_parquet(folder / "part-0.parquet", index=False)
    schema_file = save_schema(SCHEMA, tmp_path / "schema.yaml")
    return load_config(
        ROOT / "configs" / "quickstart.yaml",
        [
            f"data.source={folder}",
            f"data.schema_file={schema_file}",
            f"tracking.uri={tracking_uri}",
            f"tracking.artifact_location={tmp_path / 'artifacts'}",
            f"registry.model_name={MODEL_NAME}",
            f"serve.capture.path={tmp_path / 'capture'}",
            *overrides,
        ],
    )


def register_version(
    config: Config, data: PreparedData, seed: int, alias: str, state: dict[str, torch.Tensor] | None = None
) -> RegisteredModel:
    """Log and register one packaged model whose network is initialised from ``seed`` (or has ``state``)."""
    spec = ModelSpec.from_config(config.model, data.preprocessing.width, 1)
    torch.manual_seed(seed)
    if state is None:
        state = {k: v.clone() for k, v in build_model(spec).state_dict().items()}
    trained = TrainResult(spec, state, {}, "", 0, {})
    connect_tracking(config.tracking)
    with mlflow.start_run(run_name=f"serving-fixture-{seed}"):
        assert data.contract is not None
        mlflow.log_dict(data.contract.to_dict(), "data/schema.json")
        uri = log_packaged_model(trained, data)
    return register_model(uri, config.registry.model_name, alias, version_tags(data, "serving fixture"))


def registered_listings(
    tmp: Path, overrides: list[str], seeds: dict[str, int]
) -> tuple[Config, str, dict[str, RegisteredModel]]:
    """A serving config on a fresh SQLite store in ``tmp`` (a free port, 0.1-CPU replicas) and a version per alias.

    ``seeds`` maps each alias to the seed of its version's weights, registered in that order.
    """
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    config = serving_config(tmp, uri, [f"serve.port={free_port()}", "serve.cpus_per_replica=0.1", *overrides])
    data = prepare(config)
    versions = {alias: register_version(config, data, seed=seed, alias=alias) for alias, seed in seeds.items()}
    return config, uri, versions


@contextmanager
def running_endpoint(config: Config, tracking_uri: str) -> Iterator[Endpoint]:
    """The config's endpoint deployed on the session's Ray, shut down however the tests end."""
    endpoint = deploy_model(config, tracking_uri)
    try:
        yield endpoint
    finally:
        endpoint.shutdown()


def prepare(config: Config) -> PreparedData:
    return prepare_data(config.data)


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def metrics_text() -> str:
    """What Prometheus would scrape from this node: Ray's and the endpoints' metrics."""
    port = ray.nodes()[0]["MetricsExportPort"]
    return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
