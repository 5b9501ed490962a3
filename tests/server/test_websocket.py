"""Replay WebSocket: history, streamed batches, control, resume, authorization, slow clients."""

from __future__ import annotations

import asyncio
import urllib.parse

import numpy as np
import pandas as pd
import pytest
from raw_ws import stall_server_side
from server_helpers import arrow_bytes, on_server_loop, ts_ns
from tornado.httpclient import HTTPClientError

from jupyter_replay.controls import table_json
from jupyter_replay.sources import sample_trades

SESSIONS = ("replay", "api", "sessions")


def is_state(state: str):
    return lambda kind, msg: kind == "text" and msg["type"] == "state" and msg["status"]["state"] == state


def frames(msgs):
    return [m for kind, m in msgs if kind == "frame"]


def check_contiguous(frame_list, start_row: int = 0) -> int:
    """Frames' rows follow each other (first_row) and seq increases; returns the next row index."""
    row, seq = start_row, -1
    for header, cols in frame_list:
        assert header["first_row"] == row, (header, row)
        assert header.get("first_seq", header["seq"]) > seq
        seq = header["seq"]
        row += header["rows"]
        assert len(cols["timestamp_ns"]) == header["rows"]
    return row


async def open_and_skip_history(api, sid, **params):
    ws = await api.ws(sid, **params)
    kind, hello = await ws.recv()
    assert kind == "text" and hello["type"] == "hello"
    kind, history = await ws.recv()
    assert history["type"] == "history"
    kind, frame = await ws.recv()
    assert kind == "frame" and frame[0]["history"] is True
    kind, marks = await ws.recv()  # the session's current marks follow its history
    assert kind == "text" and marks["type"] == "marks" and marks["history"] is True
    return ws, hello, history, frame


@on_server_loop
async def test_history_contains_only_own_session(api, replay_manager):
    ka, kb = await api.start_kernel(), await api.start_kernel()
    await api.create(ka, source={"kind": "sample", "n": 250, "seed": 11}, speed="max")
    await api.create(kb, source={"kind": "sample", "n": 180, "seed": 12}, speed="max")
    for kid in (ka, kb):
        await api.ok(kid, "play")
        await api.wait_for(kid, lambda m: m["state"] == "finished")
    for kid, seed, n in ((ka, 11, 250), (kb, 12, 180)):
        ws, hello, history, (header, cols) = await open_and_skip_history(api, kid)
        assert hello["session"]["id"] == kid and hello["writable"] is True
        assert hello["controls"] == table_json(replay_manager.policy)  # the browser enables buttons from it
        assert history["rows"] == n and header["rows"] == n and header["first_row"] == 0
        expected = sample_trades(n=n, seed=seed)
        np.testing.assert_array_equal(cols["timestamp_ns"], ts_ns(expected))
        np.testing.assert_allclose(cols["timestamp"], ts_ns(expected) / 1e6)
        np.testing.assert_array_equal(cols["price"], expected["price"].to_numpy())
        np.testing.assert_array_equal(cols["side"], expected["side"].to_numpy())
        ws.close()


