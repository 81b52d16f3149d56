"""The label column as a training target, and back: class indices or a scaled number.

Classification maps each label value (a string, or any number) to its position in
the sorted list of values, and the model's output index back to a class name.
Regression standardises the label with the training split's mean and standard
deviation, so the network sees values near zero whatever the label's units, and
the packaged model multiplies them back before answering. The ``Target`` is small
JSON stored with the model, next to the preprocessing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class Target:
    task: Task
    column: str
    classes: tuple[str, ...] = ()  # display names; class index i is classes[i]
    values: tuple[object, ...] = ()  # the label values behind each class, in the same order
    mean: float = 0.0  # regression: training mean and std of the label
    std: float = 1.0

    @property
    def n_outputs(self) -> int:
        return len(self.classes) if self.task == "classification" else 1

    def encode(self, column: pd.Series) -> np.ndarray:
        """Label values -> class indices (int64) or standardised numbers (float32)."""
        if self.task == "classification":
            return pd.Categorical(column.to_numpy(dtype=object), categories=list(self.values)).codes.astype(np.int64)
        return ((pd.to_numeric(column).to_numpy(dtype=np.float64) - self.mean) / self.std).astype(np.float32)

    def decode_numbers(self, outputs: np.ndarray) -> np.ndarray:
        """Regression network outputs -> predictions in the label's own units."""
        return outputs.reshape(-1).astype(np.float64) * self.std + self.mean

    def to_json(self) -> str:
        # Label values are not needed to serve (class names are), and may not be JSON types.
        return json.dumps({"task": self.task, "column": self.column, "classes": list(self.classes),
                           "mean": self.mean, "std": self.std}, indent=2)  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> Target:
        data = json.loads(text)
        return cls(data["task"], data["column"], tuple(data["classes"]), (), data["mean"], data["std"])
