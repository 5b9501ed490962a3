"""``SyntheticFeed``: a live feed of random-walk trades, for demos and tests without a network."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator

import numpy as np

from ..batch import Chunk
from ..exceptions import InvalidValueError
from .base import LiveSource

__all__ = ["SyntheticFeed"]


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


class SyntheticFeed(LiveSource):
    """Random-walk trades stamped with the wall clock (``time.time_ns()``).

    Args:
        symbol: the instrument name (any non-empty string).
        rate_hz: chunks per second (paced with ``asyncio.sleep`` against a fixed schedule).
        rows_per_batch: rows per chunk; their timestamps are spread evenly since the previous chunk.
        seed: seed of the values (prices, sizes, sides); the same seed gives the same values,
            whatever the timing and ``rows_per_batch``. None: random.
        start_price: price before the first trade.
        max_batches: stop after that many chunks (None: until ``aclose``).

    Columns: ``price`` (float64, rounded to cents), ``size`` (int64), ``side`` (int8, +1 buy /
    -1 sell; a buy moves the price up). ``batches()`` is meant for one consumer at a time and
    ends promptly after ``aclose()`` (called from the same event loop).
    """

    columns = ["price", "size", "side"]
    dtypes = {"price": np.dtype(np.float64), "size": np.dtype(np.int64), "side": np.dtype(np.int8)}

    def __init__(
        self,
        symbol: str = "DEMO",
        rate_hz: float = 20.0,
        rows_per_batch: int = 1,
        seed: int | None = None,
        start_price: float = 100.0,
        max_batches: int | None = None,
    ) -> None:
        if not isinstance(symbol, str) or not symbol.strip():
            raise InvalidValueError(f"symbol must be a non-empty string, got {symbol!r}")
        if not _is_number(rate_hz) or not math.isfinite(rate_hz) or rate_hz <= 0:
            raise InvalidValueError(f"rate_hz must be a finite number > 0, got {rate_hz!r}")
        if isinstance(rows_per_batch, bool) or not isinstance(rows_per_batch, int) or rows_per_batch < 1:
            raise InvalidValueError(f"rows_per_batch must be an int >= 1, got {rows_per_batch!r}")
        if not _is_number(start_price) or not math.isfinite(start_price) or start_price <= 0:
            raise InvalidValueError(f"start_price must be a finite number > 0, got {start_price!r}")
        bad_max = max_batches is not None and (not isinstance(max_batches, int) or isinstance(max_batches, bool))
        if bad_max or (max_batches is not None and max_batches < 0):
            raise InvalidValueError(f"max_batches must be None or an int >= 0, got {max_batches!r}")
        self.symbol = symbol
        self.rate_hz = float(rate_hz)
        self.rows_per_batch = rows_per_batch
        self.seed = seed
        self.max_batches = max_batches
        # separate streams for moves and sizes: the values do not depend on rows_per_batch
        seeds = np.random.SeedSequence(seed).spawn(2)
        self._rng_move = np.random.default_rng(seeds[0])
        self._rng_size = np.random.default_rng(seeds[1])
        self._log_price = math.log(float(start_price))
        self._last_ns: int | None = None
        self._closed = False
        self._stop: asyncio.Event | None = None
        #: Chunks produced so far.
        self.batches_sent = 0

    @property
    def closed(self) -> bool:
        return self._closed

    def next_values(self, n: int) -> dict[str, np.ndarray]:
        """The next ``n`` random-walk trades (advances the walk; no timestamps)."""
        z = self._rng_move.standard_normal(n)
        side = np.where(z >= 0, 1, -1).astype(np.int8)
        # sequential sum from the current level: the same values however the rows are batched
        log_prices = np.cumsum(np.concatenate([[self._log_price], 0.0004 * z]))[1:]
        self._log_price = float(log_prices[-1]) if n else self._log_price
        price = np.round(np.exp(log_prices), 2)
        size = (self._rng_size.integers(1, 20, size=n, dtype=np.int32) * 10).astype(np.int64)
        return {"price": price, "size": size, "side": side}

    def _stamps(self, n: int, interval_ns: int) -> np.ndarray:
        now = time.time_ns()
        last = self._last_ns if self._last_ns is not None else now - interval_ns
        now = max(now, last)  # never go backwards, even if the wall clock does
        ts = last + ((now - last) * np.arange(1, n + 1, dtype=np.int64)) // n
        self._last_ns = now
        return ts.astype(np.int64)

    async def batches(self) -> AsyncIterator[Chunk]:
        """Chunks at ``rate_hz`` until ``aclose()`` (or ``max_batches``)."""
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()  # bound to this loop; aclose() sets it
        interval = 1.0 / self.rate_hz
        interval_ns = int(interval * 1e9)
        deadline = loop.time()
        while not self._closed:
            if self.max_batches is not None and self.batches_sent >= self.max_batches:
                return
            deadline += interval
            delay = deadline - loop.time()
            if delay < -interval:  # fell behind (suspended loop): resynchronise rather than burst
                deadline = loop.time()
                delay = 0.0
            if delay > 0:
                try:
                    await asyncio.wait_for(self._stop.wait(), delay)
                except asyncio.TimeoutError:
                    pass
            if self._closed:
                return
            n = self.rows_per_batch
            values = self.next_values(n)
            self.batches_sent += 1
            yield Chunk(self._stamps(n, interval_ns), values)

    async def aclose(self) -> None:
        """Stop the feed: a pending ``batches()`` iteration ends promptly."""
        self._closed = True
        if self._stop is not None:
            self._stop.set()
