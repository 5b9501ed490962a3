"""Issue 14, WebSocket side: viewers must not tie up memory, and closing them is quiet.

Clients here really stall: raw sockets with a tiny receive buffer set before connecting complete the
handshake and then read nothing, and the server's send buffer of each connection is pinned small, so the
server's writes block after a few KiB whatever the machine's load (``tests/server/raw_ws.py``).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time

import numpy as np
import pandas as pd
import psutil
import pytest
from raw_ws import stall_server_side
from reliability_helpers import SESSIONS
from server_helpers import arrow_bytes, on_server_loop
from stream_check import StreamChecker
from tornado.httpclient import HTTPClientError

from jupyter_replay.server.connection import MAX_ID_CHARS

MiB = 2**20


async def _wide_session(api, rows: int, width: int) -> str:
    """A session whose buffer is full: ``rows`` rows of ``width`` float64 columns, all released."""
    kid = await api.start_kernel()
    await api.create(kid)
    t0 = pd.Timestamp("2024-01-01T00:00:00Z")
    df = pd.DataFrame({f"c{i}": np.arange(rows, dtype=np.float64) + i for i in range(width)})
    df.insert(0, "timestamp", t0 + pd.to_timedelta(np.arange(rows), unit="ms"))
    code, model, _ = await api.request("PUT", *SESSIONS, kid, "data", raw=arrow_bytes(df))
    assert code == 200, model
    return kid


async def _stalled(raw_ws, replay_manager, kid, **kw):
    before = set(replay_manager.get(kid).clients)
    ws = await raw_ws(kid, **kw)
    assert ws.status == 101, ws.head
    (connection,) = set(replay_manager.get(kid).clients) - before
    stall_server_side(connection)
    return ws, connection


async def _wait(pred, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def _reading_bystander(api):
    """Another session playing in real time with a client that reads everything (checked for gaps)."""
    kb = await api.start_kernel()
    await api.create(kb, source={"kind": "sample", "n": 200_000, "seed": 4}, speed=1)
    ws = await api.ws(kb)
    checker = StreamChecker("bystander")
    await api.ok(kb, "play")

    async def follow() -> None:
        while True:
            kind, msg = await ws.recv(60)
            checker.feed(kind, msg)
            if kind == "closed":
                return

    return kb, ws, checker, asyncio.ensure_future(follow())


@on_server_loop
async def test_non_reading_viewers_hold_at_most_their_budget(api, raw_ws, replay_ext, replay_manager):
    """50 viewers that never read, on a session with a full 100k-row buffer that keeps playing: each holds
    at most ``ws_max_bytes`` (its history cut to fit, then resyncs), they are closed with 1013 once past
    their budget for ``ws_stall_timeout``, server memory grows by no more than their budgets, and another
    session keeps releasing rows to its reader meanwhile."""
    n_clients, budget = 50, 1 * MiB
    replay_ext.buffer_rows = 100_000
    replay_ext.ws_max_bytes = budget
    replay_ext.ws_stall_timeout = 2.0
    replay_ext.ws_max_connections_per_session = n_clients
    replay_ext.ws_max_connections_per_user = n_clients + 10
    kid = await _wide_session(api, 200_000, 10)  # 96 bytes a row on the wire: a 9.6 MB history
    await api.ok(kid, "step", n=100_000)
    assert (await api.status(kid))["buffer_rows"] == 100_000
    kb, ws_b, checker_b, follow_b = await _reading_bystander(api)
    gc.collect()
    rss0 = psutil.Process().memory_info().rss

    stalled = [await _stalled(raw_ws, replay_manager, kid) for _ in range(n_clients)]
    connections = [c for _, c in stalled]
    refused = await raw_ws(kid)  # one more than ws_max_connections_per_session
    assert refused.status == 429 and b"ws_max_connections_per_session" in refused.body
    # every history was cut to the newest rows that fit the budget
    await _wait(lambda: all(c.written_bytes > 0 for c in connections), what="histories written")
    rows_b0 = (await api.status(kb))["rows"]

    await api.ok(kid, "speed", speed=1000)
    await api.ok(kid, "play")  # ~100 ms of data a frame: every stalled client falls past its budget
    await _wait(lambda: all(c.resyncs for c in connections), what="every stalled client to be resynced")
    held = sum(c.held_bytes for c in connections)
    rss1 = psutil.Process().memory_info().rss
    assert all(c.max_held_bytes <= budget for c in connections), max(c.max_held_bytes for c in connections)
    assert held <= n_clients * budget
    # RSS: the budgets plus room for the interpreter's own churn (one 100k-row history copy at a time)
    assert rss1 - rss0 <= n_clients * budget + 96 * MiB, (rss1 - rss0) / MiB

    # past their budget and still not reading: closed with 1013 (try again later), memory released
    await _wait(lambda: not replay_manager.get(kid).clients, what="stalled clients to be closed")
    assert {c.close_code for c in connections} == {1013}
    status = await api.status(kid)
    # their discarded frames are counted; rows_dropped is counted at a resync's snapshot, which a closed
    # client never reaches (it resumes with ?since= or gets a history when it reconnects)
    assert status["frames_merged"] > 0 and status["rows_dropped"] == 0
    await _wait(lambda: all(c._task.done() for c in connections), what="writer tasks to end", timeout=30)

    # the bystander kept releasing rows to its reader, without gap
    await api.wait_for(kb, lambda m: m["rows"] > rows_b0)
    assert (await api.status(kb))["frames_merged"] == 0 and not checker_b.resets
    ws_b.close()
    await asyncio.wait_for(follow_b, 30)
    assert checker_b.rows > 0


@on_server_loop
async def test_echoed_ids_and_client_messages_are_bounded(api, raw_ws, replay_ext, replay_manager):
    """Ids are echoed only when short; a huge message closes the connection (1009); a client that sends
    requests and never reads the answers is closed (1008) holding at most its budget."""
    kid = await api.start_kernel()
    await api.create(kid, source={"kind": "sample", "n": 100, "seed": 1})
    ws = await api.ws(kid)
    await ws.until(lambda k, m: k == "frame")
    ok_id = "x" * MAX_ID_CHARS
    await ws.send(type="ping", id=ok_id)
    assert (await ws.until(lambda k, m: k == "text" and m["type"] == "pong"))[-1][1]["id"] == ok_id
    for bad in ("x" * (MAX_ID_CHARS + 1), {"a": 1}, [1, 2], 2**60):
        await ws.send(type="ping", id=bad)
        err = (await ws.until(lambda k, m: k == "text" and m["type"] in ("pong", "error")))[-1][1]
        assert err["type"] == "error" and err["status"] == 400 and "id" not in err, err
        assert len(json.dumps(err)) < 300
    await ws.conn.write_message('{"type": "ping", "id": ' + "9" * 5000 + "}")  # int literal json cannot read
    err = (await ws.until(lambda k, m: k == "text" and m["type"] == "error"))[-1][1]
    assert err["status"] == 400 and len(err["message"]) < 300
    ws.close()

    # an 8 MiB id: the message is refused before it is parsed (tornado closes with 1009)
    big, connection = await _stalled(raw_ws, replay_manager, kid)
    big.unstall(connection)
    await big.until(lambda k, m: k == "frame")
    try:
        await big.send(type="ping", id="x" * (8 * MiB))
    except ConnectionError:
        pass  # the server stopped reading at the frame header
    msgs = await big.drain(quiet=5)
    assert msgs[-1] == ("closed", 1009) and big.close_reason == "message too big"
    await _wait(lambda: connection not in replay_manager.get(kid).clients, what="the big client to go")

    # pings that are never read: replies queue up to ws_queue_frames, then the client is closed (1008)
    deaf, connection = await _stalled(raw_ws, replay_manager, kid)
    for i in range(5000):  # ~0.5 MB of pongs: far more than the pinned socket buffers take
        try:
            await deaf.send(type="ping", id=f"{i:064d}")
        except ConnectionError:
            break
        if connection.close_code is not None:
            break
    await _wait(lambda: connection.close_code is not None, what="the deaf client to be closed")
    assert connection.close_code == 1008 and connection.max_held_bytes <= connection.max_bytes
    assert connection not in replay_manager.get(kid).clients


@on_server_loop
async def test_connection_limits_per_session_and_user(api, replay_ext):
    """One connection more than allowed answers the upgrade with 429; capability tokens count per session."""
    replay_ext.ws_max_connections_per_session = 3
    replay_ext.ws_max_connections_per_user = 4
    ka, kb = await api.start_kernel(), await api.start_kernel()
    token = (await api.create(ka, source={"kind": "sample", "n": 10}))["client_token"]
    await api.create(kb, source={"kind": "sample", "n": 10})
    a = [await api.ws(ka) for _ in range(3)]
    with pytest.raises(HTTPClientError) as info:
        await api.ws(ka)
    assert info.value.code == 429 and b"ws_max_connections_per_session=3" in info.value.response.body
    b = [await api.ws(kb)]
    with pytest.raises(HTTPClientError) as info:  # 4 connections of this user already
        await api.ws(kb)
    assert info.value.code == 429 and b"ws_max_connections_per_user=4" in info.value.response.body
    a.pop().close()
    await api.wait_for(ka, lambda m: m["clients"] == 2)
    b.append(await api.ws(kb))  # room again
    # the session's own capability token (the kernel's widget) is not a user: only the session limit applies
    cap = {"Authorization": f"ReplayToken {token}"}
    a.append(await api.ws(ka, headers=cap))
    with pytest.raises(HTTPClientError) as info:
        await api.ws(ka, headers=cap)
    assert info.value.code == 429
    for ws in a + b:
        ws.close()


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@on_server_loop
async def test_closing_stalled_clients_is_quiet(api, raw_ws, replay_manager, replay_ext, jp_serverapp):
    """Deleting a session and shutting the manager down with stalled clients logs no traceback."""
    kid = await _wide_session(api, 50_000, 10)
    await api.ok(kid, "step", n=20_000)  # a 2 MB history each: their writes stay pending
    k2 = await api.start_kernel()
    await api.create(k2, source={"kind": "sample", "n": 100_000, "seed": 1})
    await api.ok(k2, "step", n=50_000)
    stalled = [await _stalled(raw_ws, replay_manager, k) for k in (kid, kid, k2, k2)]
    await _wait(lambda: all(c.written_bytes for _, c in stalled), what="pending writes")
    # jupyter_server's and the extension's loggers do not propagate to the root logger: listen on each
    handler = _Records()
    loggers = {logging.getLogger(), logging.getLogger("tornado"), logging.getLogger("asyncio"),
               jp_serverapp.log, replay_ext.log}
    for logger in loggers:
        logger.addHandler(handler)
    code, _, _ = await api.request("DELETE", *SESSIONS, kid)
    assert code == 204
    await replay_manager.aclose()  # what server shutdown does
    assert all(c.close_code == 1001 for _, c in stalled)
    await _wait(lambda: all(c._task.done() for _, c in stalled), what="writer tasks to end", timeout=30)
    # tornado aborts a client that does not answer the close after 5 s: its pending writes fail then
    await _wait(lambda: all(c.writer.ws_connection is None for _, c in stalled), what="sockets closed", timeout=30)
    gc.collect()
    await asyncio.sleep(0)
    for logger in loggers:
        logger.removeHandler(handler)
    assert any("closed" in r.getMessage() for r in handler.records)  # the handler does hear the server
    noisy = [r for r in handler.records if r.exc_info or "CancelledError" in r.getMessage()
             or "Traceback" in r.getMessage() or "never retrieved" in r.getMessage()]
    assert not noisy, [r.getMessage() for r in noisy]
