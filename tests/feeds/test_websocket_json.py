"""WebSocketJSONSource against a real local WebSocket server (``websockets.serve``)."""

from __future__ import annotations

import asyncio
import json
import random
import socket

import numpy as np
import pytest
from websockets.asyncio.server import serve

from jupyter_replay.batch import Chunk
from jupyter_replay.exceptions import FeedError, InvalidValueError
from jupyter_replay.feeds.websocket_json import WebSocketJSONSource
from feed_helpers import collect

T_MS = 1_700_000_000_000


def parse_trade(msg):
    """Exchange-style: prices as strings, ms times, heartbeats and acks to skip."""
    if msg.get("e") != "trade":
        return None
    return {"price": msg["p"], "size": msg["q"], "ts": msg["T"]}


def trade(i: int, base: int = 0) -> str:
    return json.dumps({"e": "trade", "p": f"{100 + base + i * 0.5}", "q": i, "T": T_MS + base * 1000 + i})


class FeedServer:
    """A local exchange: connection 1 sends ``first`` trades then drops; later ones send ``later`` and stay."""

    def __init__(self, first: int = 10, later: int = 10) -> None:
        self.first, self.later = first, later
        self.connections = 0
        self.subscriptions: list = []
        self.release = asyncio.Event()

    async def handler(self, ws) -> None:
        self.connections += 1
        n = self.connections
        self.subscriptions.append(json.loads(await ws.recv()))
        await ws.send(json.dumps({"e": "ack"}))
        count = self.first if n == 1 else self.later
        for i in range(count):
            await ws.send(trade(i, base=n * 100))
        if n == 1:
            await asyncio.sleep(0.05)
            ws.transport.abort()  # hard drop: no close frame
            return
        await self.release.wait()


async def test_reconnect_after_drop_counts_gap_and_resubscribes() -> None:
    fs = FeedServer(first=10, later=10)
    gaps: list[dict] = []
    async with serve(fs.handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        src = WebSocketJSONSource(
            f"ws://127.0.0.1:{port}", "BTCUSDT", parse=parse_trade,
            subscribe_message=lambda sym: {"method": "SUBSCRIBE", "params": [f"{sym.lower()}@trade"]},
            fields={"price": "float64", "size": "int64"}, time_field="ts", time_unit="ms",
            backoff_initial=0.01, backoff_max=0.05, on_gap=gaps.append, gap_column="gap",
        )
        assert src.columns == ["price", "size", "gap"]
        chunks = await collect(src, 20)
        await src.aclose()
        fs.release.set()
    out = Chunk.concat(chunks)
    assert fs.connections == 2 and src.connections == 2 and src.gaps == 1
    assert fs.subscriptions == [{"method": "SUBSCRIBE", "params": ["btcusdt@trade"]}] * 2
    expected_ts = [(T_MS + 100_000 + i) * 10**6 for i in range(10)] + [(T_MS + 200_000 + i) * 10**6 for i in range(10)]
    assert out.ts.tolist() == expected_ts
    np.testing.assert_array_equal(out.columns["price"][:3], [200.0, 200.5, 201.0])
    assert out.columns["size"].dtype == np.int64 and out.columns["size"].tolist() == list(range(10)) * 2
    assert out.columns["gap"].tolist() == [False] * 10 + [True] + [False] * 9  # first row after the gap
    assert len(gaps) == 1 and gaps[0]["gaps"] == 1 and gaps[0]["last_ns"] == expected_ts[9]
    assert src.messages == 22  # 20 trades + 2 acks (skipped by parse)


async def test_messages_in_a_window_become_one_chunk() -> None:
    async def handler(ws) -> None:
        await ws.send("not json")
        await ws.send(json.dumps([{"p": i, "q": i} for i in range(5)]))  # a list message: 5 rows
        for i in range(45):
            await ws.send(json.dumps({"p": 5 + i, "q": 5 + i}))
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        src = WebSocketJSONSource(f"ws://127.0.0.1:{port}", parse=lambda m: [
            {"price": r["p"], "size": r["q"]} for r in (m if isinstance(m, list) else [m])], fields=["price", "size"], batch_window=0.5)
        chunks = await collect(src, 50)
        await src.aclose()
    out = Chunk.concat(chunks)
    assert out.columns["size"].dtype == np.float64  # a list of fields means float64
    assert out.columns["size"].tolist() == [float(i) for i in range(50)]
    assert src.bad_messages == 1
    assert len(chunks) < 10  # batched per window, not one chunk per message
    assert np.all(np.diff(out.ts) >= 0)  # reception time stamps (no time_field)


async def test_gives_up_after_max_retries_with_feed_error() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = WebSocketJSONSource(f"ws://127.0.0.1:{port}", fields=["p"], backoff_initial=0.01, backoff_max=0.02,
                              max_retries=2)
    with pytest.raises(FeedError, match="giving up after 3 attempts"):
        await asyncio.wait_for(collect(src, 1), 10)
    assert src.connections == 0


async def test_aclose_ends_a_waiting_consumer() -> None:
    async def handler(ws) -> None:
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        src = WebSocketJSONSource(f"ws://127.0.0.1:{port}", fields=["p"])
        task = asyncio.ensure_future(collect(src, 1))
        while src.connections == 0:
            await asyncio.sleep(0.01)
        await src.aclose()
        assert await asyncio.wait_for(task, 2) == []
        assert src.gaps == 0


def test_backoff_is_exponential_capped_and_jittered() -> None:
    src = WebSocketJSONSource("ws://x", fields=["p"], backoff_initial=0.1, backoff_max=2.0, jitter=0.5,
                              rng=random.Random(1))
    for attempt, base in [(0, 0.1), (1, 0.2), (3, 0.8), (5, 2.0), (50, 2.0)]:
        delays = [src.retry_delay(attempt) for _ in range(50)]
        assert all(base * 0.5 <= d <= base for d in delays)
        assert len(set(delays)) > 1  # jitter spreads reconnects out
    with pytest.raises(InvalidValueError):
        WebSocketJSONSource("ws://x", fields=["p"], jitter=2)
    with pytest.raises(InvalidValueError):
        WebSocketJSONSource("ws://x", fields=[])
