"""Read a column as its declared type without coercing anything: a value either is one, or is flagged.

Used by validation both to find ``type`` violations and to cast the good rows, so
the check and the cast cannot disagree. A numeric or boolean column may arrive as
strings (a CSV reader falls back to strings when a few values are bad); those are
parsed here, with blank cells and pyarrow's CSV null markers (``NA``, ``null``, ...)
treated as missing. ``"1.0"`` is the integer 1; ``"1.5"`` is not an integer.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from mlops_ray.data.schema import ColumnType, is_string_type

_TARGET = {"integer": pa.int64(), "float": pa.float64(), "boolean": pa.bool_(), "string": pa.string()}
_NULL_MARKERS = pa.array(pa_csv.ConvertOptions().null_values, pa.string())
_EXACT_FLOAT = 2**53  # beyond this not every integer has a float64 of its own
_INTEGER_TEXT = r"^-?\d{1,18}$"  # 18 digits always fit int64; longer ones are checked one by one
_LONG_INTEGER_TEXT = r"^-?\d{19,}$"
_FLOAT_TEXT = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


def parse_column(values: pa.ChunkedArray | pa.Array, declared: ColumnType) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """(values as the declared type with unparseable ones null, missing mask, wrong-type mask)."""
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    none = np.zeros(len(array), dtype=bool)
    if declared == "other":
        return array, mask(pc.is_null(array)), none
    if pa.types.is_null(array.type):
        return pa.nulls(len(array), _TARGET[declared]), ~none, none
    if is_string_type(array.type):
        array = array.cast(pa.string())
        if declared == "string":
            return array, mask(pc.is_null(array)), none
        text = pc.utf8_trim_whitespace(array)
        missing = mask(pc.is_null(text)) | mask(pc.is_in(text, value_set=_NULL_MARKERS))
        text = pc.if_else(pa.array(missing), pa.scalar(None, pa.string()), text)
        parsed = {"integer": _integers_from_text, "float": _floats_from_text, "boolean": _booleans_from_text}
        result = parsed[declared](text)
    else:
        missing = mask(pc.is_null(array))
        result = _from_numbers(array, declared)
    return result, missing, ~missing & mask(pc.is_null(result))


def _from_numbers(array: pa.Array, declared: ColumnType) -> pa.Array:
    """Numbers or booleans -> the declared type; a value the type cannot hold exactly becomes null."""
    if declared == "boolean":
        if pa.types.is_boolean(array.type):
            return array
        return _keep(pc.equal(array, 1), pc.is_in(array, value_set=pa.array([0, 1], array.type)))
    if pa.types.is_floating(array.type):
        array = array.cast(pa.float64())
        finite = pc.is_finite(array)
        if declared == "float":
            return _keep(array, finite)
        whole = pc.and_(finite, pc.equal(pc.floor(array), array))
        fits = pc.and_(pc.greater_equal(array, -(2.0**63)), pc.less(array, 2.0**63))
        return _keep(array, pc.and_(whole, fits)).cast(pa.int64())
    if declared == "integer":
        if pa.types.is_uint64(array.type):
            return _keep(array, pc.less_equal(array, pa.scalar(2**63 - 1, pa.uint64()))).cast(pa.int64())
        return array.cast(pa.int64())
    if pa.types.is_int64(array.type) or pa.types.is_uint64(array.type):  # narrower integers are all exact
        floats = array.cast(pa.float64(), safe=False)
        limit = 2.0**64 if pa.types.is_uint64(array.type) else 2.0**63
        back = _keep(floats, pc.and_(pc.greater_equal(floats, -(2.0**63)), pc.less(floats, limit)))
        array = _keep(array, pc.equal(back.cast(array.type), array))  # exact if it survives the round trip
    return array.cast(pa.float64(), safe=False)  # safe=False: pyarrow refuses any |value| > 2**53, exact or not


def _integers_from_text(text: pa.Array) -> pa.Array:
    text = pc.replace_substring_regex(text, r"^\+", "")
    short = pc.match_substring_regex(text, _INTEGER_TEXT)
    values = _keep(text, short).cast(pa.int64())
    floats = _floats_from_text(_keep(text, pc.invert(short)))
    floats = _keep(floats, pc.less_equal(pc.abs(floats), float(_EXACT_FLOAT)))  # beyond, "1e17" may not be exact
    values = pc.coalesce(values, _from_numbers(floats, "integer"))  # "1.0" is 1, "1.5" is null
    long = np.flatnonzero(mask(pc.match_substring_regex(text, _LONG_INTEGER_TEXT)))
    if len(long):
        fitting = {int(i): int(text[int(i)].as_py()) for i in long}
        fitting = {i: v for i, v in fitting.items() if -(2**63) <= v < 2**63}
        exact = pa.array([fitting.get(i) for i in range(len(text))], pa.int64())
        values = pc.coalesce(values, exact)
    return values


def _floats_from_text(text: pa.Array) -> pa.Array:
    values = _keep(text, pc.match_substring_regex(text, _FLOAT_TEXT)).cast(pa.float64())
    return _keep(values, pc.is_finite(values))  # "1e999" parses to inf, which no float column accepts


def _booleans_from_text(text: pa.Array) -> pa.Array:
    lower = pc.utf8_lower(text)
    true = pc.is_in(lower, pa.array(["true", "1"]))
    return _keep(true, pc.or_(true, pc.is_in(lower, pa.array(["false", "0"]))))


def _keep(values: pa.Array, condition: pa.Array) -> pa.Array:
    """``values`` where ``condition`` holds, null elsewhere (also where ``condition`` is null)."""
    return pc.if_else(condition.fill_null(False), values, pa.scalar(None, values.type))


def mask(condition: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(condition.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
