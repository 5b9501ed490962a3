"""Faults: a kernel killed with SIGKILL (removed, or reset when the kernel is restarted), WebSockets
dropped mid-stream and resumed with ``?since=``, a live upstream that disconnects (reconnect with
backoff, gap marked), clients that stop reading (bounded, merged frames counted). Each time the other session
and the server are unaffected.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time

import numpy as np
import pandas as pd
import pytest
from raw_ws import stall_server_side
from reliability_helpers import SESSIONS, Bystander
from server_helpers import arrow_bytes, on_server_loop, ts_ns
from stream_check import StreamChecker
from websockets.asyncio.server import serve

from jupyter_replay.sources import sample_trades


async def _follow(ws, checker: StreamChecker, pred, timeout: float = 30.0):
    """Feed messages to ``checker`` until ``pred(kind, msg)``; returns that message."""
    deadline = time.monotonic() + timeout
    while True:
        kind, msg = await ws.recv(max(0.1, deadline - time.monotonic()))
        checker.feed(kind, msg)
        if kind == "closed" or pred(kind, msg):
            return kind, msg


def _kernel_pid(jp_serverapp, kid: str) -> int:
    km = jp_serverapp.kernel_manager.get_kernel(kid)
    process = getattr(km.provisioner, "process", None) if km.provisioner else None
    return process.pid if process is not None else km.kernel.pid


async def _wait_gone(api, kid: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while (await api.request("GET", *SESSIONS, kid))[0] != 404:
        assert time.monotonic() < deadline, "session still there"
        await asyncio.sleep(0.05)


async def _streaming_bystander(api):
    """Another kernel's session playing slowly with a client whose stream is checked for gaps."""
    kb = await api.start_kernel()
    await api.create(kb, source={"kind": "sample", "n": 20_000, "seed": 4}, speed=1)
    ws = await api.ws(kb)
    checker = StreamChecker("bystander")
    await _follow(ws, checker, lambda k, m: k == "frame")
    await api.ok(kb, "play")
    return kb, ws, checker


@on_server_loop
async def test_sigkill_kernel_removes_its_session_only(api, jp_serverapp):
    kid = await api.start_kernel()
    await api.create(kid, source={"kind": "sample", "n": 5000}, speed=10)
    await api.ok(kid, "play")
    ws = await api.ws(kid)
    await ws.until(lambda k, m: k == "frame" and not m[0].get("history"))  # streaming
    kb, ws_b, checker_b = await _streaming_bystander(api)
    rows_before = checker_b.rows

    os.kill(_kernel_pid(jp_serverapp, kid), signal.SIGKILL)  # restart_limit = 0: declared dead, not restarted
    await _wait_gone(api, kid)
    msgs = await ws.until(lambda k, m: False)
    assert msgs[-1] == ("closed", None) and ws.conn.close_code == 1001
    assert kid not in [k["id"] for k in (await api.request("GET", "api", "kernels"))[1]]

    await _follow(ws_b, checker_b, lambda k, m: k == "frame" and checker_b.rows > rows_before + 5)
    model = await api.status(kb)
    assert model["state"] == "playing" and model["error"] is None
    assert not checker_b.resets  # the other session never noticed
    ws_b.close()


