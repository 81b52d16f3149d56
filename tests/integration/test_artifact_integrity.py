"""The sha256 recorded at registration, checked at every load; weights never unpickled freely.

A real packaged model is logged and registered in a temp SQLite MLflow with its
artifacts in a local folder, so the test can do what an attacker with write access to
the artifact store would do: edit the stored files in place.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient

from mlops_ray.config import load_config
from mlops_ray.data import PreparedData
from mlops_ray.errors import ArtifactIntegrityError
from mlops_ray.models import ModelSpec
from mlops_ray.registry.integrity import combined_digest, load_verified, verify_uri
from mlops_ray.registry.model_store import RegisteredModel
from mlops_ray.registry.packaged_model import ARTIFACT_KEY, WEIGHTS_FILE, PackagedModel, write_bundle
from mlops_ray.registry.refs import parse_model_ref
from mlops_ray.serve.served_model import ServedModel
from mlops_ray.tags import DIGEST_TAG, FILES_TAG
from tests.integration.serving_models import MODEL_NAME, ROOT, listing_rows, prepare, register_version, serving_config

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_cluster")]


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, PreparedData, RegisteredModel]]:
    tmp = tmp_path_factory.mktemp("integrity")
    config = serving_config(tmp, f"sqlite:///{tmp / 'mlflow.db'}", [])
    data = prepare(config)
    registered = register_version(config, data, seed=0, alias="champion")
    yield tmp, data, registered
    mlflow.set_tracking_uri(None)


def stored_file(tmp: Path, name: str) -> Path:
    (path,) = (tmp / "artifacts").rglob(name)
    return path


def test_registration_records_a_sha256_of_every_stored_file(stored: tuple[Path, PreparedData, RegisteredModel]) -> None:
    _, _, registered = stored
    tags = MlflowClient().get_model_version(MODEL_NAME, registered.version).tags
    files = json.loads(tags[FILES_TAG])
    assert f"artifacts/{ARTIFACT_KEY}/{WEIGHTS_FILE}" in files and "MLmodel" in files
    assert any(name.endswith(".py") for name in files)  # the models-from-code file MLflow executes
    assert tags[DIGEST_TAG] == combined_digest(files)
    loaded = load_verified(f"models:/{MODEL_NAME}@champion")  # untouched: loads
    rows = listing_rows(3, seed=1)
    assert len(loaded.unwrap_python_model().predict(None, rows)) == 3


def test_a_tampered_weights_file_is_refused_everywhere_a_version_is_loaded(
    stored: tuple[Path, PreparedData, RegisteredModel],
) -> None:
    tmp, _, registered = stored
    weights = stored_file(tmp, WEIGHTS_FILE)
    original = weights.read_bytes()
    state = torch.load(weights, weights_only=True)
    state = {k: v + 1.0 for k, v in state.items()}  # a well-formed file with different numbers
    torch.save(state, weights)
    try:
        uri = f"models:/{MODEL_NAME}/{registered.version}"
        for attempt in (
            lambda: load_verified(uri),
            lambda: verify_uri(f"models:/{MODEL_NAME}@champion"),  # what evaluate/promote check first
            lambda: ServedModel.load(
                parse_model_ref(f"{MODEL_NAME}@champion"), MlflowClient(), max_rows=10
            ),  # serving, test-model, report
        ):
            with pytest.raises(ArtifactIntegrityError) as refused:
                attempt()
            assert refused.value.where == f"{MODEL_NAME}/{registered.version}"
            assert f"changed: artifacts/{ARTIFACT_KEY}/{WEIGHTS_FILE}" in str(refused.value)
            assert "was not loaded" in str(refused.value)
    finally:
        weights.write_bytes(original)
    load_verified(uri)  # restored: loads again


def test_a_tampered_code_file_is_refused_before_any_of_it_runs(
    stored: tuple[Path, PreparedData, RegisteredModel], tmp_path: Path
) -> None:
    tmp, _, registered = stored
    (code,) = (tmp / "artifacts").rglob("*.py")
    original = code.read_text()
    marker = tmp_path / "pwned"
    code.write_text(f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n" + original)
    try:
        with pytest.raises(ArtifactIntegrityError, match=f"changed: {code.name}"):
            load_verified(f"models:/{MODEL_NAME}/{registered.version}")
        assert not marker.exists()
    finally:
        code.write_text(original)


def test_weights_that_smuggle_a_pickled_callable_are_not_executed(
    stored: tuple[Path, PreparedData, RegisteredModel], tmp_path: Path
) -> None:
    """Even a version registered *with* a malicious weights file cannot run code: weights_only=True."""
    _, data, _ = stored
    marker = tmp_path / "pwned"
    bundle = write_bundle(tmp_path / "bundle", _spec(data), data.preprocessing, data.target, {})
    torch.save({"weight": _Payload(str(marker))}, bundle / WEIGHTS_FILE)
    context = mlflow.pyfunc.PythonModelContext(artifacts={ARTIFACT_KEY: str(bundle)}, model_config={})
    with pytest.raises(Exception, match=r"Weights only load failed"):
        PackagedModel().load_context(context)
    assert not marker.exists()


class _Payload:
    """Unpickling this runs ``os.system`` — what a free ``pickle.load`` of a hostile file would do."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {self.marker}",)


def _spec(data: PreparedData) -> ModelSpec:
    return ModelSpec.from_config(load_config(ROOT / "configs" / "quickstart.yaml").model, data.preprocessing.width, 1)
