"""Bad input: every case gets a clear error, and neither the target session, another kernel's session
(the *bystander*) nor the server is affected. The table of what is tried is in docs/testing.md.
"""

from __future__ import annotations

import io
import json
import os
import pickle

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from reliability_helpers import SESSIONS, Bystander, stable
from server_helpers import arrow_bytes, on_server_loop
from tornado.httpclient import HTTPClientError
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError

from jupyter_replay.exceptions import DataError
from jupyter_replay.sources import DataFrameSource, ParquetSource, sample_trades

BIG = "18446744073709551616"  # 2**64
DEEP = "[" * 100_000 + "]" * 100_000

#: (action, raw JSON body, expected status): JSON literals NaN/Infinity/1e999 are what Python's json accepts
BAD_ACTIONS: list[tuple[str, str, int]] = [
    *[("speed", f'{{"speed": {v}}}', 400) for v in (
        "NaN", "-Infinity", "1e308", BIG, "-1", "-0.5", "0", "0.05", "1000.5", '"fast"', '""', "true", "null", "[]",
        "{}", '"NaN"', '"-max"')],
    ("speed", "{}", 400),
    *[("seek", f'{{"fraction": {v}}}', 400) for v in ("NaN", "Infinity", "1e308", "-1", "1.5", '"0.5"', "true", "null")],
    *[("seek", f'{{"timestamp": {v}}}', 400) for v in (
        BIG, f"-{BIG}", "1e308", "NaN", '"yesterday"', '"NaT"', "[]", "{}", "null", "true", "1.5",
        "0", "4102444800000000000")],  # the epoch and 2100-01-01: outside the data
    ("seek", '{"timestamp": 0, "fraction": 0.5}', 400),
    ("seek", "{}", 400),
    *[("step", f'{{"n": {v}}}', 400) for v in ("NaN", "1e308", "-1", "0", '"1"', "1.5", "true", "[]")],
    *[("step", f'{{"duration": {v}}}', 400) for v in (
        '"1e308s"', BIG, "NaN", "Infinity", "-1", "0", '"-1s"', '"x"', "[]", "{}", "true", '"9999999 days"')],
    ("step", '{"n": 1, "duration": "1s"}', 400),
    *[("mode", f'{{"mode": {v}}}', 400) for v in ("5", "null", "[]", '"sideways"', '""', '"LIVE "')],
    *[("mode", f'{{"mode": "live", "symbol": {v}}}', 400) for v in (
        "5", '""', '"' + "x" * 65 + '"', '"bad symbol"', '"a\\u0000b"', '"<script>"', "[]", '"€"')],
    ("mode", "{}", 400),
    *[("loop", f'{{"loop": {v}}}', 400) for v in ('"true"', "1", "0", "null", "[]", '"yes"')],
    ("loop", "{}", 400),
    *[(action, "{}", 400) for action in ("dance", "PLAY", "__init__", "aclose", "_reset", "control", "status",
                                        "set_source", "reset", "subscribe")],
    ("play", '{"x": 1}', 400),
    ("pause", '{"speed": 1}', 400),
    # malformed bodies
    *[("speed", body, 400) for body in ("{not json", "[1, 2]", "42", '"speed"', "null", "true", DEEP,
                                        '{"speed": ' + "[" * 50_000 + "]" * 50_000 + "}")],
]


async def _paused_target(api) -> tuple[str, dict]:
    kid = await api.start_kernel()
    await api.create(kid, source={"kind": "sample", "n": 300, "seed": 5})
    await api.ok(kid, "step", n=3)
    return kid, stable(await api.status(kid))