@on_server_loop
async def test_sigkill_with_auto_restart_resets_the_session(api, jp_serverapp):
    kid = await api.start_kernel()
    km = jp_serverapp.kernel_manager.get_kernel(kid)
    km._restarter.restart_limit = 3  # this kernel is restarted when it dies (the server default)
    model = await api.create(kid, source={"kind": "sample", "n": 3000}, speed="max")
    await api.ok(kid, "play")
    await api.wait_for(kid, lambda m: m["state"] == "finished" and m["buffer_rows"] == 3000)
    ws = await api.ws(kid)
    checker = StreamChecker(kid)
    await _follow(ws, checker, lambda k, m: k == "frame")
    kb, ws_b, checker_b = await _streaming_bystander(api)
    pid = _kernel_pid(jp_serverapp, kid)

    os.kill(pid, signal.SIGKILL)
    await _follow(ws, checker, lambda k, m: k == "text" and m["type"] == "reset", timeout=60)
    assert checker.resets[-1] == "restart"
    after = await api.wait_for(kid, lambda m: m["buffer_rows"] == 0)
    assert after["instance"] == model["instance"] and after["kernel_id"] == kid  # same session, cleared
    deadline = time.monotonic() + 60
    while _kernel_pid(jp_serverapp, kid) == pid:
        assert time.monotonic() < deadline, "the kernel was not restarted"
        await asyncio.sleep(0.1)

    # the session keeps working after the restart, on the same socket
    await api.ok(kid, "stop")
    await api.ok(kid, "play")
    await _follow(ws, checker, lambda k, m: k == "text" and m["type"] == "state" and m["status"]["rows"] == 3000)
    assert checker.rows == 3000 and checker.resets[-2:] == ["restart", "stop"]
    assert (await api.status(kid))["buffer_rows"] == 3000
    assert not checker_b.resets and (await api.status(kb))["state"] == "playing"
    ws.close()
    ws_b.close()


@on_server_loop
async def test_websocket_drops_and_resumes_without_gap_or_duplicate(api):
    kid = await api.start_kernel()
    n = 3000
    await api.create(kid, source={"kind": "sample", "n": n, "seed": 8}, speed=40)  # ~4 s of replay
    expected = ts_ns(sample_trades(n=n, seed=8))
    kb, ws_b, checker_b = await _streaming_bystander(api)
    checker = StreamChecker(kid)
    ws = await api.ws(kid)
    _, hello = await _follow(ws, checker, lambda k, m: k == "text" and m["type"] == "hello")
    await _follow(ws, checker, lambda k, m: k == "frame")
    await api.ok(kid, "play")
    drops = 0

    def finished(kind, msg) -> bool:
        return kind == "text" and msg["type"] == "state" and msg["status"]["state"] == "finished"

    while True:
        target = checker.frames + 15  # drops spread over the stream, each one mid-stream
        kind, msg = await _follow(ws, checker, lambda k, m: (k == "frame" and checker.frames >= target) or finished(k, m))
        if finished(kind, msg):
            break
        ws.conn.stream.close()  # abrupt, mid-stream: no close frame
        drops += 1
        await asyncio.sleep(0.05 * (drops % 4))  # rows keep flowing while disconnected
        checker.resuming = True
        ws = await api.ws(kid, since=checker.seq, instance=hello["instance"])
        await _follow(ws, checker, lambda k, m: k == "text" and m["type"] == "hello")
        checker.resuming = False
    assert drops >= 3 and not checker.resets  # every reconnect was a true resume
    np.testing.assert_array_equal(np.concatenate(checker.ts), expected)  # every row exactly once, in order

    # a drop across a seek: the resume delivers the seek's reset, then the rows from the new position
    await api.ok(kid, "speed", speed=5)
    await api.ok(kid, "seek", fraction=0.0)
    await api.ok(kid, "play")
    await _follow(ws, checker, lambda k, m: k == "frame")
    ws.conn.stream.close()
    position = (await api.ok(kid, "seek", fraction=0.9))["position"]
    checker.resuming = True
    ws = await api.ws(kid, since=checker.seq, instance=hello["instance"])
    await _follow(ws, checker, lambda k, m: k == "text" and m["type"] == "hello")
    checker.resuming = False
    await _follow(ws, checker, finished, timeout=60)
    assert checker.resets[-1] == "seek" and "resync" not in checker.resets
    np.testing.assert_array_equal(np.concatenate(checker.ts[checker.reset_marks[-1]:]), expected[position:])
    ws.close()
    assert not checker_b.resets
    await _follow(ws_b, checker_b, lambda k, m: k == "frame")
    ws_b.close()


# ---------------------------------------------------------------------------------------- live upstream
T_MS = 1_700_000_000_000


