"""The one Chunk <-> Arrow converter: ``Batch.to_arrow``, the recorder and the kernel's upload use it.

The time column is ``timestamp[ns, UTC]``; value columns go through ``column_to_arrow`` (object columns
with ``from_pandas`` so ``None``/``NaN`` become nulls; text and categorical values become Arrow strings,
bools with nulls stay bools with nulls), so what the server reads back (``to_pandas``) gives the engine
the same numpy dtypes the kernel had.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from ..batch import TIME_COLUMN, Chunk
from .base import ReplaySource

__all__ = [
    "TIME_TYPE", "UPLOAD_ROWS", "chunk_to_arrow", "column_to_arrow", "source_to_arrow_batch", "source_to_arrow_stream",
]

log = logging.getLogger(__name__)

#: Arrow type of the time column.
TIME_TYPE = pa.timestamp("ns", tz="UTC")
#: Rows per record batch of an upload stream.
UPLOAD_ROWS = 65_536

_CONVERT_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError)


def column_to_arrow(values: np.ndarray, type: pa.DataType | None = None) -> pa.Array:
    """One value column as an Arrow array (``type`` forces the type, e.g. a writer's schema)."""
    col = np.asarray(values)
    return pa.array(col, type=type, from_pandas=col.dtype.kind == "O" or type is not None)


def time_to_arrow(ts: np.ndarray) -> pa.Array:
    """int64 ns since the epoch as ``timestamp[ns, UTC]``."""
    return pa.array(np.asarray(ts, np.int64), pa.int64()).cast(TIME_TYPE)


def chunk_to_arrow(
    chunk: Chunk, time_column: str = TIME_COLUMN, schema: pa.Schema | None = None,
    columns: Mapping[str, Any] | None = None,
) -> pa.RecordBatch:
    """``chunk`` as a record batch: time column first, then ``columns`` (default: all) in order.

    With ``schema`` every column is cast to its field's type (a stream keeps one schema).
    """
    names = list(columns) if columns is not None else list(chunk.columns)
    arrays = [time_to_arrow(chunk.ts)]
    for name in names:
        field_type = schema.field(name).type if schema is not None else None
        arrays.append(column_to_arrow(chunk.columns[name], field_type))
    if schema is not None:
        return pa.RecordBatch.from_arrays(arrays, schema=schema)
    return pa.RecordBatch.from_arrays(arrays, names=[time_column, *names])


def _stream_schema(source: ReplaySource, first: Chunk, time_column: str) -> pa.Schema:
    """The upload's schema: column types from the whole column for in-memory sources (an object column
    whose first rows are all missing is still typed by its values), else from the first chunk.
    Columns Arrow cannot convert (mixed Python objects) are left out with a warning naming them."""
    data = getattr(source, "data", None)
    fields = [pa.field(time_column, TIME_TYPE)]
    for name, col in first.columns.items():
        whole = data.get(name) if isinstance(data, Mapping) else None
        try:
            arr = column_to_arrow(whole if whole is not None else col)
        except _CONVERT_ERRORS:
            log.warning("column %r cannot be uploaded to the replay server; left out", name)
            continue
        fields.append(pa.field(name, arr.type))
    return pa.schema(fields)


def source_to_arrow_batch(source: ReplaySource, time_column: str = TIME_COLUMN) -> pa.RecordBatch | None:
    """Every row of an in-memory source (``.ts``/``.data``: ``ArraySource``, in-memory ``MergedSource``) as ONE
    record batch, the stream's schema and types; None for sources that are not in memory.

    One batch keeps each column contiguous, so a reader of an IPC file maps it without a copy (attach on
    the same host, ``sources.handoff``); numeric columns are views of the source's arrays until written.
    Text columns are dictionary-encoded: the server then holds one Python string per distinct value.
    """
    ts, data = getattr(source, "ts", None), getattr(source, "data", None)
    if not isinstance(ts, np.ndarray) or not isinstance(data, Mapping):
        return None
    chunk = Chunk(ts, data)
    schema = _stream_schema(source, chunk, time_column)
    batch = chunk_to_arrow(chunk, time_column, schema, columns=dict.fromkeys(schema.names[1:]))
    arrays, fields = [], []
    for field, arr in zip(batch.schema, batch.columns):
        if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
            arr = arr.dictionary_encode()
            field = field.with_type(arr.type)
        arrays.append(arr)
        fields.append(field)
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def source_to_arrow_stream(
    source: ReplaySource, rows_per_batch: int = UPLOAD_ROWS, time_column: str = TIME_COLUMN
) -> Iterator[bytes]:
    """The source's rows as an Arrow IPC stream, yielded in pieces (one record batch at a time)."""
    cursor = source.open()
    sink = _Sink()
    writer: Any = None
    schema: pa.Schema | None = None
    try:
        while True:
            chunk = cursor.read(rows_per_batch)
            if writer is not None and not len(chunk):
                break
            if schema is None:
                schema = _stream_schema(source, chunk, time_column)
                writer = pa.ipc.new_stream(sink, schema)
            writer.write_batch(chunk_to_arrow(chunk, time_column, schema, columns=dict.fromkeys(schema.names[1:])))
            yield sink.take()
            if not len(chunk):
                break
        if writer is not None:
            writer.close()
            yield sink.take()
    finally:
        cursor.close()


class _Sink:
    """A write-only file object whose bytes are taken piecewise."""

    closed = False

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: Any) -> int:
        b = bytes(data)
        self._parts.append(b)
        return len(b)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        out, self._parts = b"".join(self._parts), []
        return out
