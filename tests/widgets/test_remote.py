"""The attached path: a ``Replay`` becomes a client of its kernel's server session (real Jupyter server).

The browser's part (POST the session, send ``attach``) is played by the test: it creates the session over
REST like the widget JS does and delivers the ``attach`` message to the widget. The widget then talks to
the real server over HTTP (REST + WebSocket) from its background thread, while the server runs on the
test's event loop, so blocking widget calls are made with ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403  (jp_serverapp, jp_fetch, ... for this module)
from remote_helpers import (  # noqa: F401  (jp_server_config: a fixture)
    attach, jp_server_config, kernel_session, new_kernel, request, until,
)
from server_helpers import on_server_loop
from widget_helpers import RecordingReplay, long_format, trades

from jupyter_replay.exceptions import InvalidValueError
from jupyter_replay.widgets.remote import RemoteSession


@on_server_loop
async def test_attached_widget_is_a_client_of_the_server_session(jp_fetch, jp_serverapp):
    kid = await new_kernel(jp_fetch)
    df = trades(400)
    r = await asyncio.to_thread(lambda: RecordingReplay(df, speed=50, loop=False).render())
    other = None
    try:
        r.step(3)  # local progress before attaching
        await until(lambda: r.messages("frame"), what="local rows over the comm")
        seen: list[int] = []
        r.on_batch(lambda batch, clock: seen.append(len(batch)))
        await attach(jp_fetch, r, kid)
        assert r.attached == kid
        assert isinstance(r.session, RemoteSession)
        assert r.messages("attach_result")[-1][0]["ok"] is True
        # the data and the settings went to the server session
        code, model = await request(jp_fetch, "GET", "replay", "api", "sessions", kid)
        assert model["num_rows"] == 400 and model["speed"] == 50.0 and model["clients"] >= 1
        assert model["position"] == 3  # the local position carried over
        frames_before = len(r.messages("frame"))

        # Python controls act on the server session; rows come back over the WebSocket
        await asyncio.to_thread(setattr, r, "speed", "max")
        code, model = await request(jp_fetch, "GET", "replay", "api", "sessions", kid)
        assert model["speed"] == "max"
        await asyncio.to_thread(r.play)
        await until(lambda: r.status.get("state") == "finished", what="finished")
        # the 3 rows stepped locally were carried over (attach reproduced the local buffer on the server)
        await until(lambda: len(r.buffer) == 400, what="buffer mirrored")
        assert r.buffer["price"].tolist() == df["price"].tolist()
        assert sum(seen) == 397  # callbacks saw only the rows released after attaching
        # rows do not go through the kernel's comm any more
        assert len(r.messages("frame")) == frames_before

        # another client (the browser's socket, REST here) changes state: Python sees it
        code, _ = await request(jp_fetch, "POST", "replay", "api", "sessions", kid, "actions", "loop", body={"loop": True})
        assert code == 200
        await until(lambda: r.loop is True and r.status.get("loop") is True, what="loop mirrored")
        code, _ = await request(jp_fetch, "POST", "replay", "api", "sessions", kid, "actions", "seek",
                                body={"fraction": 0.5})
        assert code == 200
        await until(lambda: r.status.get("position") == 200 and len(r.buffer) == 0, what="seek mirrored")

        # while playing, the status (slider, time label) moves with the rows received between state messages
        await asyncio.to_thread(setattr, r, "speed", 20)
        await asyncio.to_thread(r.play)
        await until(lambda: r.status.get("state") == "playing" and r.status.get("position", 0) >= 215,
                    what="position advancing")
        st, times = dict(r.status), r.buffer["timestamp"]
        assert st["position_ns"] in {t.value for t in times}  # the last row received at that moment
        assert st["position_iso"].startswith("2024-01-02T09:30:2")
        await asyncio.to_thread(r.pause)
        assert r.status["state"] == "paused"
        # every released row arrives (the frames may trail the REST answer), none twice
        await until(lambda: len(r.buffer) == r.status["position"] - 200, what="rows up to the pause")

        # bad values are refused by the server with the same typed errors
        with pytest.raises(InvalidValueError, match=r"\bn\b") as info:
            await asyncio.to_thread(r.step, 0)
        assert info.value.http_status == 400

        # mode switch through the server: buffer cleared, live rows arrive
        await asyncio.to_thread(setattr, r, "mode", "live")
        code, model = await request(jp_fetch, "GET", "replay", "api", "sessions", kid)
        assert model["mode"] == "live"
        await until(lambda: len(r.buffer) > 0 and "side" in r.buffer.columns, what="live rows")

        # a second Replay of the same kernel cannot take the session over: it stays local
        other = await asyncio.to_thread(RecordingReplay, trades(50, seed=5))
        await attach(jp_fetch, other, kid)
        assert other.attached == "" and other.messages("attach_result")[-1][0]["ok"] is False
        assert other.session is not r.session and other.status["mode"] == "replay"
    finally:
        await asyncio.to_thread(r.close)
        if other is not None:
            await asyncio.to_thread(other.close)
        await request(jp_fetch, "DELETE", "api", "kernels", kid)


async def server_buffer(fetch: Any, kernel_id: str) -> pd.DataFrame:
    """The server session's buffer (``GET sessions/{id}/buffer``, an Arrow IPC stream) as a DataFrame."""
    resp = await fetch("replay", "api", "sessions", kernel_id, "buffer", method="GET")
    return pa.ipc.open_stream(resp.body).read_all().to_pandas()


