"""REST handlers for rooms (sharing a session) and the admin view, under ``{base_url}replay/api/``.

- ``GET sessions/{id}/room``: the room (owner, admins and members); 404 when not shared.
- ``POST sessions/{id}/room``: share / update members (owner or admin) with
  ``{"members": {"bob": "viewer"|"controller"|null}}`` or ``{"viewers": [...], "controllers": [...]}``
  (``"replace": true`` drops members not named) -> 201 when the room is created, else 200; the room model.
- ``DELETE sessions/{id}/room/members/{user}``: revoke one member (owner/admin, or the member leaving)
  -> 204; their open WebSockets are closed (1008) and their requests refused from then on.
- ``DELETE sessions/{id}/room``: unshare -> 204; every member is disconnected.
- ``GET admin/sessions``: every session with owner, room members and open connections; needs the
  Authorizer to allow ``admin`` on ``replay``.
"""

from __future__ import annotations

from tornado import web

from ..exceptions import IllegalTransitionError, SessionNotFoundError
from .auth import replay_authorized
from .handlers import ReplayAPIHandler
from .rooms import Room, admin_model, apply_room, parse_members, requester_name, require_access

__all__ = ["RoomHandler", "RoomMemberHandler", "AdminSessionsHandler", "room_handlers"]


class RoomHandler(ReplayAPIHandler):
    """``replay/api/sessions/{id}/room``: get, share/update, unshare."""

    def _room(self, managed: object) -> Room:
        room = getattr(managed, "room", None)
        if room is None:
            raise SessionNotFoundError(f"replay session {getattr(managed, 'id', '?')!r} is not shared")
        return room

    @web.authenticated
    @replay_authorized("read")
    async def get(self, session_id: str) -> None:
        managed = self.replay_manager.get(session_id)
        await require_access(self, managed, "read")
        self.write_json(self._room(managed).model(managed.id))

    @web.authenticated
    @replay_authorized("write")
    async def post(self, session_id: str) -> None:
        managed = self.replay_manager.get(session_id)
        await require_access(self, managed, "manage")
        if not self.replay_app.sessions_private:
            raise IllegalTransitionError(
                "sessions are not private on this server (one identity: everyone holding its token is the "
                "same user), so there is nothing to share; see ReplayExtension.private_sessions"
            )
        changes, replace = parse_members(self.json_body(), managed.owner)
        room = managed.room
        created = room is None
        if room is None:
            room = managed.room = Room(owner=managed.owner)
        room.update(changes, replace=replace)
        apply_room(managed)
        self.log.info("replay session %s shared: %s", managed.id, room.model(managed.id)["members"])
        self.write_json(room.model(managed.id), status=201 if created else 200)

    @web.authenticated
    @replay_authorized("write")
    async def delete(self, session_id: str) -> None:
        managed = self.replay_manager.get(session_id)
        await require_access(self, managed, "manage")
        self._room(managed)
        managed.room = None
        apply_room(managed)
        self.log.info("replay session %s unshared", managed.id)
        self.set_status(204)
        self.finish()


class RoomMemberHandler(ReplayAPIHandler):
    """``replay/api/sessions/{id}/room/members/{user}``: revoke a member (or leave the room)."""

    @web.authenticated
    @replay_authorized("read")
    async def delete(self, session_id: str, username: str) -> None:
        managed = self.replay_manager.get(session_id)
        leaving = username == requester_name(self)
        await require_access(self, managed, "read" if leaving else "manage")
        room = managed.room
        if room is None or room.role_of(username) is None:
            raise SessionNotFoundError(f"{username!r} is not a member of replay session {managed.id!r}'s room")
        room.update({username: None})
        closed = apply_room(managed, only=[username])
        self.log.info(
            "replay session %s: %s removed from the room (%d connection(s) closed)", managed.id, username, closed
        )
        self.set_status(204)
        self.finish()


class AdminSessionsHandler(ReplayAPIHandler):
    """``replay/api/admin/sessions``: all sessions with owners, rooms and connections (admins only)."""

    @web.authenticated
    @replay_authorized("admin")
    async def get(self) -> None:
        self.write_json([admin_model(m) for m in self.replay_manager.list()])


_session = r"(?P<session_id>[\w-]+)"

#: URL patterns relative to the server's ``base_url``.
room_handlers = [
    (rf"/replay/api/sessions/{_session}/room/?", RoomHandler),
    (rf"/replay/api/sessions/{_session}/room/members/(?P<username>[^/]+)/?", RoomMemberHandler),
    (r"/replay/api/admin/sessions/?", AdminSessionsHandler),
]
