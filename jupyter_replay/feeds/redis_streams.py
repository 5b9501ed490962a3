"""Redis Streams feeds: live tail (XREAD BLOCK), replay of a time range (XRANGE), catch-up then live.

Stream layout (what :func:`publish_chunk` writes and the readers expect):

- one entry per row; entry id ``<ms>-<seq>``. By default ids are derived from the row time
  (``"<ts // 1e6>-*"``) so a time range maps to an id range;
- the row's exact time in the field ``ts`` (int ns; without it the id's milliseconds are the time);
- one field per value column, values as text (``repr`` of floats, so they round-trip exactly);
- the column dtypes in a companion hash ``<stream>:schema`` (``{column: dtype}``), so readers rebuild
  int8/bool/... columns exactly. Without it readers use ``fields=`` or infer float64/object.

Every chunk produced here carries two extra int64 columns ``entry_ms`` and ``entry_seq`` (the entry id,
numeric so it can go on the wire) unless ``entry_columns=False``.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any, AsyncIterator, Callable, Mapping, Sequence

import numpy as np

from ..batch import Chunk
from ..exceptions import DataError, FeedError, InvalidValueError
from ..sources.base import LiveSource
from ..sources.dataframe import ArraySource
from ..timeconv import TimeLike, to_ns
from ..timer import SystemTimer, Timer
from ._columns import FieldsSpec, backoff_delay, normalize_fields

__all__ = [
    "RedisStreamSource",
    "RedisStreamReplay",
    "CatchUpSource",
    "catch_up_then_live",
    "publish_chunk",
    "apublish_chunk",
    "parse_entry_id",
    "time_to_id",
    "SCHEMA_SUFFIX",
    "ENTRY_COLUMNS",
]

log = logging.getLogger(__name__)

SCHEMA_SUFFIX = ":schema"
ENTRY_COLUMNS = ("entry_ms", "entry_seq")
_MAX_SEQ = 18446744073709551615  # largest sequence part of a stream id


# ---------------------------------------------------------------------------------------------------
# ids, schema and decoding


def parse_entry_id(entry_id: bytes | str) -> tuple[int, int]:
    """``b"1700000000000-3"`` -> ``(1700000000000, 3)``."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def time_to_id(ns: int, *, end: bool = False) -> str:
    """The stream id bounding time ``ns``: ``<ms>-0`` (start) or ``<ms>-<max seq>`` (end, inclusive)."""
    ms = max(0, int(ns) // 1_000_000)
    return f"{ms}-{_MAX_SEQ if end else 0}"


def _client(url_or_client: Any, client_name: str | None) -> tuple[Any, bool]:
    """An asyncio Redis client and whether we own it (and must close it)."""
    if isinstance(url_or_client, str):
        import redis.asyncio as aioredis

        return aioredis.from_url(url_or_client, client_name=client_name), True
    return url_or_client, False


def _sync_client(url_or_client: Any) -> tuple[Any, bool]:
    if isinstance(url_or_client, str):
        import redis

        return redis.Redis.from_url(url_or_client), True
    return url_or_client, False


def _decode_schema(raw: Mapping[Any, Any] | None) -> dict[str, np.dtype] | None:
    if not raw:
        return None
    out = {}
    for k, v in raw.items():
        key = k.decode() if isinstance(k, bytes) else str(k)
        out[key] = np.dtype(v.decode() if isinstance(v, bytes) else v)
    return out


def _infer_schema(fields: Mapping[bytes, bytes], time_field: str | None) -> dict[str, np.dtype]:
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


class _Schema:
    """Decodes lists of stream entries into Chunks."""

    def __init__(self, dtypes: dict[str, np.dtype], time_field: str | None, entry_columns: bool) -> None:
        self.dtypes = dtypes
        self.time_field = time_field
        self.entry_columns = entry_columns
        self._keys = {name: name.encode() for name in dtypes}
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

    def decode(self, entries: Sequence[tuple[bytes, Mapping[bytes, bytes]]]) -> Chunk:
        n = len(entries)
        if n == 0:
            return self.empty()
        ids = np.array([parse_entry_id(e[0]) for e in entries], dtype=np.int64).reshape(n, 2)
        entry_ms = np.ascontiguousarray(ids[:, 0])
        ts = None
        if self._tkey is not None:
            raw = [f.get(self._tkey) for _, f in entries]
            if all(v is not None for v in raw):
                try:
                    ts = np.array(raw).astype(np.int64)
                except ValueError as exc:
                    raise DataError(f"stream field {self.time_field!r} is not int nanoseconds: {exc}") from None
            elif any(v is not None for v in raw):
                ts = np.array(
                    [int(v) if v is not None else ms * 1_000_000 for v, ms in zip(raw, entry_ms.tolist())],
                    dtype=np.int64,
                )
        if ts is None:
            ts = entry_ms * 1_000_000
        cols: dict[str, np.ndarray] = {}
        for name, dtype in self.dtypes.items():
            key = self._keys[name]
            if dtype.kind == "O":
                arr = np.empty(n, dtype=object)
                arr[:] = [(v.decode() if isinstance(v, bytes) else v) for v in (f.get(key) for _, f in entries)]
            else:
                fill = b"nan" if dtype.kind == "f" else b"0"
                raw_vals = np.array([f.get(key, fill) for _, f in entries])
                try:
                    if dtype.kind == "b":
                        arr = raw_vals.astype(np.float64).astype(bool)
                    elif dtype.kind in "iu":
                        try:
                            arr = raw_vals.astype(dtype)
                        except ValueError:  # "1.0" written for an int column
                            arr = raw_vals.astype(np.float64).astype(dtype)
                    else:
                        arr = raw_vals.astype(dtype)
                except ValueError as exc:
                    raise DataError(f"stream field {name!r} cannot be read as {dtype}: {exc}") from None
            cols[name] = arr
        if self.entry_columns:
            cols["entry_ms"] = entry_ms
            cols["entry_seq"] = np.ascontiguousarray(ids[:, 1])
        return Chunk(ts, cols)


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
    return {
        name: np.asarray(col).dtype.str if np.asarray(col).dtype.kind != "O" else "object"
        for name, col in chunk.columns.items()
        if name not in ENTRY_COLUMNS
    }


def _xadd_all(pipe: Any, stream: str, chunk: Chunk, ids: str, time_field: str | None, maxlen: int | None) -> None:
    names, texts = _encode_columns(chunk, time_field)
    if ids == "ts":
        ms = (np.asarray(chunk.ts, dtype=np.int64) // 1_000_000).tolist()
    elif ids != "auto":
        raise InvalidValueError(f"ids must be 'ts' or 'auto', not {ids!r}")
    for i in range(len(chunk)):
        fields = {name: t[i] for name, t in zip(names, texts)}
        entry_id = f"{ms[i]}-*" if ids == "ts" else "*"
        if maxlen is None:
            pipe.xadd(stream, fields, id=entry_id)
        else:
            pipe.xadd(stream, fields, id=entry_id, maxlen=maxlen, approximate=True)


def publish_chunk(
    client: Any, stream: str, chunk: Chunk, *, ids: str = "ts", time_field: str | None = "ts",
    maxlen: int | None = None, write_schema: bool = True,
) -> list[str]:
    """Append a chunk's rows to ``stream`` with one pipelined round trip (sync ``redis.Redis``).

    ``ids="ts"`` derives entry ids from row times (``<ms>-*``, must not go back in time: Redis refuses
    ids lower than the stream's last id); ``ids="auto"`` lets Redis stamp ids with its clock.
    Returns the new entry ids.
    """
    client, own = _sync_client(client)
    try:
        pipe = client.pipeline(transaction=False)
        if write_schema and chunk.columns:
            pipe.hset(stream + SCHEMA_SUFFIX, mapping=_schema_of(chunk))
        _xadd_all(pipe, stream, chunk, ids, time_field, maxlen)
        try:
            res = pipe.execute()
        except Exception as exc:  # redis.ResponseError: id not greater than the last one, wrong type
            raise FeedError(f"XADD to {stream!r} failed: {exc}") from exc
    finally:
        if own:
            client.close()
    out = res[1:] if write_schema and chunk.columns else res
    return [r.decode() if isinstance(r, bytes) else str(r) for r in out]


async def apublish_chunk(
    client: Any, stream: str, chunk: Chunk, *, ids: str = "ts", time_field: str | None = "ts",
    maxlen: int | None = None, write_schema: bool = True,
) -> list[str]:
    """Asyncio version of :func:`publish_chunk` (``redis.asyncio.Redis`` or a URL)."""
    client, own = _client(client, None)
    try:
        pipe = client.pipeline(transaction=False)
        if write_schema and chunk.columns:
            pipe.hset(stream + SCHEMA_SUFFIX, mapping=_schema_of(chunk))
        _xadd_all(pipe, stream, chunk, ids, time_field, maxlen)
        try:
            res = await pipe.execute()
        except Exception as exc:
            raise FeedError(f"XADD to {stream!r} failed: {exc}") from exc
    finally:
        if own:
            await client.aclose()
    out = res[1:] if write_schema and chunk.columns else res
    return [r.decode() if isinstance(r, bytes) else str(r) for r in out]


async def _aschema(
    client: Any, stream: str, fields: dict[str, np.dtype] | None, time_field: str | None, entry_columns: bool
) -> _Schema | None:
    """The schema from ``fields``, else the ``:schema`` hash, else the newest entry (None: empty stream)."""
    dtypes = fields
    if dtypes is None:
        dtypes = _decode_schema(await client.hgetall(stream + SCHEMA_SUFFIX))
    if dtypes is None:
        last = await client.xrevrange(stream, count=1)
        if not last:
            return None
        dtypes = _infer_schema(last[0][1], time_field)
    dtypes = {k: v for k, v in dtypes.items() if k != time_field}
    return _Schema(dtypes, time_field, entry_columns)


def _xread_entries(reply: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """Entries of the single stream in an XREAD reply (RESP2 list or RESP3 dict)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        for value in reply.values():
            return list(value[0] if value and isinstance(value[0], list) else value)
        return []
    return list(reply[0][1])


# ---------------------------------------------------------------------------------------------------
# live tail


class _RedisLive(LiveSource):
    """Shared plumbing of the live Redis sources: client, schema, closing, XREAD with reconnect."""

    def __init__(
        self, url: Any, stream: str, *, fields: FieldsSpec, symbol: str | None, time_field: str | None,
        entry_columns: bool, count: int, block_ms: int, backoff_initial: float, backoff_max: float,
        max_retries: int | None, client_name: str | None,
    ) -> None:
        if count < 1 or block_ms < 1:
            raise InvalidValueError("count and block_ms must be >= 1")
        self.url = url
        self.stream = stream
        self.symbol = symbol if symbol is not None else stream
        self.time_field = time_field
        self.entry_columns = entry_columns
        self.count = int(count)
        self.block_ms = int(block_ms)
        self.backoff_initial = float(backoff_initial)
        self.backoff_max = float(backoff_max)
        self.max_retries = max_retries
        self.client_name = client_name or f"jupyter_replay:feed:{stream}"
        self._fields = normalize_fields(fields)
        self._schema: _Schema | None = None
        if self._fields is not None:
            self._schema = _Schema({k: v for k, v in self._fields.items() if k != time_field}, time_field, entry_columns)
        self._client: Any = None
        self._own_client = False
        self._closed = asyncio.Event()
        self._started = False
        #: id of the last entry delivered (``"<ms>-<seq>"``), None before the first one.
        self.last_id: str | None = None
        #: Times a Redis command failed and was retried.
        self.errors = 0
        self.rows = 0

    # LiveSource attributes: known once the schema is (immediately with ``fields=``).
    @property
    def columns(self) -> list[str]:  # type: ignore[override]
        return self._schema.columns if self._schema else []

    @property
    def dtypes(self) -> dict[str, np.dtype]:  # type: ignore[override]
        return self._schema.all_dtypes if self._schema else {}

    @property
    def closed(self) -> bool:
        """True once ``aclose()`` was called."""
        return self._closed.is_set()

    def _closed_event(self) -> asyncio.Event:
        return self._closed

    async def _connect(self) -> Any:
        if self._client is None:
            self._client, self._own_client = _client(self.url, self.client_name)
        return self._client

    async def _call(self, make: Callable[[], Any]) -> Any:
        """Run a Redis command, retrying connection errors with backoff; None once closed."""
        import redis.exceptions as rexc

        attempt = 0
        closed = self._closed_event()
        while not closed.is_set():
            task = asyncio.ensure_future(make())
            waiter = asyncio.ensure_future(closed.wait())
            try:
                done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                task.cancel()
                waiter.cancel()
                raise
            waiter.cancel()
            if task not in done:  # closed while the command (a blocked XREAD) runs: abandon it
                task.cancel()
                await asyncio.wait({task})
                if not task.cancelled():
                    task.exception()  # retrieved: nothing to report on close
                return None
            try:
                return task.result()
            except (rexc.ConnectionError, rexc.TimeoutError, OSError) as exc:
                self.errors += 1
                if self.max_retries is not None and attempt >= self.max_retries:
                    raise FeedError(f"redis stream {self.stream!r}: {exc}") from exc
                delay = backoff_delay(attempt, initial=self.backoff_initial, maximum=self.backoff_max)
                log.warning("redis stream %s: %s; retrying in %.2fs", self.stream, exc, delay)
                attempt += 1
                try:
                    await asyncio.wait_for(closed.wait(), delay)
                except asyncio.TimeoutError:
                    pass
            except rexc.ResponseError as exc:
                raise FeedError(f"redis stream {self.stream!r}: {exc}") from exc
        return None

    async def _ensure_schema(self, client: Any) -> bool:
        if self._schema is None:
            self._schema = await self._call(
                lambda: _aschema(client, self.stream, None, self.time_field, self.entry_columns)
            )
        return self._schema is not None

    def _decode(self, entries: list) -> Chunk:
        if self._schema is None:
            self._schema = _Schema(_infer_schema(entries[0][1], self.time_field), self.time_field, self.entry_columns)
        chunk = self._schema.decode(entries)
        last = entries[-1][0]
        self.last_id = last.decode() if isinstance(last, bytes) else str(last)
        self.rows += len(chunk)
        return chunk

    async def _tail(self, client: Any, from_id: str) -> AsyncIterator[Chunk]:
        """XREAD BLOCK from ``from_id`` (exclusive) until closed."""
        last = from_id
        while True:
            reply = await self._call(
                lambda: client.xread({self.stream: last}, count=self.count, block=self.block_ms)
            )
            if self._closed_event().is_set():
                return
            entries = _xread_entries(reply)
            if not entries:
                continue
            if self._schema is None:
                await self._ensure_schema(client)
            chunk = self._decode(entries)
            last = self.last_id  # type: ignore[assignment]
            yield chunk

    async def _resolve_dollar(self, client: Any) -> str:
        """The stream's current last id (``"0-0"`` when it does not exist): "$" without a race."""
        import redis.exceptions as rexc

        async def info() -> str:
            try:
                res = await client.xinfo_stream(self.stream)
            except rexc.ResponseError:  # no such key
                return "0-0"
            last = res.get("last-generated-id") or res.get(b"last-generated-id") or b"0-0"
            return last.decode() if isinstance(last, bytes) else str(last)

        return (await self._call(info)) or "0-0"

    def _start(self) -> None:
        if self._started:
            raise FeedError(f"{type(self).__name__}.batches() can be iterated only once")
        self._started = True

    async def aclose(self) -> None:
        self._closed.set()
        client, self._client = self._client, None
        if client is not None and self._own_client:
            try:
                await client.aclose()
            except Exception:  # noqa: BLE001 - best effort on shutdown
                log.debug("closing redis client failed", exc_info=True)


class RedisStreamSource(_RedisLive):
    """Live rows from a Redis stream: tails it with ``XREAD BLOCK``.

    ``start_id="$"`` (default) delivers entries added after ``batches()`` starts; any other id
    (``"0-0"``, ``"1700000000000-5"``) delivers entries after that id first. Connection errors are
    retried with exponential backoff from the last delivered id, so nothing is lost or repeated.
    ``url`` is a ``redis://`` URL or a ``redis.asyncio.Redis`` (then not closed by ``aclose``).
    """

    def __init__(
        self, url: Any, stream: str, fields: FieldsSpec = None, symbol: str | None = None, *,
        start_id: str = "$", time_field: str | None = "ts", entry_columns: bool = True,
        count: int = 10_000, block_ms: int = 1_000, backoff_initial: float = 0.1, backoff_max: float = 5.0,
        max_retries: int | None = None, client_name: str | None = None,
    ) -> None:
        super().__init__(
            url, stream, fields=fields, symbol=symbol, time_field=time_field, entry_columns=entry_columns,
            count=count, block_ms=block_ms, backoff_initial=backoff_initial, backoff_max=backoff_max,
            max_retries=max_retries, client_name=client_name,
        )
        self.start_id = start_id

    async def batches(self) -> AsyncIterator[Chunk]:
        self._start()
        client = await self._connect()
        await self._ensure_schema(client)
        from_id = await self._resolve_dollar(client) if self.start_id == "$" else self.start_id
        async for chunk in self._tail(client, from_id):
            yield chunk


# ---------------------------------------------------------------------------------------------------
# catch up, then live


class CatchUpSource(_RedisLive):
    """Replays a stream from a past time at ``speed``, then tails it live: no gap, no duplicate.

    Catch-up reads pages with ``XRANGE (last_id +``, releasing rows when due on a virtual clock that
    starts at the first row's time and runs ``speed`` times faster than the wall clock. Once a read
    returns less than a full page (it reached the end of the stream), the source switches to
    ``XREAD BLOCK`` from the last delivered id: every entry after ``start`` is delivered exactly once,
    in id order (entries added while the last page was paced come first, unpaced).
    ``speed`` must be > 1 (or "max") to ever catch up. ``phase`` is "idle", "catch_up", "live" or
    "closed"; ``on_live(last_id)`` is called at the hand-over.
    """

    def __init__(
        self, url: Any, stream: str, start: TimeLike, fields: FieldsSpec = None, symbol: str | None = None, *,
        speed: float | str = 10.0, page: int = 5_000, frame_ns: int = 16_666_667, timer: Timer | None = None,
        on_live: Callable[[str | None], None] | None = None, time_field: str | None = "ts",
        entry_columns: bool = True, count: int = 10_000, block_ms: int = 1_000, backoff_initial: float = 0.1,
        backoff_max: float = 5.0, max_retries: int | None = None, client_name: str | None = None,
    ) -> None:
        super().__init__(
            url, stream, fields=fields, symbol=symbol, time_field=time_field, entry_columns=entry_columns,
            count=count, block_ms=block_ms, backoff_initial=backoff_initial, backoff_max=backoff_max,
            max_retries=max_retries, client_name=client_name,
        )
        self.start_ns = to_ns(start)
        self.speed = _catch_up_speed(speed)
        if page < 1:
            raise InvalidValueError("page must be >= 1")
        self.page = int(page)
        self.frame_ns = int(frame_ns)
        self.timer = timer or SystemTimer()
        self.on_live = on_live
        self.phase = "idle"
        #: Rows delivered while catching up / while live.
        self.catch_up_rows = 0
        self.live_rows = 0
        #: The id after which live tailing started (the hand-over point).
        self.handover_id: str | None = None
        self._next_wake = 0

    async def batches(self) -> AsyncIterator[Chunk]:
        self._start()
        client = await self._connect()
        await self._ensure_schema(client)
        self.phase = "catch_up"
        anchor: tuple[int, int] | None = None  # (data ns, timer ns)
        low = time_to_id(self.start_ns)
        first = True
        while True:
            lo = low if self.last_id is None else "(" + self.last_id
            entries = await self._call(lambda: client.xrange(self.stream, min=lo, max="+", count=self.page))
            if self._closed_event().is_set():
                self.phase = "closed"
                return
            if not entries:
                break
            chunk = self._decode(entries)
            if first and self.time_field:  # rows of the start millisecond that are before start
                keep = int(np.searchsorted(np.maximum.accumulate(chunk.ts), self.start_ns, "left"))
                chunk = chunk.slice(keep, len(chunk))
            first = False
            async for part in self._pace(chunk, anchor):
                anchor = part[1]
                self.catch_up_rows += len(part[0])
                yield part[0]
            if anchor is None and len(chunk):
                anchor = (int(chunk.ts[0]), self.timer.now())
            if len(entries) < self.page:  # that read reached the end of the stream: hand over
                break
        self.handover_id = self.last_id or _id_before(low)
        if self._closed_event().is_set():
            self.phase = "closed"
            return
        self.phase = "live"
        if self.on_live is not None:
            try:
                self.on_live(self.handover_id)
            except Exception:  # noqa: BLE001 - a callback never stops the feed
                log.exception("on_live callback failed")
        async for chunk in self._tail(client, self.handover_id):
            self.live_rows += len(chunk)
            yield chunk
        self.phase = "closed"

    async def _pace(self, chunk: Chunk, anchor: tuple[int, int] | None) -> AsyncIterator[tuple[Chunk, tuple[int, int]]]:
        """Release ``chunk`` as the virtual clock reaches its rows: never early; rows falling due
        within ``frame_ns`` of wall time after a release go out together."""
        if len(chunk) == 0:
            return
        if math.isinf(self.speed):
            yield chunk, anchor or (int(chunk.ts[0]), self.timer.now())
            return
        if anchor is None:
            anchor = (int(chunk.ts[0]), self.timer.now())
        data0, wall0 = anchor
        due = np.maximum.accumulate(chunk.ts)  # pacing never goes back in time
        pos = 0
        while pos < len(chunk):
            deadline = max(wall0 + int(math.ceil((int(due[pos]) - data0) / self.speed)), self._next_wake)
            if self.timer.now() < deadline:
                await self._sleep_until(deadline)
                if self._closed_event().is_set():
                    return
            now = self.timer.now()
            virtual = data0 + int((now - wall0) * self.speed)
            stop = max(pos + 1, int(np.searchsorted(due, virtual, "right")))
            yield chunk.slice(pos, stop), anchor
            pos = stop
            self._next_wake = now + self.frame_ns

    async def _sleep_until(self, deadline_ns: int) -> None:
        sleeper = asyncio.ensure_future(self.timer.sleep_until(deadline_ns))
        waiter = asyncio.ensure_future(self._closed_event().wait())
        try:
            await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waiter.cancel()


def _catch_up_speed(speed: float | str) -> float:
    if isinstance(speed, str):
        if speed.lower() in ("max", "inf"):
            return math.inf
        try:
            speed = float(speed)
        except ValueError:
            raise InvalidValueError(f"bad speed {speed!r}") from None
    speed = float(speed)
    if math.isnan(speed) or speed <= 1.0:
        raise InvalidValueError(f"catch-up speed must be > 1 (or 'max') to ever reach live, got {speed!r}")
    return speed


def catch_up_then_live(
    url: Any, stream: str, start: TimeLike, *, speed: float | str = 10.0, fields: FieldsSpec = None,
    symbol: str | None = None, **kwargs: Any,
) -> CatchUpSource:
    """A live source that first replays ``stream`` from ``start`` at ``speed``, then tails it."""
    return CatchUpSource(url, stream, start, fields, symbol, speed=speed, **kwargs)


# ---------------------------------------------------------------------------------------------------
# replay of a time range


class RedisStreamReplay(ArraySource):
    """The rows of a Redis stream between ``start`` and ``end`` (inclusive) as a replay source.

    Reads the id range ``[start ms, end ms]`` with ``XRANGE`` in pages of ``page`` entries when
    created (sync client; use :meth:`aload` on an event loop) and keeps the rows in memory, stably
    sorted by time. ``start``/``end`` default to the whole stream. ``last_id`` is the id of the last
    entry read: tail from it to continue live without a gap.
    """

    def __init__(
        self, url: Any, stream: str, start: TimeLike | None = None, end: TimeLike | None = None,
        fields: FieldsSpec = None, *, time_field: str | None = "ts", entry_columns: bool = True,
        page: int = 10_000, max_rows: int | None = None, _entries: list | None = None,
        _schema: Mapping[str, np.dtype] | None = None,
    ) -> None:
        if page < 1:
            raise InvalidValueError("page must be >= 1")
        self.url = url if isinstance(url, str) else None
        self.stream = stream
        self.time_field = time_field
        self._range = (None if start is None else to_ns(start), None if end is None else to_ns(end))
        if self._range[0] is not None and self._range[1] is not None and self._range[0] > self._range[1]:
            raise InvalidValueError("start is after end")
        dtypes = normalize_fields(fields)
        if _entries is None:
            client, own = _sync_client(url)
            try:
                if dtypes is None:
                    dtypes = _decode_schema(client.hgetall(stream + SCHEMA_SUFFIX))
                entries = list(self._pages(client, page, max_rows))
            except Exception as exc:
                if isinstance(exc, (DataError, InvalidValueError)):
                    raise
                raise FeedError(f"reading redis stream {stream!r} failed: {exc}") from exc
            finally:
                if own:
                    client.close()
        else:
            entries, dtypes = _entries, dict(_schema) if _schema is not None else dtypes
        self._build(entries, dtypes, entry_columns)

    @classmethod
    async def aload(
        cls, url: Any, stream: str, start: TimeLike | None = None, end: TimeLike | None = None,
        fields: FieldsSpec = None, *, page: int = 10_000, max_rows: int | None = None, **kwargs: Any,
    ) -> "RedisStreamReplay":
        """Like the constructor, with the asyncio client (does not block the event loop)."""
        client, own = _client(url, None)
        dtypes = normalize_fields(fields)
        rng = (None if start is None else to_ns(start), None if end is None else to_ns(end))
        try:
            if dtypes is None:
                dtypes = _decode_schema(await client.hgetall(stream + SCHEMA_SUFFIX))
            entries: list = []
            lo, hi = _id_bounds(*rng)
            while True:
                got = await client.xrange(stream, min=lo, max=hi, count=page)
                entries.extend(got)
                _check_max(len(entries), max_rows, stream)
                if len(got) < page:
                    break
                lo = "(" + (got[-1][0].decode() if isinstance(got[-1][0], bytes) else str(got[-1][0]))
        except (DataError, InvalidValueError):
            raise
        except Exception as exc:
            raise FeedError(f"reading redis stream {stream!r} failed: {exc}") from exc
        finally:
            if own:
                await client.aclose()
        return cls(url, stream, start, end, dtypes, page=page, _entries=entries, _schema=dtypes, **kwargs)

    def _pages(self, client: Any, page: int, max_rows: int | None) -> Any:
        lo, hi = _id_bounds(*self._range)
        total = 0
        while True:
            got = client.xrange(self.stream, min=lo, max=hi, count=page)
            total += len(got)
            _check_max(total, max_rows, self.stream)
            yield from got
            if len(got) < page:
                break
            last = got[-1][0]
            lo = "(" + (last.decode() if isinstance(last, bytes) else str(last))

    def _build(self, entries: list, dtypes: dict[str, np.dtype] | None, entry_columns: bool) -> None:
        if not entries:
            raise DataError(f"redis stream {self.stream!r} has no entries in the requested time range")
        if dtypes is None:
            dtypes = _infer_schema(entries[0][1], self.time_field)
        dtypes = {k: v for k, v in dtypes.items() if k != self.time_field}
        schema = _Schema(dtypes, self.time_field, entry_columns)
        chunk = schema.decode(entries)
        last = entries[-1][0]
        self.last_id = last.decode() if isinstance(last, bytes) else str(last)
        ts = chunk.ts
        cols = dict(chunk.columns)
        lo, hi = self._range
        if self.time_field and (lo is not None or hi is not None):
            mask = np.ones(len(ts), dtype=bool)
            if lo is not None:
                mask &= ts >= lo
            if hi is not None:
                mask &= ts <= hi
            if not mask.all():
                ts = ts[mask]
                cols = {k: v[mask] for k, v in cols.items()}
        if len(ts) == 0:
            raise DataError(f"redis stream {self.stream!r} has no entries in the requested time range")
        if np.any(np.diff(ts) < 0):
            order = np.argsort(ts, kind="stable")
            ts = ts[order]
            cols = {k: v[order] for k, v in cols.items()}
        ArraySource.__init__(self, np.ascontiguousarray(ts), {k: np.ascontiguousarray(v) for k, v in cols.items()})

    def describe(self) -> dict:
        out = super().describe()
        out.update(stream=self.stream, last_id=self.last_id)
        return out


def _id_before(entry_id: str) -> str:
    """The largest id smaller than ``entry_id`` (XREAD from it includes ``entry_id``)."""
    ms, seq = parse_entry_id(entry_id)
    if seq > 0:
        return f"{ms}-{seq - 1}"
    return f"{ms - 1}-{_MAX_SEQ}" if ms > 0 else "0-0"


def _id_bounds(start_ns: int | None, end_ns: int | None) -> tuple[str, str]:
    return (
        "-" if start_ns is None else time_to_id(start_ns),
        "+" if end_ns is None else time_to_id(end_ns, end=True),
    )


def _check_max(n: int, max_rows: int | None, stream: str) -> None:
    if max_rows is not None and n > max_rows:
        raise DataError(f"redis stream {stream!r}: more than max_rows={max_rows} entries in the range")