@on_server_loop
async def test_rest_actions_reject_bad_values(api, replay_ext):
    target, before = await _paused_target(api)
    bystander = await Bystander.start(api)
    for action, body, want in BAD_ACTIONS:
        code, err, _ = await api.request("POST", *SESSIONS, target, "actions", action, body=body)
        assert code == want, (action, body[:80], code, err)
        assert isinstance(err, dict) and err["message"], (action, body[:80], err)
        assert len(err["message"]) < 2000
    code, err, _ = await api.request("POST", *SESSIONS, target, "actions", "play", body=b"\xff\xfe\x00")
    assert code == 400 and "JSON" in err["message"]
    # session creation validates the same way
    for body in ('{"kernel_id": "' + target + '", "speed": NaN}', '{"kernel_id": "' + target + '", "loop": 1}',
                 '{"kernel_id": ' + BIG + "}", '{"kernel_id": null}', '{"kernel_id": []}', DEEP, "[]",
                 '{"kernel_id": "x", "source": {"kind": "sample", "n": ' + BIG + "}}",
                 '{"kernel_id": "x", "source": {"kind": "sample", "n": -1}}',
                 '{"kernel_id": "x", "source": {"kind": "sample", "n": 1e308}}'):
        code, err, _ = await api.request("POST", *SESSIONS, body=body)
        assert code == 400, (body[:80], code, err)
    assert stable(await api.status(target)) == before
    await bystander.check()

    # oversized bodies: refused before parsing (JSON) or while streaming (data upload)
    replay_ext.max_body_bytes = 1024
    code, err, _ = await api.request("POST", *SESSIONS, target, "actions", "speed", body='{"speed": 1, "p": "' + "x" * 4096 + '"}')
    assert code == 400 and "too large" in err["message"]
    code, err, _ = await api.request("POST", *SESSIONS, body='{"kernel_id": "' + "k" * 4096 + '"}')
    assert code == 400 and "too large" in err["message"]
    code, err, _ = await api.request("PUT", *SESSIONS, target, "data", raw=arrow_bytes(sample_trades(n=2000)))
    assert code == 400 and "too large" in err["message"]
    replay_ext.max_body_bytes = 256 * 1024 * 1024
    assert stable(await api.status(target)) == before
    await bystander.check()

    # JSON Infinity (or a literal that overflows to it) is the documented "max" speed, unless disabled
    for literal in ("Infinity", "1e999"):
        code, model, _ = await api.request("POST", *SESSIONS, target, "actions", "speed", body=f'{{"speed": {literal}}}')
        assert code == 200 and model["speed"] == "max"
    replay_ext.allow_max_speed = False
    code, err, _ = await api.request("POST", *SESSIONS, target, "actions", "speed", body='{"speed": Infinity}')
    assert code == 400 and "disabled" in err["message"]
    await bystander.check()


async def _ws_reply(ws, msg_id):
    return (await ws.until(lambda k, m: k == "text" and m.get("id") == msg_id and m["type"] in ("ack", "error", "pong")))[-1][1]


@on_server_loop
async def test_websocket_rejects_bad_messages(api):
    target, before = await _paused_target(api)
    bystander = await Bystander.start(api)
    ws = await api.ws(target)
    await ws.until(lambda k, m: k == "frame")  # hello, history, its frame
    texts = [
        ("not json", 400), ("[1, 2]", 400), ('{"id": 1}', 400), ('{"type": 5}', 400), ('{"type": "bogus"}', 400),
        ('{"type": "control"}', 400), ('{"type": "control", "action": null}', 400),
        ('{"type": "control", "action": 5}', 400), ('{"type": "control", "action": "dance"}', 400),
        ('{"type": "control", "action": "aclose"}', 400), ('{"type": "control", "action": "speed", "speed": NaN}', 400),
        ('{"type": "hello", "session": {}}', 400), ('{"type": "ack"}', 400), (DEEP, 400),
    ]
    for text, want in texts:
        await ws.conn.write_message(text)
        reply = (await ws.until(lambda k, m: k == "text" and m["type"] == "error"))[-1][1]
        assert reply["status"] == want and reply["message"], (text[:60], reply)
    for payload in (b"\x00\x01\x02", pickle.dumps({"type": "control", "action": "play"}), arrow_bytes(sample_trades(n=3))):
        await ws.conn.write_message(payload, binary=True)
        reply = (await ws.until(lambda k, m: k == "text" and m["type"] == "error"))[-1][1]
        assert reply["status"] == 400 and "binary" in reply["message"]
    # every bad REST action body is refused the same way as a control message
    for i, (action, body, want) in enumerate(BAD_ACTIONS):
        try:
            args = json.loads(body)
        except (ValueError, RecursionError):
            continue
        if not isinstance(args, dict):
            continue
        await ws.conn.write_message(json.dumps({"type": "control", "id": f"b{i}", "action": action, **args}))
        reply = await _ws_reply(ws, f"b{i}")
        assert reply["type"] == "error" and reply["status"] == want, (action, body[:60], reply)
    await ws.send(type="ping", id="alive")
    assert (await _ws_reply(ws, "alive"))["type"] == "pong"  # the connection is still usable
    assert stable(await api.status(target)) == before
    await bystander.check()

    # a message over ws_max_message_bytes (1 MiB; 11 MiB here) closes that connection only, with 1009
    try:
        await ws.conn.write_message("x" * (11 * 1024 * 1024))
    except (WebSocketClosedError, StreamClosedError):
        pass
    assert (await ws.until(lambda k, m: False, timeout=30))[-1] == ("closed", None)
    assert ws.conn.close_code == 1009 and ws.conn.close_reason == "message too big"
    assert stable(await api.status(target)) == before
    await bystander.check()


