"""``synthetic:classification`` and ``synthetic:regression``: generated tables for tests and benchmarks.

Rows are produced by Ray Data tasks from ``ray.data.range`` (nothing is built on the
driver), each block seeded from ``(seed, first row id)``, so the same config always
yields the same rows, at any size. The label depends on the numeric features and
on the categories, so a model has something real to learn: the class with the
largest noisy score, or (regression) the score itself plus Gaussian noise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import ray.data

from mlops_ray.config import SyntheticConfig
from mlops_ray.data.target import Task

ROWS_PER_BLOCK = 100_000
LABEL = "label"


def synthetic_table(config: SyntheticConfig, task: Task) -> ray.data.Dataset:
    blocks = max(1, -(-config.rows // ROWS_PER_BLOCK))
    return ray.data.range(config.rows, override_num_blocks=blocks).map_batches(
        _Generator(config, task), batch_format="pandas", batch_size=None
    )


class _Generator:
    def __init__(self, config: SyntheticConfig, task: Task):
        self.config = config
        self.task = task
        outputs = config.classes if task == "classification" else 1
        self.weights = np.random.default_rng([config.seed, 2**31]).normal(
            size=(config.features + config.categoricals * config.categories, outputs)
        )

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        c = self.config
        ids = batch["id"].to_numpy()
        rng = np.random.default_rng([c.seed, int(ids[0]) if len(ids) else 0])
        numeric = rng.normal(size=(len(ids), c.features))
        codes = rng.integers(0, c.categories, size=(len(ids), c.categoricals))
        one_hot = np.zeros((len(ids), c.categoricals * c.categories))
        for j in range(c.categoricals):
            one_hot[np.arange(len(ids)), j * c.categories + codes[:, j]] = 1.0
        scores = np.hstack([numeric, one_hot]) @ self.weights
        frame = pd.DataFrame({f"num_{i}": numeric[:, i] for i in range(c.features)})
        for j in range(c.categoricals):
            frame[f"cat_{j}"] = pd.Series([f"c{j}_{k}" for k in codes[:, j]], dtype=object)
        if c.missing_fraction:
            holes = rng.random(size=(len(ids), c.features + c.categoricals)) < c.missing_fraction
            for i, name in enumerate(frame.columns):
                frame.loc[holes[:, i], name] = None
        if self.task == "classification":
            frame[LABEL] = (scores + rng.gumbel(size=scores.shape)).argmax(axis=1).astype(np.int64)
        else:
            signal = scores[:, 0]
            frame[LABEL] = signal + rng.normal(scale=c.noise * max(float(signal.std()), 1e-9), size=len(ids))
        return frame
