"""Helpers of the attached-path widget tests (a real Jupyter server with the extension, REST calls)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError
from traitlets.config import Config

__all__ = ["attach", "jp_server_config", "kernel_session", "new_kernel", "request", "until"]


@pytest.fixture
def jp_server_config() -> Config:
    """The Jupyter server of pytest-jupyter with jupyter_replay's extension (import it into a test module)."""
    return Config({"ServerApp": {"jpserver_extensions": {"jupyter_replay.server": True}}})


async def request(fetch: Any, method: str, *parts: str, body: Any = None) -> tuple[int, Any]:
    """(HTTP status, decoded JSON body) of one REST call; error statuses are returned, not raised."""
    data = json.dumps(body) if body is not None else ("" if method in ("POST", "PUT") else None)
    try:
        resp = await fetch(*parts, method=method, body=data, allow_nonstandard_methods=True)
    except HTTPClientError as err:
        resp = err.response
    return resp.code, (json.loads(resp.body) if resp.body else None)


async def until(pred: Callable[[], Any], timeout: float = 60.0, what: str = "") -> Any:
    """``pred()``'s first truthy value, polled on the server's loop (generous default: a busy machine)."""
    deadline = time.monotonic() + timeout
    while not (value := pred()):
        assert time.monotonic() < deadline, f"timed out waiting for {what or pred}"
        await asyncio.sleep(0.02)
    return value


async def new_kernel(fetch: Any) -> str:
    """A fresh kernel's id (started through the Jupyter REST API)."""
    code, model = await request(fetch, "POST", "api", "kernels", body={"name": "python3"})
    assert code == 201, model
    return str(model["id"])


async def kernel_session(fetch: Any) -> tuple[str, dict]:
    """A fresh kernel and its replay session: ``(kernel id, session model)`` (client token, server URL)."""
    kid = await new_kernel(fetch)
    code, model = await request(fetch, "POST", "replay", "api", "sessions", body={"kernel_id": kid})
    assert code in (200, 201), model
    return kid, model


async def attach(fetch: Any, widget: Any, kernel_id: str) -> dict:
    """What the widget JS does on render: create (or get) the kernel's session, send ``attach``."""
    code, model = await request(fetch, "POST", "replay", "api", "sessions", body={"kernel_id": kernel_id})
    if code == 409:
        code, model = await request(fetch, "GET", "replay", "api", "sessions", kernel_id)
    assert code in (200, 201), model
    msg = {"type": "attach", "session": model["id"], "client_token": model["client_token"],
           "server_url": model["server_url"]}
    await asyncio.to_thread(widget.from_browser, msg)
    return model
