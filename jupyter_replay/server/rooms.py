"""Rooms: a session owner shares one replay session with other users, as viewers or controllers.

When the server tells users apart (``ReplayExtension.private_sessions``, on under JupyterHub), a session
belongs to the user who created it and is private: other users neither list nor open it. The owner may
share it as a *room*: each member has a role, ``viewer`` (watch the stream and the state; every control
attempt is refused) or ``controller`` (watch and control; the state events every member receives show
the effect). The owner (or an admin) updates members, revokes one (their open WebSockets are closed,
their requests refused from then on) or unshares the session. A room lives and dies with its session.

Rooms narrow what the server's Authorizer allows, never widen it: a member still needs ``read`` on
``replay`` to watch and ``write`` to control. Admins (the Authorizer allows ``admin`` on ``replay``)
see and control every session. Requests carrying the session's ``ReplayToken`` act for the owner.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from tornado import web

from ..exceptions import InvalidValueError

if TYPE_CHECKING:
    from .manager import ManagedSession

__all__ = [
    "Role",
    "Access",
    "Room",
    "ClientGrant",
    "parse_members",
    "identities_distinct",
    "requester_name",
    "session_access",
    "require_access",
    "apply_room",
    "admin_model",
]

#: WebSocket close code sent to a member whose access was revoked (RFC 6455 "policy violation").
REVOKED_CLOSE_CODE = 1008


class Role(str, Enum):
    """A room member's role."""

    VIEWER = "viewer"
    CONTROLLER = "controller"


class Access(str, Enum):
    """What a requester may do with one session (before the Authorizer's own decision)."""

    NONE = "none"
    VIEWER = "viewer"
    CONTROLLER = "controller"
    OWNER = "owner"
    ADMIN = "admin"

    @property
    def can_read(self) -> bool:
        return self is not Access.NONE

    @property
    def can_control(self) -> bool:
        return self in (Access.CONTROLLER, Access.OWNER, Access.ADMIN)

    @property
    def can_manage(self) -> bool:
        """Delete the session, replace its data, change its room."""
        return self in (Access.OWNER, Access.ADMIN)


@dataclass
class Room:
    """The members of a shared session (the owner is not a member: they always have full access)."""

    owner: str | None
    members: dict[str, Role] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)

    def role_of(self, username: str | None) -> Role | None:
        return self.members.get(username) if username is not None else None

    def update(self, changes: dict[str, Role | None], *, replace: bool = False) -> None:
        """Add, change (role) or remove (None) members; ``replace`` drops everyone not named."""
        if replace:
            self.members = {}
        for name, role in changes.items():
            if role is None:
                self.members.pop(name, None)
            else:
                self.members[name] = role
        self.updated = time.time()

    def model(self, session_id: str) -> dict[str, Any]:
        return {
            "session": session_id,
            "owner": self.owner,
            "members": {name: role.value for name, role in sorted(self.members.items())},
            "created": self.created,
            "updated": self.updated,
        }


@dataclass
class ClientGrant:
    """What a WebSocket connection was allowed when it connected (kept on the connection as ``grant``)."""

    username: str | None
    #: owner, admin, capability token, or sessions not private: room changes do not apply
    privileged: bool
    #: the Authorizer's ``write`` decision on ``replay``
    may_write: bool


def parse_members(body: dict[str, Any], owner: str | None) -> tuple[dict[str, Role | None], bool]:
    """``(changes, replace)`` from a room request body.

    Accepted forms (combinable): ``{"members": {"bob": "viewer", "carol": "controller", "dave": null}}``
    and by role ``{"viewers": ["bob"], "controllers": ["carol"]}``; ``"replace": true`` drops members
    not named. ``InvalidValueError`` (400) for anything else.
    """
    unknown = set(body) - {"members", "viewers", "controllers", "replace"}
    if unknown:
        raise InvalidValueError(f"unknown room field(s) {sorted(unknown)}; use members, viewers, controllers, replace")
    changes: dict[str, Role | None] = {}

    def add(name: Any, role: Role | None) -> None:
        if not isinstance(name, str) or not name.strip() or len(name) > 256:
            raise InvalidValueError(f"room member names must be non-empty strings, got {name!r}")
        if owner is not None and name == owner:
            raise InvalidValueError(f"{name!r} owns the session and cannot be a room member")
        if name in changes and changes[name] != role:
            raise InvalidValueError(f"{name!r} is given two different roles")
        changes[name] = role

    members = body.get("members", {})
    if not isinstance(members, dict):
        raise InvalidValueError("'members' must be an object mapping user names to 'viewer', 'controller' or null")
    for name, value in members.items():
        if value is None:
            add(name, None)
            continue
        try:
            add(name, Role(value))
        except ValueError:
            raise InvalidValueError(
                f"role of {name!r} must be 'viewer', 'controller' or null, got {value!r}"
            ) from None
    for key, role in (("viewers", Role.VIEWER), ("controllers", Role.CONTROLLER)):
        names = body.get(key, [])
        if not isinstance(names, list):
            raise InvalidValueError(f"{key!r} must be a list of user names")
        for name in names:
            add(name, role)
    replace = body.get("replace", False)
    if not isinstance(replace, bool):
        raise InvalidValueError("'replace' must be true or false")
    return changes, replace


