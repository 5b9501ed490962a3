"""Authorization for replay handlers: jupyter_server's ``@authorized`` plus the per-session capability.

A request carrying ``Authorization: ReplayToken <client_token>`` is let through for the one session the
token was issued for (read and write), and refused (403) everywhere else. Any other request goes through
the server's identity provider and authorizer with resource ``replay`` (read to watch, write to control).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from jupyter_core.utils import ensure_async
from jupyter_server.auth import User
from jupyter_server.auth.decorator import authorized
from tornado import web

__all__ = ["AUTH_RESOURCE", "TOKEN_SCHEME", "capability_token", "CapabilityMixin", "replay_authorized"]

AUTH_RESOURCE = "replay"
TOKEN_SCHEME = "ReplayToken"

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def capability_token(handler: web.RequestHandler) -> str | None:
    """The ``ReplayToken`` from the ``Authorization`` header, or None."""
    header = handler.request.headers.get("Authorization", "")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != TOKEN_SCHEME.lower():
        return None
    return token.strip()


class CapabilityMixin:
    """Handler mixin: authenticate ``ReplayToken`` requests without the identity provider.

    ``prepare`` runs jupyter_server's checks (host, identity, XSRF) for ordinary requests. A capability
    request is authenticated as a synthetic user bound to its session; it carries no cookie, so it
    needs no XSRF check (like token-authenticated requests).
    """

    capability: str | None = None

    async def prepare(self, *args: Any, **kwargs: Any) -> None:
        token = capability_token(self)  # type: ignore[arg-type]
        if token is None:
            await super().prepare(*args, **kwargs)  # type: ignore[misc]
            return
        if not self.check_host():  # type: ignore[attr-defined]
            raise web.HTTPError(403)
        if not token:
            raise web.HTTPError(403, "empty replay token")
        self.capability = token
        user = User(username="replay-capability", name="replay session capability")
        handler: Any = self  # the handler class this mixes into has these attributes
        handler.current_user = handler._jupyter_current_user = user

    def check_xsrf_cookie(self) -> None:
        if self.capability is not None:
            return None
        return super().check_xsrf_cookie()  # type: ignore[misc]

    def check_capability(self, session_id: str | None) -> None:
        """403 unless the capability token was issued for ``session_id``."""
        managed = self.replay_manager.find(session_id)  # type: ignore[attr-defined]
        if managed is None or not managed.check_token(self.capability):
            raise web.HTTPError(403, "replay token not valid for this session")

    async def may(self, action: str) -> bool:
        """Whether the current requester may ``action`` (read/write) the ``replay`` resource."""
        if self.capability is not None:
            return True  # already checked against the session by replay_authorized
        user = self.current_user  # type: ignore[attr-defined]
        if not user:
            return False
        return bool(
            await ensure_async(self.authorizer.is_authorized(self, user, action, AUTH_RESOURCE))  # type: ignore[attr-defined]
        )


def replay_authorized(action: str) -> Callable[[F], F]:
    """``@authorized(action, "replay")``, or the capability check for ``ReplayToken`` requests.

    Use under ``@web.authenticated``; the method's ``session_id`` keyword names the session.
    """

    def wrapper(method: F) -> F:
        checked: Callable[..., Any] = authorized(action, AUTH_RESOURCE)(method)

        @functools.wraps(method)
        async def inner(self: Any, *args: Any, **kwargs: Any) -> Any:
            if self.capability is None:
                return await checked(self, *args, **kwargs)
            self.check_capability(kwargs.get("session_id"))
            return await method(self, *args, **kwargs)

        return inner  # type: ignore[return-value]

    return wrapper
