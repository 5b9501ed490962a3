"""REST handlers under ``{base_url}replay/api/`` (one class per URL level, like jupyter_server's kernels API).

Errors are JSON ``{"message": ..., "reason": ...}``: 400 bad value / malformed JSON / body too large,
403 not authorized or path outside the data directories, 404 unknown session or kernel (also a kernel the
requester may not use: no existence oracle), 409 illegal transition or session exists, 413 data too large
once decoded. ``ReplayError`` subclasses map through their ``http_status``; a value the request carried
that Python itself cannot take (an integer too large for a float, ...) is a 400 too, never a 500.
Messages and log lines never echo unbounded input (``exceptions.brief``).
"""

from __future__ import annotations

import asyncio
import json
from http.client import responses
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from jupyter_server.utils import url_escape, url_path_join
from tornado import web

from .. import wire
from ..exceptions import InvalidValueError, PayloadTooLargeError, ReplayError, brief
from .auth import AUTH_RESOURCE, CapabilityMixin, replay_authorized
from .feedhub import FEEDS_SETTING, HUB_SETTING, ReplayFeeds
from .manager import ManagedSession, SessionManager, unknown_kernel
from .rooms import Access, requester_name, require_access, session_access
from .websocket import ReplayWebSocketHandler

__all__ = [
    "AUTH_RESOURCE",
    "ReplayAPIHandler",
    "SessionsHandler",
    "SessionHandler",
    "SessionActionHandler",
    "SessionDataHandler",
    "SessionBufferHandler",
    "FeedsHandler",
    "default_handlers",
]

ARROW_STREAM_TYPE = "application/vnd.apache.arrow.stream"

#: exceptions Python raises on values a request carried (huge integers, deep nesting, bad text): a 400
BAD_INPUT_ERRORS = (OverflowError, RecursionError, UnicodeError, ValueError)

#: bytes of a streamed upload between two returns to the event loop
_YIELD_EVERY = 4 * 1024 * 1024

#: the Authorizer's permission jupyter_server's kernel WebSocket requires to run code in a kernel
KERNELS_RESOURCE, KERNELS_ACTION = "kernels", "execute"


class ReplayAPIHandler(CapabilityMixin, ExtensionHandlerMixin, APIHandler):
    """Base of the replay REST handlers: JSON errors, ``ReplayError`` mapping, the session manager."""

    auth_resource = AUTH_RESOURCE

    @property
    def replay_manager(self) -> SessionManager:
        return self.settings["replay_manager"]

    @property
    def replay_app(self) -> Any:
        return self.extensionapp

    def session_url(self, session_id: str) -> str:
        return url_path_join(self.base_url, "replay", "api", "sessions", url_escape(session_id))

    def json_body(self) -> dict[str, Any]:
        """The request body as a JSON object (400 if too large, malformed or not an object)."""
        body = self.request.body or b""
        limit = self.replay_manager.settings.max_body_bytes
        if len(body) > limit:
            raise web.HTTPError(400, "request body too large (max_body_bytes=%d)", limit)
        if not body.strip():
            return {}
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as exc:
            # JSONDecodeError, UnicodeDecodeError, an integer literal over 4,300 digits (ValueError),
            # nesting too deep (RecursionError)
            raise web.HTTPError(400, "malformed JSON body: %s", brief(str(exc), 200)) from None
        if not isinstance(data, dict):
            raise web.HTTPError(400, "the JSON body must be an object")
        return data

    async def session_model(
        self, managed: ManagedSession, *, with_token: bool | None = None, access: Access | None = None
    ) -> dict[str, Any]:
        """The session model with the requester's ``role``; an owner allowed to write also gets the
        capability token and the server URL for the kernel (room members never do: revocable access)."""
        model = managed.model()
        if access is None:
            access = await session_access(self, managed)
        model["role"] = access.value
        if with_token is None:
            with_token = access is Access.OWNER and await self.may("write")
        if with_token:
            model["client_token"] = managed.client_token
            model["server_url"] = self.replay_app.kernel_server_url
        return model

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(wire.dumps(data))

    async def may_use_kernels(self) -> bool:
        """Whether the requester may run code in kernels (what jupyter_server's kernel WebSocket checks)."""
        if self.capability is not None:
            return False
        user = self.current_user
        return bool(user) and bool(
            await ensure_async(self.authorizer.is_authorized(self, user, KERNELS_ACTION, KERNELS_RESOURCE))
        )

    # ------------------------------------------------------------ errors
    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """``{"message", "reason"}`` with the status of a ``ReplayError`` or ``HTTPError``; bad input is a 400."""
        exc = (kwargs.get("exc_info") or (None, None, None))[1]
        reason = None
        if isinstance(exc, ReplayError):
            status_code = exc.http_status
            self.set_status(status_code)
            message: str | None = str(exc)
            reason = type(exc).__name__
        elif isinstance(exc, web.HTTPError):
            message = exc.log_message % exc.args if exc.log_message and exc.args else exc.log_message
            message = message or responses.get(status_code, "Unknown HTTP Error")
            reason = exc.reason
        elif isinstance(exc, BAD_INPUT_ERRORS):
            status_code = 400
            self.set_status(status_code)
            message = f"bad value in the request: {brief(_exc_text(exc), 200)}"
            reason = InvalidValueError.__name__
        else:
            message = responses.get(status_code, "Unknown HTTP Error")
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": brief_message(message or ""), "reason": reason}))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, (ReplayError, *BAD_INPUT_ERRORS)):  # the client's error, not a server fault
            self.log.warning("%s %s: %s", self.request.method, self.request.path, brief_message(_exc_text(value)))
            return
        super().log_exception(typ, value, tb)