def same_rows(a: pd.DataFrame, b: pd.DataFrame, columns: tuple[str, ...] = ("price", "size")) -> bool:
    """Same timestamps (exact ns) and values, in order."""
    if len(a) != len(b):
        return False
    ta = a["timestamp"].to_numpy("datetime64[ns]") if a["timestamp"].dt.tz is None else \
        a["timestamp"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]")
    tb = b["timestamp"].to_numpy("datetime64[ns]") if b["timestamp"].dt.tz is None else \
        b["timestamp"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]")
    return bool(np.array_equal(ta, tb)) and all(
        np.array_equal(a[c].to_numpy(), b[c].to_numpy()) for c in columns
    )


async def model_of(fetch: Any, kernel_id: str) -> dict:
    code, model = await request(fetch, "GET", "replay", "api", "sessions", kernel_id)
    assert code == 200, model
    return model


@on_server_loop
async def test_attach_carries_the_local_replay_over_exactly(jp_fetch, jp_serverapp):
    """Attaching reproduces the local session on the server: same buffered rows, position and state.

    One kernel, one server session, re-attached by successive widgets (each replaces the data), like
    re-running the cell: finished (the quickstart after Run All), paused after steps, playing, live.
    """
    kid = await new_kernel(jp_fetch)
    df = trades(400)
    r = None

    async def fresh(**kwargs: Any) -> RecordingReplay:
        nonlocal r
        if r is not None:
            await asyncio.to_thread(r.close)
        r = await asyncio.to_thread(lambda: RecordingReplay(df, **kwargs).render())
        return r

    try:
        # -- finished: step, seek, play to the end at max speed (buffer = the rows since the seek)
        r = await fresh(speed="max")
        await asyncio.to_thread(r.step, 3)
        await asyncio.to_thread(r.seek, df["timestamp"].iloc[100])
        await asyncio.to_thread(r.play)
        assert await asyncio.to_thread(r.wait) == "finished"
        await asyncio.to_thread(setattr, r, "loop", True)  # turned on after finishing: still finished
        local = r.buffer
        assert len(local) == 300 and r.status["position"] == 400
        await attach(jp_fetch, r, kid)
        assert isinstance(r.session, RemoteSession)
        model = await model_of(jp_fetch, kid)
        assert (model["state"], model["position"], model["buffer_rows"]) == ("finished", 400, 300)
        assert model["loop"] is True and model["speed"] == "max"
        assert (r.status["state"], r.status["position"], r.status["buffer_rows"]) == ("finished", 400, 300)
        served = await server_buffer(jp_fetch, kid)
        assert same_rows(r.buffer, local) and same_rows(served, local)
        assert local["price"].tolist() == df["price"].iloc[100:].tolist()

        # -- paused after steps (the server session is reused: the data is replaced, the state carried)
        r = await fresh(speed=5)
        await asyncio.to_thread(r.step, 7)
        await asyncio.to_thread(r.step, 2)
        local = r.buffer
        await attach(jp_fetch, r, kid)
        model = await model_of(jp_fetch, kid)
        assert (model["state"], model["position"], model["buffer_rows"]) == ("paused", 9, 9)
        assert model["loop"] is False and model["speed"] == 5.0
        assert r.status["state"] == "paused" and r.status["position"] == 9
        assert same_rows(r.buffer, local) and same_rows(await server_buffer(jp_fetch, kid), local)
        # it goes on from there: the next step releases row 9
        await asyncio.to_thread(r.step, 1)
        await until(lambda: len(r.buffer) == 10, what="the next row")
        assert r.buffer["price"].tolist() == df["price"].iloc[:10].tolist()

        # -- playing: attaching mid-playback keeps the rows played so far and keeps playing
        r = await fresh(speed=2)
        await asyncio.to_thread(r.play)
        await asyncio.to_thread(wait_rows, r, 5)
        await attach(jp_fetch, r, kid)
        assert (await model_of(jp_fetch, kid))["state"] == "playing"
        carried = len(r.buffer)
        assert carried >= 5
        await until(lambda: len(r.buffer) > carried, what="rows after attaching")
        await asyncio.to_thread(r.pause)
        model = await model_of(jp_fetch, kid)
        await until(lambda: len(r.buffer) == model["position"], what="rows up to the pause")
        assert model["state"] == "paused" and model["buffer_rows"] == model["position"]
        assert same_rows(r.buffer, await server_buffer(jp_fetch, kid))
        assert r.buffer["price"].tolist() == df["price"].iloc[: model["position"]].tolist()  # from row 0, no gap

        # -- live: the server switches to the live feed of the widget's symbol
        r = await fresh()
        await asyncio.to_thread(setattr, r, "symbol", "ABC")
        await asyncio.to_thread(setattr, r, "mode", "live")
        await attach(jp_fetch, r, kid)
        model = await model_of(jp_fetch, kid)
        assert (model["mode"], model["symbol"], model["state"]) == ("live", "ABC", "playing")
        await until(lambda: len(r.buffer) > 0, what="live rows")

        # -- and a replay attaching to a session left in live gets it back to replay
        r = await fresh(speed=3)
        await asyncio.to_thread(r.step, 4)
        await attach(jp_fetch, r, kid)
        model = await model_of(jp_fetch, kid)
        assert (model["mode"], model["state"], model["position"], model["buffer_rows"]) == ("replay", "paused", 4, 4)
        assert model["speed"] == 3.0
        assert r.buffer["price"].tolist() == df["price"].iloc[:4].tolist()
    finally:
        if r is not None:
            await asyncio.to_thread(r.close)
        await request(jp_fetch, "DELETE", "api", "kernels", kid)


