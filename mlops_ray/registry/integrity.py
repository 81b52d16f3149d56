"""A sha256 of every model artifact, recorded at registration and checked before loading.

The registry (a database) and the artifact store (a bucket or a folder) are separate
systems with separate access: someone who can write to the bucket can swap
``weights.pt`` or, worse, the model's code file, which MLflow executes when it loads a
models-from-code pyfunc. So registration hashes the files *as stored* and keeps the
digests on the version (tags), and every load of a registered version downloads the
files, hashes them again and refuses the model before any of its code runs when one
differs. Versions registered outside mlops-ray have no digests: they load with a
warning, since there is nothing to compare against.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import warnings
from pathlib import Path

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.store.artifact.models_artifact_repo import REGISTERED_MODEL_META_FILE_NAME
from mlflow.tracking import MlflowClient

from mlops_ray.errors import ArtifactIntegrityError
from mlops_ray.registry.refs import ModelRef, resolve_model_ref
from mlops_ray.tags import DIGEST_TAG, FILES_TAG

MAX_TAG_CHARS = 5000  # MLflow's limit on a model version tag's value

_REGISTERED_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))$")


def file_digests(directory: Path) -> dict[str, str]:
    """sha256 of every file under ``directory``, keyed by its path relative to it (POSIX separators).

    MLflow's client writes ``registered_model_meta`` into a downloaded registered version
    itself (name and version, not stored data), so it is left out.
    """
    digests = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        if path.relative_to(directory).as_posix() == REGISTERED_MODEL_META_FILE_NAME:
            continue
        sha = hashlib.sha256()
        with path.open("rb") as source:
            for chunk in iter(lambda: source.read(1 << 20), b""):
                sha.update(chunk)
        digests[path.relative_to(directory).as_posix()] = sha.hexdigest()
    return digests


def combined_digest(digests: dict[str, str]) -> str:
    """One sha256 over the file list: changes when any file is added, removed, renamed or edited."""
    listing = "".join(f"{name}\0{digest}\n" for name, digest in sorted(digests.items()))
    return hashlib.sha256(listing.encode()).hexdigest()


def digest_tags(model_uri: str) -> dict[str, str]:
    """The version tags that record the stored artifacts of ``model_uri`` (downloaded and hashed)."""
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp))
        digests = file_digests(local)
    tags = {DIGEST_TAG: combined_digest(digests)}
    listing = json.dumps(digests, sort_keys=True, separators=(",", ":"))
    if len(listing) <= MAX_TAG_CHARS:
        tags[FILES_TAG] = listing
    return tags


def verify(local: Path, version: ModelVersion) -> None:
    """Raise ArtifactIntegrityError naming the changed files when ``local`` differs from what was registered."""
    recorded = version.tags.get(DIGEST_TAG)
    label = f"{version.name}/{version.version}"
    if not recorded:
        warnings.warn(
            f"{label} has no recorded artifact digest (registered outside mlops-ray): loaded without verifying",
            stacklevel=3,
        )
        return
    digests = file_digests(local)
    actual = combined_digest(digests)
    if actual == recorded:
        return
    expected = json.loads(version.tags.get(FILES_TAG, "{}"))
    changed = sorted({name for name in digests if expected.get(name) != digests[name]} | (set(expected) - set(digests)))
    named = f" (changed: {', '.join(changed)})" if expected else ""
    raise ArtifactIntegrityError(
        f"the stored model files do not match the sha256 recorded when it was registered{named}; "
        f"expected {recorded[:16]}…, found {actual[:16]}…. The model was not loaded",
        where=label,
        hint="Someone or something changed the artifact store after registration. Register a new version from "
        "a trusted run (`mlops-ray train --register`) rather than loading this one.",
    )


def load_verified(model_uri: str, client: MlflowClient | None = None) -> mlflow.pyfunc.PyFuncModel:
    """``mlflow.pyfunc.load_model``, checking a registered version's files against its digests first.

    ``models:/name/version`` and ``models:/name@alias`` are verified; other URIs (a run's
    logged model, before it is registered) have no digest yet and load as they are.
    """
    version = _registered_version(model_uri, client)
    return mlflow.pyfunc.load_model(model_uri) if version is None else load_version(version)


def verify_uri(model_uri: str, client: MlflowClient | None = None) -> None:
    """Check a registered version's stored files without loading it (a driver, before its workers load it)."""
    version = _registered_version(model_uri, client)
    if version is not None:
        with tempfile.TemporaryDirectory() as tmp:
            verify(_download(version, tmp), version)


def _registered_version(model_uri: str, client: MlflowClient | None) -> ModelVersion | None:
    match = _REGISTERED_URI.match(model_uri)
    if match is None:
        return None
    return resolve_model_ref(ModelRef(match["name"], match["alias"], match["version"]), client or MlflowClient())


def _download(version: ModelVersion, into: str) -> Path:
    uri = f"models:/{version.name}/{version.version}"
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=into))


def load_version(version: ModelVersion, environment_warnings: bool = True) -> mlflow.pyfunc.PyFuncModel:
    """Download a registered version, verify its files, then load it from that same verified copy.

    ``environment_warnings=False`` skips MLflow's comparison of the model's requirements
    with the installed packages (it reads every installed distribution's metadata, ~0.5 s
    once per process) and its other load-time warnings.
    """
    with tempfile.TemporaryDirectory() as tmp:
        local = _download(version, tmp)
        verify(local, version)
        return mlflow.pyfunc.load_model(str(local), suppress_warnings=not environment_warnings)
