"""``WebSocketJSONSource``: a live source for exchange-style JSON feeds over WebSocket.

Messages are parsed into records (dicts) by ``parse``; records arriving within ``batch_window``
seconds go out together as one columnar ``Chunk``. A lost connection is re-opened with exponential
backoff and jitter; each reconnect is a *gap* (messages sent while disconnected are lost): it is
counted in ``gaps``, reported to ``on_gap`` and, with ``gap_column``, flagged on the first row after it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..batch import Chunk
from ..exceptions import FeedError, InvalidValueError
from ..sources.base import LiveSource
from ..timeconv import NS_MAX, NS_MIN
from ._columns import FieldsSpec, backoff_delay, normalize_fields, records_to_columns

__all__ = ["WebSocketJSONSource", "GapInfo"]

log = logging.getLogger(__name__)

_UNITS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}

Record = Mapping[str, Any]
ParseFn = Callable[[Any], "Record | Sequence[Record] | None"]


class GapInfo(dict):
    """What ``on_gap`` receives: ``gaps`` (count so far), ``down_ns`` (wall ns without a connection),
    ``last_ns`` (time of the last row before the gap, or None), ``error`` (text of the failure)."""


def _default_parse(message: Any) -> Any:
    return message


class WebSocketJSONSource(LiveSource):
    """Rows from a WebSocket sending JSON (one object or a list of objects per message).

    ``parse(obj)`` maps a decoded message to a record, a list of records, or None (ignored: heartbeats,
    acks). ``fields`` names the value columns and their dtypes (``{"price": "float64", ...}``; a list
    means float64); values may be numbers or numeric strings. Row time comes from ``time_field`` in
    the record (unit ``time_unit``) or, without it, the wall clock at reception.
    ``subscribe_message`` (dict, str, or ``callable(symbol)``) is sent after every (re)connect.
    """

    def __init__(
        self, url: str, symbol: str = "", parse: ParseFn | None = None, subscribe_message: Any = None, *,
        fields: FieldsSpec = ("price",), time_field: str | None = None, time_unit: str = "ms",
        batch_window: float = 0.02, max_batch_rows: int = 10_000, backoff_initial: float = 0.1,
        backoff_max: float = 10.0, backoff_factor: float = 2.0, jitter: float = 0.5,
        max_retries: int | None = None, on_gap: Callable[[GapInfo], None] | None = None,
        gap_column: str | None = None, open_timeout: float = 10.0, connect_kwargs: Mapping[str, Any] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        dtypes = normalize_fields(fields)
        if not dtypes:
            raise InvalidValueError("fields must name at least one column")
        if time_unit not in _UNITS:
            raise InvalidValueError(f"time_unit must be one of {sorted(_UNITS)}, got {time_unit!r}")
        if batch_window < 0 or max_batch_rows < 1:
            raise InvalidValueError("batch_window must be >= 0 and max_batch_rows >= 1")
        if not (0.0 <= jitter <= 1.0) or backoff_initial < 0 or backoff_max < backoff_initial or backoff_factor < 1:
            raise InvalidValueError("bad backoff settings (0 <= jitter <= 1, 0 <= initial <= max, factor >= 1)")
        self.url = url
        self.symbol = symbol
        self.parse = parse or _default_parse
        self.subscribe_message = subscribe_message
        self.time_field = time_field
        self.time_scale = _UNITS[time_unit]
        self.batch_window = float(batch_window)
        self.max_batch_rows = int(max_batch_rows)
        self.backoff = {"initial": float(backoff_initial), "maximum": float(backoff_max),
                        "factor": float(backoff_factor), "jitter": float(jitter)}
        self.max_retries = max_retries
        self.on_gap = on_gap
        self.gap_column = gap_column
        self.open_timeout = float(open_timeout)
        self.connect_kwargs = dict(connect_kwargs or {})
        self._rng = rng or random.Random()
        self._value_dtypes = dtypes
        self.dtypes = dict(dtypes)
        if gap_column:
            self.dtypes[gap_column] = np.dtype(bool)
        self.columns = list(self.dtypes)
        #: Successful connections so far; reconnects = connections - 1.
        self.connections = 0
        #: Reconnects after a lost connection (each one a possible hole in the data).
        self.gaps = 0
        #: Messages received, messages that failed to parse (skipped), rows emitted.
        self.messages = 0
        self.bad_messages = 0
        self.rows = 0
        self._closed = asyncio.Event()
        self._ws: Any = None
        self._started = False
        self._last_ns: int | None = None

    @property
    def closed(self) -> bool:
        """True once ``aclose()`` was called."""
        return self._closed.is_set()

    def retry_delay(self, attempt: int) -> float:
        """Seconds before reconnect ``attempt`` (0-based)."""
        return backoff_delay(attempt, rng=self._rng, **self.backoff)

    async def batches(self) -> AsyncIterator[Chunk]:
        if self._started:
            raise FeedError("WebSocketJSONSource.batches() can be iterated only once")
        self._started = True
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

        attempt = 0
        down_since: int | None = None
        error = ""
        while not self._closed.is_set():
            try:
                ws = await connect(self.url, open_timeout=self.open_timeout, **self.connect_kwargs)
            except InvalidURI as exc:
                raise FeedError(f"bad WebSocket URL {self.url!r}: {exc}") from exc
            except (OSError, InvalidHandshake, asyncio.TimeoutError) as exc:
                error = f"{type(exc).__name__}: {exc}"
                down_since = down_since or time.time_ns()
                if not await self._wait_retry(attempt, error):
                    return
                attempt += 1
                continue
            if self._closed.is_set():
                await ws.close()
                return
            self._ws = ws
            self.connections += 1
            gap_pending = False
            if self.connections > 1:
                self.gaps += 1
                gap_pending = True
                self._report_gap(down_since, error)
            down_since = None
            try:
                await self._subscribe(ws)
                async for chunk in self._read(ws, ConnectionClosed):
                    attempt = 0  # the connection works: the next failure starts backoff afresh
                    if gap_pending and self.gap_column:
                        flags = chunk.columns[self.gap_column].copy()
                        flags[0] = True
                        chunk = Chunk(chunk.ts, {**chunk.columns, self.gap_column: flags})
                    gap_pending = False
                    yield chunk
            except ConnectionClosed as exc:
                error = f"connection closed: {exc}"
            except OSError as exc:
                error = f"{type(exc).__name__}: {exc}"
            finally:
                self._ws = None
                await ws.close()
            if self._closed.is_set():
                return
            down_since = time.time_ns()
            log.warning("websocket feed %s: %s; reconnecting", self.url, error)
            if not await self._wait_retry(attempt, error):
                return
            attempt += 1

    async def _wait_retry(self, attempt: int, error: str) -> bool:
        """Sleep the backoff delay; False if closed meanwhile. Raises FeedError past ``max_retries``."""
        if self.max_retries is not None and attempt >= self.max_retries:
            raise FeedError(f"websocket feed {self.url}: giving up after {attempt + 1} attempts ({error})")
        try:
            await asyncio.wait_for(self._closed.wait(), self.retry_delay(attempt))
        except asyncio.TimeoutError:
            return True
        return False

    def _report_gap(self, down_since: int | None, error: str) -> None:
        if self.on_gap is None:
            return
        info = GapInfo(gaps=self.gaps, down_ns=(time.time_ns() - down_since) if down_since else 0,
                       last_ns=self._last_ns, error=error)
        try:
            self.on_gap(info)
        except Exception:
            log.exception("on_gap callback failed")

    async def _subscribe(self, ws: Any) -> None:
        msg = self.subscribe_message
        if callable(msg):
            msg = msg(self.symbol)
        if msg is None:
            return
        await ws.send(msg if isinstance(msg, (str, bytes)) else json.dumps(msg))

    async def _read(self, ws: Any, closed_exc: type[BaseException]) -> AsyncIterator[Chunk]:
        """Chunks of the records received within ``batch_window`` of the first one."""
        loop = asyncio.get_running_loop()
        while True:
            records: list[Record] = []
            stamps: list[int] = []
            self._take(await ws.recv(), records, stamps)
            deadline = loop.time() + self.batch_window
            try:
                while len(records) < self.max_batch_rows:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        message = await asyncio.wait_for(ws.recv(), remaining)
                    except asyncio.TimeoutError:
                        break
                    self._take(message, records, stamps)
            except closed_exc:
                if records:
                    yield self._chunk(records, stamps)
                raise
            if records:
                yield self._chunk(records, stamps)

    def _take(self, message: Any, records: list[Record], stamps: list[int]) -> None:
        now = time.time_ns()
        self.messages += 1
        try:
            obj = json.loads(message)
            got = self.parse(obj)
        except Exception as exc:  # noqa: BLE001 - one bad message must not stop the feed
            self.bad_messages += 1
            log.debug("websocket feed %s: skipping message (%s)", self.url, exc)
            return
        if got is None:
            return
        items = [got] if isinstance(got, Mapping) else list(got)
        for rec in items:
            if not isinstance(rec, Mapping):
                self.bad_messages += 1
                continue
            records.append(rec)
            stamps.append(now)

    def _chunk(self, records: list[Record], stamps: list[int]) -> Chunk:
        if self.time_field:
            scale = self.time_scale
            ts = np.array(
                [_stamp(r.get(self.time_field), scale, s) for r, s in zip(records, stamps)], dtype=np.int64
            )
        else:
            ts = np.asarray(stamps, dtype=np.int64)
        cols = records_to_columns(records, self._value_dtypes)
        if self.gap_column:
            cols[self.gap_column] = np.zeros(len(records), dtype=bool)
        self.rows += len(records)
        self._last_ns = int(ts[-1])
        return Chunk(ts, cols)

    async def aclose(self) -> None:
        self._closed.set()
        ws = self._ws
        if ws is not None:
            await ws.close()


def _stamp(value: Any, scale: int, fallback: int) -> int:
    """Record time in ns from a number (or numeric string) in ``scale`` units; wall time if missing,
    unparsable or outside the int64 ns range (never wrapped)."""
    if value is None:
        return fallback
    try:
        if isinstance(value, str):
            value = float(value) if any(ch in value for ch in ".eE") else int(value)
        if isinstance(value, float):
            ns = int(round(value * scale))  # noqa: RUF046 - numpy < 2 rounds np.float64 to a float
        else:
            ns = int(value) * scale
    except (TypeError, ValueError, OverflowError):
        return fallback
    return ns if NS_MIN <= ns <= NS_MAX else fallback
