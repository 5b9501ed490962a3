"""Handover of a ``Replay`` from its kernel-local session to the kernel's server session.

The browser creates (or finds) the kernel's session on the Jupyter server and sends ``attach``; the kernel
uploads its data (Arrow IPC, text and categorical columns included), carries its settings and position
over (``RemoteSession.apply_settings``) and from then on is a client of that session. The server keeps one
session per kernel, so only one ``Replay`` per kernel may hold it: ``claim``/``release`` keep that rule.
"""

from __future__ import annotations

import os
import re
import threading
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..controller import State
from ..exceptions import InvalidValueError
from ..runner import ThreadedSession
from ..sources.base import ReplaySource
from .remote import RemoteSession

__all__ = ["AttachRequest", "bokehjs_code", "claim", "connect", "kernel_id", "release"]

# server session id -> the widget attached to it (the server keeps one session per kernel)
_CLAIMS: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
_CLAIMS_LOCK = threading.Lock()
_BOKEHJS: bytes | None = None


def kernel_id() -> str:
    """The id of the kernel this code runs in ("" outside a Jupyter kernel)."""
    try:
        from ipykernel.connect import get_connection_file

        name = os.path.basename(get_connection_file())
    except Exception:  # noqa: BLE001 - not in a kernel (any failure means: no kernel id)
        return ""
    m = re.match(r"kernel-(.+)\.json$", name)
    return m.group(1) if m else ""


def bokehjs_code() -> bytes:
    """BokehJS from the installed bokeh package, inline (never a CDN): the core bundle, then its WebGL
    bundle, which registers the ``output_backend="webgl"`` glyph views (canvas where the page has no WebGL)."""
    global _BOKEHJS
    if _BOKEHJS is None:
        from bokeh.util.paths import bokehjs_path

        js = Path(bokehjs_path()) / "js"
        gl = js / "bokeh-gl.min.js"
        _BOKEHJS = (js / "bokeh.min.js").read_bytes() + (b"\n;" + gl.read_bytes() if gl.is_file() else b"")
    return _BOKEHJS


class AttachRequest:
    """The browser's ``attach`` message, checked."""

    def __init__(self, msg: dict[str, Any]) -> None:
        self.session_id = str(msg.get("session") or "")
        self.token = str(msg.get("client_token") or "")
        self.server_url = str(msg.get("server_url") or "")
        if not (self.session_id and self.token and self.server_url):
            raise InvalidValueError("attach needs session, client_token and server_url")


def claim(session_id: str, widget: Any) -> bool:
    """Reserve the server session for ``widget``; False if another open widget of this kernel holds it."""
    with _CLAIMS_LOCK:
        owner = _CLAIMS.get(session_id)
        if owner is not None and owner is not widget and not owner._closed:
            return False
        _CLAIMS[session_id] = widget
        return True


def release(widget: Any, session_id: str | None = None) -> None:
    """Give up ``widget``'s claim (on ``session_id`` only, or all of them)."""
    with _CLAIMS_LOCK:
        for key, w in list(_CLAIMS.items()):
            if w is widget and (session_id is None or key == session_id):
                del _CLAIMS[key]


def connect(
    local: ThreadedSession,
    request: AttachRequest,
    *,
    source: ReplaySource | None,
    buffer_rows: int,
    symbol: str,
    callbacks: Iterable[Callable[..., Any]],
    reset_callbacks: Iterable[Callable[..., Any]] = (),
) -> tuple[RemoteSession, bool]:
    """A started ``RemoteSession`` holding what ``local`` held (data, settings, position, callbacks).

    ``local`` is paused first when playing; the second value says so (the caller resumes on the remote
    once it has switched over). On failure ``local`` plays again and the error is raised.
    """
    was_playing = local.state is State.PLAYING
    if was_playing:
        local.pause()
    status = local.status()
    remote = RemoteSession(
        request.server_url, request.session_id, request.token, buffer_rows=buffer_rows,
        tz=getattr(source, "tz", None),
    )
    try:
        if source is not None:
            remote.upload(source)
        remote.apply_settings(status, symbol=symbol)
        for fn in callbacks:
            remote.on_batch(fn)
        for fn in reset_callbacks:
            remote.on_reset(fn)
        remote.start()
    except Exception:
        remote.close()
        if was_playing:
            local.play()
        raise
    return remote, was_playing
