"""Issue 14, REST side: hostile requests get a bounded 4xx and cost the server nothing.

A real Jupyter server (pytest-jupyter) in this process, real kernels where ownership matters, kernelless
sessions (``allow_kernelless_sessions``) where only data matters. Memory is read from ``/proc/self``:
the server runs in the test process, so what it materialises shows up there.
"""

from __future__ import annotations

import gc
import json
import logging
import os
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from jupyter_server.auth import IdentityProvider, User
from reliability_helpers import SESSIONS
from server_helpers import Api, RoleAuthorizer, arrow_bytes, on_server_loop
from traitlets.config import Config

from jupyter_replay import wire
from jupyter_replay.server.payload import measure_upload

MIB = 1024 * 1024
ROWS_60M = 60_000_000


class HeaderIdentityProvider(IdentityProvider):
    """jupyter_server's token check, then the user named by ``X-Test-User`` (default ``alice``)."""

    async def get_user(self, handler: Any) -> User | None:  # type: ignore[override]
        user = await self._get_user(handler)
        if user is None:
            return None
        name = handler.request.headers.get("X-Test-User", "alice")
        return User(username=name, name=name, display_name=name)


@pytest.fixture
def jp_server_config() -> Config:
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"jupyter_replay.server": True},
                "authorizer_class": RoleAuthorizer,
                "identity_provider_class": HeaderIdentityProvider,
            },
            "ReplayExtension": {"buffer_rows": 20_000, "allow_kernelless_sessions": True},
        }
    )


def who(user: str, **extra: str) -> dict[str, str]:
    return {"X-Test-User": user, **extra}


def ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def ree_attack() -> bytes:
    """The issue's attack: a run-end-encoded time column of 60M rows in a few hundred bytes."""
    run_ends = pa.array([ROWS_60M], pa.int32())
    values = pa.array([1_700_000_000_000_000_000], pa.timestamp("ns"))
    return ipc(pa.table({"timestamp": pa.RunEndEncodedArray.from_arrays(run_ends, values)}))


def null_attack() -> bytes:
    """A null-typed column of 60M rows: no buffers at all on the wire, 8 bytes a row once decoded."""
    ts = pa.RunEndEncodedArray.from_arrays(pa.array([ROWS_60M], pa.int32()), pa.array([0], pa.timestamp("ns")))
    return ipc(pa.table({"timestamp": ts, "v": pa.nulls(ROWS_60M)}))


def rss() -> int:
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def kernelless(api: Api, name: str, headers: dict | None = None, **body: Any) -> str:
    code, model, _ = await api.request(
        "POST", *SESSIONS, body={"kernel_id": name, **body}, headers=headers or who("alice")
    )
    assert code == 201, model
    return name


async def put_data(api: Api, sid: str, body: bytes, headers: dict | None = None) -> tuple[int, Any]:
    code, model, _ = await api.request("PUT", *SESSIONS, sid, "data", raw=body, headers=headers or who("alice"))
    return code, model


def frame(rows: int, cols: int = 2) -> pd.DataFrame:
    data: dict[str, Any] = {"timestamp": pd.date_range("2024-01-02", periods=rows, freq="ms", tz="UTC")}
    for i in range(cols):
        data[f"c{i}"] = np.arange(rows, dtype=np.float64)
    return pd.DataFrame(data)


# ---------------------------------------------------------------- uploads expand after decoding


def test_attack_bodies_are_tiny_and_measured_without_decoding():
    """The two attack bodies are what the issue describes, and measuring them allocates nothing."""
    ree, nulls = ree_attack(), null_attack()
    assert len(ree) < 600 and len(nulls) < 600
    before = rss()
    assert measure_upload(ree, max_rows=10**12).rows == ROWS_60M
    size = measure_upload(nulls, max_rows=10**12)
    assert size.rows == ROWS_60M and size.nbytes >= ROWS_60M * 16  # 8 B of time + an 8 B pointer per row
    assert rss() - before < 50 * MIB