@on_server_loop
async def test_stream_and_control_over_websocket(api):
    kid = await api.start_kernel()
    await api.create(kid, source={"kind": "sample", "n": 3000, "seed": 5}, speed=1000)
    ws, hello, history, _ = await open_and_skip_history(api, kid, ms_only=1)
    assert history["rows"] == 0
    ack = await ws.control("play", id="p1")
    assert ack["type"] == "ack" and ack["id"] == "p1" and ack["status"]["state"] == "playing"
    msgs = await ws.until(is_state("finished"))
    got = frames(msgs)
    assert len(got) > 1  # paced: many frames, not one
    assert check_contiguous([(h, {"timestamp_ns": c["timestamp"]}) for h, c in got]) == 3000
    assert all("timestamp_ns" not in c for _, c in got)  # ms_only
    expected = sample_trades(n=3000, seed=5)
    np.testing.assert_allclose(np.concatenate([c["timestamp"] for _, c in got]), ts_ns(expected) / 1e6)
    seqs = [m["seq"] for k, m in msgs if k == "text" and "seq" in m] + [h["seq"] for h, _ in got]
    assert len(seqs) == len(set(seqs))

    # bad control messages get an error reply, the socket stays usable
    err = await ws.control("speed", id=2, speed=-1)
    assert err["type"] == "error" and err["status"] == 400
    err = await ws.control("step", id=3, n=1)
    assert err["type"] == "error" and err["status"] == 409  # finished: nothing left to step
    await ws.send(type="bogus", id=4)
    msgs = await ws.until(lambda k, m: k == "text" and m.get("id") == 4)
    assert msgs[-1][1]["type"] == "error" and msgs[-1][1]["status"] == 400
    await ws.conn.write_message("{not json")
    msgs = await ws.until(lambda k, m: k == "text" and m.get("type") == "error")
    assert msgs[-1][1]["status"] == 400
    stop = await ws.control("stop", id=5)
    assert stop["type"] == "ack" and stop["status"]["state"] == "stopped"
    ws.close()


@on_server_loop
async def test_resume_without_gap_or_duplicate(api):
    kid = await api.start_kernel()
    await api.create(kid, source={"kind": "sample", "n": 4000, "seed": 8}, speed=400)
    ws, hello, _, _ = await open_and_skip_history(api, kid)
    await ws.control("play")
    first = []
    while sum(h["rows"] for h, _ in first) < 300:
        kind, msg = await ws.recv()
        if kind == "frame":
            first.append(msg)
    ws.close()
    last_seq = first[-1][0]["seq"]
    await asyncio.sleep(0.3)  # rows keep flowing while disconnected

    ws2 = await api.ws(kid, since=last_seq, instance=hello["instance"])
    kind, hello2 = await ws2.recv()
    assert hello2["type"] == "hello" and hello2["instance"] == hello["instance"]
    msgs = await ws2.until(is_state("finished"))
    assert not any(k == "text" and m["type"] in ("history", "reset") for k, m in msgs)  # a true resume
    resumed = frames(msgs)
    assert resumed[0][0]["seq"] > last_seq
    rows = check_contiguous(first + resumed)
    assert rows == 4000
    all_ts = np.concatenate([c["timestamp_ns"] for _, c in first + resumed])
    np.testing.assert_array_equal(all_ts, ts_ns(sample_trades(n=4000, seed=8)))
    ws2.close()

    # a resume point the server cannot serve (unknown seq / other instance) restarts from the buffer
    for params in ({"since": 10**9}, {"since": last_seq, "instance": "other"}):
        ws3 = await api.ws(kid, **params)
        kinds = [await ws3.recv() for _ in range(4)]
        assert [m["type"] if k == "text" else "frame" for k, m in kinds] == ["hello", "reset", "history", "frame"]
        assert kinds[1][1]["reason"] == "resync" and kinds[3][1][0]["rows"] == 4000
        ws3.close()


