"""A content digest of a dataset that ignores file layout and row order.

Each Ray Data batch hashes its rows (columns in sorted order, values in a canonical
type so that 1 and 1.0, or NaN and null, read from different files agree) and sums
the 64-bit row hashes modulo 2**64, twice with independent keys. Sums commute, so
the digest is the same whether the rows sit in one file or eight, in any block
order; only one small row per batch reaches the driver. Changing, adding or
removing any row changes the digest (up to a 2**-128 collision chance).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import pandas as pd
import ray.data

from mlops_ray.config import DataConfig
from mlops_ray.data.read_errors import readable_source_errors
from mlops_ray.data.sources import load_source

HASH_KEYS = ("mlops-ray-fp-k01", "mlops-ray-fp-k02")  # pandas wants 16-byte keys
MODULUS = 2**64
# 128 bits, as strong as the two 64-bit sums underneath, and within MLflow's 36-character limit
# for a dataset digest, so the same string identifies the data everywhere.
DIGEST_CHARS = 32


@dataclass(frozen=True)
class Fingerprint:
    digest: str
    rows: int
    columns: tuple[str, ...]


def fingerprint(dataset: ray.data.Dataset) -> Fingerprint:
    columns = tuple(sorted(dataset.schema().names))
    partials = dataset.map_batches(_batch_sums, batch_format="pandas").iter_rows()
    rows, sums = 0, [0] * len(HASH_KEYS)
    for partial in partials:
        rows += int(partial["rows"])
        sums = [(total + int(partial[f"h{i}"])) % MODULUS for i, total in enumerate(sums)]
    payload = json.dumps({"columns": columns, "rows": rows, "sums": sums})
    return Fingerprint(hashlib.sha256(payload.encode()).hexdigest()[:DIGEST_CHARS], rows, columns)


def fingerprint_of_source(data: DataConfig) -> tuple[str, Fingerprint]:
    """The source's URI and its digest; Ray must be up. A file that cannot be read is one ``DataError``."""
    with readable_source_errors(data.source):
        source = load_source(data)
        return source.uri, fingerprint(source.dataset)


def _batch_sums(batch: pd.DataFrame) -> pd.DataFrame:
    canonical = canonical_frame(batch)
    sums = {
        f"h{i}": [str(int(pd.util.hash_pandas_object(canonical, index=False, hash_key=key).to_numpy().sum()))]
        for i, key in enumerate(HASH_KEYS)
    }  # numpy sums uint64 modulo 2**64, which is what makes the sum a set hash
    return pd.DataFrame({"rows": [len(batch)], **sums})


def canonical_frame(batch: pd.DataFrame) -> pd.DataFrame:
    """Numbers as float64 (NaN for missing), everything else as str-or-None."""
    out = {}
    batch = batch.reset_index(drop=True)  # a batch's index may repeat (shuffled or concatenated frames)
    for name in sorted(batch.columns):
        column = batch[name]
        if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
            out[name] = pd.to_numeric(column, errors="coerce").astype("float64")
        else:
            out[name] = column.astype(object).where(column.notna(), None).map(lambda v: None if v is None else str(v))
    return pd.DataFrame(out)
