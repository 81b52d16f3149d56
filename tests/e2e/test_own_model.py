"""Your own torch network through the whole pipeline: ``model.name: tabular_nets:build`` from the working directory.

The builder's module lives in a temporary working directory, as a user's would, and
nowhere else: the session's Ray workers (started from the repository root) find it
only through the directory the driver imported it from, and the Serve replica and a
fresh Python process in another directory only through the source the registered
MLflow model ships. Classification runs with two Ray Train workers (DDP), regression
in local mode; both on a file with string columns and missing values, both served.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from mlops_ray.errors import ConfigError
from tests.e2e.test_task_kinds import mixed_rows, run_pipeline
from tests.integration.test_tune import runs_of, sweep, sweep_config

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_cluster")]

BUILDER = '''
"""A user's own tabular network: a gated residual MLP (LayerNorm, so one-row batches are fine)."""
import torch
from torch import nn


class GatedBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.value = nn.Linear(width, width)
        self.gate = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        return x + self.value(h) * torch.sigmoid(self.gate(h))


def build(n_features: int, n_outputs: int, hidden: int = 16, blocks: int = 1) -> nn.Module:
    return nn.Sequential(
        nn.Linear(n_features, hidden), *(GatedBlock(hidden) for _ in range(blocks)), nn.Linear(hidden, n_outputs)
    )
'''

LOAD_ELSEWHERE = """
import json, sys
import mlflow, pandas as pd
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model(sys.argv[2])
print(json.dumps(model.predict(pd.DataFrame([json.loads(sys.argv[3])])).iloc[0].to_dict()))
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The user's working directory, holding ``tabular_nets.py``; forgotten by this process afterwards."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "tabular_nets.py").write_text(textwrap.dedent(BUILDER))
    monkeypatch.chdir(work)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield work
    sys.modules.pop("tabular_nets", None)


def test_your_own_network_classifies_with_two_workers_and_the_model_carries_its_source(
    tmp_path: Path, workdir: Path
) -> None:
    frame = mixed_rows(1_500, start=0, seed=3)
    frame["band"] = np.where(frame.pop("price") > 400, "high", "low")
    source = tmp_path / "listings.parquet"
    frame.to_parquet(source, index=False)

    result, tracking = run_pipeline(
        tmp_path,
        [
            f"data.source={source}",
            "data.label=band",
            "data.id_column=listing",
            "model.name=tabular_nets:build",
            "model.params={hidden: 32, blocks: 2}",
            "train.num_workers=2",
            "train.resources_per_worker={CPU: 0.5}",
            "train.epochs=15",
            "train.lr=0.005",
            "registry.model_name=own-net",
        ],
    )
    assert result.test_metrics["test_accuracy"] > 0.85, result.test_metrics  # the classes are about even
    answer = result.prediction["predictions"][0]  # over HTTP, from a replica that can only import the shipped copy
    assert answer["predicted_class"] in ("high", "low")

    run = MlflowClient(tracking).get_run(result.run_id)
    assert run.data.params["model.name"] == "tabular_nets:build" and run.data.params["model.params.hidden"] == "32"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    row = {"size_m2": 150.0, "rooms": None, "district": "centre", "street": "street-2"}
    loaded = subprocess.run(
        [sys.executable, "-c", LOAD_ELSEWHERE, tracking, "models:/own-net@champion", json.dumps(row)],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert json.loads(loaded.stdout.splitlines()[-1])["predicted_class"] in ("high", "low")


def test_your_own_network_regresses_in_local_mode_and_serves(tmp_path: Path, workdir: Path) -> None:
    source = tmp_path / "listings.parquet"
    mixed_rows(1_500, start=0, seed=4).to_parquet(source, index=False)
    result, _ = run_pipeline(
        tmp_path,
        [
            f"data.source={source}",
            "data.label=price",
            "data.id_column=listing",
            "model.name=tabular_nets:build",
            "train.num_workers=0",
            "train.epochs=30",
            "train.lr=0.005",
            "registry.model_name=own-net-prices",
        ],
    )
    assert result.test_metrics["test_r2"] > 0.8, result.test_metrics
    assert isinstance(result.prediction["predictions"][0]["prediction"], float)


def test_a_builder_whose_output_has_the_wrong_shape_stops_the_run_before_anything_is_logged(
    tmp_path: Path, workdir: Path
) -> None:
    (workdir / "tabular_nets.py").write_text(
        "from torch import nn\ndef build(n_features, n_outputs, hidden=8):\n    return nn.Linear(n_features, 1)\n"
    )
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(
        ConfigError, match=r"model builder 'tabular_nets:build'.*output of shape \(2, 1\); expected \(2, 3\)"
    ):
        run_pipeline(tmp_path, ["data.source=sklearn:wine", "model.name=tabular_nets:build"])
    client = MlflowClient(tracking)
    assert client.search_registered_models() == []
    assert all(client.search_runs([e.experiment_id]) == [] for e in client.search_experiments())


def test_a_sweep_over_model_name_trains_each_network_and_registers_the_best(tmp_path: Path, workdir: Path) -> None:
    space = "{model.name: {type: choice, values: [mlp, 'tabular_nets:build']}}"
    config = sweep_config(  # the grid: each network once
        tmp_path,
        f"tune={{space: {space}, searcher: grid, scheduler: none, storage_path: {tmp_path / 'tune'}}}",
    )
    outcome = sweep(config)
    parent, children = runs_of(config)
    assert sorted(c.data.params["model.name"] for c in children) == ["mlp", "tabular_nets:build"]
    assert all(c.info.status == "FINISHED" for c in children) and parent.info.status == "FINISHED"
    best = next(c for c in children if c.data.tags["mlops_ray.trial_id"] == outcome.best.trial_id)
    client = MlflowClient(config.tracking.uri)
    assert client.get_model_version("tune-test", outcome.model.version).run_id == best.info.run_id
    mlflow.set_tracking_uri(config.tracking.uri)
    model = mlflow.pyfunc.load_model(f"models:/tune-test/{outcome.model.version}")
    rows = outcome.data.test_rows(3)[list(outcome.data.features)]
    assert len(model.predict(rows)) == 3