def _exc_text(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # noqa: BLE001 - e.g. str() of a huge int inside the message
        return type(exc).__name__


def brief_message(message: str, limit: int = 500) -> str:
    """A message cut to ``limit`` characters (messages may embed request values)."""
    return message if len(message) <= limit else message[: limit - 3] + "..."


class SessionsHandler(ReplayAPIHandler):
    """``replay/api/sessions``: list and create."""

    @web.authenticated
    @replay_authorized("read")
    async def get(self) -> None:
        """List the sessions the requester may see (owned, shared with them, or all for admins)."""
        sessions = self.replay_manager.list()
        admin = await self.may("admin") if sessions and self.replay_app.sessions_private else False
        models = []
        for managed in sessions:
            access = await session_access(self, managed, admin=admin)
            if access.can_read:
                model = managed.model()
                model["role"] = access.value
                models.append(model)
        self.write_json(models)

    @web.authenticated
    @replay_authorized("write")
    async def post(self) -> None:
        """Create the session of a kernel: ``{"kernel_id", "source"?, "speed"?, "loop"?}`` -> 201 + Location."""
        body = self.json_body()
        unknown = set(body) - {"kernel_id", "source", "speed", "loop"}
        if unknown:
            raise InvalidValueError(f"unknown field(s) {brief(sorted(unknown))} in the request body")
        kernel_id = body.get("kernel_id")
        if not await self.may_use_kernels():
            # the same answer as for a kernel that does not exist: no oracle for kernel ids
            raise unknown_kernel(kernel_id)
        settings = {k: body[k] for k in ("speed", "loop") if k in body}
        managed = await self.replay_manager.create(
            kernel_id,
            body.get("source"),
            owner=requester_name(self),
            reclaim=self.replay_app.sessions_private,
            **settings,
        )
        self.set_header("Location", self.session_url(managed.id))
        self.write_json(await self.session_model(managed, with_token=True, access=Access.OWNER), status=201)


class SessionHandler(ReplayAPIHandler):
    """``replay/api/sessions/{id}``: get and delete."""

    @web.authenticated
    @replay_authorized("read")
    async def get(self, session_id: str) -> None:
        managed = self.replay_manager.get(session_id)
        access = await require_access(self, managed, "read")
        self.write_json(await self.session_model(managed, access=access))

    @web.authenticated
    @replay_authorized("write")
    async def delete(self, session_id: str) -> None:
        await require_access(self, self.replay_manager.get(session_id), "manage")
        await self.replay_manager.remove(session_id, "deleted")
        self.set_status(204)
        self.finish()


class SessionActionHandler(ReplayAPIHandler):
    """``replay/api/sessions/{id}/actions/{action}``: play, pause, stop, step, seek, speed, mode, loop."""

    @web.authenticated
    @replay_authorized("write")
    async def post(self, session_id: str, action: str) -> None:
        managed = self.replay_manager.get(session_id)
        await require_access(self, managed, "control")
        args = self.json_body()
        self.write_json(self.replay_manager.control(managed, action, args))


@web.stream_request_body
class SessionDataHandler(ReplayAPIHandler):
    """``replay/api/sessions/{id}/data``: replace the replay data with an Arrow IPC stream body.

    The body is streamed and refused past ``max_body_bytes`` (400), or when it and the other bodies being
    received would pass ``max_server_bytes`` (413), without being buffered.
    """

    def initialize(self, *args: Any, **kwargs: Any) -> None:
        super().initialize(*args, **kwargs)
        self._chunks: list[bytes] = []
        self._size = 0
        self._too_large = False  # past max_body_bytes
        self._over_budget = False  # past max_server_bytes with everything else the server holds
        self._held = 0  # bytes reserved with the manager (reserve_body)

    def _release(self) -> None:
        if self._held:
            self.replay_manager.release_body(self._held)
            self._held = 0

    def on_finish(self) -> None:
        self._release()
        super().on_finish()

    def on_connection_close(self) -> None:
        self._chunks = []
        self._release()
        super().on_connection_close()

    @property
    def max_body_bytes(self) -> int:
        return self.replay_manager.settings.max_body_bytes

    async def prepare(self, *args: Any, **kwargs: Any) -> None:
        await super().prepare(*args, **kwargs)
        length = self.request.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            raise web.HTTPError(400, "request body too large (max_body_bytes=%d)", self.max_body_bytes)

    async def data_received(self, chunk: bytes) -> None:
        if self._too_large or self._over_budget:
            return
        before = self._size
        self._size += len(chunk)
        if self._size > self.max_body_bytes:
            self._too_large = True
        elif self.replay_manager.reserve_body(len(chunk)):
            self._held += len(chunk)
        else:
            self._over_budget = True
        if self._too_large or self._over_budget:
            self._chunks.clear()
            self._release()
            return
        self._chunks.append(chunk)
        if before // _YIELD_EVERY != self._size // _YIELD_EVERY:
            # tornado reads a body that is already in the socket buffer without returning to the loop:
            # let the other sessions run every few MiB of a big upload
            await asyncio.sleep(0)

    @web.authenticated
    @replay_authorized("write")
    async def put(self, session_id: str) -> None:
        managed = self.replay_manager.get(session_id)
        await require_access(self, managed, "manage")
        if self._too_large:
            raise web.HTTPError(400, "request body too large (max_body_bytes=%d)", self.max_body_bytes)
        if self._over_budget:
            limit = self.replay_manager.settings.max_server_bytes
            raise PayloadTooLargeError(
                f"the upload does not fit in max_server_bytes={limit:,} next to the other uploads the server "
                "is receiving; retry later or send less data"
            )
        chunks, self._chunks = self._chunks, []
        body = await self.replay_manager.run_heavy(b"".join, chunks)  # a copy of up to max_body_bytes
        time_column = self.get_query_argument("time", "timestamp")
        await self.replay_manager.load_arrow(managed, body, time_column)
        self.write_json(await self.session_model(managed, with_token=False))


class SessionHandoffHandler(ReplayAPIHandler):
    """``replay/api/sessions/{id}/data/handoff``: attach a kernel's data on this host without an upload.

    GET answers ``{"dir", "server_id"}``: a kernel that finds ``server_id`` in ``dir/server-id`` shares
    the server's filesystem and writes an Arrow IPC file there (``sources.handoff``); POST ``{"name",
    "time"?}`` maps that file read-only as the session's data. Other kernels upload with ``PUT data``.
    """

    @web.authenticated
    @replay_authorized("write")
    async def get(self, session_id: str) -> None:
        managed = self.replay_manager.get(session_id)
        await require_access(self, managed, "manage")
        directory, server_id = self.replay_manager.handoff()
        self.write_json({"dir": directory, "server_id": server_id})

    @web.authenticated
    @replay_authorized("write")
    async def post(self, session_id: str) -> None:
        managed = self.replay_manager.get(session_id)
        await require_access(self, managed, "manage")
        body = self.json_body()
        unknown = set(body) - {"name", "time"}
        if unknown:
            raise InvalidValueError(f"unknown field(s) {sorted(unknown)[:5]}; expected 'name' and 'time'")
        await self.replay_manager.load_handoff(managed, body.get("name"), body.get("time", "timestamp"))
        self.write_json(await self.session_model(managed, with_token=False))


class SessionBufferHandler(ReplayAPIHandler):
    """``replay/api/sessions/{id}/buffer``: the session's buffered rows as an Arrow IPC stream."""

    @web.authenticated
    @replay_authorized("read")
    async def get(self, session_id: str) -> None:
        managed = self.replay_manager.get(session_id)
        await require_access(self, managed, "read")
        frame, seq = managed.session.frame(), managed.session.seq  # a copy, taken on the loop
        body = await self.replay_manager.run_heavy(_arrow_stream, frame)  # encoding a big buffer: off the loop
        self.set_header("X-Replay-Seq", str(seq))
        self.finish(body, set_content_type=ARROW_STREAM_TYPE)


def _arrow_stream(frame: Any) -> bytes:
    import pyarrow as pa

    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


class FeedsHandler(ReplayAPIHandler):
    """``GET replay/api/feeds``: registered feeds, the default one, and the open upstreams."""

    @web.authenticated
    @replay_authorized("read")
    async def get(self) -> None:
        hub = self.settings.get(HUB_SETTING)
        feeds: ReplayFeeds | None = self.settings.get(FEEDS_SETTING)
        self.write_json({
            "feeds": hub.feeds if hub else [],
            "default": feeds.default_feed if feeds else None,
            "upstreams": hub.stats() if hub else [],
        })


_session = r"(?P<session_id>[\w-]+)"

#: URL patterns relative to the server's ``base_url``.
default_handlers = [
    (r"/replay/api/sessions/?", SessionsHandler),
    (rf"/replay/api/sessions/{_session}/?", SessionHandler),
    (rf"/replay/api/sessions/{_session}/actions/(?P<action>[\w-]+)/?", SessionActionHandler),
    (rf"/replay/api/sessions/{_session}/data/?", SessionDataHandler),
    (rf"/replay/api/sessions/{_session}/data/handoff/?", SessionHandoffHandler),
    (rf"/replay/api/sessions/{_session}/buffer/?", SessionBufferHandler),
    (rf"/replay/api/sessions/{_session}/ws/?", ReplayWebSocketHandler),
    (r"/replay/api/feeds/?", FeedsHandler),
]
