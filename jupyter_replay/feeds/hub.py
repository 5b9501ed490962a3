"""``FeedHub``: one upstream connection per (feed, symbol), fanned out to any number of subscribers.

Pure asyncio, one event loop. ``hub.subscribe("synthetic", "DEMO")`` returns a ``HubSubscription``,
itself a ``LiveSource``, so a ``Session`` in LIVE mode can use it::

    hub = FeedHub()
    session = Session(source, live_factory=lambda symbol: hub.subscribe("synthetic", symbol))

Each subscriber has its own bounded queue: a subscriber that does not read (paused, slow) loses its
oldest chunks (counted in ``dropped``) and never delays the others or the upstream. Closing the last
subscriber of a (feed, symbol) closes the upstream; the next ``subscribe`` opens a new one.
A late subscriber gets chunks from the moment it subscribed (no history).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import numpy as np

from ..batch import Chunk
from ..exceptions import FeedError, InvalidValueError
from ..sources.base import LiveSource

__all__ = ["FeedHub", "HubSubscription", "FeedFactory", "redis_factory", "ws_factory"]

log = logging.getLogger(__name__)

#: Builds the upstream source for a symbol.
FeedFactory = Callable[[str], LiveSource]

_END = object()


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Upstream:
    """One upstream source and its subscribers."""

    def __init__(self, feed: str, symbol: str, source: LiveSource) -> None:
        self.feed = feed
        self.symbol = symbol
        self.source = source
        self.subscribers: list[HubSubscription] = []
        self.task: asyncio.Task[None] | None = None
        self.chunks = 0
        self.rows = 0
        self.error: str | None = None


class HubSubscription(LiveSource):
    """A subscriber's view of a shared upstream feed (a ``LiveSource``; iterate ``batches()`` once)."""

    def __init__(
        self, hub: FeedHub, upstream: _Upstream, maxsize: int, on_chunk: Callable[[Chunk], None] | None
    ) -> None:
        self._hub = hub
        self._up = upstream
        self.feed = upstream.feed
        self.symbol = upstream.symbol
        self.maxsize = int(maxsize)
        self.on_chunk = on_chunk
        self._queue: deque[Any] = deque()
        self._ready = asyncio.Event()
        self._closed = False
        self._started = False
        #: Chunks delivered to this subscriber; chunks (and rows) dropped because it did not keep up.
        self.received = 0
        self.dropped = 0
        self.dropped_rows = 0

    # LiveSource attributes mirror the upstream's (they may be known only after its first chunk)
    @property
    def columns(self) -> list[str]:  # type: ignore[override]
        return list(self._up.source.columns)

    @property
    def dtypes(self) -> dict[str, np.dtype]:  # type: ignore[override]
        return dict(self._up.source.dtypes)

    @property
    def upstream(self) -> LiveSource:
        """The shared source (read-only use: never iterate or close it yourself)."""
        return self._up.source

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> int:
        """Chunks waiting in this subscriber's queue."""
        return sum(1 for item in self._queue if isinstance(item, Chunk))

    async def batches(self) -> AsyncIterator[Chunk]:
        if self._started:
            raise FeedError("HubSubscription.batches() can be iterated only once")
        if self.on_chunk is not None:
            raise FeedError("this subscription delivers to its on_chunk callback; it has no batches()")
        self._started = True
        self._hub._start(self._up)
        while True:
            while not self._queue:
                if self._closed:
                    return
                self._ready.clear()
                await self._ready.wait()
            item = self._queue.popleft()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise FeedError(f"feed {self.feed}:{self.symbol} failed: {item.error}") from item.error
            yield item

    async def aclose(self) -> None:
        """Unsubscribe (the upstream closes with its last subscriber)."""
        if self._closed:
            return
        self._closed = True
        self._ready.set()
        await self._hub._unsubscribe(self)

    # called by the hub's pump task
    def _deliver(self, chunk: Chunk) -> None:
        if self._closed:
            return
        self.received += 1
        if self.on_chunk is not None:
            try:
                self.on_chunk(chunk)
            except Exception:
                log.exception("feed hub subscriber callback failed")
            return
        self._queue.append(chunk)
        while len(self._queue) > self.maxsize:  # drop the oldest chunk (never an end marker)
            old = self._queue.popleft()
            self.dropped += 1
            self.dropped_rows += len(old)
        self._ready.set()

    def _finish(self, item: Any) -> None:
        self._queue.append(item)
        self._ready.set()

    def stats(self) -> dict[str, Any]:
        """JSON-safe counters."""
        return {"received": self.received, "dropped": self.dropped, "dropped_rows": self.dropped_rows,
                "pending": self.pending, "closed": self._closed}