@on_server_loop
async def test_websocket_floods_stay_bounded(api, replay_ext, replay_manager):
    target, _ = await _paused_target(api)
    bystander = await Bystander.start(api)

    # 5000 control messages as fast as a client keeping <= 32 in flight can send: all answered, in order
    ws = await api.ws(target)
    await ws.until(lambda k, m: k == "frame")
    n, window = 5000, 32
    ids: list = []
    sent = 0
    while len(ids) < n:
        while sent < n and sent - len(ids) < window:
            await ws.conn.write_message(json.dumps({"type": "control", "id": sent, "action": "speed", "speed": 1 + sent % 7}))
            sent += 1
        kind, msg = await ws.recv()
        if kind == "text" and msg["type"] in ("ack", "error"):
            assert msg["type"] == "ack", msg
            ids.append(msg["id"])
    assert ids == list(range(n))
    assert (await api.status(target))["speed"] == 1 + (n - 1) % 7
    ws.close()

    # 5000 messages blasted without reading the answers: the server answers while it can, then closes
    # this connection (1008) rather than queueing replies without bound; nothing else is affected
    replay_ext.ws_queue_frames = 16
    ws = await api.ws(target)
    await ws.until(lambda k, m: k == "frame")
    connection = next(iter(replay_manager.get(target).clients))
    high_water = [0]
    put = connection._put

    def spy(item) -> None:
        put(item)
        high_water[0] = max(high_water[0], len(connection._queue))

    connection._put = spy
    ws.shrink_receive_buffer(4096)
    try:
        for i in range(n):
            await ws.conn.write_message(json.dumps({"type": "ping", "id": i}))
    except (WebSocketClosedError, StreamClosedError):
        pass
    msgs = await ws.drain(quiet=1.0, timeout=60)
    pongs = [m for k, m in msgs if k == "text" and m["type"] == "pong"]
    closed = bool(msgs) and msgs[-1] == ("closed", None)
    assert len(pongs) == n or (closed and ws.conn.close_code == 1008), (len(pongs), ws.conn.close_code)
    assert [p["id"] for p in pongs] == list(range(len(pongs)))
    assert high_water[0] <= 16 + 2, high_water  # replies (plus hello/history) never pile up beyond the bound
    ws.close()
    await bystander.check()
    assert (await api.ok(target, "speed", speed=2))["speed"] == 2  # the session still works


