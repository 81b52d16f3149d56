"""``mlops-ray lineage``: follow a version back to its data, and a dataset forward to its versions.

Everything read here was written by the stages themselves (version tags from
``lineage.version_tags``, run tags from ``training.log_run_inputs`` and the sweep),
so the chain needs nothing but the MLflow tracking store: data -> sweep -> trial
-> run -> version -> aliases.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mlops_ray.errors import ModelRefError
from mlops_ray.registry.refs import resolve_model_ref
from mlops_ray.tags import (
    AGAINST_CHAMPION_TAG,
    CONFIG_DIGEST_TAG,
    DECIDED_AT_TAG,
    FINGERPRINT_TAG,
    GIT_COMMIT_TAG,
    GIT_DIRTY_TAG,
    PACKAGE_VERSION_SUFFIX,
    PROMOTION_RUN_TAG,
    RAY_JOB_TAG,
    SCHEMA_DIGEST_TAG,
    SOURCE_TAG,
    STAGE_TAG,
    SWEEP_PARENT_TAG,
    SWEEP_TRIAL_RUN_TAG,
    SWEEP_TRIAL_TAG,
    VERDICT_TAG,
)

CODE_TAGS = (GIT_COMMIT_TAG, GIT_DIRTY_TAG, CONFIG_DIGEST_TAG, RAY_JOB_TAG)


@dataclass(frozen=True)
class Link:
    """One step of the chain: what it is, its id, and a few facts about it."""

    kind: str  # data | sweep | trial | run | version | aliases | code | promotion
    ident: str
    facts: dict[str, str]


def trace_version(model_ref: str, client: MlflowClient | None = None) -> list[Link]:
    """The chain that produced ``model_ref``, oldest first."""
    client = client or MlflowClient()
    version = resolve_model_ref(model_ref, client)
    tags = version.tags
    chain = [
        Link(
            "data",
            tags.get(FINGERPRINT_TAG, "unknown"),
            _present({"source": tags.get(SOURCE_TAG), "schema sha256": tags.get(SCHEMA_DIGEST_TAG)}),
        )
    ]
    if sweep_id := tags.get(SWEEP_PARENT_TAG):
        chain.append(Link("sweep", sweep_id, _run_facts(client, sweep_id)))
        chain.append(Link("trial", tags.get(SWEEP_TRIAL_TAG, "?"), {"run": tags.get(SWEEP_TRIAL_RUN_TAG, "?")}))
    if version.run_id:
        chain.append(Link("run", version.run_id, _run_facts(client, version.run_id, metrics=True)))
    created = datetime.fromtimestamp(version.creation_timestamp / 1000, UTC).isoformat(timespec="seconds")
    chain.append(Link("version", f"{version.name}/{version.version}", {"registered": created}))
    mine = _aliases_of(client.get_registered_model(version.name).aliases, version.version)
    chain.append(Link("aliases", ", ".join(f"@{a}" for a in mine) or "(none)", {}))
    if verdict := tags.get(VERDICT_TAG):
        chain.append(
            Link(
                "promotion",
                verdict,
                _present(
                    {
                        "against champion version": tags.get(AGAINST_CHAMPION_TAG),
                        "run": tags.get(PROMOTION_RUN_TAG),
                        "at": tags.get(DECIDED_AT_TAG),
                    }
                ),
            )
        )
    code = _present({k: tags.get(k) for k in CODE_TAGS})
    code.update({k: v for k, v in sorted(tags.items()) if k.endswith(PACKAGE_VERSION_SUFFIX)})
    chain.append(Link("code", tags.get(GIT_COMMIT_TAG, "(not in a git repository)"), code))
    return chain


@dataclass(frozen=True)
class TrainedVersion:
    name: str
    version: str
    run_id: str
    fingerprint: str
    aliases: tuple[str, ...]


def versions_trained_on(digest: str, client: MlflowClient | None = None) -> list[TrainedVersion]:
    """Every registered version whose data fingerprint is ``digest`` (or starts with it, from 8 characters)."""
    client = client or MlflowClient()
    if len(digest) < 8 or not all(c in "0123456789abcdef" for c in digest.lower()):
        raise ModelRefError(
            f"'{digest}' is not a dataset digest", where="--dataset", hint="Give 8 or more hex characters of it."
        )
    found = client.search_model_versions(f"tags.`{FINGERPRINT_TAG}` LIKE '{digest.lower()}%'", max_results=1000)
    aliases = {name: client.get_registered_model(name).aliases for name in {v.name for v in found}}
    return [
        TrainedVersion(
            v.name,
            str(v.version),
            v.run_id or "",
            v.tags.get(FINGERPRINT_TAG, ""),
            _aliases_of(aliases[v.name], v.version),
        )
        for v in sorted(found, key=lambda v: (v.name, int(v.version)))
    ]


def _aliases_of(aliases: dict[str, str | int], version: str | int) -> tuple[str, ...]:
    return tuple(sorted(a for a, v in aliases.items() if str(v) == str(version)))


def _run_facts(client: MlflowClient, run_id: str, metrics: bool = False) -> dict[str, str]:
    try:
        run = client.get_run(run_id)
    except MlflowException:
        return {"status": "deleted or not in this tracking store"}
    facts = {"name": run.info.run_name or "", "status": run.info.status, "stage": run.data.tags.get(STAGE_TAG)}
    if metrics:
        facts.update({k: f"{v:.4f}" for k, v in sorted(run.data.metrics.items()) if k.startswith("test_")})
    return _present(facts)


def _present(facts: dict[str, str | None]) -> dict[str, str]:
    return {k: v for k, v in facts.items() if v}