class FeedHub:
    """Shares one upstream ``LiveSource`` per (feed, symbol) between subscribers.

    ``factories`` maps feed names to ``factory(symbol) -> LiveSource``; "synthetic" (``SyntheticFeed``)
    is registered by default. Register Redis or WebSocket feeds with :func:`redis_factory` /
    :func:`ws_factory` (they need a URL). ``queue_size`` bounds each subscriber's queue (chunks).
    """

    def __init__(self, factories: Mapping[str, FeedFactory] | None = None, *, queue_size: int = 256,
                 defaults: bool = True) -> None:
        if queue_size < 1:
            raise InvalidValueError("queue_size must be >= 1")
        self.queue_size = int(queue_size)
        self._factories: dict[str, FeedFactory] = {}
        if defaults:
            self.register("synthetic", _synthetic_factory)
        for name, factory in (factories or {}).items():
            self.register(name, factory, replace=True)
        self._upstreams: dict[tuple[str, str], _Upstream] = {}
        #: Upstream sources opened so far (over the hub's life).
        self.opened = 0
        self._closed = False

    # -- registry

    def register(self, name: str, factory: FeedFactory, *, replace: bool = False) -> None:
        """Make feed ``name`` available; ``factory(symbol)`` builds its upstream source."""
        if not isinstance(name, str) or not name:
            raise InvalidValueError(f"feed name must be a non-empty string, got {name!r}")
        if not callable(factory):
            raise InvalidValueError(f"factory for feed {name!r} is not callable")
        if name in self._factories and not replace:
            raise InvalidValueError(f"feed {name!r} is already registered (pass replace=True)")
        self._factories[name] = factory

    @property
    def feeds(self) -> list[str]:
        """Registered feed names."""
        return sorted(self._factories)

    # -- subscribing

    def subscribe(self, feed: str, symbol: str, *, queue_size: int | None = None,
                  on_chunk: Callable[[Chunk], None] | None = None) -> HubSubscription:
        """A new subscriber of ``feed`` for ``symbol``; opens the upstream if it is the first one.

        With ``on_chunk`` chunks are handed to the callback (on the hub's loop) instead of a queue.
        The upstream starts reading as soon as there is a running loop (here, or at the first
        ``batches()`` call).
        """
        if self._closed:
            raise FeedError("the feed hub is closed")
        factory = self._factories.get(feed)
        if factory is None:
            raise InvalidValueError(f"unknown feed {feed!r}; registered feeds: {self.feeds}")
        if not isinstance(symbol, str) or not symbol:
            raise InvalidValueError(f"symbol must be a non-empty string, got {symbol!r}")
        key = (feed, symbol)
        up = self._upstreams.get(key)
        if up is None:
            try:
                source = factory(symbol)
            except Exception as exc:
                raise FeedError(f"cannot open feed {feed!r} for {symbol!r}: {exc}") from exc
            up = _Upstream(feed, symbol, source)
            self._upstreams[key] = up
            self.opened += 1
        sub = HubSubscription(self, up, queue_size or self.queue_size, on_chunk)
        up.subscribers.append(sub)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return sub  # started by the first batches()
        self._start(up)
        return sub

    def _start(self, up: _Upstream) -> None:
        if up.task is None and self._upstreams.get((up.feed, up.symbol)) is up:
            up.task = asyncio.get_running_loop().create_task(
                self._pump(up), name=f"jupyter_replay.feedhub.{up.feed}.{up.symbol}"
            )

    async def _pump(self, up: _Upstream) -> None:
        end: Any = _END
        try:
            async for chunk in up.source.batches():
                up.chunks += 1
                up.rows += len(chunk)
                for sub in list(up.subscribers):
                    sub._deliver(chunk)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported to every subscriber
            log.warning("feed %s:%s failed: %s", up.feed, up.symbol, exc)
            up.error = f"{type(exc).__name__}: {exc}"
            end = _Failed(exc)
        # the upstream ended by itself: forget it (a new subscribe opens a fresh one) and tell everyone
        if self._upstreams.get((up.feed, up.symbol)) is up:
            del self._upstreams[(up.feed, up.symbol)]
        for sub in list(up.subscribers):
            sub._finish(end)
        up.task = None
        await _close_source(up.source)

    async def _unsubscribe(self, sub: HubSubscription) -> None:
        up = sub._up
        if sub in up.subscribers:
            up.subscribers.remove(sub)
        if up.subscribers:
            return
        if self._upstreams.get((up.feed, up.symbol)) is up:
            del self._upstreams[(up.feed, up.symbol)]
        task, up.task = up.task, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                if _being_cancelled():  # we were cancelled ourselves, not just the pump
                    raise
            except Exception:  # noqa: BLE001 - already reported
                pass
        await _close_source(up.source)

    def split(self, name: str, default_feed: str = "synthetic") -> tuple[str, str]:
        """``"redis:ES"`` -> ``("redis", "ES")`` when ``redis`` is a registered feed, else
        ``(default_feed, name)`` (symbols may contain colons)."""
        feed, sep, symbol = name.partition(":")
        if sep and symbol and feed in self._factories:
            return feed, symbol
        return default_feed, name

    def live_factory(self, default_feed: str = "synthetic") -> Callable[[str], HubSubscription]:
        """A ``Session(live_factory=...)`` that subscribes ``"feed:symbol"`` (or ``symbol`` on
        ``default_feed``) through this hub."""
        if default_feed not in self._factories:
            raise InvalidValueError(f"unknown feed {default_feed!r}; registered feeds: {self.feeds}")

        def factory(name: str) -> HubSubscription:
            return self.subscribe(*self.split(name, default_feed))

        return factory

    # -- introspection and shutdown

    def subscribers(self, feed: str, symbol: str) -> int:
        """Current subscribers of (feed, symbol)."""
        up = self._upstreams.get((feed, symbol))
        return len(up.subscribers) if up else 0

    def stats(self) -> list[dict[str, Any]]:
        """One JSON-safe entry per open upstream."""
        return [
            {"feed": up.feed, "symbol": up.symbol, "subscribers": len(up.subscribers), "chunks": up.chunks,
             "rows": up.rows, "running": up.task is not None and not up.task.done(),
             "dropped": sum(s.dropped for s in up.subscribers)}
            for up in self._upstreams.values()
        ]

    async def aclose(self) -> None:
        """Close every subscription and upstream."""
        self._closed = True
        for up in list(self._upstreams.values()):
            for sub in list(up.subscribers):
                await sub.aclose()