@on_server_loop
async def test_websocket_authorization(api):
    ka, kb = await api.start_kernel(), await api.start_kernel()
    token_a = (await api.create(ka, source={"kind": "sample", "n": 100}))["client_token"]
    await api.create(kb, source={"kind": "sample", "n": 100})

    # a read-only user may watch; its control messages are refused with an error, not a close
    ws, hello, _, _ = await open_and_skip_history(api, ka, headers={"X-Test-Role": "viewer"})
    assert hello["writable"] is False
    err = await ws.control("play", id=9)
    assert err["type"] == "error" and err["status"] == 403
    assert (await api.status(ka))["state"] == "stopped"
    err = await ws.control("pause", id=10)
    assert err["status"] == 403  # still connected
    ws.close()

    with pytest.raises(HTTPClientError) as info:
        await api.ws(ka, headers={"X-Test-Role": "nobody"})
    assert info.value.code == 403
    with pytest.raises(HTTPClientError) as info:
        await api.ws("nope")
    assert info.value.code == 404
    with pytest.raises(HTTPClientError) as info:
        await api.ws(ka, since="abc")
    assert info.value.code == 400

    # the capability token opens its own session's socket (with control) and no other
    cap = {"Authorization": f"ReplayToken {token_a}"}
    ws, hello, _, _ = await open_and_skip_history(api, ka, headers=cap)
    assert hello["writable"] is True
    assert (await ws.control("speed", speed=3))["type"] == "ack"
    ws.close()
    with pytest.raises(HTTPClientError) as info:
        await api.ws(kb, headers=cap)
    assert info.value.code == 403

    # a cookie-authenticated browser page from another origin is refused by jupyter_server's origin check
    _, _, resp = await api.request("GET", "api", "status")  # token login: the server sets its login cookie
    cookie = "; ".join(c.split(";", 1)[0] for c in resp.headers.get_list("Set-Cookie"))
    assert cookie
    host = urllib.parse.urlparse(resp.effective_url).netloc  # the cookie name is bound to the host
    browser = {"Cookie": cookie, "Authorization": "", "Host": host}
    with pytest.raises(HTTPClientError) as info:
        await api.ws(ka, headers={**browser, "Origin": "http://evil.example"})
    assert info.value.code == 403
    ws, hello, _, _ = await open_and_skip_history(api, ka, headers=browser)  # same-origin/no Origin: fine
    assert hello["session"]["id"] == ka
    ws.close()


def tally(msgs):
    """(frames after the last resync, reported frames_merged count, whether a resync happened)."""
    got, merged, resynced = [], 0, False
    for kind, msg in msgs:
        if kind == "text" and msg["type"] == "merged":
            merged += msg["frames_merged"]
        elif kind == "text" and msg["type"] in ("reset", "history"):
            resynced = resynced or msg.get("reason") == "resync"
            got = []
        elif kind == "frame":
            got.append(msg)
    return got, merged, resynced


async def wide_session(api, kid, n=45_000, width=40):
    """A session with ``n`` rows of ``width`` float64 columns (c0 = row index), 2 ms apart."""
    await api.create(kid)
    t0 = pd.Timestamp("2024-01-01T00:00:00Z")
    df = pd.DataFrame({f"c{i}": np.arange(n, dtype=np.float64) + i for i in range(width)})
    df.insert(0, "timestamp", t0 + pd.to_timedelta(np.arange(n) * 2, unit="ms"))
    code, model, _ = await api.request("PUT", *SESSIONS, kid, "data", raw=arrow_bytes(df))
    assert code == 200, model


def caught_up(connection, next_row: int):
    """A ``until`` predicate: the client has rows up to ``next_row`` in its current stream and was told
    about every frame ``connection`` merged so far."""
    total, state = connection.frames_merged, {"row": None, "told": connection.frames_merged == 0}

    def pred(kind, msg):
        if kind == "frame":
            state["row"] = msg[0]["first_row"] + msg[0]["rows"]
        elif msg["type"] == "merged":
            state["told"] = msg["total_frames_merged"] == total
        return state["row"] == next_row and state["told"]

    return pred


async def stalled(raw_ws, replay_manager, kid, **query):
    """A client that completes the handshake and then reads nothing (both socket buffers pinned small)."""
    before = set(replay_manager.get(kid).clients)
    ws = await raw_ws(kid, **query)
    assert ws.status == 101, ws.head
    connection = (set(replay_manager.get(kid).clients) - before).pop()
    stall_server_side(connection)
    return ws, connection


