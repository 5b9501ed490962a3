"""The Redis stream layout: entry ids, the schema hash, decoding entries to Chunks and publishing Chunks.

Stream layout (what :func:`publish_chunk` writes and the readers expect):

- one entry per row; entry id ``<ms>-<seq>``. By default ids are derived from the row time
  (``"<ts // 1e6>-*"``) so a time range maps to an id range;
- the row's exact time in the field ``ts`` (int ns; without it the id's milliseconds are the time);
- one field per value column, values as text (``repr`` of floats, so they round-trip exactly);
- the column dtypes in a companion hash ``<stream>:schema`` (``{column: dtype}``), so readers rebuild
  int8/bool/... columns exactly. Without it readers use ``fields=`` or infer float64/object.

Every chunk decoded here carries two extra int64 columns ``entry_ms`` and ``entry_seq`` (the entry id,
numeric so it can go on the wire) unless ``entry_columns=False``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ...batch import Chunk
from ...exceptions import DataError, FeedError, InvalidValueError, brief
from ...timeconv import int_time_to_ns, temporal_to_ns

__all__ = [
    "SCHEMA_SUFFIX",
    "ENTRY_COLUMNS",
    "parse_entry_id",
    "time_to_id",
    "publish_chunk",
    "apublish_chunk",
]

SCHEMA_SUFFIX = ":schema"
ENTRY_COLUMNS = ("entry_ms", "entry_seq")
MAX_SEQ = 18446744073709551615  # largest sequence part of a stream id

Entry = tuple[Any, Mapping[bytes, bytes]]


# ---------------------------------------------------------------------------------------------------
# entry ids


def parse_entry_id(entry_id: bytes | str) -> tuple[int, int]:
    """``b"1700000000000-3"`` -> ``(1700000000000, 3)``."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def id_text(entry_id: bytes | str) -> str:
    """An entry id as ``str`` (redis-py returns bytes unless ``decode_responses``)."""
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def time_to_id(ns: int, *, end: bool = False) -> str:
    """The stream id bounding time ``ns``: ``<ms>-0`` (start) or ``<ms>-<max seq>`` (end, inclusive)."""
    ms = max(0, int(ns) // 1_000_000)
    return f"{ms}-{MAX_SEQ if end else 0}"


def id_before(entry_id: str) -> str:
    """The largest id smaller than ``entry_id`` (XREAD from it includes ``entry_id``)."""
    ms, seq = parse_entry_id(entry_id)
    if seq > 0:
        return f"{ms}-{seq - 1}"
    return f"{ms - 1}-{MAX_SEQ}" if ms > 0 else "0-0"


# ---------------------------------------------------------------------------------------------------
# clients


def async_client(url_or_client: Any, client_name: str | None = None) -> tuple[Any, bool]:
    """An asyncio Redis client and whether we own it (and must close it)."""
    if isinstance(url_or_client, str):
        import redis.asyncio as aioredis

        return aioredis.from_url(url_or_client, client_name=client_name), True
    return url_or_client, False


def sync_client(url_or_client: Any) -> tuple[Any, bool]:
    """A blocking Redis client and whether we own it."""
    if isinstance(url_or_client, str):
        import redis

        return redis.Redis.from_url(url_or_client), True
    return url_or_client, False


# ---------------------------------------------------------------------------------------------------
# schema and decoding


def _id_ns(entry_ms: np.ndarray) -> np.ndarray:
    """Entry-id milliseconds as int64 ns, range-checked (``ms * 1_000_000`` would wrap past 2262)."""
    return temporal_to_ns(entry_ms.view("datetime64[ms]"), "stream entry id (ms)").view(np.int64)


def decode_schema(raw: Mapping[Any, Any] | None) -> dict[str, np.dtype] | None:
    """The ``:schema`` hash as ``{column: dtype}`` (None when the hash is missing)."""
    if not raw:
        return None
    out = {}
    for k, v in raw.items():
        key = k.decode() if isinstance(k, bytes) else str(k)
        try:
            out[key] = np.dtype(v.decode() if isinstance(v, bytes) else v)
        except TypeError:
            raise DataError(f"schema hash: column {brief(key)} has an unknown dtype {brief(v)}") from None
    return out


def infer_schema(fields: Mapping[bytes, bytes], time_field: str | None) -> dict[str, np.dtype]:
    """float64 for values that parse as numbers, object otherwise (used without a schema hash)."""
    out: dict[str, np.dtype] = {}
    for k, v in fields.items():
        name = k.decode() if isinstance(k, bytes) else str(k)
        if name == time_field:
            continue
        try:
            float(v)
            out[name] = np.dtype(np.float64)
        except (TypeError, ValueError):
            out[name] = np.dtype(object)
    return out


class Schema:
    """Decodes lists of stream entries into Chunks."""

    def __init__(self, dtypes: Mapping[str, np.dtype], time_field: str | None, entry_columns: bool) -> None:
        self.dtypes = {k: v for k, v in dtypes.items() if k != time_field}
        self.time_field = time_field
        self.entry_columns = entry_columns
        self._keys = {name: name.encode() for name in self.dtypes}
        self._tkey = time_field.encode() if time_field else None

    @property
    def columns(self) -> list[str]:
        return list(self.dtypes) + (list(ENTRY_COLUMNS) if self.entry_columns else [])

    @property
    def all_dtypes(self) -> dict[str, np.dtype]:
        out = dict(self.dtypes)
        if self.entry_columns:
            out.update({c: np.dtype(np.int64) for c in ENTRY_COLUMNS})
        return out

    def empty(self) -> Chunk:
        return Chunk.empty(self.all_dtypes)

    def decode(self, entries: Sequence[Entry]) -> Chunk:
        n = len(entries)
        if n == 0:
            return self.empty()
        ids = np.array([parse_entry_id(e[0]) for e in entries], dtype=np.int64).reshape(n, 2)
        entry_ms = np.ascontiguousarray(ids[:, 0])
        ts = self._times(entries, entry_ms)
        cols: dict[str, np.ndarray] = {name: self._column(name, dtype, entries) for name, dtype in self.dtypes.items()}
        if self.entry_columns:
            cols["entry_ms"] = entry_ms
            cols["entry_seq"] = np.ascontiguousarray(ids[:, 1])
        return Chunk(ts, cols)

    def _times(self, entries: Sequence[Entry], entry_ms: np.ndarray) -> np.ndarray:
        """The ``time_field`` values (int ns), else the id milliseconds, per entry."""
        what = f"stream field {brief(self.time_field)}"
        if self._tkey is not None:
            raw = [f.get(self._tkey) for _, f in entries]
            if all(v is not None for v in raw):
                try:
                    return int_time_to_ns(np.array(raw).astype(np.int64), what)
                except (ValueError, OverflowError) as exc:  # DataError is a ValueError: keep its message
                    if isinstance(exc, DataError):
                        raise
                    raise DataError(f"{what} is not int nanoseconds: {brief(str(exc))}") from None
            if any(v is not None for v in raw):
                id_ns = _id_ns(entry_ms).tolist()
                try:
                    mixed = np.array([int(v) if v is not None else ns for v, ns in zip(raw, id_ns)], dtype=np.int64)
                except (ValueError, OverflowError) as exc:
                    raise DataError(f"{what} is not int nanoseconds: {brief(str(exc))}") from None
                return int_time_to_ns(mixed, what)
        return _id_ns(entry_ms)

    def _column(self, name: str, dtype: np.dtype, entries: Sequence[Entry]) -> np.ndarray:
        key = self._keys[name]
        if dtype.kind == "O":
            arr = np.empty(len(entries), dtype=object)
            arr[:] = [(v.decode() if isinstance(v, bytes) else v) for v in (f.get(key) for _, f in entries)]
            return arr
        fill = b"nan" if dtype.kind == "f" else b"0"
        raw_vals = np.array([f.get(key, fill) for _, f in entries])
        try:
            if dtype.kind == "b":
                return raw_vals.astype(np.float64).astype(bool)
            if dtype.kind in "iu":
                try:
                    return raw_vals.astype(dtype)
                except ValueError:  # "1.0" written for an int column
                    return raw_vals.astype(np.float64).astype(dtype)
            return raw_vals.astype(dtype)
        except ValueError as exc:
            raise DataError(f"stream field {brief(name)} cannot be read as {dtype}: {brief(str(exc))}") from None


async def aread_schema(
    client: Any, stream: str, fields: Mapping[str, np.dtype] | None, time_field: str | None, entry_columns: bool
) -> Schema | None:
    """The schema from ``fields``, else the ``:schema`` hash, else the newest entry (None: empty stream)."""
    dtypes = fields
    if dtypes is None:
        dtypes = decode_schema(await client.hgetall(stream + SCHEMA_SUFFIX))
    if dtypes is None:
        last = await client.xrevrange(stream, count=1)
        if not last:
            return None
        dtypes = infer_schema(last[0][1], time_field)
    return Schema(dtypes, time_field, entry_columns)


# ---------------------------------------------------------------------------------------------------
# publishing


def _encode_columns(chunk: Chunk, time_field: str | None) -> tuple[list[str], list[list[str]]]:
    """Text values per column (row-major lists of strings are what XADD needs)."""
    names: list[str] = []
    texts: list[list[str]] = []
    if time_field:
        names.append(time_field)
        texts.append(np.asarray(chunk.ts, dtype=np.int64).astype(str).tolist())
    for name, col in chunk.columns.items():
        if name in ENTRY_COLUMNS:
            continue
        col = np.asarray(col)
        if col.dtype.kind == "b":
            col = col.astype(np.uint8)
        if col.dtype.kind == "O":
            texts.append(["" if v is None else str(v) for v in col.tolist()])
        else:
            texts.append(col.astype(str).tolist())  # floats: shortest repr, round-trips exactly
        names.append(name)
    return names, texts


def _schema_of(chunk: Chunk) -> dict[str, str]:
    out = {}
    for name, col in chunk.columns.items():
        if name not in ENTRY_COLUMNS:
            dtype = np.asarray(col).dtype
            out[name] = "object" if dtype.kind == "O" else dtype.str
    return out


def _pipeline(
    client: Any, stream: str, chunk: Chunk, ids: str, time_field: str | None, maxlen: int | None, write_schema: bool
) -> tuple[Any, int]:
    """The one pipeline both publishers execute: the schema hash (optional), then one XADD per row.

    Returns the pipeline and how many leading replies are not entry ids.
    """
    if ids not in ("ts", "auto"):
        raise InvalidValueError(f"ids must be 'ts' or 'auto', not {brief(ids)}")
    pipe = client.pipeline(transaction=False)
    skip = 0
    if write_schema and chunk.columns:
        pipe.hset(stream + SCHEMA_SUFFIX, mapping=_schema_of(chunk))
        skip = 1
    names, texts = _encode_columns(chunk, time_field)
    ms = (np.asarray(chunk.ts, dtype=np.int64) // 1_000_000).tolist() if ids == "ts" else None
    trim: dict[str, Any] = {} if maxlen is None else {"maxlen": maxlen, "approximate": True}
    for i in range(len(chunk)):
        fields = {name: t[i] for name, t in zip(names, texts)}
        pipe.xadd(stream, fields, id=f"{ms[i]}-*" if ms is not None else "*", **trim)
    return pipe, skip


def _new_ids(replies: list[Any], skip: int) -> list[str]:
    return [id_text(r) for r in replies[skip:]]


def _publish_failed(stream: str, exc: Exception) -> FeedError:
    # redis.ResponseError: id not greater than the stream's last one, key of the wrong type
    return FeedError(f"XADD to stream {brief(stream)} failed: {brief(str(exc))}")


def publish_chunk(
    client: Any, stream: str, chunk: Chunk, *, ids: str = "ts", time_field: str | None = "ts",
    maxlen: int | None = None, write_schema: bool = True,
) -> list[str]:
    """Append a chunk's rows to ``stream`` with one pipelined round trip (sync ``redis.Redis`` or a URL).

    ``ids="ts"`` derives entry ids from row times (``<ms>-*``, must not go back in time: Redis refuses
    ids lower than the stream's last id); ``ids="auto"`` lets Redis stamp ids with its clock.
    Returns the new entry ids.
    """
    client, own = sync_client(client)
    try:
        pipe, skip = _pipeline(client, stream, chunk, ids, time_field, maxlen, write_schema)
        try:
            replies = pipe.execute()
        except Exception as exc:
            raise _publish_failed(stream, exc) from exc
    finally:
        if own:
            client.close()
    return _new_ids(replies, skip)


async def apublish_chunk(
    client: Any, stream: str, chunk: Chunk, *, ids: str = "ts", time_field: str | None = "ts",
    maxlen: int | None = None, write_schema: bool = True,
) -> list[str]:
    """Asyncio version of :func:`publish_chunk` (``redis.asyncio.Redis`` or a URL)."""
    client, own = async_client(client)
    try:
        pipe, skip = _pipeline(client, stream, chunk, ids, time_field, maxlen, write_schema)
        try:
            replies = await pipe.execute()
        except Exception as exc:
            raise _publish_failed(stream, exc) from exc
    finally:
        if own:
            await client.aclose()
    return _new_ids(replies, skip)
