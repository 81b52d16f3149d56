"""Moves of the champion alias, and the history of them that a rollback walks back.

The alias itself says only where the champion is now; the history (a JSON list on the
registered model, oldest first, the last being the champion) is what lets
``mlops-ray promote --rollback`` restore the previous one. Every move goes through
here so the two never disagree.
"""

from __future__ import annotations

import json

from mlflow.tracking import MlflowClient

from mlops_ray.errors import PromotionError
from mlops_ray.tags import HISTORY_TAG, ROLLED_BACK_AT_TAG

HISTORY_KEEP = 100


def move_champion(client: MlflowClient, name: str, alias: str, version: str, previous: str | None) -> None:
    """Point ``alias`` at ``version`` and append it to the history (with ``previous``, if it was never recorded)."""
    history = champion_history(client, name)
    if previous is not None and (not history or history[-1] != previous):
        history.append(previous)  # a champion set before the history existed, or by hand
    history.append(version)
    client.set_registered_model_alias(name, alias, version)
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history[-HISTORY_KEEP:]))


def champion_history(client: MlflowClient, name: str) -> list[str]:
    """Every version that held the champion alias, oldest first."""
    text = client.get_registered_model(name).tags.get(HISTORY_TAG)
    return [str(v) for v in json.loads(text)] if text else []


def roll_back(client: MlflowClient, name: str, alias: str, current: str, when: str) -> str:
    """Point ``alias`` back at the champion before ``current``; return that version."""
    history = champion_history(client, name)
    while history and history[-1] == current:
        history.pop()
    if not history:
        raise PromotionError(
            f"version {current} is the first @{alias} of '{name}'; there is no earlier champion to go back to",
            where=name,
        )
    previous = history[-1]
    client.set_registered_model_alias(name, alias, previous)
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
    client.set_model_version_tag(name, current, ROLLED_BACK_AT_TAG, when)
    return previous