@on_server_loop
async def test_unknown_and_foreign_session_ids(api):
    ka = await api.start_kernel()
    token_a = (await api.create(ka, source={"kind": "sample", "n": 100}))["client_token"]
    bystander = await Bystander.start(api)
    for sid in ("nope", "0" * 36, "a" * 5000, "..", "%2e%2e", "a.b", "é", "a%2Fb", ka + "x", ka.upper()):
        for method, extra, body in (("GET", (), None), ("DELETE", (), None), ("POST", ("actions", "play"), "{}"),
                                    ("GET", ("buffer",), None), ("PUT", ("data",), b"x")):
            code, err, _ = await api.request(method, *SESSIONS, sid, *extra, body=body)
            assert code == 404, (sid[:20], method, extra, code)
        with pytest.raises(HTTPClientError) as info:
            await api.ws(sid)
        assert info.value.code == 404
    # another session's capability token opens nothing of this one
    cap = {"Authorization": f"ReplayToken {token_a}"}
    for method, extra, body in (("GET", (), None), ("DELETE", (), None), ("POST", ("actions", "play"), "{}"),
                                ("GET", ("buffer",), None), ("PUT", ("data",), arrow_bytes(sample_trades(n=5)))):
        code, err, _ = await api.request(method, *SESSIONS, bystander.id, *extra, body=body, headers=cap)
        assert code == 403 and err["message"], (method, extra, code)
    with pytest.raises(HTTPClientError) as info:
        await api.ws(bystander.id, headers=cap)
    assert info.value.code == 403
    await bystander.check()


