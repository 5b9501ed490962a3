"""The attached path: a ``Replay`` becomes a client of its kernel's server session (real Jupyter server).

The browser's part (POST the session, send ``attach``) is played by the test: it creates the session over
REST like the widget JS does and delivers the ``attach`` message to the widget. The widget then talks to
the real server over HTTP (REST + WebSocket) from its background thread, while the server runs on the
test's event loop, so blocking widget calls are made with ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F401,F403  (jp_serverapp, jp_fetch, ... for this module)
from tornado.httpclient import HTTPClientError
from traitlets.config import Config

from jupyter_replay.exceptions import InvalidValueError
from jupyter_replay.widgets.remote import RemoteSession

from server_helpers import on_server_loop
from widget_helpers import RecordingReplay, trades


@pytest.fixture
def jp_server_config() -> Config:
    return Config({"ServerApp": {"jpserver_extensions": {"jupyter_replay.server": True}}})


async def request(fetch: Any, method: str, *parts: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body) if body is not None else ("" if method in ("POST", "PUT") else None)
    try:
        resp = await fetch(*parts, method=method, body=data, allow_nonstandard_methods=True)
    except HTTPClientError as err:
        resp = err.response
    return resp.code, (json.loads(resp.body) if resp.body else None)


async def until(pred: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what or pred}"
        await asyncio.sleep(0.02)


async def attach(fetch: Any, widget: RecordingReplay, kernel_id: str) -> dict:
    """What the widget JS does on render: create (or get) the kernel's session, send ``attach``."""
    code, model = await request(fetch, "POST", "replay", "api", "sessions", body={"kernel_id": kernel_id})
    if code == 409:
        code, model = await request(fetch, "GET", "replay", "api", "sessions", kernel_id)
    assert code in (200, 201), model
    msg = {"type": "attach", "session": model["id"], "client_token": model["client_token"],
           "server_url": model["server_url"]}
    await asyncio.to_thread(widget.from_browser, msg)
    return model


@on_server_loop
async def test_attached_widget_is_a_client_of_the_server_session(jp_fetch, jp_serverapp):
    code, kernel = await request(jp_fetch, "POST", "api", "kernels", body={"name": "python3"})
    assert code == 201
    kid = kernel["id"]
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
    code, kernel = await request(jp_fetch, "POST", "api", "kernels", body={"name": "python3"})
    assert code == 201
    kid = kernel["id"]
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
