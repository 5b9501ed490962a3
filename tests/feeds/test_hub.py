"""FeedHub: one upstream per (feed, symbol), independent subscribers, close with the last one."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from jupyter_replay.batch import Chunk
from jupyter_replay.exceptions import FeedError, InvalidValueError
from jupyter_replay.feeds.hub import FeedHub, HubSubscription, redis_factory
from jupyter_replay.feeds.redis import apublish_chunk
from jupyter_replay.session import Session
from jupyter_replay.sources import LiveSource, SyntheticFeed
from feed_helpers import take_rows


class Counting:
    """A factory of fast SyntheticFeeds that remembers what it built."""

    def __init__(self, **kwargs) -> None:
        self.kwargs = {"rate_hz": 200.0, "seed": 1, **kwargs}
        self.built: list[SyntheticFeed] = []

    def __call__(self, symbol: str) -> SyntheticFeed:
        feed = SyntheticFeed(symbol, **self.kwargs)
        self.built.append(feed)
        return feed


async def take(sub: LiveSource, n: int, timeout: float = 10.0) -> list[Chunk]:
    out: list[Chunk] = []

    async def run() -> None:
        async for c in sub.batches():
            out.append(c)
            if len(out) >= n:
                return

    await asyncio.wait_for(run(), timeout)
    return out


async def until(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def test_two_subscribers_share_one_upstream_and_last_close_closes_it() -> None:
    factory = Counting()
    hub = FeedHub({"fast": factory})
    a = hub.subscribe("fast", "AAA")
    b = hub.subscribe("fast", "AAA")
    c = hub.subscribe("fast", "BBB")
    assert isinstance(a, LiveSource) and isinstance(a, HubSubscription)
    assert len(factory.built) == 2 and hub.opened == 2 and hub.subscribers("fast", "AAA") == 2
    assert a.columns == ["price", "size", "side"] and a.symbol == "AAA" and a.upstream is b.upstream
    got_a, got_b = await asyncio.gather(take(a, 10), take(b, 10))
    # both see the same chunks of the one upstream (b may have subscribed later by nothing: same objects)
    common = {id(x) for x in got_a} & {id(x) for x in got_b}
    assert len(common) >= 5
    await a.aclose()
    assert not factory.built[0].closed and hub.subscribers("fast", "AAA") == 1
    await b.aclose()
    assert factory.built[0].closed and hub.subscribers("fast", "AAA") == 0
    assert not factory.built[1].closed  # another symbol: its own upstream, still open
    d = hub.subscribe("fast", "AAA")  # a new subscriber after the last one left: a fresh upstream
    assert len(factory.built) == 3 and d.upstream is factory.built[2]
    await hub.aclose()
    assert all(f.closed for f in factory.built) and c.closed and d.closed
    with pytest.raises(FeedError, match="closed"):
        hub.subscribe("fast", "AAA")


async def test_a_subscriber_that_does_not_read_never_blocks_the_others() -> None:
    hub = FeedHub({"fast": Counting()}, queue_size=100)
    paused = hub.subscribe("fast", "X", queue_size=3)
    reader = hub.subscribe("fast", "X")
    got = await take(reader, 30)
    assert reader.dropped == 0
    ts = Chunk.concat(got).ts
    assert np.all(np.diff(ts) > 0)  # consecutive chunks, nothing lost for the reader
    assert paused.pending == 3 and paused.dropped >= 27 and paused.dropped_rows >= 27
    newest = await take(paused, 3)  # the paused one gets the newest chunks when it reads again
    assert newest[-1].ts[-1] >= got[-1].ts[-1]
    stats = hub.stats()
    assert stats[0]["subscribers"] == 2 and stats[0]["dropped"] == paused.dropped
    await hub.aclose()


async def test_callback_subscribers_and_errors() -> None:
    hub = FeedHub()
    assert hub.feeds == ["synthetic"]
    seen: list[Chunk] = []
    sub = hub.subscribe("synthetic", "CB", on_chunk=seen.append)
    await until(lambda: len(seen) >= 2)
    with pytest.raises(FeedError, match="on_chunk"):
        await sub.batches().__anext__()
    await sub.aclose()
    with pytest.raises(InvalidValueError, match="unknown feed"):
        hub.subscribe("nope", "X")
    with pytest.raises(InvalidValueError, match="already registered"):
        hub.register("synthetic", SyntheticFeed)

    def broken(symbol: str) -> LiveSource:
        raise OSError("no route")

    hub.register("broken", broken)
    with pytest.raises(FeedError, match="no route"):
        hub.subscribe("broken", "X")
    # an upstream that fails mid-way: every subscriber gets a FeedError, the upstream is forgotten
    hub.register("short", lambda s: _Failing(s))
    s1, s2 = hub.subscribe("short", "F"), hub.subscribe("short", "F")
    for s in (s1, s2):
        with pytest.raises(FeedError, match="boom"):
            await take(s, 10)
    assert hub.subscribers("short", "F") == 0
    await hub.aclose()


class _Failing(LiveSource):
    columns = ["x"]
    dtypes = {"x": np.dtype(np.float64)}

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol

    async def batches(self):
        yield Chunk(np.array([1]), {"x": np.array([1.0])})
        await asyncio.sleep(0.05)
        raise OSError("boom")


# --- on a real Redis --------------------------------------------------------------------------


async def feed_connections(aredis, stream: str) -> int:
    return sum(1 for c in await aredis.client_list() if c.get("name") == f"jupyter_replay:feed:{stream}")


@pytest.mark.redis
async def test_redis_feed_one_connection_for_two_subscribers(redis_server, aredis, stream_name) -> None:
    hub = FeedHub()
    hub.register("redis", redis_factory(redis_server, stream=stream_name + ":{symbol}",
                                        fields={"price": "float64", "size": "int64"}, block_ms=200))
    stream = stream_name + ":ES"
    a = hub.subscribe("redis", "ES", queue_size=1)  # a will not read for a while
    b = hub.subscribe("redis", "ES")
    await asyncio.sleep(0.3)  # the upstream is blocked in XREAD
    assert await feed_connections(aredis, stream) == 1
    rows = Chunk(time.time_ns() + np.arange(100), {"price": np.arange(100.0), "size": np.arange(100)})
    collected = asyncio.ensure_future(take_rows(b, 100))
    for i in range(10):
        await apublish_chunk(aredis, stream, rows.slice(i * 10, i * 10 + 10))
        await asyncio.sleep(0.02)
    got_b = await collected
    assert got_b.columns["price"].tolist() == list(np.arange(100.0))  # b gets everything, in order
    await until(lambda: a.dropped > 0)
    assert a.pending == 1  # a kept only the newest chunk while not reading; b was not held back
    assert await feed_connections(aredis, stream) == 1
    await b.aclose()
    assert await feed_connections(aredis, stream) == 1  # a still subscribed
    await a.aclose()
    deadline = time.monotonic() + 5
    while await feed_connections(aredis, stream) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert await feed_connections(aredis, stream) == 0  # last unsubscribe closed the upstream
    await hub.aclose()


@pytest.mark.redis
async def test_two_live_sessions_on_one_feed_pause_independently(redis_server, aredis, stream_name) -> None:
    hub = FeedHub()
    hub.register("redis", redis_factory(redis_server, stream=stream_name + ":{symbol}",
                                        fields={"price": "float64"}, block_ms=200))
    stream = stream_name + ":NQ"
    factory = lambda symbol: hub.subscribe("redis", symbol)  # noqa: E731 - what the server extension does
    s1 = Session(live_factory=factory, symbol="NQ")
    s2 = Session(live_factory=factory, symbol="NQ")
    s1.set_mode("live")
    s2.set_mode("live")
    s2.pause()
    await asyncio.sleep(0.3)
    assert hub.opened == 1 and hub.subscribers("redis", "NQ") == 2
    assert await feed_connections(aredis, stream) == 1
    t0 = time.time_ns()
    await apublish_chunk(aredis, stream, Chunk(t0 + np.arange(20), {"price": np.arange(20.0)}))
    await until(lambda: len(s1.buffer) == 20)
    assert len(s2.buffer) == 0 and s2.state.value == "paused" and s1.state.value == "playing"
    s2.play()
    s1.pause()
    await apublish_chunk(aredis, stream, Chunk(t0 + 100 + np.arange(5), {"price": 100 + np.arange(5.0)}))
    await until(lambda: len(s2.buffer) == 5)
    assert len(s1.buffer) == 20  # paused: kept its rows, took no new ones
    assert s2.frame()["price"].tolist() == [100.0, 101.0, 102.0, 103.0, 104.0]
    assert await feed_connections(aredis, stream) == 1
    await s1.aclose()
    assert hub.subscribers("redis", "NQ") == 1
    await s2.aclose()
    await until(lambda: hub.subscribers("redis", "NQ") == 0)
    deadline = time.monotonic() + 5
    while await feed_connections(aredis, stream) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert await feed_connections(aredis, stream) == 0
    await hub.aclose()