async def _close_source(source: LiveSource) -> None:
    try:
        await source.aclose()
    except Exception:
        log.debug("closing upstream feed failed", exc_info=True)


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)  # Python 3.11+
    return bool(cancelling()) if cancelling is not None else False


def _synthetic_factory(symbol: str) -> LiveSource:
    from ..sources.synthetic import SyntheticFeed

    return SyntheticFeed(symbol)


def redis_factory(url: Any, stream: str = "{symbol}", **kwargs: Any) -> FeedFactory:
    """Factory for ``RedisStreamSource`` tailing ``stream.format(symbol=...)`` (kwargs passed on).

    Pass ``fields={...}`` so the columns are known before the first entry arrives (a Session sizes
    its buffer from them).
    """

    def factory(symbol: str) -> LiveSource:
        from .redis import RedisStreamSource

        return RedisStreamSource(url, stream.format(symbol=symbol), symbol=symbol, **kwargs)

    return factory


def ws_factory(url: str, **kwargs: Any) -> FeedFactory:
    """Factory for ``WebSocketJSONSource`` on ``url.format(symbol=...)`` (kwargs such as ``parse``,
    ``subscribe_message``, ``fields`` passed on)."""

    def factory(symbol: str) -> LiveSource:
        from .websocket_json import WebSocketJSONSource

        return WebSocketJSONSource(url.format(symbol=symbol, symbol_lower=symbol.lower()), symbol, **kwargs)

    return factory
