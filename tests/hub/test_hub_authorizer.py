"""``HubReplayAuthorizer`` decisions from JupyterHub user models (JupyterHub's own scope matching, no hub process)."""

from __future__ import annotations

import pytest
from jupyterhub.services.auth import HubOAuth
from jupyterhub.singleuser.extension import JupyterHubIdentityProvider, JupyterHubUser

from jupyter_replay.server.hub import HubReplayAuthorizer, required_scopes

ALICE_ACCESS = {"access:servers!server=alice/", "access:servers!user=alice"}  # what the hub sets for alice's server


@pytest.fixture
def authorizer() -> HubReplayAuthorizer:
    provider = JupyterHubIdentityProvider(hub_auth=HubOAuth(access_scopes=ALICE_ACCESS, api_token="unused"))
    return HubReplayAuthorizer(identity_provider=provider, server_owner="alice", server_name="")


def user(name: str, *scopes: str) -> JupyterHubUser:
    return JupyterHubUser({"name": name, "scopes": list(scopes)})


def allowed(authorizer: HubReplayAuthorizer, who: JupyterHubUser) -> set[tuple[str, str]]:
    checks = [("read", "replay"), ("write", "replay"), ("admin", "replay"), ("read", "kernels"),
              ("write", "kernels"), ("execute", "kernels"), ("execute", "terminals"), ("read", "contents")]
    return {(a, r) for a, r in checks if authorizer.is_authorized(None, who, a, r)}


def test_owner_may_do_everything(authorizer):
    assert len(allowed(authorizer, user("alice", "access:servers!server=alice/"))) == 8


def test_read_replay_scope_watches_only(authorizer):
    bob = user("bob", "access:servers!user=alice", "custom:jupyter_server:read:replay!user=alice")
    assert allowed(authorizer, bob) == {("read", "replay")}
    by_server = user("bob", "access:servers!server=alice/", "custom:jupyter_server:read:replay!server=alice/")
    assert allowed(authorizer, by_server) == {("read", "replay")}


def test_wildcard_and_expanded_scopes(authorizer):
    reader = user("carol", "access:servers", "custom:jupyter_server:read:*")
    assert allowed(authorizer, reader) == {("read", "replay"), ("read", "kernels"), ("read", "contents")}
    controller = user(
        "dave", "access:servers!user=alice",
        "custom:jupyter_server:write:replay!user=alice", "custom:jupyter_server:read:replay!user=alice",
    )
    assert allowed(authorizer, controller) == {("read", "replay"), ("write", "replay")}
    assert required_scopes("read", "replay", "alice") == {
        "custom:jupyter_server:read:replay!user=alice", "custom:jupyter_server:read:replay!server=alice/",
        "custom:jupyter_server:read:*!user=alice", "custom:jupyter_server:read:*!server=alice/",
    }


def test_plain_access_is_full_unless_strict(authorizer):
    shared = user("erin", "access:servers!server=alice/")
    other_server_scope = user("frank", "access:servers!user=alice", "custom:jupyter_server:read:*!user=zed")
    assert len(allowed(authorizer, shared)) == 8  # JupyterHub's default: reaching the server is full access
    assert len(allowed(authorizer, other_server_scope)) == 8  # scopes for another server do not restrict here
    authorizer.access_grants_all = False
    assert allowed(authorizer, shared) == set()
    assert allowed(authorizer, other_server_scope) == set()
    assert len(allowed(authorizer, user("alice"))) == 0  # even the owner needs the access scope ...
    assert len(allowed(authorizer, user("alice", "access:servers!user=alice"))) == 8  # ... and then has all


def test_no_access_scope_or_no_hub_user_is_refused(authorizer):
    assert allowed(authorizer, user("mallory", "custom:jupyter_server:read:replay!user=alice")) == set()
    assert allowed(authorizer, user("bob", "access:servers!user=zed", "custom:jupyter_server:read:*")) == set()

    class Plain:
        username = "alice"

    assert not authorizer.is_authorized(None, Plain(), "read", "replay")
