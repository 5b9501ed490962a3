"""``HubReplayAuthorizer``: jupyter_server authorization from JupyterHub scopes, for single-user servers.

Enable it in the single-user server's configuration (see docs/deployment.md)::

    c.ServerApp.authorizer_class = "jupyter_replay.server.hub.HubReplayAuthorizer"

jupyter_server asks the Authorizer whether a user may ``action`` (``read``, ``write``, ``execute``, and
``admin`` for the replay admin view) a ``resource`` (``replay``, ``kernels``, ``contents``,
``terminals``...). JupyterHub's identity provider has already checked that the user may reach this
server at all (``access:servers!server=<owner>/<name>`` or ``access:servers!user=<owner>``). Then:

1. the server's owner (``$JUPYTERHUB_USER``) may do everything;
2. a user holding ``custom:jupyter_server:<action>:<resource>`` or ``custom:jupyter_server:<action>:*``
   for this server (filter ``!user=<owner>`` or ``!server=<owner>/<name>``, or unfiltered) may do that;
3. a user holding *some* ``custom:jupyter_server:...`` scope for this server is restricted to what
   those scopes allow: ``custom:jupyter_server:read:replay!user=alice`` lets bob watch alice's shared
   replay sessions, but neither control them nor start, connect to or execute in kernels or terminals;
4. anyone else who may reach the server (plain ``access:servers``, e.g. JupyterHub's sharing or hub
   admins) gets full access, which is JupyterHub's default behaviour, unless ``access_grants_all`` is
   False (then only the owner and holders of matching custom scopes are allowed anything).

The custom scopes follow the JupyterHub convention ``custom:jupyter_server:{action}:{resource}`` (its
``examples/read-only``); the hub must define them (``c.JupyterHub.custom_scopes``) and, for browser
logins, let the server's OAuth tokens carry them (``c.Spawner.oauth_client_allowed_scopes``): a token
without them is indistinguishable from plain access (rule 4).
"""

from __future__ import annotations

import os
from typing import Any

from jupyterhub.singleuser.extension import JupyterHubAuthorizer
from traitlets import Bool, Unicode, default

__all__ = ["SCOPE_PREFIX", "HubReplayAuthorizer", "required_scopes"]

SCOPE_PREFIX = "custom:jupyter_server"


def required_scopes(action: str, resource: str, owner: str, server_name: str = "") -> set[str]:
    """Scopes any one of which allows ``action`` on ``resource`` of ``owner``'s server ``server_name``."""
    filters = (f"!user={owner}", f"!server={owner}/{server_name}")
    return {f"{SCOPE_PREFIX}:{action}:{res}{flt}" for res in (resource, "*") for flt in filters}


class HubReplayAuthorizer(JupyterHubAuthorizer):
    """Maps JupyterHub scopes to jupyter_server actions: owner all, custom scopes granular (see module doc)."""

    server_owner = Unicode(help="The hub user owning this server (default: $JUPYTERHUB_USER).").tag(config=True)

    @default("server_owner")
    def _default_owner(self) -> str:
        return os.environ.get("JUPYTERHUB_USER", "")

    server_name = Unicode(help="This server's name ('' for the default server; default: $JUPYTERHUB_SERVER_NAME).").tag(
        config=True
    )

    @default("server_name")
    def _default_server_name(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVER_NAME", "")

    access_grants_all = Bool(
        True,
        help=(
            "Whether users who may reach this server (access:servers) but hold no custom:jupyter_server "
            "scope for it get full access (JupyterHub's default). False: only the owner and holders of "
            "matching custom:jupyter_server:{action}:{resource} scopes are allowed anything."
        ),
    ).tag(config=True)

    def _scopes(self, required: set[str], hub_user: dict[str, Any]) -> set[str]:
        return set(self.hub_auth.check_scopes(required, hub_user))

    def granular_scopes(self, hub_user: dict[str, Any]) -> set[str]:
        """The user's ``custom:jupyter_server:*`` scopes that apply to this server."""
        found = set()
        for scope in hub_user.get("scopes", ()):
            if not scope.startswith(SCOPE_PREFIX + ":"):
                continue
            base = scope.partition("!")[0]
            wanted = {f"{base}!user={self.server_owner}", f"{base}!server={self.server_owner}/{self.server_name}"}
            if self._scopes(wanted, hub_user):
                found.add(scope)
        return found

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        hub_user = getattr(user, "hub_user", None)
        if not isinstance(hub_user, dict):
            return False  # not authenticated by JupyterHub
        if not self._scopes(set(self.hub_auth.access_scopes), hub_user):
            return False  # may not reach this server at all (the identity provider checks it too)
        if self.server_owner and user.username == self.server_owner:
            return True
        have = self._scopes(required_scopes(action, resource, self.server_owner, self.server_name), hub_user)
        if have:
            self.log.debug("%s may %s %s: %s", user.username, action, resource, sorted(have))
            return True
        if self.granular_scopes(hub_user):
            self.log.debug("%s has no scope to %s %s on this server", user.username, action, resource)
            return False
        return self.access_grants_all
