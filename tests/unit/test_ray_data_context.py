"""The Ray Data settings every mlops-ray process applies before it builds a dataset."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import ray.data
from ray.data.context import ShuffleStrategy

from mlops_ray.runtime import configure_ray_data


@pytest.fixture
def data_context() -> Iterator[ray.data.DataContext]:
    context = ray.data.DataContext.get_current()
    saved = (context.shuffle_strategy, context.enable_progress_bars)
    yield context
    context.shuffle_strategy, context.enable_progress_bars = saved


def test_aggregations_use_the_task_based_shuffle(
    data_context: ray.data.DataContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAY_DATA_DEFAULT_SHUFFLE_STRATEGY", raising=False)
    data_context.shuffle_strategy = ShuffleStrategy.SHUFFLE_V2
    configure_ray_data()
    assert data_context.shuffle_strategy == ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
    assert data_context.enable_progress_bars is False


def test_a_strategy_the_user_chose_in_the_environment_wins(
    data_context: ray.data.DataContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAY_DATA_DEFAULT_SHUFFLE_STRATEGY", "shuffle_v2")
    data_context.shuffle_strategy = ShuffleStrategy.SHUFFLE_V2
    configure_ray_data()
    assert data_context.shuffle_strategy == ShuffleStrategy.SHUFFLE_V2
