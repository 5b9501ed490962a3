"""``TableSource``: replay Arrow-native data (pyarrow, Polars, DuckDB, any Arrow stream) without pandas.

Anything that speaks Arrow is read as Arrow and converted column by column to the same numpy
arrays ``DataFrameSource`` would build from the equivalent pandas frame (the dtype rules are those
of ``ParquetSource``, which match ``DataFrameSource``'s): the buffers and dtypes are the same on
every host, whichever library the data came from. Numeric columns of one Arrow chunk without nulls
and ``timestamp[ns]`` time columns are zero-copy views of the Arrow buffers (read-only).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..batch import TIME_COLUMN
from ..exceptions import DataError, InvalidValueError, brief
from ..timeconv import arrow_temporal_to_numpy, int_time_to_ns, temporal_to_ns
from .dataframe import ArraySource, _tz_name, missing_times_error, time_order
from .parquet import _numpy_dtype, _to_numpy

__all__ = ["TableSource", "is_arrow_input", "to_arrow_table"]


def _module(obj: Any) -> str:
    return type(obj).__module__.split(".", 1)[0]


def is_arrow_input(obj: Any) -> bool:
    """Whether ``obj`` is read through Arrow: a pyarrow Table/RecordBatch/RecordBatchReader, a Polars
    DataFrame/LazyFrame, a DuckDB relation, or any object with ``__arrow_c_stream__``/``__arrow_c_array__``
    (the Arrow PyCapsule interface). pandas objects are not (``DataFrameSource`` reads them)."""
    if _module(obj) == "pandas":
        return False
    if isinstance(obj, (pa.Table, pa.RecordBatch, pa.RecordBatchReader)):
        return True
    if _module(obj) == "polars" and type(obj).__name__ == "LazyFrame":
        return True
    if _module(obj) == "duckdb" and hasattr(obj, "arrow"):
        return True
    return hasattr(obj, "__arrow_c_stream__") or hasattr(obj, "__arrow_c_array__")


def to_arrow_table(obj: Any) -> pa.Table:
    """``obj`` (see ``is_arrow_input``) as a ``pa.Table``, zero copy where the producer allows.

    A Polars ``LazyFrame`` is collected; a DuckDB relation or a stream is read to its end.
    """
    if isinstance(obj, pa.Table):
        return obj
    if isinstance(obj, pa.RecordBatch):
        return pa.Table.from_batches([obj])
    if isinstance(obj, pa.RecordBatchReader):
        return obj.read_all()
    if _module(obj) == "polars" and type(obj).__name__ == "LazyFrame":
        obj = obj.collect()
    try:
        if hasattr(obj, "__arrow_c_stream__"):
            return pa.RecordBatchReader.from_stream(obj).read_all()
        if hasattr(obj, "__arrow_c_array__"):
            return pa.Table.from_batches([pa.record_batch(obj)])
        if _module(obj) == "duckdb":  # relations of DuckDB releases without the PyCapsule interface
            return obj.arrow()
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise DataError(f"cannot read the {type(obj).__name__} as Arrow data: {brief(str(exc))}") from None
    raise InvalidValueError(f"a {type(obj).__name__} is not Arrow data")


class TableSource(ArraySource):
    """Replay Arrow data: a pyarrow ``Table``/``RecordBatch``/``RecordBatchReader``, a Polars
    ``DataFrame``/``LazyFrame``, a DuckDB relation, or any object exposing ``__arrow_c_stream__``.

    Args:
        data: the data (see above); read once, to the end.
        time: the time column: a timestamp of any unit (naive = UTC; tz-aware -> UTC, the zone kept
            in ``tz``) or integers (ns since the epoch). None: guessed as ``sources.guess_time`` does
            for DataFrames: ``timestamp``, else the pandas index stored in the table's metadata (a
            table made by ``pa.Table.from_pandas``), else the only timestamp column.
        columns: value columns to keep (default: all but the time column and stored pandas index columns).
        sort: stably sort unsorted data by time (``sort=False``: ``DataError``).
        dropna: drop rows whose time is null instead of raising ``DataError``.

    The same rules as ``DataFrameSource`` on the same data: ints keep their dtype (float64 with NaN
    when the column has nulls), bools become object when they have nulls, timestamps naive UTC
    ``datetime64[ns]``, durations ``timedelta64[ns]``, and text, dictionaries (categoricals) and
    other types object arrays (nulls as None). Values outside the ns range raise ``DataError``.
    """

    def __init__(
        self,
        data: Any,
        time: str | None = TIME_COLUMN,
        columns: Sequence[str] | None = None,
        sort: bool = True,
        dropna: bool = False,
    ) -> None:
        table = to_arrow_table(data)
        names = [str(n) for n in table.column_names]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise DataError(f"duplicate column names: {brief(dup)}")
        stored = (table.schema.pandas_metadata or {}).get("index_columns") or []
        index_cols = [c for c in stored if isinstance(c, str)]
        if time is None:
            stamps = [f.name for f in table.schema if pa.types.is_timestamp(f.type)]
            if TIME_COLUMN in names:
                time = TIME_COLUMN
            elif index_cols:
                time = index_cols[0]
            elif len(stamps) == 1:
                time = stamps[0]
            else:
                raise DataError(
                    f"cannot tell which column holds the time: pass time=<column> (columns: {brief(names)})"
                )
        if time not in names:
            raise DataError(f"time column {brief(time)} not found; available columns: {brief(names)}")
        if table.num_rows == 0:
            raise DataError("the table is empty: no rows to replay")

        if columns is None:
            keep = [c for c in names if c != time and c not in index_cols]
        else:
            if isinstance(columns, str):
                columns = [columns]
            missing = [c for c in columns if c not in names]
            if missing:
                raise DataError(f"columns not found: {brief(missing)}; available: {brief(names)}")
            keep = [c for c in dict.fromkeys(columns) if c != time]

        tcol = table.column(time)
        if tcol.null_count:
            valid = pc.is_valid(tcol)
            if not dropna:
                first = int(pc.index(valid, False).as_py())
                raise missing_times_error(time, tcol.null_count, first)
            table = table.filter(valid)
            if table.num_rows == 0:
                raise missing_times_error(time, None, None)
            tcol = table.column(time)
        ts, tz = _time_ns(tcol, time)
        if TIME_COLUMN in keep:  # after the time column's own checks, in the order DataFrameSource uses
            raise DataError(
                f"value column {TIME_COLUMN!r} clashes with the name of the replay time column; "
                f"rename it or pass time={TIME_COLUMN!r}"
            )

        order = time_order(ts, time, sort)
        if order is not None:
            ts = ts[order]
            table = table.select(keep).take(pa.array(order))

        data_cols: dict[str, np.ndarray] = {}
        for c in keep:
            col = table.column(c)
            dtype = _numpy_dtype(col.type, col.null_count > 0)
            if pa.types.is_dictionary(col.type) and dtype == np.dtype(object):
                data_cols[c] = _dictionary_objects(col)
            else:
                data_cols[c] = _to_numpy(col, dtype, f"column {brief(c)}")
        #: Name of the time column in the input.
        self.time_column = time
        super().__init__(ts, data_cols, tz=tz)


def _dictionary_objects(col: pa.ChunkedArray) -> np.ndarray:
    """A dictionary (categorical) column as an object array sharing one Python value per distinct entry:
    8 bytes a row instead of one string object a row (nulls as None)."""
    parts = []
    for chunk in col.chunks:
        values = np.asarray(chunk.dictionary.to_numpy(zero_copy_only=False), dtype=object)
        codes = chunk.indices.fill_null(0).to_numpy(zero_copy_only=False)
        out = values[codes] if len(values) else np.full(len(codes), None, dtype=object)
        if chunk.null_count:
            out[chunk.is_null().to_numpy(zero_copy_only=False)] = None
        parts.append(out)
    if not parts:
        return np.empty(0, dtype=object)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _time_ns(col: pa.ChunkedArray, name: str) -> tuple[np.ndarray, str | None]:
    """``(int64 ns UTC, tz name)`` of a null-free Arrow time column (range-checked, never wrapped)."""
    what = f"time column {brief(name)}"
    typ = col.type
    if pa.types.is_timestamp(typ):
        return temporal_to_ns(arrow_temporal_to_numpy(col), what).view(np.int64), _tz_name(typ.tz)
    if pa.types.is_integer(typ):
        arr = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
        return int_time_to_ns(arr.to_numpy(zero_copy_only=False), what), None
    hint = "pc.cast / pl.col(...).str.to_datetime(...) / strptime"
    if pa.types.is_floating(typ):
        hint = "a cast to timestamp (e.g. pl.from_epoch(..., time_unit='s') or multiply to ns)"
    raise DataError(
        f"{what} has dtype {typ}; expected a timestamp (naive = UTC, or tz-aware) "
        f"or int64 nanoseconds since the epoch; convert it with {hint}"
    )
