"""The live tail of a Redis stream: ``XREAD BLOCK`` with reconnect, shared by the live and catch-up sources."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

import numpy as np

from ...batch import Chunk
from ...exceptions import FeedError, InvalidValueError, brief
from ...sources.base import LiveSource
from .._columns import FieldsSpec, backoff_delay, normalize_fields
from .layout import Entry, Schema, aread_schema, async_client, id_text, infer_schema

__all__ = ["RedisStreamSource"]

log = logging.getLogger(__name__)


def _xread_entries(reply: Any) -> list[Entry]:
    """Entries of the single stream in an XREAD reply (RESP2 list or RESP3 dict)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        for value in reply.values():
            return list(value[0] if value and isinstance(value[0], list) else value)
        return []
    return list(reply[0][1])


class _RedisLive(LiveSource):
    """Shared plumbing of the live Redis sources: client, schema, closing, XREAD with reconnect."""

    def __init__(
        self, url: Any, stream: str, *, fields: FieldsSpec, symbol: str | None, time_field: str | None,
        entry_columns: bool, count: int, block_ms: int, backoff_initial: float, backoff_max: float,
        max_retries: int | None, client_name: str | None,
    ) -> None:
        if count < 1 or block_ms < 1:
            raise InvalidValueError(f"count and block_ms must be >= 1, got {brief(count)} and {brief(block_ms)}")
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
        self._schema: Schema | None = None
        if self._fields is not None:
            self._schema = Schema(self._fields, time_field, entry_columns)
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

    async def _connect(self) -> Any:
        if self._client is None:
            self._client, self._own_client = async_client(self.url, self.client_name)
        return self._client

    async def _call(self, make: Callable[[], Awaitable[Any]]) -> Any:
        """Run a Redis command, retrying connection errors with backoff; None once closed."""
        import redis.exceptions as rexc

        attempt = 0
        closed = self._closed
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
                    raise FeedError(f"redis stream {brief(self.stream)}: {brief(str(exc))}") from exc
                delay = backoff_delay(attempt, initial=self.backoff_initial, maximum=self.backoff_max)
                log.warning("redis stream %s: %s; retrying in %.2fs", brief(self.stream), brief(str(exc)), delay)
                attempt += 1
                try:
                    await asyncio.wait_for(closed.wait(), delay)
                except asyncio.TimeoutError:
                    pass
            except rexc.ResponseError as exc:
                raise FeedError(f"redis stream {brief(self.stream)}: {brief(str(exc))}") from exc
        return None

    async def _ensure_schema(self, client: Any) -> bool:
        if self._schema is None:
            self._schema = await self._call(
                lambda: aread_schema(client, self.stream, None, self.time_field, self.entry_columns)
            )
        return self._schema is not None

    def _decode(self, entries: list[Entry]) -> Chunk:
        if self._schema is None:
            self._schema = Schema(infer_schema(entries[0][1], self.time_field), self.time_field, self.entry_columns)
        chunk = self._schema.decode(entries)
        self.last_id = id_text(entries[-1][0])
        self.rows += len(chunk)
        return chunk

    async def _tail(self, client: Any, from_id: str) -> AsyncIterator[Chunk]:
        """XREAD BLOCK from ``from_id`` (exclusive) until closed."""
        last = from_id
        while True:
            reply = await self._call(partial(client.xread, {self.stream: last}, count=self.count, block=self.block_ms))
            if self._closed.is_set():
                return
            entries = _xread_entries(reply)
            if not entries:
                continue
            if self._schema is None:
                await self._ensure_schema(client)
            chunk = self._decode(entries)
            last = id_text(entries[-1][0])
            yield chunk

    async def _resolve_dollar(self, client: Any) -> str:
        """The stream's current last id (``"0-0"`` when it does not exist): "$" without a race."""
        import redis.exceptions as rexc

        async def info() -> str:
            try:
                res = await client.xinfo_stream(self.stream)
            except rexc.ResponseError:  # no such key
                return "0-0"
            return id_text(res.get("last-generated-id") or res.get(b"last-generated-id") or b"0-0")

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
            except Exception:
                log.debug("closing redis client failed", exc_info=True)  # best effort on shutdown


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
