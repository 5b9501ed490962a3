"""What replay data costs once decoded: uploads measured before decoding, sources after building.

An Arrow IPC body is small on the wire but can expand enormously: a run-end-encoded column of 60M rows
is a few hundred bytes, so is a null-typed column. ``measure_upload`` reads the stream message by message
(record batches are zero-copy views over the body; nothing is expanded) and adds up rows x the width each
column takes as the numpy array the replay keeps (run-end-encoded and dictionary columns expanded, nulls
as object pointers, strings as Python objects). Compressed streams are refused from their metadata alone,
before any buffer is decompressed. The session manager compares the result with its limits (413) before
``decode_upload`` materialises anything.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..exceptions import DataError, PayloadTooLargeError, brief
from ..sources import TableSource
from ..sources.base import ReplaySource

__all__ = ["DataSize", "array_bytes", "decode_upload", "describe", "measure_upload", "source_size"]

#: what a Python object costs beyond its pointer (a str header, a small list, a None is shared: 0)
_OBJECT_OVERHEAD = 56
_POINTER = 8


@dataclass(frozen=True)
class DataSize:
    """Rows and decoded bytes of one session's replay data."""

    rows: int
    nbytes: int


# -- IPC metadata (flatbuffers), read without decoding any body ------------------------------------


def _table(buf: bytes, pos: int) -> tuple[int, int, int]:
    """``(table position, vtable position, vtable length)`` of the flatbuffer table at ``pos``."""
    (soffset,) = struct.unpack_from("<i", buf, pos)
    vtable = pos - soffset
    (vlen,) = struct.unpack_from("<H", buf, vtable)
    return pos, vtable, vlen


def _field(buf: bytes, table: tuple[int, int, int], index: int) -> int | None:
    """Absolute position of field ``index`` of a table, or None when absent (default)."""
    pos, vtable, vlen = table
    slot = 4 + 2 * index
    if slot + 2 > vlen:
        return None
    (offset,) = struct.unpack_from("<H", buf, vtable + slot)
    return pos + offset if offset else None


def _ref(buf: bytes, at: int) -> int:
    """Follow a flatbuffer offset (uoffset) stored at ``at``."""
    (offset,) = struct.unpack_from("<I", buf, at)
    return at + offset


_RECORD_BATCH, _DICTIONARY_BATCH = 3, 2


def _batch_metadata(metadata: bytes) -> tuple[int, bool] | None:
    """``(length, compressed)`` of a record batch or dictionary batch message, None for other messages.

    Message: 0 version, 1 header_type, 2 header, 3 bodyLength. RecordBatch: 0 length, 1 nodes, 2 buffers,
    3 compression. DictionaryBatch: 0 id, 1 data (a RecordBatch), 2 isDelta.
    """
    try:
        message = _table(metadata, _ref(metadata, 0))
        type_at = _field(metadata, message, 1)
        header_type = metadata[type_at] if type_at is not None else 0
        if header_type not in (_RECORD_BATCH, _DICTIONARY_BATCH):
            return None
        header_at = _field(metadata, message, 2)
        if header_at is None:
            raise DataError("an Arrow IPC batch message without a header")
        batch = _table(metadata, _ref(metadata, header_at))
        if header_type == _DICTIONARY_BATCH:
            data_at = _field(metadata, batch, 1)
            if data_at is None:
                raise DataError("an Arrow IPC dictionary batch without data")
            batch = _table(metadata, _ref(metadata, data_at))
        length_at = _field(metadata, batch, 0)
        length = struct.unpack_from("<q", metadata, length_at)[0] if length_at is not None else 0
        return int(length), _field(metadata, batch, 3) is not None
    except (struct.error, IndexError):
        raise DataError("corrupt Arrow IPC message metadata") from None


def _check_messages(body: pa.Buffer, max_rows: int) -> None:
    """Refuse compressed streams and streams over ``max_rows`` from the message metadata alone."""
    rows = 0
    try:
        for message in pa.ipc.MessageReader.open_stream(body):
            meta = _batch_metadata(message.metadata.to_pybytes())
            if meta is None:
                continue
            length, compressed = meta
            if compressed:
                raise DataError(
                    "compressed Arrow IPC streams are not accepted (they expand before they can be measured); "
                    "write the stream without compression"
                )
            if length < 0:
                raise DataError("corrupt Arrow IPC batch: negative length")
            if message.type == "record batch":
                rows += length
                if rows > max_rows:
                    raise PayloadTooLargeError(
                        f"the upload has more than {max_rows:,} rows (ReplayExtension.max_session_rows); "
                        "send fewer rows or raise the limit"
                    )
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"body is not an Arrow IPC stream: {brief(str(exc), 200)}") from None


# -- decoded widths ------------------------------------------------------------------------------------


def _fixed_width(typ: pa.DataType, has_nulls: bool) -> int | None:
    """Bytes per row of a column the replay keeps as a fixed-width numpy array (None: not fixed)."""
    if pa.types.is_integer(typ):
        return 8 if has_nulls else typ.bit_width // 8  # nullable ints become float64
    if pa.types.is_floating(typ):
        return typ.bit_width // 8
    if pa.types.is_boolean(typ):
        return _POINTER if has_nulls else 1  # nullable bools become objects (True/False/None are shared)
    if pa.types.is_temporal(typ) or pa.types.is_decimal(typ):
        return 8 if not pa.types.is_decimal(typ) else _POINTER + _OBJECT_OVERHEAD
    return None


