"""A version registered by the layout before stage packages still verifies, loads and serves the same answers.

``tests/fixtures/legacy_store`` is a real MLflow store (SQLite file and artifacts) in which
the code of commit 31cbe31, the last one with ``training.py``, ``promotion.py`` and the
other top-level stage modules, registered ``listing-prices`` version 1 and recorded its
answers to five rows (``make_store.py`` says how). Moving modules must not orphan what
users already registered: the stored model names only ``mlops_ray.registry.packaged_model``
(through ``pyfunc_entry.py``), whose path and format stay as they were.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import requests
from mlflow.tracking import MlflowClient

from mlops_ray.registry.refs import parse_model_ref
from mlops_ray.serve.served_model import ServedModel
from tests.conftest import free_port
from tests.integration.serving_models import MODEL_NAME, running_endpoint, serving_config

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_cluster")]
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "legacy_store"
PREFIX = "/tmp/mlops-ray-legacy-store"  # where make_store.py wrote the store; every stored path starts with it


def legacy_store(folder: Path) -> str:
    """A copy of the fixture store in ``folder``, its stored paths pointed there; its tracking URI."""
    shutil.copy(FIXTURE / "mlflow.db", folder / "mlflow.db")
    shutil.copytree(FIXTURE / "artifacts", folder / "artifacts")
    with sqlite3.connect(folder / "mlflow.db") as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for column in db.execute(f"PRAGMA table_info('{table}')").fetchall():
                if column[2].upper().startswith(("VARCHAR", "TEXT")):
                    db.execute(
                        f'UPDATE "{table}" SET "{column[1]}" = REPLACE("{column[1]}", ?, ?) WHERE "{column[1]}" LIKE ?',
                        (PREFIX, str(folder), f"%{PREFIX}%"),
                    )
    return f"sqlite:///{folder / 'mlflow.db'}"


def test_a_version_registered_by_the_previous_layout_verifies_loads_and_answers_the_same(tmp_path: Path) -> None:
    uri = legacy_store(tmp_path)
    expected = json.loads((FIXTURE / "expected.json").read_text())
    rows = pd.DataFrame(expected["rows"])
    mlflow.set_tracking_uri(uri)

    served = ServedModel.load(parse_model_ref(f"{MODEL_NAME}@champion"), MlflowClient(uri), max_rows=50)
    assert served.version == "1" and served.task == "regression"
    assert [a["prediction"] for a in served.predict(rows)] == pytest.approx(expected["predictions"], rel=1e-6)
    served.probe()

    one_replica = ["serve.autoscaling.min_replicas=1", "serve.autoscaling.max_replicas=1"]
    config = serving_config(tmp_path, uri, [f"serve.port={free_port()}", "serve.cpus_per_replica=0.1", *one_replica])
    with running_endpoint(config, uri) as endpoint:
        answer = requests.post(f"{endpoint.url}/predict", json={"records": expected["rows"]}, timeout=30)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model_version"] == "1"
    assert [p["prediction"] for p in body["predictions"]] == pytest.approx(expected["predictions"], rel=1e-6)