def _arrow(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


T = pd.date_range("2024-03-01 10:00", periods=6, freq="1s", tz="UTC")

#: (name, body, expected status, message fragment) for PUT sessions/{id}/data
BAD_UPLOADS = [
    ("NaT in time", arrow_bytes(pd.DataFrame({"timestamp": [T[0], pd.NaT, T[2]], "x": [1.0, 2, 3]})), 400, "NaT"),
    ("no rows", _arrow(pa.table({"timestamp": pa.array([], pa.timestamp("ns", "UTC")), "x": pa.array([], pa.float64())})), 400, "empty"),
    ("string time", arrow_bytes(pd.DataFrame({"timestamp": ["2024-01-01", "x"], "x": [1.0, 2]})), 400, "dtype"),
    ("float time", arrow_bytes(pd.DataFrame({"timestamp": [1.5, 2.5], "x": [1.0, 2]})), 400, "dtype"),
    ("no time column", arrow_bytes(pd.DataFrame({"t": T, "x": np.arange(6.0)})), 400, "time column"),
    ("duplicate column names", _arrow(pa.Table.from_arrays([pa.array(T), pa.array([1.0] * 6), pa.array([2.0] * 6)],
                                                           names=["timestamp", "x", "x"])), 400, "duplicate"),
    ("uint64 beyond int64 time", _arrow(pa.table({"timestamp": pa.array([2**64 - 1, 2], pa.uint64())})), 400, "int64"),
    ("truncated Arrow stream", arrow_bytes(pd.DataFrame({"timestamp": T, "x": np.arange(6.0)}))[:-40], 400, "Arrow"),
    ("random bytes", os.urandom(4096), 400, "Arrow"),
    ("pickled DataFrame", pickle.dumps(pd.DataFrame({"timestamp": T, "x": np.arange(6.0)})), 400, "Arrow"),
    ("Parquet file instead of Arrow IPC", None, 400, "Arrow"),  # filled in below
    ("empty body", b"", 400, "empty"),
]


@on_server_loop
async def test_data_uploads_bad_frames(api):
    target, _ = await _paused_target(api)
    bystander = await Bystander.start(api)
    pq_buf = io.BytesIO()
    pq.write_table(pa.table({"timestamp": pa.array(T), "x": pa.array(np.arange(6.0))}), pq_buf)
    before = stable(await api.status(target))
    for name, body, want, fragment in BAD_UPLOADS:
        body = pq_buf.getvalue() if body is None else body
        code, err, _ = await api.request("PUT", *SESSIONS, target, "data", raw=body)
        assert code == want and fragment in err["message"], (name, code, err)
    code, err, _ = await api.request("PUT", *SESSIONS, target, "data", raw=arrow_bytes(sample_trades(n=5)),
                                     params={"time": "price"})
    assert code == 400 and "dtype" in err["message"]
    assert stable(await api.status(target)) == before  # the old data stays after every refused upload
    await bystander.check()

    # accepted with documented handling: unsorted -> stably sorted, duplicates kept in input order,
    # text columns kept in the buffer and sent on the wire as dictionary codes
    df = pd.DataFrame({"timestamp": [T[3], T[1], T[1], T[0], T[3]], "x": [30.0, 10.0, 11.0, 0.0, 31.0],
                       "label": ["d", "b", "b2", "a", "d2"]})
    code, model, _ = await api.request("PUT", *SESSIONS, target, "data", raw=arrow_bytes(df))
    assert code == 200 and model["num_rows"] == 5 and model["columns"] == ["x", "label"]
    ws = await api.ws(target)
    await ws.until(lambda k, m: k == "frame")
    await api.ok(target, "speed", speed="max")
    await api.ok(target, "play")
    header, cols = (await ws.until(lambda k, m: k == "frame"))[-1][1]
    assert cols["x"].tolist() == [0.0, 10.0, 11.0, 30.0, 31.0]
    assert cols["label"].tolist() == ["a", "b", "b2", "d", "d2"]
    await api.wait_for(target, lambda m: m["state"] == "finished")
    buf = await api.buffer(target)
    assert buf["label"].tolist() == ["a", "b", "b2", "d", "d2"]
    ws.close()
    await bystander.check()


def test_dataframe_inputs_engine():
    """The same inputs through the engine API (``DataFrameSource``) give the same decisions."""
    with pytest.raises(DataError, match="NaT"):
        DataFrameSource(pd.DataFrame({"timestamp": [T[0], pd.NaT], "x": [1.0, 2]}))
    assert DataFrameSource(pd.DataFrame({"timestamp": [T[0], pd.NaT], "x": [1.0, 2]}), dropna=True).num_rows == 1
    with pytest.raises(DataError, match="empty"):
        DataFrameSource(pd.DataFrame({"timestamp": pd.Series([], dtype="datetime64[ns, UTC]")}))
    unsorted = pd.DataFrame({"timestamp": [T[2], T[0], T[0]], "x": [2.0, 0.0, 1.0]})
    assert DataFrameSource(unsorted).data["x"].tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(DataError, match="sort"):
        DataFrameSource(unsorted, sort=False)
    src = DataFrameSource(pd.DataFrame({"timestamp": T[:2], "obj": [{"a": 1}, None], "x": [1.0, 2.0]}))
    assert src.dtypes["obj"] == object and src.data["obj"][0] == {"a": 1}
    with pytest.raises(DataError, match="columns"):
        DataFrameSource(pd.DataFrame({"t": T}))


@pytest.fixture
def bad_files(jp_root_dir, tmp_path):
    """Corrupt Parquet and CSV files in the server's root_dir (name -> expected message fragment)."""
    good = sample_trades(n=50, seed=1)
    raw = io.BytesIO()
    good.to_parquet(raw)
    data = raw.getvalue()
    (jp_root_dir / "truncated.parquet").write_bytes(data[: len(data) // 2])
    (jp_root_dir / "noise.parquet").write_bytes(os.urandom(2048))
    (jp_root_dir / "empty.parquet").write_bytes(b"")
    (jp_root_dir / "csv_inside.parquet").write_text(good.to_csv(index=False))
    (jp_root_dir / "flipped.parquet").write_bytes(data[:100] + bytes(b ^ 0xFF for b in data[100:-200]) + data[-200:])
    pq.write_table(pa.table({"timestamp": pa.array([T[0], None, T[2]], pa.timestamp("ns", "UTC")),
                             "x": pa.array([1.0, 2.0, 3.0])}), jp_root_dir / "null_time.parquet")
    pq.write_table(pa.table({"timestamp": pa.array([T[3], T[4], T[0], T[1]]), "x": pa.array([1.0, 2.0, 3.0, 4.0])}),
                   jp_root_dir / "overlapping.parquet", row_group_size=2)
    pq.write_table(pa.table({"x": pa.array([1.0])}), jp_root_dir / "no_time.parquet")
    pq.write_table(pa.table({"timestamp": pa.array([T[0], T[1], T[3], T[2]]), "x": pa.array([1.0, 2.0, 3.0, 4.0])}),
                   jp_root_dir / "unsorted_in_group.parquet", row_group_size=2)
    (jp_root_dir / "noise.csv").write_bytes(os.urandom(2048))
    (jp_root_dir / "empty.csv").write_bytes(b"")
    (jp_root_dir / "header_only.csv").write_text("timestamp,x\n")
    return ["truncated.parquet", "noise.parquet", "empty.parquet", "csv_inside.parquet", "flipped.parquet",
            "null_time.parquet", "overlapping.parquet", "no_time.parquet", "noise.csv", "empty.csv", "header_only.csv"]


@on_server_loop
async def test_corrupt_files(api, bad_files, jp_root_dir):
    bystander = await Bystander.start(api)
    kid = await api.start_kernel()
    for name in bad_files:
        kind = "parquet" if name.endswith(".parquet") else "csv"
        code, err, _ = await api.request("POST", *SESSIONS, body={"kernel_id": kid, "source": {"kind": kind, "path": name}})
        assert code == 400, (name, code, err)
        assert name in err["message"] and err["reason"] == "DataError", (name, err)
    # damage only visible when a row group is read (rows unsorted inside the 2nd group): the replay stops
    # cleanly (paused, per design: a broken source never kills the loop) and the server carries on
    await api.create(kid, source={"kind": "parquet", "path": "unsorted_in_group.parquet"}, speed="max")
    await api.ok(kid, "play")
    model = await api.wait_for(kid, lambda m: m["state"] != "playing")
    assert model["state"] == "paused" and model["position"] < 4
    for name in [*bad_files, "unsorted_in_group.parquet"]:  # the engine refuses them too (built or read)
        if name.endswith(".parquet"):
            with pytest.raises(DataError):
                src = ParquetSource(jp_root_dir / name)
                cursor = src.open()
                while cursor.peek_ns() is not None:
                    cursor.read(1000)
    await bystander.check()


@on_server_loop
async def test_paths_outside_data_dirs(api, replay_ext, jp_root_dir, tmp_path):
    data = jp_root_dir / "data"
    data.mkdir()
    replay_ext.data_dirs = [str(data)]
    df = sample_trades(n=20, seed=2)
    df.to_csv(data / "ok.csv", index=False)
    (data / "sub").mkdir()
    df.to_csv(data / "sub" / "nested.csv", index=False)
    evil = jp_root_dir / "data-evil"  # shares the prefix "data"
    evil.mkdir()
    df.to_csv(evil / "x.csv", index=False)
    df.to_csv(jp_root_dir / "root_level.csv", index=False)
    outside = tmp_path / "outside"
    outside.mkdir()
    df.to_csv(outside / "secret.csv", index=False)
    (data / "link_out.csv").symlink_to(outside / "secret.csv")
    (data / "dir_link").symlink_to(outside, target_is_directory=True)
    (data / "link_in.csv").symlink_to(data / "sub" / "nested.csv")
    bystander = await Bystander.start(api)
    kid = await api.start_kernel()

    forbidden = ["root_level.csv", "../root_level.csv", "data/../root_level.csv", "data-evil/x.csv",
                 str(evil / "x.csv"), str(outside / "secret.csv"), "data/link_out.csv", "data/dir_link/secret.csv",
                 "/etc/passwd", "data/sub/../../root_level.csv", "data/" + "../" * 40 + "etc/passwd"]
    for path in forbidden:
        code, err, _ = await api.request("POST", *SESSIONS, body={"kernel_id": kid, "source": {"kind": "csv", "path": path}})
        assert code == 403 and "outside the allowed" in err["message"], (path, code, err)
    bad = [("data/missing.csv", "no such data file"), ("data/sub", "no such data file"), ("data/a\0b.csv", "path"),
           ("", "path"), (5, "path"), (None, "path"), (["data/ok.csv"], "path"), ("data/..\\..\\x.csv", "no such")]
    for path, fragment in bad:
        code, err, _ = await api.request("POST", *SESSIONS, body={"kernel_id": kid, "source": {"kind": "csv", "path": path}})
        assert code == 400 and fragment in err["message"], (path, code, err)
    for path in ("data/ok.csv", str(data / "sub" / "nested.csv"), "data/link_in.csv", "data/sub/../ok.csv"):
        model = await api.create(kid, source={"kind": "csv", "path": path})
        assert model["num_rows"] == 20
        assert (await api.request("DELETE", *SESSIONS, kid))[0] == 204
    await bystander.check()
