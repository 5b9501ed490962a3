"""Catch up, then live: replay a Redis stream from a past time at a speed, then tail it without a gap."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

import numpy as np

from ...batch import Chunk
from ...clock import ReplayClock
from ...controller import DEFAULT_FRAME_NS
from ...controls import parse_speed
from ...exceptions import InvalidValueError, brief
from ...timeconv import TimeLike, to_ns
from ...timer import SystemTimer, Timer
from .._columns import FieldsSpec
from .layout import id_before, time_to_id
from .live import _RedisLive

__all__ = ["CatchUpSource", "catch_up_then_live"]

log = logging.getLogger(__name__)


def catch_up_speed(value: Any) -> float:
    """The speed grammar of every control (:func:`parse_speed`), and > 1 so the replay reaches live."""
    speed = parse_speed(value, math.inf)  # no upper bound: catching up fast is the point
    if speed <= 1.0:
        raise InvalidValueError(f"catch-up speed must be > 1 (or 'max') to ever reach live, got {brief(value)}")
    return speed


class CatchUpSource(_RedisLive):
    """Replays a stream from a past time at ``speed``, then tails it live: no gap, no duplicate.

    Catch-up reads pages with ``XRANGE (last_id +``, releasing rows when due on the engine's
    :class:`ReplayClock`, which starts at the first row's time and runs ``speed`` times faster than
    ``timer`` (the controller's release rule: never early; rows due within ``frame_ns`` of a release go
    out together). Once a read returns less than a full page (it reached the end of the stream), the
    source switches to ``XREAD BLOCK`` from the last delivered id: every entry after ``start`` is
    delivered exactly once, in id order (entries added while the last page was paced come first,
    unpaced). ``speed`` must be > 1 (or "max") to ever catch up. ``phase`` is "idle", "catch_up",
    "live" or "closed"; ``on_live(last_id)`` is called at the hand-over.
    """

    def __init__(
        self, url: Any, stream: str, start: TimeLike, fields: FieldsSpec = None, symbol: str | None = None, *,
        speed: float | str = 10.0, page: int = 5_000, frame_ns: int = DEFAULT_FRAME_NS, timer: Timer | None = None,
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
        self.speed = catch_up_speed(speed)
        if page < 1:
            raise InvalidValueError(f"page must be >= 1, got {brief(page)}")
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
        #: Data time of the catch-up, anchored at the first row read (None before it).
        self.clock: ReplayClock | None = None
        self._next_wake = 0

    async def batches(self) -> AsyncIterator[Chunk]:
        self._start()
        client = await self._connect()
        await self._ensure_schema(client)
        self.phase = "catch_up"
        low = time_to_id(self.start_ns)
        first = True
        while True:
            lo = low if self.last_id is None else "(" + self.last_id
            entries = await self._call(partial(client.xrange, self.stream, min=lo, max="+", count=self.page))
            if self._closed.is_set():
                self.phase = "closed"
                return
            if not entries:
                break
            chunk = self._decode(entries)
            if first and self.time_field:  # rows of the start millisecond that are before start
                keep = int(np.searchsorted(np.maximum.accumulate(chunk.ts), self.start_ns, "left"))
                chunk = chunk.slice(keep, len(chunk))
            first = False
            async for part in self._pace(chunk):
                self.catch_up_rows += len(part)
                yield part
            if len(entries) < self.page:  # that read reached the end of the stream: hand over
                break
        self.handover_id = self.last_id or id_before(low)
        if self._closed.is_set():
            self.phase = "closed"
            return
        self.phase = "live"
        if self.on_live is not None:
            try:
                self.on_live(self.handover_id)
            except Exception:  # a callback never stops the feed
                log.exception("on_live callback failed")
        async for live in self._tail(client, self.handover_id):
            self.live_rows += len(live)
            yield live
        self.phase = "closed"

    async def _pace(self, chunk: Chunk) -> AsyncIterator[Chunk]:
        """Release ``chunk`` as :attr:`clock` reaches its rows (the controller's rule, on one clock for all pages)."""
        if len(chunk) == 0:
            return
        if math.isinf(self.speed):
            yield chunk
            return
        if self.clock is None:
            self.clock = ReplayClock(self.timer, start_ns=int(chunk.ts[0]), speed=self.speed)
            self.clock.resume()
        clock = self.clock
        due = np.maximum.accumulate(chunk.ts)  # pacing never goes back in time
        pos = 0
        while pos < len(chunk):
            nxt = int(due[pos])
            deadline = max(clock.wall_deadline(nxt), self._next_wake)
            if self.timer.now() < deadline:
                await self._sleep_until(deadline)
                if self._closed.is_set():
                    return
            now = self.timer.now()
            stop = int(np.searchsorted(due, max(clock.now_ns(), nxt), "right"))
            yield chunk.slice(pos, stop)
            pos = stop
            self._next_wake = now + self.frame_ns

    async def _sleep_until(self, deadline_ns: int) -> None:
        """``timer.sleep_until``, cut short by ``aclose()``."""
        sleeper = asyncio.ensure_future(self.timer.sleep_until(deadline_ns))
        waiter = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waiter.cancel()


def catch_up_then_live(
    url: Any, stream: str, start: TimeLike, *, speed: float | str = 10.0, fields: FieldsSpec = None,
    symbol: str | None = None, **kwargs: Any,
) -> CatchUpSource:
    """A live source that first replays ``stream`` from ``start`` at ``speed``, then tails it."""
    return CatchUpSource(url, stream, start, fields, symbol, speed=speed, **kwargs)
