"""The server's feed configuration (``ReplayFeeds``): hub building, feed:symbol routing, declarative parsing."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest
from traitlets.config import Config
from websockets.asyncio.server import serve

from jupyter_replay.batch import Chunk
from jupyter_replay.exceptions import InvalidValueError
from jupyter_replay.feeds.redis import apublish_chunk
from jupyter_replay.server.feedhub import ReplayFeeds, json_parser
from jupyter_replay.sources import SyntheticFeed
from feed_helpers import take_rows


async def test_default_hub_routes_plain_symbols_to_synthetic() -> None:
    feeds = ReplayFeeds()
    hub = feeds.build_hub()
    assert hub.feeds == ["synthetic"] and feeds.default_feed == "synthetic"
    factory = hub.live_factory(feeds.default_feed)
    a, b = factory("DEMO"), factory("DEMO")
    assert a.upstream is b.upstream and isinstance(a.upstream, SyntheticFeed) and a.symbol == "DEMO"
    c = factory("unknown:XYZ")  # not a feed prefix: the whole text is the symbol
    assert c.feed == "synthetic" and c.symbol == "unknown:XYZ"
    assert len(await take_rows(a, 1)) >= 1
    await hub.aclose()


def test_bad_configuration_is_reported() -> None:
    with pytest.raises(InvalidValueError, match="default_feed"):
        ReplayFeeds(config=Config({"ReplayFeeds": {"default_feed": "redis"}})).build_hub()
    with pytest.raises(InvalidValueError, match="unknown settings"):
        ReplayFeeds(websocket_feeds={"x": {"url": "ws://h", "colour": 1}}).build_hub()
    with pytest.raises(InvalidValueError, match="cannot import"):
        ReplayFeeds(factories={"x": "no.such.module:thing"}).build_hub()
    hub = ReplayFeeds(factories={"mine": "jupyter_replay.sources.synthetic:SyntheticFeed"}).build_hub()
    assert hub.feeds == ["mine", "synthetic"]


def test_json_parser_filters_renames_and_unwraps() -> None:
    parse = json_parser(rename={"price": "p", "ts": "T"}, where={"e": "trade"}, records="data")
    msg = {"stream": "x", "data": [{"e": "trade", "p": "1.5", "T": 5}, {"e": "depth"}, 7]}
    assert parse(msg) == [{"e": "trade", "p": "1.5", "T": 5, "price": "1.5", "ts": 5}]
    assert json_parser()({"a": 1}) == [{"a": 1}]


@pytest.mark.redis
async def test_redis_feed_from_config(redis_server, aredis, stream_name) -> None:
    feeds = ReplayFeeds(config=Config({"ReplayFeeds": {
        "redis_url": redis_server, "redis_stream": stream_name + ":{symbol}", "redis_fields": {"price": "float64"},
    }}))
    hub = feeds.build_hub()
    assert hub.feeds == ["redis", "synthetic"]
    sub = hub.live_factory()("redis:ES")
    assert sub.feed == "redis" and sub.symbol == "ES" and sub.columns == ["price", "entry_ms", "entry_seq"]
    reader = asyncio.ensure_future(take_rows(sub, 3))
    await asyncio.sleep(0.3)
    await apublish_chunk(aredis, stream_name + ":ES", Chunk(time.time_ns() + np.arange(3), {"price": np.array([1.0, 2.0, 3.0])}))
    assert (await reader).columns["price"].tolist() == [1.0, 2.0, 3.0]
    await hub.aclose()


async def test_websocket_feed_from_config() -> None:
    subscriptions: list = []

    async def exchange(ws) -> None:
        subscriptions.append(json.loads(await ws.recv()))
        await ws.send(json.dumps({"result": None, "id": 1}))  # ack: filtered out by "where"
        for i in range(5):
            await ws.send(json.dumps({"data": {"e": "trade", "p": str(10 + i), "q": "0.5", "T": 1_700_000_000_000 + i}}))
        await ws.wait_closed()

    async with serve(exchange, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        hub = ReplayFeeds(websocket_feeds={"ex": {
            "url": f"ws://127.0.0.1:{port}/ws/{{symbol_lower}}",
            "fields": {"price": "float64", "size": "float64"},
            "rename": {"price": "p", "size": "q", "ts": "T"}, "where": {"e": "trade"}, "records": "data",
            "time_field": "ts", "time_unit": "ms",
            "subscribe_message": {"method": "SUBSCRIBE", "params": ["{symbol_lower}@trade"]},
        }}).build_hub()
        sub = hub.subscribe("ex", "BTCUSDT")
        got = await take_rows(sub, 5)
        await hub.aclose()
    assert subscriptions == [{"method": "SUBSCRIBE", "params": ["btcusdt@trade"]}]
    assert got.columns["price"].tolist() == [10.0, 11.0, 12.0, 13.0, 14.0]
    assert got.ts.tolist() == [(1_700_000_000_000 + i) * 1_000_000 for i in range(5)]
    assert sub.upstream.url.endswith("/ws/btcusdt") and sub.upstream.closed
