"""Turn a source that cannot be read into one DataError naming the source and the reason.

Ray Data reads lazily, so a corrupt Parquet footer, an empty or ragged CSV surface
wherever the dataset first executes, wrapped in a remote traceback; for CSV, Ray
drops pyarrow's reason, which is recovered by streaming the failing local file once.
Only read failures are translated (a pyarrow error, a JSON-lines parse error or Ray
Data's "Failed to read");
any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
from ray.exceptions import RayTaskError

from mlops_ray.errors import DataError

_ARROW_LINE = re.compile(r"(?:pyarrow\.lib\.)?Arrow\w*(?:Error|Invalid|Exception): (.+)")
_READ_FAILURE = re.compile(r"Failed to read \w+ file: (\S+?)\.? ")
# pandas' JSON-lines reader (Ray Data's read_json falls back to it) raises a bare ValueError
_JSON_LINE = re.compile(r"ValueError: ((?:Expected|Unexpected|Unmatched|Trailing|Invalid|No ).*(?:position|JSON).*)")


@contextmanager
def readable_source_errors(source: str) -> Iterator[None]:
    try:
        yield
    except pa.ArrowException as exc:
        raise DataError(f"cannot be read: {_first_line(str(exc))}", where=f"data.source={source!r}") from None
    except RayTaskError as exc:
        text = str(exc)
        arrow = _ARROW_LINE.search(text) or _JSON_LINE.search(text)
        failed = _READ_FAILURE.search(text)
        if not (arrow or failed):
            raise
        path = failed.group(1) if failed else None
        reason = arrow.group(1) if arrow else _csv_reason(path) or "not a valid file of the configured format"
        file = f" (file {path})" if path else ""
        raise DataError(f"cannot be read{file}: {_first_line(reason)}", where=f"data.source={source!r}") from None


def _csv_reason(path: str | None) -> str | None:
    """Ray's CSV reader drops pyarrow's reason; stream the failing local file once to recover it."""
    if not path or not path.endswith(".csv") or not Path(path).is_file():
        return None
    try:
        for _ in pa_csv.open_csv(path):
            pass
    except pa.ArrowException as exc:
        return str(exc)
    return None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0].strip() if text.strip() else "unknown reason"