def wait_rows(r: RecordingReplay, n: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while len(r.buffer) < n:
        assert time.monotonic() < deadline, f"fewer than {n} rows after {timeout}s"
        time.sleep(0.02)


# ------------------------------------------------------------------ one product on every host


def headless_run(df: pd.DataFrame, time_column: str, callbacks: list[Callable[..., Any]]) -> tuple[pd.DataFrame, dict]:
    """The same data replayed in the kernel (``ThreadedSession``), to the end at max speed."""
    from jupyter_replay.runner import ThreadedSession
    from jupyter_replay.sources import as_source

    local = ThreadedSession(as_source(df, time_column), speed="max")
    try:
        for fn in callbacks:
            local.on_batch(fn)
        local.play()
        assert local.wait(timeout=30).value == "finished"
        return local.frame(), local.status()
    finally:
        local.close()


@on_server_loop
async def test_text_and_categorical_columns_reach_the_attached_client(jp_fetch, jp_serverapp, caplog):
    """Long format with text, categorical, nullable and datetime columns: the server session has them, the
    wire carries them (dictionary codes), and ``RemoteSession``'s buffer and batches equal the headless run's,
    dtypes included. A callback reading ``batch.columns["symbol"]`` works on both; a failing callback is
    logged once and counted in ``status()["callback_errors"]`` the same way on both."""
    from jupyter_replay.sources import as_source

    kid = await new_kernel(jp_fetch)
    df = long_format(60)

    kinds: set[tuple] = set()

    def make_callbacks() -> tuple[list[Any], list[Callable[..., Any]]]:
        seen: list[Any] = []

        def read_symbol(batch, clock):
            seen.append(batch.columns["symbol"].tolist())
            kinds.add((batch.columns["symbol"].dtype, batch.columns["settle"].dtype, batch.columns["flag"].dtype))

        def broken(batch, clock):
            raise KeyError("user bug")

        return seen, [read_symbol, broken]

    seen_local, callbacks = make_callbacks()
    with caplog.at_level("ERROR", logger="jupyter_replay.client"):
        local_frame, local_status = await asyncio.to_thread(headless_run, df, "date", callbacks)
    local_logged = [r for r in caplog.records if r.name == "jupyter_replay.client"]

    code, model = await request(jp_fetch, "POST", "replay", "api", "sessions", body={"kernel_id": kid})
    assert code in (200, 201), model
    remote = RemoteSession(model["server_url"], model["id"], model["client_token"], tz="America/New_York")
    seen_remote, callbacks = make_callbacks()
    caplog.clear()
    try:
        await asyncio.to_thread(remote.upload, as_source(df, "date"))
        served = await server_buffer(jp_fetch, kid)  # empty, but with the uploaded columns
        assert {"symbol", "venue", "note", "flag"} <= set(served.columns)
        await asyncio.to_thread(remote.start)
        for fn in callbacks:
            remote.on_batch(fn)
        with caplog.at_level("ERROR", logger="jupyter_replay.client"):
            await asyncio.to_thread(remote.set_speed, "max")
            await asyncio.to_thread(remote.play)
            await asyncio.to_thread(remote.wait, ("finished",), 30)
            await until(lambda: len(remote.frame()) == 60, what="every row mirrored")
        remote_frame, remote_status = remote.frame(), remote.status()
        remote_logged = [r for r in caplog.records if r.name == "jupyter_replay.client"]
    finally:
        await asyncio.to_thread(remote.close)
        await request(jp_fetch, "DELETE", "api", "kernels", kid)

    pd.testing.assert_frame_equal(remote_frame, local_frame, check_dtype=True)
    assert remote_frame["symbol"].tolist() == df["symbol"].tolist()
    assert remote_frame["venue"].tolist() == list(df["venue"].astype(object))
    assert remote_frame["note"].tolist() == df["note"].tolist()
    assert sum(seen_remote, []) == sum(seen_local, []) == df["symbol"].tolist()
    assert kinds == {(np.dtype(object), np.dtype("datetime64[ns]"), np.dtype(object))}  # batches alike on both
    # the failing callback: once in the log (with its traceback), then counted, the same on both hosts
    # (one failure per batch; a slow client may get batches merged, so compare with the batches each saw)
    assert local_status["callback_errors"] == len(seen_local) > 0
    assert remote_status["callback_errors"] == len(seen_remote) > 0
    assert len(local_logged) == len(remote_logged) == 1
    assert "KeyError" in (local_logged[0].exc_text or "") and "KeyError" in (remote_logged[0].exc_text or "")
    assert "client_callback_errors" not in remote_status
    assert set(remote_status) == set(local_status)


@on_server_loop
async def test_attached_widget_long_format_callback_reads_the_text_column(jp_fetch, jp_serverapp):
    """The issue's case: in JupyterLab (attached) a callback reading ``batch.columns["symbol"]`` works and
    ``r.buffer`` has the text columns, exactly as headless."""
    kid = await new_kernel(jp_fetch)
    df = long_format(90)
    local_frame, _ = await asyncio.to_thread(headless_run, df, "date", [])
    r = await asyncio.to_thread(lambda: RecordingReplay(df, "date", speed="max").render())
    try:
        counts: dict[str, int] = {}

        batches: list[int] = []

        @r.on_batch
        def by_symbol(batch, clock):
            batches.append(len(batch))
            for s in batch.columns["symbol"]:
                counts[s] = counts.get(s, 0) + 1

        @r.on_batch
        def broken(batch, clock):
            return batch.columns["no such column"]

        await attach(jp_fetch, r, kid)
        assert isinstance(r.session, RemoteSession)
        await asyncio.to_thread(r.play)
        assert await asyncio.to_thread(r.wait) == "finished"
        await until(lambda: len(r.buffer) == 90, what="every row mirrored")
        pd.testing.assert_frame_equal(r.buffer, local_frame, check_dtype=True)
        assert counts == {"AAPL": 30, "MSFT": 30, "GOOG": 30}
        await until(lambda: r.status.get("callback_errors") == len(batches) > 0, what="errors counted")
        assert "client_callback_errors" not in r.status and "no such column" in r.status["error"]
        shown = await until(lambda: r.messages("error"), what="the error shown")  # once, in the status line
        assert len(shown) == 1 and "broken" in shown[0][0]["message"]
    finally:
        await asyncio.to_thread(r.close)
        await request(jp_fetch, "DELETE", "api", "kernels", kid)


def test_both_clients_have_one_api() -> None:
    """``ThreadedSession`` and ``RemoteSession`` are adapters on ``SessionClient``: same methods, same signatures."""
    import inspect

    from jupyter_replay.client import SessionClient
    from jupyter_replay.runner import ThreadedSession

    names = ["play", "pause", "stop", "step", "seek", "set_speed", "set_loop", "set_mode", "control", "status",
             "frame", "subscribe", "on_batch", "wait", "close"]
    for name in names:
        a, b = getattr(ThreadedSession, name), getattr(RemoteSession, name)
        assert inspect.signature(a) == inspect.signature(b), name
    for cls in (ThreadedSession, RemoteSession):
        assert issubclass(cls, SessionClient)
        for name in ["play", "pause", "stop", "step", "seek", "set_speed", "set_loop", "set_mode", "on_batch", "wait"]:
            assert getattr(cls, name) is getattr(SessionClient, name), (cls.__name__, name)  # not re-implemented



def test_upload_stream_keeps_text_columns_whose_first_rows_are_missing() -> None:
    """The upload (kernel -> server) is typed from the whole column: a text column that starts with missing
    values still goes as strings, in every record batch; an unconvertible column is left out, named in a log."""
    from jupyter_replay.sources import as_source
    from jupyter_replay.sources.arrow import source_to_arrow_stream

    n = 10
    df = pd.DataFrame({"timestamp": pd.date_range("2024-01-02", periods=n, freq="s", tz="UTC"),
                       "x": np.arange(n), "t": [None] * 5 + ["a"] * 5, "mixed": [1, "a"] * 5})
    table = pa.ipc.open_stream(b"".join(source_to_arrow_stream(as_source(df), rows_per_batch=3))).read_all()
    assert table.schema.names == ["timestamp", "x", "t"] and table.schema.field("t").type == pa.string()
    assert table.column("t").to_pylist() == [None] * 5 + ["a"] * 5


@on_server_loop
async def test_bad_control_values_are_refused_alike(jp_fetch, jp_serverapp):
    """The same bad value gives the same typed error and message headless and attached."""
    from jupyter_replay.runner import ThreadedSession
    from jupyter_replay.sources import as_source

    kid, model = await kernel_session(jp_fetch)
    remote = RemoteSession(model["server_url"], model["id"], model["client_token"])
    local = await asyncio.to_thread(lambda: ThreadedSession(as_source(trades(20))))
    bad: list[tuple[str, Callable[[Any], Any]]] = [
        ("speed nan", lambda s: s.set_speed(float("nan"))), ("speed text", lambda s: s.set_speed("fastest")),
        ("speed huge", lambda s: s.set_speed(10**400)), ("loop 1", lambda s: s.set_loop(1)),
        ("mode", lambda s: s.set_mode("sideways")), ("symbol", lambda s: s.set_mode("live", "a b")),
        ("step 0", lambda s: s.step(0)), ("seek fraction", lambda s: s.seek(fraction=2.0)),
        ("seek two", lambda s: s.seek(fraction=0.5, row=3)), ("pause stopped", lambda s: s.pause()),
    ]
    try:
        await asyncio.to_thread(remote.upload, as_source(trades(20)))
        await asyncio.to_thread(remote.start)
        for what, call in bad:
            errors = []
            for s in (local, remote):
                try:
                    await asyncio.to_thread(call, s)
                except Exception as exc:
                    errors.append((type(exc), str(exc)))
                else:
                    errors.append(None)
            assert errors[0] is not None and errors[0] == errors[1], (what, errors)
    finally:
        await asyncio.to_thread(remote.close)
        await asyncio.to_thread(local.close)
        await request(jp_fetch, "DELETE", "api", "kernels", kid)