@on_server_loop
async def test_expanding_uploads_get_413_and_the_server_neither_grows_nor_freezes(api, replay_ext, replay_manager):
    await kernelless(api, "bystander", source={"kind": "sample", "n": 200_000, "seed": 1}, speed=10)
    await api.ok("bystander", "play")
    victim = await kernelless(api, "victim")
    ree, nulls = ree_attack(), null_attack()
    before_rss = rss()
    before_rows = replay_manager.get("bystander").session.rows

    # default limits: refused from the stream metadata (rows), before any batch is read
    for body in (ree, nulls):
        code, err = await put_data(api, victim, body)
        assert code == 413 and err["reason"] == "PayloadTooLargeError", err
        assert "max_session_rows" in err["message"] and len(err["message"]) < 300
    # rows allowed: refused on the decoded bytes (run-end-encoded and null columns expanded)
    replay_ext.max_session_rows = 10**9
    replay_ext.max_session_bytes = 100 * MIB
    for body in (ree, nulls):
        code, err = await put_data(api, victim, body)
        assert code == 413 and "max_session_bytes" in err["message"], err

    assert rss() - before_rss < 100 * MIB  # nothing was materialised (the attack cost +1 GiB before)
    assert (await api.status(victim))["has_data"] is False  # the victim still has no data
    # the bystander kept playing through it all
    await api.wait_for("bystander", lambda m: m["buffer_rows"] > 0 and m["state"] == "playing")
    rows = replay_manager.get("bystander").session.rows
    await api.wait_for("bystander", lambda m: replay_manager.get("bystander").session.rows > rows)
    assert replay_manager.get("bystander").session.rows > before_rows


