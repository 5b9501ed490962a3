"""Helpers for the server extension tests (a client over pytest-jupyter's ``jp_fetch``/``jp_ws_fetch``)."""

from __future__ import annotations

import asyncio
import functools
import inspect
import io
import json
import time
from typing import Any, Awaitable, Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from jupyter_server.auth import Authorizer
from tornado.httpclient import HTTPClientError

from jupyter_replay import wire

__all__ = [
    "TEST_TIMEOUT", "on_server_loop", "RoleAuthorizer", "Api", "WsClient", "arrow_bytes", "ts_ns",
    "replay_ext", "replay_manager", "api",
]

TEST_TIMEOUT = 60.0


def on_server_loop(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    """Run an ``async def`` test on the Jupyter server's event loop: the ``jp_asyncio_loop`` fixture's loop
    object itself, not the thread's "current" loop (another test's ``asyncio.run`` may have unset that)."""
    sig = inspect.signature(fn)
    own = "jp_asyncio_loop" in sig.parameters

    @functools.wraps(fn)
    def test(*args: Any, **kwargs: Any) -> Any:
        loop = kwargs["jp_asyncio_loop"] if own else kwargs.pop("jp_asyncio_loop")
        return loop.run_until_complete(asyncio.wait_for(fn(*args, **kwargs), TEST_TIMEOUT))

    if not own:  # ask pytest for the fixture too
        extra = inspect.Parameter("jp_asyncio_loop", inspect.Parameter.KEYWORD_ONLY)
        test.__signature__ = sig.replace(parameters=[*sig.parameters.values(), extra])  # type: ignore[attr-defined]
    return test


class RoleAuthorizer(Authorizer):
    """A real jupyter_server authorizer whose decision on ``replay`` depends on an ``X-Test-Role`` header.

    ``viewer``: read only; ``nobody``: nothing; ``nokernels``: everything on ``replay`` but no right to use
    kernels (``kernels``); anything else (or no header): everything.
    """

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        role = handler.request.headers.get("X-Test-Role", "admin")
        if resource == "kernels":
            return role != "nokernels"
        if resource != "replay":
            return True
        if role == "viewer":
            return action == "read"
        return role != "nobody"


class Api:
    """Small client over ``jp_fetch`` / ``jp_ws_fetch`` for the replay REST API."""

    def __init__(self, fetch: Any, ws_fetch: Any) -> None:
        self.fetch = fetch
        self.ws_fetch = ws_fetch

    async def request(
        self, method: str, *parts: str, body: Any = None, headers: dict | None = None, raw: bytes | None = None, **kw: Any
    ) -> tuple[int, Any, Any]:
        """``(status, decoded JSON or bytes, response)`` without raising on error statuses."""
        if raw is not None:
            data = raw
        elif body is not None:
            data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        else:
            data = "" if method in ("POST", "PUT") else None
        try:
            resp = await self.fetch(
                *parts, method=method, body=data, headers=dict(headers or {}), allow_nonstandard_methods=True, **kw
            )
        except HTTPClientError as err:
            resp = err.response
            assert resp is not None, err
        payload: Any = resp.body
        if resp.headers.get("Content-Type", "").startswith("application/json") and resp.body:
            payload = json.loads(resp.body)
        return resp.code, payload, resp

    async def start_kernel(self) -> str:
        code, model, _ = await self.request("POST", "api", "kernels", body={"name": "python3"})
        assert code == 201, model
        return model["id"]

    async def create(self, kernel_id: str, **body: Any) -> dict:
        code, model, _ = await self.request("POST", "replay", "api", "sessions", body={"kernel_id": kernel_id, **body})
        assert code == 201, model
        return model

    async def status(self, sid: str, **kw: Any) -> dict:
        code, model, _ = await self.request("GET", "replay", "api", "sessions", sid, **kw)
        assert code == 200, model
        return model

    async def action(self, sid: str, action: str, **args: Any) -> tuple[int, dict]:
        code, model, _ = await self.request("POST", "replay", "api", "sessions", sid, "actions", action, body=args)
        return code, model

    async def ok(self, sid: str, action: str, **args: Any) -> dict:
        code, model = await self.action(sid, action, **args)
        assert code == 200, (action, args, model)
        return model

    async def buffer(self, sid: str) -> pd.DataFrame:
        code, body, resp = await self.request("GET", "replay", "api", "sessions", sid, "buffer")
        assert code == 200, body
        assert resp.headers["Content-Type"] == "application/vnd.apache.arrow.stream"
        return pa.ipc.open_stream(io.BytesIO(body)).read_all().to_pandas()

    async def wait_for(self, sid: str, pred: Callable[[dict], bool], timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            model = await self.status(sid)
            if pred(model):
                return model
            assert time.monotonic() < deadline, f"timed out waiting; last status {model}"
            await asyncio.sleep(0.05)

    async def ws(self, sid: str, **params: Any) -> "WsClient":
        headers = params.pop("headers", None)
        conn = await self.ws_fetch("replay", "api", "sessions", sid, "ws", params=params, headers=headers)
        return WsClient(conn)


Recv = Callable[[float], Awaitable[tuple[str, Any]]]


async def read_until(recv: Recv, pred: Callable[[str, Any], bool], timeout: float) -> list[tuple[str, Any]]:
    """Messages from a client's ``recv(timeout)`` up to and including the first matching ``pred(kind, msg)``
    (or the close)."""
    out = []
    deadline = time.monotonic() + timeout
    while True:
        kind, msg = await recv(max(0.1, deadline - time.monotonic()))
        out.append((kind, msg))
        if kind == "closed" or pred(kind, msg):
            return out


async def read_until_quiet(recv: Recv, quiet: float, timeout: float) -> list[tuple[str, Any]]:
    """Everything ``recv`` gives until nothing arrives for ``quiet`` seconds (or the close)."""
    out = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            kind, msg = await recv(quiet)
        except asyncio.TimeoutError:
            return out
        out.append((kind, msg))
        if kind == "closed":
            return out
    raise AssertionError("the socket never went quiet")


class WsClient:
    """Reads the replay WebSocket: text messages as dicts, binary frames decoded."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.decoder = wire.FrameDecoder()  # one per connection: text-column dictionaries are per stream

    async def recv(self, timeout: float = 20.0) -> tuple[str, Any]:
        """``("text", dict)``, ``("frame", (header, columns))`` or ``("closed", None)``."""
        msg = await asyncio.wait_for(self.conn.read_message(), timeout)
        if msg is None:
            return "closed", None
        if isinstance(msg, bytes):
            return "frame", self.decoder.decode(msg)
        return "text", json.loads(msg)

    async def send(self, **message: Any) -> None:
        await self.conn.write_message(json.dumps(message))

    async def until(self, pred: Callable[[str, Any], bool], timeout: float = 20.0) -> list[tuple[str, Any]]:
        return await read_until(self.recv, pred, timeout)

    async def drain(self, quiet: float = 0.5, timeout: float = 30.0) -> list[tuple[str, Any]]:
        return await read_until_quiet(self.recv, quiet, timeout)

    def shrink_receive_buffer(self, nbytes: int = 32 * 1024) -> None:
        """Make this client slow to absorb data: a small fixed TCP receive buffer (no autotuning)."""
        import socket

        self.conn.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, nbytes)

    async def control(self, action: str, id: Any = 1, **args: Any) -> dict:
        """Send a control message and return its ``ack``/``error`` (other messages are skipped)."""
        await self.send(type="control", id=id, action=action, **args)
        msgs = await self.until(lambda k, m: k == "text" and m.get("type") in ("ack", "error") and m.get("id") == id)
        return msgs[-1][1]

    def close(self) -> None:
        self.conn.close()


def arrow_bytes(df: pd.DataFrame) -> bytes:
    table = pa.Table.from_pandas(df, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def ts_ns(df: pd.DataFrame, column: str = "timestamp") -> np.ndarray:
    return df[column].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[ns]").view(np.int64)


# Fixtures shared by tests/server and tests/reliability (imported into their conftest.py).


@pytest.fixture
def replay_ext(jp_serverapp: Any) -> Any:
    """The loaded ``ReplayExtension``."""
    return jp_serverapp.extension_manager.extension_points["jupyter_replay"].app


@pytest.fixture
def replay_manager(replay_ext: Any) -> Any:
    return replay_ext.manager


@pytest.fixture
def api(jp_fetch: Any, jp_ws_fetch: Any) -> Api:
    return Api(jp_fetch, jp_ws_fetch)
