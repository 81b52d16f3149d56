"""Feature preprocessing that travels with the model.

Statistics are fitted with Ray Data's ``StandardScaler`` (a distributed aggregation
over the training split only) and then kept as plain JSON. The same ``transform``
runs inside the Ray Data pipeline during training and inside the served model, so
training and serving cannot drift apart, and loading a model never unpickles a
preprocessor.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import ray.data
from ray.data.preprocessors import StandardScaler

_EPSILON = 1e-8  # same guard as Ray's StandardScaler for constant columns


@dataclass(frozen=True)
class Preprocessing:
    features: tuple[str, ...]
    means: tuple[float, ...]
    stds: tuple[float, ...]

    @classmethod
    def fit(cls, train: ray.data.Dataset, features: list[str], standardize: bool) -> Preprocessing:
        if not standardize:
            return cls(tuple(features), (0.0,) * len(features), (1.0,) * len(features))
        stats = StandardScaler(columns=features).fit(train).stats_
        return cls(
            tuple(features),
            tuple(float(stats[f"mean({c})"]) for c in features),
            tuple(float(stats[f"std({c})"]) for c in features),
        )

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Raw feature columns -> the float32 matrix the network consumes."""
        raw = frame[list(self.features)].to_numpy(dtype=np.float32)
        std = np.where(np.asarray(self.stds) < _EPSILON, 1.0, self.stds).astype(np.float32)
        return (raw - np.asarray(self.means, dtype=np.float32)) / std

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Preprocessing:
        data = json.loads(text)
        return cls(tuple(data["features"]), tuple(data["means"]), tuple(data["stds"]))
