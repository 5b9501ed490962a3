"""``ReplayWebSocketHandler``: a thin WebSocket handler delegating to a ``ReplayConnection``.

Modelled on jupyter_server's ``KernelWebsocketHandler``: authentication in ``prepare`` (identity provider
or ``ReplayToken`` capability), explicit authorization in ``get`` (``read`` on ``replay`` to watch,
``write`` to control; a watcher's control messages get an ``error`` reply), origin checked by
jupyter_server's ``check_origin``, pings by ``WebSocketMixin``.

Query arguments: ``since=<seq>`` resumes after that sequence number (with ``instance=<id>`` from the
previous ``hello``), ``ms_only=1`` omits the int64 ``timestamp_ns`` column, ``ack=1`` turns on flow control
(the client acknowledges binary frames with ``ack_frames``; see ``connection.py``), ``tail=<n>`` limits a
history to the newest ``n`` buffered rows.

Limits (``ReplayExtension`` ``ws_*`` traitlets, read from the manager's ``ServerSettings``): connections per
session and per user (one more answers the upgrade request with 429), the size of a client message
(``ws_max_message_bytes``; tornado closes with 1009 beyond it), and each connection's output budget in
bytes (``ws_max_bytes``, see ``connection.py``).
"""

from __future__ import annotations

from typing import Any

from jupyter_server._tz import utcnow
from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web
from tornado.websocket import WebSocketHandler

from ..exceptions import ReplayError
from .auth import AUTH_RESOURCE, CapabilityMixin
from .connection import SHARED_USER, ReplayConnection, connection_limit_reason
from .rooms import (
    Access,
    ClientGrant,
    apply_room,
    identities_distinct,
    requester_name,
    session_access,
)

__all__ = ["ACTIVITY_SETTING", "ReplayWebSocketHandler"]

#: jupyter_server counts every ``*_last_activity`` setting in ``ServerApp.last_activity()``
ACTIVITY_SETTING = "replay_last_activity"


class ReplayWebSocketHandler(CapabilityMixin, ExtensionHandlerMixin, WebSocketMixin, WebSocketHandler, JupyterHandler):
    """``replay/api/sessions/{id}/ws``: history, then the session's events; control messages in."""

    auth_resource = AUTH_RESOURCE
    connection: ReplayConnection | None = None

    @property
    def replay_manager(self) -> Any:
        return self.settings["replay_manager"]

    def set_default_headers(self) -> None:
        """Undo ``JupyterHandler.set_default_headers`` (meaningless for WebSockets)."""

    def get_compression_options(self) -> dict[str, Any] | None:
        return self.settings.get("websocket_compression_options", None)

    @property
    def max_message_size(self) -> int:
        """Largest client message (control messages are small); tornado closes with 1009 beyond it."""
        return self.replay_manager.settings.ws_max_message_bytes

    async def pre_get(self, session_id: str) -> None:
        """Authorize, find the session and build the connection (errors answer the upgrade request)."""
        if self.capability is not None:
            self.check_capability(session_id)
            can_write = True
        else:
            if not await self.may("read"):
                raise web.HTTPError(403, "not authorized to watch replay sessions")
            can_write = await self.may("write")
        try:
            managed = self.replay_manager.get(session_id)
        except ReplayError as exc:
            raise web.HTTPError(exc.http_status, "%s", exc) from None
        access = await session_access(self, managed)  # private sessions: owner, admins, room members
        if not access.can_read:
            raise web.HTTPError(403, "replay session %s is private and not shared with you", session_id)
        grant = ClientGrant(
            requester_name(self), privileged=access in (Access.OWNER, Access.ADMIN), may_write=can_write
        )
        can_write = can_write and access.can_control
        since_arg = self.get_query_argument("since", None)
        since = None
        if since_arg not in (None, ""):
            try:
                since = int(since_arg)
            except ValueError:
                raise web.HTTPError(400, "'since' must be an integer sequence number") from None
        ms_only = self.get_query_argument("ms_only", "0").lower() in ("1", "true", "yes")
        ack = self.get_query_argument("ack", "0").lower() in ("1", "true", "yes")
        tail_arg = self.get_query_argument("tail", None)
        tail = None
        if tail_arg not in (None, ""):
            try:
                tail = int(tail_arg)
            except ValueError:
                tail = 0
            if tail < 1:
                raise web.HTTPError(400, "'tail' must be a positive number of rows")
        limits = self.replay_manager.settings
        user = grant.username
        if user is not None and not identities_distinct(self.serverapp):
            user = SHARED_USER  # one shared token or password: every holder is the same person
        # checked last, synchronously: nothing runs between here and ``open`` (attach), so concurrent
        # upgrades cannot overshoot the limits
        refused = connection_limit_reason(
            managed.clients,
            user,
            per_session=limits.ws_max_connections_per_session,
            per_user=limits.ws_max_connections_per_user,
            user_clients=(c for m in self.replay_manager.list() for c in m.clients),
        )
        if refused is not None:
            raise web.HTTPError(429, "%s", refused)
        self.connection = ReplayConnection(
            managed,
            self.replay_manager,
            self,
            can_write=can_write,
            ms_only=ms_only,
            since=since,
            instance=self.get_query_argument("instance", None) or None,
            max_queue=limits.ws_queue_frames,
            ack=ack,
            tail=tail,
            max_bytes=limits.ws_max_bytes,
            stall_timeout=limits.ws_stall_timeout,
            user=user,
            may_hold=self.capability is not None,  # the kernel's own client (its session's token) only
        )
        self.connection.grant = grant  # type: ignore[attr-defined]  # room changes re-check it

    @ws_authenticated
    async def get(self, session_id: str) -> None:
        await self.pre_get(session_id)
        await super().get(session_id=session_id)

    def open(self, session_id: str) -> None:
        super().open()  # starts the keep-alive pings
        # small messages (a pause's status, acknowledgements) go out at once: with Nagle's algorithm a status
        # written behind an unacknowledged frame waits for the peer's delayed ACK (~40 ms on Linux)
        self.set_nodelay(True)
        if self.connection is not None:
            self.connection.open()
            grant = self.connection.grant  # type: ignore[attr-defined]
            if not grant.privileged:  # the room may have changed during the upgrade
                apply_room(self.connection.managed, only=[grant.username])

    def on_message(self, message: str | bytes) -> None:
        # a client message (control) is user activity for jupyter_server's last_activity (idle culling);
        # passively watching a stream is not (nor are its flow-control ``ack_frames``)
        if self.connection is None or self.connection.handle_message(message):
            self.settings[ACTIVITY_SETTING] = utcnow()

    def on_close(self) -> None:
        if self.ping_callback is not None:  # else the keep-alive timer holds this handler (and its session)
            self.ping_callback.stop()  # until its next tick, up to ws_ping_interval after the close
            self.ping_callback = None
        if self.connection is not None:
            self.connection.close()