@on_server_loop
async def test_compressed_and_corrupt_streams_are_400(api):
    sid = await kernelless(api, "s")
    table = pa.Table.from_pandas(frame(1000), preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression="zstd")) as writer:
        writer.write_table(table)
    code, err = await put_data(api, sid, sink.getvalue().to_pybytes())
    assert code == 400 and "compress" in err["message"], err
    good = arrow_bytes(frame(1000))
    for body in (good[: len(good) // 2], b"\xff" * 64, b"x" * 100_000):
        code, err = await put_data(api, sid, body)
        assert code == 400 and err["reason"] == "DataError" and len(err["message"]) < 400, err
    code, model = await put_data(api, sid, good)
    assert code == 200 and model["num_rows"] == 1000


@on_server_loop
async def test_server_byte_budget_counts_every_session(api, replay_ext, replay_manager):
    data = arrow_bytes(frame(50_000))  # 24 bytes a row decoded: 1.2 MB
    replay_ext.max_server_bytes = 2 * 1024 * 1024
    a, b = await kernelless(api, "a"), await kernelless(api, "b")
    assert (await put_data(api, a, data))[0] == 200
    assert (await put_data(api, a, data))[0] == 200  # replacing a session's data does not count it twice
    code, err = await put_data(api, b, data)
    assert code == 413 and "max_server_bytes" in err["message"], err
    assert replay_manager.data_bytes() == 50_000 * 24
    assert (await api.request("DELETE", *SESSIONS, a, headers=who("alice")))[0] == 204
    assert (await put_data(api, b, data))[0] == 200
    # sources count too: a sample of 50,000 rows does not fit next to b's data
    code, err, _ = await api.request(
        "POST", *SESSIONS, body={"kernel_id": "c", "source": {"kind": "sample", "n": 50_000}}, headers=who("alice")
    )
    assert code == 413 and "max_server_bytes" in err["message"], err
    assert "c" not in replay_manager
    # upload bodies being received have a budget too (concurrent uploads cannot add up): with another
    # upload's 1.5 MiB in flight, b's 1.2 MB body is refused while it streams in
    assert replay_manager.reserve_body(1536 * 1024)
    code, err = await put_data(api, b, data)
    assert code == 413 and "other uploads" in err["message"], err
    replay_manager.release_body(1536 * 1024)
    assert (await put_data(api, b, data))[0] == 200
    assert replay_manager.reserve_body(2 * 1024 * 1024)  # every body was released when its request ended
    replay_manager.release_body(2 * 1024 * 1024)


# ---------------------------------------------------------------- no 500s


HUGE = 10**400


@on_server_loop
async def test_huge_numbers_and_long_integer_literals_are_400(api, caplog):
    sid = await kernelless(api, "s", source={"kind": "sample", "n": 1000})
    cases: list[tuple[str, tuple[str, ...], Any]] = [
        ("POST", (*SESSIONS, sid, "actions", "speed"), {"speed": HUGE}),
        ("POST", (*SESSIONS, sid, "actions", "speed"), {"speed": -HUGE}),
        ("POST", (*SESSIONS, sid, "actions", "seek"), {"fraction": HUGE}),
        ("POST", (*SESSIONS, sid, "actions", "seek"), {"row": HUGE}),
        ("POST", SESSIONS, {"kernel_id": "t", "speed": HUGE}),
        ("POST", SESSIONS, {"kernel_id": "t", "source": {"kind": "sample", "n": HUGE}}),
    ]
    long_literal = '{"speed": ' + "9" * 5000 + "}"  # over Python's 4,300-digit int conversion limit
    raw_cases = [
        ("POST", (*SESSIONS, sid, "actions", "speed"), long_literal),
        ("POST", SESSIONS, '{"kernel_id": "t", "speed": ' + "1" * 5000 + "}"),
        ("POST", (*SESSIONS, sid, "room"), '{"viewers": [' + "7" * 5000 + "]}"),
        ("POST", (*SESSIONS, sid, "actions", "play"), "[" * 100_000 + "]" * 100_000),
    ]
    with caplog.at_level(logging.WARNING):
        for method, parts, body in cases:
            code, err, _ = await api.request(method, *parts, body=json.dumps(body), headers=who("alice"))
            assert code == 400 and err["message"] and len(err["message"]) < 600, (parts, body.keys(), code, err)
        for method, parts, text in raw_cases:
            code, err, _ = await api.request(method, *parts, body=text, headers=who("alice"))
            assert code == 400 and len(err["message"]) < 600, (parts, code, err)
    assert not [r for r in caplog.records if r.exc_info], "a bad value logged a traceback"
    assert (await api.status(sid))["state"] in ("stopped", "paused")
    assert "t" not in [m["id"] for m in (await api.request("GET", *SESSIONS, headers=who("alice")))[1]]


@on_server_loop
async def test_step_is_capped_by_max_step_rows(api, replay_ext):
    """``step {"n": 40000000}`` (4.1 s and +1.2 GiB over Parquet before) is refused past max_step_rows."""
    sid = await kernelless(api, "s", source={"kind": "sample", "n": 5000})
    replay_ext.max_step_rows = 1000
    for n in (40_000_000, HUGE, 1001):
        code, err = await api.action(sid, "step", n=n)
        assert code == 400 and "1,000" in err["message"] and len(err["message"]) < 600, (n, err)
    model = await api.ok(sid, "step", n=1000)
    assert model["position"] == 1000


@on_server_loop
async def test_a_maximal_step_reaches_clients_in_bounded_frames(api, replay_ext, replay_manager):
    """A step of ``max_step_rows`` goes out as several frames of at most ``max_batch_rows``, never one."""
    sid = await kernelless(api, "s", source={"kind": "sample", "n": 150_000})
    ws = await api.ws(sid)
    await ws.until(lambda k, m: k == "text" and m.get("type") == "hello")
    n = replay_ext.max_step_rows
    await api.ok(sid, "step", n=n)
    msgs = await ws.until(lambda k, m: k == "frame" and m[0]["first_row"] + m[0]["rows"] >= n, timeout=30)
    frames = [m[0] for k, m in msgs if k == "frame" and not m[0].get("history")]
    limit = replay_manager.get(sid).session.controller.max_batch_rows
    assert sum(h["rows"] for h in frames) == n
    assert len(frames) >= 2 and all(h["rows"] <= limit for h in frames), [h["rows"] for h in frames]
    ws.close()


def test_wire_loads_refuses_long_integer_literals_and_deep_nesting():
    for text in ('{"type": "control", "id": ' + "9" * 5000 + "}", "[" * 100_000 + "]" * 100_000):
        with pytest.raises(wire.WireError) as excinfo:
            wire.loads(text)
        assert len(str(excinfo.value)) < 300


# ---------------------------------------------------------------- bounded echo


@on_server_loop
async def test_errors_and_logs_never_echo_unbounded_input(api, caplog):
    sid = await kernelless(api, "s", source={"kind": "sample", "n": 1000})
    many_names = {f"argument_{i}": 0 for i in range(450_000)}
    with caplog.at_level(logging.DEBUG):
        for action, body in (
            ("speed", {"speed": "9" * (1 << 20)}),  # numeric but overlong
            ("speed", {"speed": "x" * (1 << 20)}),
            ("mode", {"mode": "y" * (1 << 20)}),
            ("play", many_names),
            ("seek", many_names),
        ):
            code, err, resp = await api.request(
                "POST", *SESSIONS, sid, "actions", action, body=json.dumps(body), headers=who("alice")
            )
            assert code == 400, (action, code)
            assert len(resp.body) < 1000, (action, len(resp.body))
        code, _, resp = await api.request(
            "POST", *SESSIONS, body=json.dumps({"kernel_id": "t", **many_names}), headers=who("alice")
        )
        assert code == 400 and len(resp.body) < 1000
    longest = max((len(r.getMessage()) for r in caplog.records), default=0)
    assert longest < 2000, f"a log line of {longest} characters"


# ---------------------------------------------------------------- session squatting


@on_server_loop
async def test_a_user_without_the_kernel_right_cannot_create_its_session_nor_learn_it_exists(api, replay_ext):
    replay_ext.allow_kernelless_sessions = False  # only real kernels here
    kid = await api.start_kernel()
    mallory = who("mallory", **{"X-Test-Role": "nokernels"})
    fake = "0" * len(kid)

    async def post(kernel_id: str, headers: dict) -> tuple[int, Any]:
        code, body, _ = await api.request("POST", *SESSIONS, body={"kernel_id": kernel_id}, headers=headers)
        return code, body

    code, err = await post(kid, mallory)  # a running kernel without a session
    code_fake, err_fake = await post(fake, who("alice"))  # a kernel that does not exist
    assert code == code_fake == 404
    assert err["reason"] == err_fake["reason"] and err["message"].replace(kid, fake) == err_fake["message"]

    model = await api.create(kid)  # alice (default headers: a user of the kernels)
    code, err = await post(kid, mallory)  # a session exists: still 404, not 409
    assert code == 404 and err["message"].replace(kid, fake) == err_fake["message"], err
    assert (await api.status(kid))["instance"] == model["instance"]


@on_server_loop
async def test_the_kernels_user_reclaims_a_session_someone_else_created(api, replay_ext):
    replay_ext.allow_kernelless_sessions = False
    kid = await api.start_kernel()
    code, squatted, _ = await api.request(
        "POST", *SESSIONS, body={"kernel_id": kid, "source": {"kind": "sample", "n": 500}}, headers=who("bob")
    )
    assert code == 201 and squatted["owner"] == "bob"
    bob_ws = await api.ws(kid, headers=who("bob"))
    assert (await bob_ws.recv())[1]["type"] == "hello"

    code, mine, _ = await api.request("POST", *SESSIONS, body={"kernel_id": kid}, headers=who("alice"))
    assert code == 201 and mine["owner"] == "alice" and mine["role"] == "owner"
    assert mine["client_token"] != squatted["client_token"] and mine["instance"] != squatted["instance"]
    assert (await bob_ws.until(lambda k, m: k == "closed"))[-1][0] == "closed"
    # bob's capability died with his session; alice's works
    token = {"Authorization": f"ReplayToken {squatted['client_token']}"}
    assert (await api.request("GET", *SESSIONS, kid, headers=token))[0] == 403
    token = {"Authorization": f"ReplayToken {mine['client_token']}"}
    assert (await api.request("GET", *SESSIONS, kid, headers=token))[0] == 200
    # her own session is not replaced by asking again
    code, err, _ = await api.request("POST", *SESSIONS, body={"kernel_id": kid}, headers=who("alice"))
    assert code == 409 and err["reason"] == "IllegalTransitionError"
    assert (await api.status(kid, headers=who("alice")))["instance"] == mine["instance"]


def test_decoded_width_counts_every_encoding():
    """Rows x decoded width for the encodings that expand: dictionaries, REE strings, nested nulls."""
    n = 1_000_000
    words = pa.array(["a" * 100, "b" * 100]).dictionary_encode()
    dictionary = pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), words.dictionary)
    ree_text = pa.RunEndEncodedArray.from_arrays(pa.array([n], pa.int32()), pa.array(["x" * 1000]))
    nested = pa.ListArray.from_arrays(pa.array([0, n], pa.int32()), pa.nulls(n))  # one row holding 1M nulls
    ts = pa.array(np.arange(n, dtype=np.int64), pa.timestamp("ns"))
    table = pa.table({"timestamp": ts, "d": dictionary, "r": ree_text})
    size = measure_upload(ipc(table), max_rows=10**9)
    assert size.rows == n
    assert size.nbytes >= n * (8 + 8) + n * 1000  # time + dictionary pointers + the expanded REE strings
    one_row = pa.table({"timestamp": ts.slice(0, 1), "l": nested})
    assert measure_upload(ipc(one_row), max_rows=10**9).nbytes >= n * 8  # a list's 1M nulls count