class Exchange:
    """A local exchange-style WebSocket feed: sends numbered trades; can drop and refuse connections."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.refuse = 0  # refuse this many connections after the first drop
        self.first = 40  # trades on the first connection, then a hard drop
        self.next = 0
        self.release = asyncio.Event()

    async def handler(self, ws) -> None:
        self.connections += 1
        if self.connections == 1:
            for _ in range(self.first):
                await self._trade(ws)
            await asyncio.sleep(0.1)
            ws.transport.abort()  # hard drop: no close frame
            return
        if self.refuse > 0:
            self.refuse -= 1
            await ws.close(1011, "overloaded")  # the upstream is still unhealthy
            return
        while not self.release.is_set():
            await self._trade(ws)
            await asyncio.sleep(0.01)

    async def _trade(self, ws) -> None:
        i = self.next
        self.next += 1
        await ws.send(json.dumps({"e": "trade", "p": str(100 + i), "T": T_MS + i}))


@pytest.fixture
def exchange() -> Exchange:
    ex = Exchange()
    yield ex
    ex.sock.close()


@pytest.fixture
def jp_server_config(jp_server_config, exchange):
    jp_server_config.ReplayFeeds.websocket_feeds = {
        "ex": {
            "url": f"ws://127.0.0.1:{exchange.port}/{{symbol}}",
            "fields": {"price": "float64"},
            "rename": {"price": "p", "ts": "T"},
            "where": {"e": "trade"},
            "time_field": "ts",
            "time_unit": "ms",
            "gap_column": "gap",
            "batch_window": 0.005,
            "backoff_initial": 0.05,
            "backoff_max": 0.2,
        }
    }
    return jp_server_config


@on_server_loop
async def test_live_upstream_disconnect_reconnects_and_marks_the_gap(api, exchange):
    exchange.refuse = 2
    async with serve(exchange.handler, sock=exchange.sock):
        kid = await api.start_kernel()
        await api.create(kid, source={"kind": "sample", "n": 100})
        ws = await api.ws(kid)
        checker = StreamChecker(kid)
        await _follow(ws, checker, lambda k, m: k == "frame")
        kb, ws_b, checker_b = await _streaming_bystander(api)
        cols: list[dict] = []

        def collect(kind, msg) -> bool:
            if kind == "frame" and not msg[0].get("history"):
                cols.append({k: np.array(v) for k, v in msg[1].items()})
            return sum(len(c["price"]) for c in cols) >= exchange.first + 20

        await api.ok(kid, "mode", mode="live", symbol="ex:BTCUSDT")
        await _follow(ws, checker, collect, timeout=60)
        model = await api.status(kid)
        assert model["mode"] == "live" and model["state"] == "playing" and model["error"] is None
        exchange.release.set()
        await api.ok(kid, "mode", mode="replay")
    prices = np.concatenate([c["price"] for c in cols])
    gaps = np.concatenate([c["gap"] for c in cols])
    ts = np.concatenate([c["timestamp_ns"] for c in cols])
    n = len(prices)
    np.testing.assert_array_equal(prices, 100.0 + np.arange(n))  # nothing lost or repeated around the gap
    np.testing.assert_array_equal(ts, (T_MS + np.arange(n)) * 1_000_000)
    assert gaps.dtype == np.bool_ and np.flatnonzero(gaps).tolist() == [exchange.first]  # first row after it
    assert exchange.connections == 4  # dropped, refused twice (backoff), then reconnected
    assert not checker_b.resets and (await api.status(kb))["state"] == "playing"
    ws.close()
    ws_b.close()


# ---------------------------------------------------------------------------------------- slow clients
@on_server_loop
async def test_slow_clients_are_bounded_and_do_not_slow_the_others(api, raw_ws, replay_ext, replay_manager):
    """Extends tests/server's slow-client test: two clients that really stop reading (raw sockets, socket
    buffers pinned small) and a fast one on one session, plus another session streaming to its reader:
    only the stalled connections merge frames (at most ``ws_queue_frames`` queued); once they read again
    they get every row once; the others get every row frame by frame.

    Batches are released with ``step`` (30 of them whatever the machine's load), so the stalled clients'
    merging does not depend on timing."""
    replay_ext.ws_queue_frames = 4
    replay_ext.buffer_rows = 50_000
    replay_ext.ws_max_bytes = 64 * 2**20  # room for every row: merging, not the byte budget, is tested here
    kid = await api.start_kernel()
    await api.create(kid)
    n, step, width = 45_000, 1500, 40  # fewer rows than buffer_rows: merging alone keeps up; ~15 MB in all
    t0 = pd.Timestamp("2024-01-01T00:00:00Z")
    df = pd.DataFrame({f"c{i}": np.arange(n, dtype=np.float64) + i for i in range(width)})
    df.insert(0, "timestamp", t0 + pd.to_timedelta(np.arange(n) * 2, unit="ms"))
    code, model, _ = await api.request("PUT", *SESSIONS, kid, "data", raw=arrow_bytes(df))
    assert code == 200, model
    bystander = await Bystander.start(api)
    kb, ws_b, checker_b = await _streaming_bystander(api)
    rows_b0 = (await api.status(kb))["rows"]

    slow = []
    for _ in range(2):
        before = set(replay_manager.get(kid).clients)
        ws = await raw_ws(kid)
        assert ws.status == 101, ws.head
        (connection,) = set(replay_manager.get(kid).clients) - before
        stall_server_side(connection)
        slow.append((ws, connection))
    fast = await api.ws(kid)
    fast_checker = StreamChecker("fast")
    await _follow(fast, fast_checker, lambda k, m: k == "frame")
    fast_connection = next(c for c in replay_manager.get(kid).clients if all(c is not s for _, s in slow))

    for i in range(n // step):
        await api.ok(kid, "step", n=step)
        # the fast client reads as it goes (each step's rows arrive before the next step)
        end = (i + 1) * step
        await _follow(fast, fast_checker, lambda k, m, end=end: k == "frame" and m[0]["first_row"] + m[0]["rows"] == end)
    assert fast_checker.rows == n and fast_checker.frames == n // step
    assert fast_connection.frames_merged == 0 and not [m for m in fast_checker.texts if m["type"] == "merged"]
    np.testing.assert_array_equal(np.concatenate(fast_checker.ts), ts_ns(df))

    # the stalled clients: one frame stuck in the socket, at most 4 queued, everything else merged
    for _, connection in slow:
        assert connection.frames_merged >= n // step - 1 - 4 - 1 and connection.max_frames_queued <= 4
        assert connection.resyncs == 0 and connection.rows_dropped == 0
    merged = sum(c.frames_merged for _, c in slow)
    status = await api.status(kid)
    assert status["frames_merged"] == merged and status["rows_dropped"] == 0  # counted once, nothing lost

    for ws, connection in slow:  # now read what the stalled clients were sent: contiguous, merges reported
        ws.unstall(connection)
        checker = StreamChecker("slow")
        total = connection.frames_merged
        told = [0]

        def done(kind, msg, checker=checker, told=told, total=total):
            checker.feed(kind, msg)
            if kind == "text" and msg["type"] == "merged":
                told[0] = msg["total_frames_merged"]
            return checker.next_row == n and told[0] == total

        await ws.until(done)
        assert checker.rows == n and checker.frames + total == n // step  # every batch: a frame or merged
        np.testing.assert_array_equal(np.concatenate(checker.ts), ts_ns(df))
        ws.close()

    # the other session kept releasing rows to its reader meanwhile, without gap or resync
    await api.wait_for(kb, lambda m: m["rows"] > rows_b0)
    rows_b = (await api.status(kb))["rows"]
    await _follow(ws_b, checker_b, lambda k, m: k == "frame" and m[0]["first_row"] + m[0]["rows"] >= rows_b)
    assert checker_b.rows >= rows_b - rows_b0 and not checker_b.resets  # checked for gaps as it read
    assert (await api.status(kb))["frames_merged"] == 0
    await bystander.check()
    fast.close()
    ws_b.close()
