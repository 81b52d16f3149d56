"""``MODEL_REF`` parsing and lookup: ``name@alias`` or ``name/version``.

Every command that takes a model resolves it here, so a typo in the name, an alias
nobody set, or a version that does not exist all end in the same kind of message,
naming what exists instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mlops_ray.errors import ModelRefError

_REF = re.compile(r"^(?P<name>[A-Za-z0-9][\w.-]*)(?:@(?P<alias>[A-Za-z][\w-]*)|/(?P<version>\d+))$")


@dataclass(frozen=True)
class ModelRef:
    name: str
    alias: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        return f"{self.name}@{self.alias}" if self.alias else f"{self.name}/{self.version}"


def parse_model_ref(text: str) -> ModelRef:
    match = _REF.match(text.strip())
    if match is None:
        raise ModelRefError(
            f"'{text}' is not a model reference",
            where="MODEL_REF",
            hint="Write name@alias (e.g. quickstart-breast-cancer@champion) or name/version (e.g. my-model/3).",
        )
    return ModelRef(match["name"], match["alias"], match["version"])


def resolve_model_ref(ref: ModelRef | str, client: MlflowClient | None = None) -> ModelVersion:
    """The registry's version behind ``ref``; a ModelRefError names what exists when it is missing."""
    ref = parse_model_ref(ref) if isinstance(ref, str) else ref
    client = client or MlflowClient()
    try:
        model = client.get_registered_model(ref.name)
    except MlflowException:
        raise ModelRefError(
            f"no registered model is named '{ref.name}'", where=str(ref), hint=_known_models(client)
        ) from None
    if ref.alias is not None:
        if ref.alias not in model.aliases:
            have = ", ".join(f"@{a} -> version {v}" for a, v in sorted(model.aliases.items())) or "none"
            raise ModelRefError(f"model '{ref.name}' has no alias '{ref.alias}' (aliases: {have})", where=str(ref))
        return client.get_model_version(ref.name, str(model.aliases[ref.alias]))
    try:
        return client.get_model_version(ref.name, str(ref.version))
    except MlflowException:
        latest = max((int(v.version) for v in client.search_model_versions(f"name = '{ref.name}'")), default=0)
        raise ModelRefError(
            f"model '{ref.name}' has no version {ref.version} (latest: {latest or 'none'})", where=str(ref)
        ) from None


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version ``alias`` points at, or None when the model or the alias does not exist."""
    try:
        return str(client.get_registered_model(name).aliases.get(alias) or "") or None
    except MlflowException:
        return None


def _known_models(client: MlflowClient) -> str:
    names = sorted(m.name for m in client.search_registered_models(max_results=50))
    return f"Registered models: {', '.join(names)}." if names else "No model is registered yet: run `mlops-ray run`."