def array_bytes(arr: pa.Array) -> int:
    """Bytes ``arr`` takes once decoded the way the replay keeps it (see the module docstring).

    Walks the type tree using lengths and buffer sizes only: nothing is expanded or copied.
    """
    typ = arr.type
    n = len(arr)
    if isinstance(typ, pa.ExtensionType):
        return array_bytes(arr.storage)
    if pa.types.is_null(typ):
        return n * _POINTER
    if pa.types.is_run_end_encoded(typ):
        values = arr.values
        per_row = array_bytes(values) / max(1, len(values))
        return int(n * max(per_row, 1))
    if pa.types.is_dictionary(typ):
        return n * _POINTER + array_bytes(arr.dictionary)
    width = _fixed_width(typ, arr.null_count > 0)
    if width is not None:
        return n * width
    if (
        pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_binary(typ)
        or pa.types.is_large_binary(typ) or pa.types.is_fixed_size_binary(typ)
    ):
        data = arr.buffers()[-1]
        return n * (_POINTER + _OBJECT_OVERHEAD) + (data.size if data is not None else 0)
    if pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ) or pa.types.is_map(typ):
        return n * (_POINTER + _OBJECT_OVERHEAD) + array_bytes(arr.values)
    if pa.types.is_struct(typ):
        return n * (_POINTER + 4 * _OBJECT_OVERHEAD) + sum(array_bytes(arr.field(i)) for i in range(typ.num_fields))
    if pa.types.is_union(typ):
        return n * _POINTER + sum(array_bytes(arr.field(i)) for i in range(typ.num_fields))
    # anything else (views, ...): what Arrow holds, as objects
    return n * (_POINTER + _OBJECT_OVERHEAD) + arr.get_total_buffer_size()


def measure_upload(body: bytes, max_rows: int) -> DataSize:
    """Rows and decoded bytes of an Arrow IPC stream, without decoding it.

    ``DataError`` if it is not an uncompressed Arrow IPC stream; ``PayloadTooLargeError`` past ``max_rows``.
    """
    if not body:
        raise DataError("empty body: expected an Arrow IPC stream")
    buf = pa.py_buffer(body)
    _check_messages(buf, max_rows)
    rows = nbytes = 0
    try:
        reader = pa.ipc.open_stream(buf)
        for batch in reader:
            rows += batch.num_rows
            nbytes += sum(array_bytes(column) for column in batch.columns)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"body is not an Arrow IPC stream: {brief(str(exc), 200)}") from None
    return DataSize(rows, nbytes)


def decode_upload(body: bytes, time_column: str) -> TableSource:
    """The replay source of an Arrow IPC stream already measured by ``measure_upload``."""
    try:
        table = pa.ipc.open_stream(pa.py_buffer(body)).read_all()
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"body is not an Arrow IPC stream: {brief(str(exc), 200)}") from None
    if time_column not in table.column_names:
        raise DataError(
            f"no time column {brief(time_column)} in the uploaded data (columns: {brief(table.column_names, 200)})"
        )
    return TableSource(table, time=time_column)  # Arrow -> numpy directly: no pandas copy in between


def source_size(source: ReplaySource | None) -> DataSize:
    """Rows and bytes a built source holds in memory.

    In-memory sources (uploads, CSV, sample) count their numpy columns; Parquet sources count nothing:
    they read row groups lazily through the shared, byte-bounded row-group cache.
    """
    ts = getattr(source, "ts", None)
    data = getattr(source, "data", None)
    if not isinstance(ts, np.ndarray) or not isinstance(data, dict):
        return DataSize(0, 0)
    nbytes = ts.nbytes
    for column in data.values():
        column = np.asarray(column)
        nbytes += column.nbytes + (len(column) * _OBJECT_OVERHEAD if column.dtype == object else 0)
    return DataSize(len(ts), int(nbytes))


def mapped_size(source: ReplaySource) -> DataSize:
    """What a source built over a memory-mapped file holds in memory: the columns it materialised.

    Columns that are views of the mapping (numeric columns without nulls, the time column) live in
    file-backed pages shared with the page cache and cost nothing here; text columns (object arrays)
    and copied columns count like ``source_size``. Rows are not counted (``max_session_rows`` bounds the
    decoding of uploads; a mapping's size is bounded by ``max_mapped_bytes``).
    """
    ts = getattr(source, "ts", None)
    data = getattr(source, "data", None)
    if not isinstance(ts, np.ndarray) or not isinstance(data, dict):
        return DataSize(0, 0)
    nbytes = 0
    for column in [ts, *data.values()]:
        if _owns_memory(column):
            nbytes += column.nbytes + (len(column) * _OBJECT_OVERHEAD if column.dtype == object else 0)
    return DataSize(0, int(nbytes))


def _owns_memory(array: np.ndarray) -> bool:
    """Whether ``array``'s memory is numpy's own (a copy), not a view of a foreign (Arrow) buffer."""
    base: object = array
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    return isinstance(base, np.ndarray)


def describe(size: DataSize) -> str:
    """``"1,234 rows, 5.6 MiB"`` for messages."""
    return f"{size.rows:,} rows, {size.nbytes / 1024**2:,.1f} MiB decoded"