@on_server_loop
async def test_slow_client_is_coalesced_and_bounded(api, raw_ws, replay_ext, replay_manager):
    replay_ext.ws_queue_frames = 4
    replay_ext.ws_max_bytes = 64 * 2**20  # room for every row: this test is about merging, not the budget
    kid = await api.start_kernel()
    n, step = 45_000, 1500  # fewer rows than buffer_rows (50_000): merging alone keeps up
    await wide_session(api, kid, n)
    ws, connection = await stalled(raw_ws, replay_manager, kid)
    for _ in range(n // step):  # 30 batches of ~0.5 MB each, released whatever the machine's load
        await api.ok(kid, "step", n=step)
    # the stalled client holds one frame in the socket and 4 queued: the other batches were merged
    assert connection.frames_merged >= n // step - 1 - 4 - 1
    assert connection.max_frames_queued <= 4
    status = await api.status(kid)
    assert status["frames_merged"] == connection.frames_merged and status["rows_dropped"] == 0
    ws.unstall(connection)  # now read what it was sent: merged frames, every row once
    msgs = await ws.until(caught_up(connection, n))
    got, merged, resynced = tally(msgs)
    assert not resynced and merged == connection.frames_merged
    coalesced = [h for h, _ in got if "first_seq" in h]
    assert coalesced and all(h["first_seq"] < h["seq"] for h in coalesced)
    live = [h for h, _ in got if not h.get("history")]
    assert len(live) + merged == n // step  # every batch either sent as a frame or merged into one
    assert check_contiguous(got) == n  # nothing lost or duplicated
    np.testing.assert_array_equal(np.concatenate([c["c0"] for _, c in got]), np.arange(n, dtype=np.float64))

    # A reset while the client is stalled cannot be crossed by merging: the client is re-synchronised
    # (reset "resync", state, history) and then follows again without gap. The rows of the stream between
    # the two seeks never reach it: they are counted in rows_dropped (the history holds every row since).
    ws.close()
    await api.wait_for(kid, lambda m: m["clients"] == 0)
    ws2, connection = await stalled(raw_ws, replay_manager, kid)
    await api.ok(kid, "seek", fraction=0)
    for _ in range(10):
        await api.ok(kid, "step", n=step)
    position = (await api.ok(kid, "seek", fraction=0.5))["position"]
    for _ in range(10):
        await api.ok(kid, "step", n=step)
    ws2.unstall(connection)
    msgs = await ws2.until(caught_up(connection, 10 * step))
    got, _, resynced = tally(msgs)
    assert resynced and connection.resyncs == 1
    assert got[0][0]["history"] is True and got[0][0]["first_row"] == 0  # rows since the seek's reset
    assert check_contiguous(got) == 10 * step
    values = np.concatenate([c["c0"] for _, c in got])
    np.testing.assert_array_equal(values, np.arange(position, position + 10 * step, dtype=np.float64))
    assert connection.rows_dropped == 10 * step
    assert sum(m["rows_dropped"] for k, m in msgs if k == "text" and m["type"] == "merged") == 10 * step  # told
    status = await api.status(kid)
    assert status["rows_dropped"] == 10 * step and status["frames_merged"] == merged + connection.frames_merged
    assert connection.max_frames_queued <= 4  # bounded throughout, whatever the client did


@on_server_loop
async def test_flow_controlled_client_keeps_few_frames_in_flight(api, replay_manager, jp_serverapp):
    """``?ack=1``: nothing beyond the unacknowledged window is sent (a history fills it by itself); the rest
    waits merged into one frame, nothing is lost, and rows still precede the state that follows them."""
    from jupyter_replay.server.connection import ACK_WINDOW

    n = 3000
    kid = await api.start_kernel()
    await api.create(kid, source={"kind": "sample", "n": n, "seed": 5}, speed=1000)
    plain, _, _, _ = await open_and_skip_history(api, kid)  # a client without flow control, for comparison
    ws, _, _, (hist_header, _) = await open_and_skip_history(api, kid, ack=1)
    connection = next(c for c in replay_manager.get(kid).clients if c.ack)
    assert connection.ack_window == ACK_WINDOW == 2

    await ws.send(type="control", id="p", action="play")
    await api.wait_for(kid, lambda m: m["state"] == "finished")  # ~60 batches released meanwhile
    first = await ws.drain(quiet=0.4)
    texts = [m for k, m in first if k == "text"]
    assert not frames(first)  # the unacknowledged history fills the window
    assert [m["type"] for m in texts[:2]] == ["state", "ack"] and texts[0]["status"]["state"] == "playing"
    assert not any(m["type"] == "state" and m["status"]["state"] == "finished" for m in texts)  # behind the rows
    assert connection.max_frames_queued <= ACK_WINDOW
    plain_msgs = await plain.until(is_state("finished"))  # the plain client got everything, frame by frame
    assert check_contiguous(frames(plain_msgs)) == n

    # acknowledgements are flow control, not user activity (idle culling), and get no reply
    settings = jp_serverapp.web_app.settings
    settings.pop("replay_last_activity", None)
    msgs, seq = list(first), hist_header["seq"]
    while True:
        await ws.send(type="ack_frames", seq=seq)
        more = await ws.drain(quiet=0.4)
        msgs += more
        if not frames(more):
            break
        seq = frames(more)[-1][0]["seq"]
    assert "replay_last_activity" not in settings
    rows_got, reported, resynced = tally(msgs)
    assert not resynced and check_contiguous(rows_got) == n  # merged, not lost
    np.testing.assert_array_equal(np.concatenate([c["timestamp_ns"] for _, c in rows_got]),
                                  ts_ns(sample_trades(n=n, seed=5)))
    merged = [h for h, _ in rows_got if "first_seq" in h]
    assert merged and sum(h["seq"] - h["first_seq"] for h in merged) == reported == connection.frames_merged
    assert len(rows_got) < len(frames(plain_msgs))
    last_frame = max(i for i, (k, _) in enumerate(msgs) if k == "frame")
    finished = [i for i, (k, m) in enumerate(msgs) if k == "text" and m["type"] == "state"
                and m["status"]["state"] == "finished"]
    assert finished and finished[0] > last_frame  # the state follows the rows released before it
    assert connection.max_frames_queued <= ACK_WINDOW

    # a malformed acknowledgement is answered with an error; the connection stays usable
    await ws.send(type="ack_frames", seq="x", id=7)
    err = (await ws.until(lambda k, m: k == "text" and m.get("id") == 7))[-1][1]
    assert err["type"] == "error" and err["status"] == 400
    assert (await ws.control("stop", id=8))["status"]["state"] == "stopped"
    ws.close()
    plain.close()


@on_server_loop
async def test_flow_controlled_pause_arrives_after_a_few_frames(api, replay_manager):
    """While a flow-controlled client acknowledges nothing, at most ACK_WINDOW batch frames reach it, and a
    pause still arrives right after them and the one frame the rows released before it were merged into."""
    from jupyter_replay.server.connection import ACK_WINDOW

    kid = await api.start_kernel()
    await api.create(kid, source={"kind": "sample", "n": 20_000, "seed": 3}, speed=200)
    ws, _, _, (hist_header, _) = await open_and_skip_history(api, kid, ack=1)
    await ws.send(type="ack_frames", seq=hist_header["seq"])
    await ws.send(type="control", id="p", action="play")
    await api.wait_for(kid, lambda m: m["rows"] > 500)
    await ws.send(type="control", id="q", action="pause")
    msgs = await ws.drain(quiet=0.4)
    assert not any(k == "text" and m.get("id") == "q" for k, m in msgs)  # blocked behind the window
    connection = next(iter(replay_manager.get(kid).clients))
    assert len(frames(msgs)) == ACK_WINDOW and connection.max_frames_queued <= ACK_WINDOW
    await ws.send(type="ack_frames", seq=frames(msgs)[-1][0]["seq"])
    after = await ws.until(lambda k, m: k == "text" and m.get("id") == "q")
    assert len(frames(after)) == 1  # every row released before the pause, merged into one frame
    states = [m["status"]["state"] for k, m in after if k == "text" and m["type"] == "state"]
    assert states[-1] == "paused" and after[-1][1]["type"] == "ack"
    rows = check_contiguous(frames(msgs) + frames(after))
    assert rows == (await api.status(kid))["rows"]  # nothing released after the pause, nothing missing
    assert not frames(await ws.drain(quiet=0.4))
    ws.close()


@on_server_loop
async def test_tail_limits_the_history(api):
    """``?tail=n``: a history carries only the newest ``n`` buffered rows (``first_row`` where they start)."""
    kid = await api.start_kernel()
    await api.create(kid, source={"kind": "sample", "n": 3000, "seed": 5}, speed="max")
    await api.ok(kid, "play")
    await api.wait_for(kid, lambda m: m["state"] == "finished")
    ws, _, history, (header, cols) = await open_and_skip_history(api, kid, tail=100)
    assert history["rows"] == header["rows"] == 100 and header["first_row"] == 2900
    np.testing.assert_array_equal(cols["timestamp_ns"], ts_ns(sample_trades(n=3000, seed=5))[-100:])
    ws.close()
    ws, _, history, (header, _) = await open_and_skip_history(api, kid, tail=10_000)  # more than buffered
    assert history["rows"] == header["rows"] == 3000 and header["first_row"] == 0
    ws.close()
    for bad in ("0", "x"):
        with pytest.raises(HTTPClientError) as info:
            await api.ws(kid, tail=bad)
        assert info.value.code == 400


@on_server_loop
async def test_marks_reach_followers_and_late_joiners_and_clear_on_reset(api):
    """A mark (REST or WebSocket control) goes to every client as a ``marks`` message after its rows; a
    client connecting later gets the current marks right after the history; a reset clears them."""
    kid = await api.start_kernel()
    await api.create(kid, source={"kind": "sample", "n": 100, "seed": 3})
    early, _, _, _ = await open_and_skip_history(api, kid)
    await api.ok(kid, "step", n=5)
    st = await api.ok(kid, "mark", side="buy", text="in")
    assert st["marks"] == 1
    code, err = await api.action(kid, "mark", side="sideways")
    assert code == 400 and err["reason"] == "InvalidValueError" and "side" in err["message"]
    code, err = await api.action(kid, "mark", text="x" * 5000)
    assert code == 400 and "at most 200" in err["message"] and "xxxx" not in err["message"]
    msgs = await early.until(lambda k, m: k == "text" and m["type"] == "marks")
    assert [k for k, _ in msgs if k == "frame"], "the mark came before its rows"
    mark = msgs[-1][1]["marks"][0]
    assert (mark["side"], mark["text"], mark["y"]) == ("buy", "in", None)
    expected_ts = ts_ns(sample_trades(n=100, seed=3))[4]
    assert mark["time_ns"] == expected_ts and mark["time_ms"] == expected_ts / 1e6

    late = await api.ws(kid)
    history = await late.until(lambda k, m: k == "text" and m["type"] == "marks")
    assert history[-1][1]["history"] is True and history[-1][1]["marks"] == [mark]
    await late.send(type="control", id="m", action="mark", side="sell", y=101.0)
    msgs = await late.until(lambda k, m: k == "text" and m.get("id") == "m")
    assert msgs[-1][1]["type"] == "ack" and msgs[-1][1]["status"]["marks"] == 2
    assert [m["marks"][0]["side"] for k, m in msgs if k == "text" and m["type"] == "marks"] == ["sell"]

    await api.ok(kid, "stop")
    msgs = await early.until(lambda k, m: k == "text" and m["type"] == "reset")
    assert (await api.status(kid))["marks"] == 0
    again = await api.ws(kid)
    history = await again.until(lambda k, m: k == "text" and m["type"] == "marks")
    assert history[-1][1]["marks"] == []
    for ws in (early, late, again):
        ws.close()
