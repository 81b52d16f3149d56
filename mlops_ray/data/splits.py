"""Deterministic train / val / test splits that stream, whatever the data's size.

Every row gets a position ``u`` in [0, 1) from a keyed hash: of the whole row for
``random`` and ``stratified``, of the id column for ``hash``. Hashing content (not
file order) makes a split independent of how the rows are laid out in files or
blocks, and identical rows always land together.

- ``hash``: fixed cut points on ``u``; appending rows never moves an old row.
- ``random``: cut points chosen so each split gets its share of rows.
- ``stratified``: cut points chosen per class, so each split keeps the class mix.

Cut points come from a histogram of ``u`` (per class) summed over the batches, so
the driver holds ``classes x 4096`` counts, never rows; a split is off its target
size by at most the rows of one histogram bin (none for tables under a few
thousand rows per class, 0.03% of a class beyond). Rows with the same id in two
splits (possible with ``random`` and ``stratified``) are a leakage error.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
import ray.data

from mlops_ray.config import SplitConfig
from mlops_ray.data.fingerprint import canonical_frame
from mlops_ray.data.target import Task
from mlops_ray.errors import DataError

SPLIT_COLUMN = "__mlops_ray_split"
SPLITS = ("train", "val", "test")
BIN_BITS = 12
BINS = 2**BIN_BITS


@dataclass(frozen=True)
class Splits:
    train: ray.data.Dataset
    val: ray.data.Dataset
    test: ray.data.Dataset
    method: str


def resolve_method(config: SplitConfig, task: Task, id_column: str | None) -> str:
    if config.method == "auto":
        return "hash" if id_column else ("stratified" if task == "classification" else "random")
    if config.method == "hash" and not id_column:
        raise DataError("a hash split needs data.id_column", where="data.split.method")
    if config.method == "stratified" and task != "classification":
        raise DataError(
            "a stratified split needs a classification label; use random or hash", where="data.split.method"
        )
    return config.method


def split_dataset(
    dataset: ray.data.Dataset,
    config: SplitConfig,
    method: str,
    *,
    label: str,
    classes: tuple[object, ...] = (),
    id_column: str | None = None,
) -> Splits:
    """Assign every row of ``dataset`` to one split, check ids for leakage, return the three splits."""
    hasher = _Positions(config.seed, [id_column] if method == "hash" else None)
    strata = (label, classes) if method == "stratified" else None
    if method == "hash":
        train_share = 1.0 - config.val_fraction - config.test_fraction
        cuts = np.array([[_to_bin_edge(train_share), _to_bin_edge(1.0 - config.test_fraction)]])
    else:
        histogram = _histogram(dataset, hasher, strata)
        cuts = np.array([_cut_points(counts, config) for counts in histogram])
    tagged = dataset.map_batches(_AssignSplit(hasher, strata, cuts), batch_format="pandas").materialize()
    if id_column and method != "hash":
        _check_leakage(tagged, id_column)
    parts = [tagged.filter(expr=f"{SPLIT_COLUMN} == {i}").drop_columns([SPLIT_COLUMN]) for i in range(len(SPLITS))]
    return Splits(*parts, method=method)


class _Positions:
    """Row -> 64-bit hash mixed with the seed, so another seed gives another split.

    pandas' row hash ignores its key for numeric columns, so the seed is mixed in
    afterwards with the splitmix64 finaliser, which also spreads every input bit
    over the top bits that pick a histogram bin.
    """

    def __init__(self, seed: int, columns: list[str] | None):
        self.seed_bits = np.uint64(int(hashlib.sha256(f"mlops-ray-split-{seed}".encode()).hexdigest()[:16], 16))
        self.columns = columns

    def __call__(self, batch: pd.DataFrame) -> np.ndarray:
        frame = batch if self.columns is None else batch[self.columns]
        hashes = pd.util.hash_pandas_object(canonical_frame(frame), index=False).to_numpy(dtype=np.uint64)
        return _splitmix64(hashes ^ self.seed_bits)


def _splitmix64(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _strata_codes(batch: pd.DataFrame, strata: tuple[str, tuple[object, ...]] | None) -> np.ndarray:
    if strata is None:
        return np.zeros(len(batch), dtype=np.int64)
    label, classes = strata
    return pd.Categorical(batch[label].to_numpy(dtype=object), categories=list(classes)).codes.astype(np.int64)


def _bins(hashes: np.ndarray) -> np.ndarray:
    return (hashes >> np.uint64(64 - BIN_BITS)).astype(np.int64)


class _BatchHistogram:
    def __init__(self, hasher: _Positions, strata: tuple[str, tuple[object, ...]] | None):
        self.hasher = hasher
        self.strata = strata
        self.groups = len(strata[1]) if strata else 1

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        flat = _strata_codes(batch, self.strata) * BINS + _bins(self.hasher(batch))
        counts = np.bincount(flat, minlength=self.groups * BINS)
        return pd.DataFrame({"counts": [counts]})


def _histogram(
    dataset: ray.data.Dataset, hasher: _Positions, strata: tuple[str, tuple[object, ...]] | None
) -> np.ndarray:
    groups = len(strata[1]) if strata else 1
    total = np.zeros(groups * BINS, dtype=np.int64)
    for part in dataset.map_batches(_BatchHistogram(hasher, strata), batch_format="pandas").iter_rows():
        total += np.asarray(part["counts"], dtype=np.int64)
    return total.reshape(groups, BINS)


def _cut_points(counts: np.ndarray, config: SplitConfig) -> tuple[int, int]:
    """Bin edges whose cumulative counts come closest to the train and train+val targets."""
    cumulative = np.concatenate([[0], np.cumsum(counts)])
    rows = cumulative[-1]
    train_target = round(rows * (1.0 - config.val_fraction - config.test_fraction))
    val_target = round(rows * (1.0 - config.test_fraction))
    return int(np.abs(cumulative - train_target).argmin()), int(np.abs(cumulative - val_target).argmin())


def _to_bin_edge(fraction: float) -> int:
    return round(fraction * BINS)


class _AssignSplit:
    def __init__(self, hasher: _Positions, strata: tuple[str, tuple[object, ...]] | None, cuts: np.ndarray):
        self.hasher = hasher
        self.strata = strata
        self.cuts = cuts

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        bins = _bins(self.hasher(batch))
        cuts = self.cuts[_strata_codes(batch, self.strata)]
        split = np.where(bins < cuts[:, 0], 0, np.where(bins < cuts[:, 1], 1, 2)).astype(np.int8)
        return batch.assign(**{SPLIT_COLUMN: split})


def _check_leakage(tagged: ray.data.Dataset, id_column: str) -> None:
    from ray.data.aggregate import Max, Min

    spread = (
        tagged.select_columns([id_column, SPLIT_COLUMN])
        .groupby(id_column)
        .aggregate(Min(SPLIT_COLUMN, alias_name="first"), Max(SPLIT_COLUMN, alias_name="last"))
    )
    leaked = spread.filter(expr="first != last")
    count = leaked.count()
    if count:
        examples = ", ".join(repr(row[id_column]) for row in leaked.take(3))
        raise DataError(
            f"{count} value(s) of id column '{id_column}' appear in more than one split (e.g. {examples}): "
            "rows of one entity would be trained on and tested on",
            where="data.id_column",
            hint="Use data.split.method: hash (rows with the same id stay together) or remove the duplicates.",
        )