def identities_distinct(serverapp: Any) -> bool:
    """Whether the server's identity provider tells users apart.

    jupyter_server's own providers (one shared token or password) do not: everyone holding the token is
    the same person, and token requests without a cookie get a random anonymous name. Any other provider
    (JupyterHub's, or a custom multi-user one) does.
    """
    from jupyter_server.auth.identity import IdentityProvider, LegacyIdentityProvider, PasswordIdentityProvider

    provider = getattr(serverapp, "identity_provider", None)
    return provider is not None and type(provider) not in (
        IdentityProvider,
        PasswordIdentityProvider,
        LegacyIdentityProvider,
    )


def requester_name(handler: Any) -> str | None:
    """The user name of the request (None for ``ReplayToken`` requests and anonymous ones)."""
    if getattr(handler, "capability", None) is not None:
        return None
    user = handler.current_user
    return getattr(user, "username", None) or None


async def session_access(handler: Any, managed: ManagedSession, *, admin: bool | None = None) -> Access:
    """The requester's access to ``managed`` (owner, admin, room role or none).

    ``admin``: the Authorizer's ``admin`` decision if already known (saves a call when listing).
    """
    if getattr(handler, "capability", None) is not None:
        return Access.OWNER  # the session's own token (checked by replay_authorized)
    if not handler.extensionapp.sessions_private or managed.owner is None:
        return Access.OWNER
    name = requester_name(handler)
    if name is not None and name == managed.owner:
        return Access.OWNER
    if admin is None:
        admin = await handler.may("admin")
    if admin:
        return Access.ADMIN
    room = managed.room
    role = room.role_of(name) if room is not None else None
    return Access(role.value) if role is not None else Access.NONE


async def require_access(handler: Any, managed: ManagedSession, need: str) -> Access:
    """``session_access``, or 403 unless it allows ``need`` (``read``, ``control`` or ``manage``)."""
    access = await session_access(handler, managed)
    if not access.can_read:
        raise web.HTTPError(403, "replay session %s is private and not shared with you", managed.id)
    if need == "control" and not access.can_control:
        raise web.HTTPError(403, "viewers of replay session %s may watch it but not control it", managed.id)
    if need == "manage" and not access.can_manage:
        raise web.HTTPError(403, "only the owner of replay session %s (or an admin) may do this", managed.id)
    return access


def apply_room(managed: ManagedSession, only: Iterable[str] | None = None) -> int:
    """Bring the open WebSockets of ``managed`` in line with its room (after a change).

    Members who lost access are disconnected (close code 1008); a member demoted to viewer can no
    longer control (the next control message gets a 403 ``error``); a promoted one can if the
    Authorizer allowed ``write`` when they connected. Returns the number of connections closed.
    """
    names = set(only) if only is not None else None
    closed = 0
    for client in list(managed.clients):
        grant: ClientGrant | None = getattr(client, "grant", None)
        if grant is None or grant.privileged:
            continue
        if names is not None and grant.username not in names:
            continue
        room = managed.room
        role = room.role_of(grant.username) if room is not None else None
        if role is None:
            client.close(REVOKED_CLOSE_CODE, "replay room access revoked")
            closed += 1
        else:
            client.can_write = grant.may_write and role is Role.CONTROLLER  # type: ignore[attr-defined]
    return closed


def admin_model(managed: ManagedSession) -> dict[str, Any]:
    """A session as the admin view shows it: model, owner, room with members, open connections."""
    model = managed.model()
    model["room"] = managed.room.model(managed.id) if managed.room is not None else None
    connections = []
    for client in list(managed.clients):
        grant: ClientGrant | None = getattr(client, "grant", None)
        connections.append(
            {
                "user": grant.username if grant is not None else None,
                "writable": bool(getattr(client, "can_write", False)),
            }
        )
    model["connections"] = connections
    return model
