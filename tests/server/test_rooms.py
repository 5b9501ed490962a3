"""Rooms: private sessions per owner, sharing with viewers/controllers, revocation, the admin view.

A real Jupyter server with a multi-identity test IdentityProvider: a token-authenticated request acts as the
user named by its ``X-Test-User`` header (default ``alice``). The test Authorizer allows ``admin`` on
``replay`` only to ``root``, and ``X-Test-Role: viewer`` limits a request to ``read`` (like a hub read scope).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

import pytest
from jupyter_server.auth import IdentityProvider, User
from tornado.httpclient import HTTPClientError
from server_helpers import Api, RoleAuthorizer, arrow_bytes, on_server_loop
from traitlets.config import Config

from jupyter_replay.sources import sample_trades

SESSIONS = ("replay", "api", "sessions")
ADMIN = ("replay", "api", "admin", "sessions")


class HeaderIdentityProvider(IdentityProvider):
    """jupyter_server's token check, then the identity named by ``X-Test-User`` (default ``alice``)."""

    async def get_user(self, handler: Any) -> User | None:  # type: ignore[override]
        user = await self._get_user(handler)
        if user is None:
            return None
        name = handler.request.headers.get("X-Test-User", "alice")
        return User(username=name, name=name, display_name=name)


class RoomsAuthorizer(RoleAuthorizer):
    """``RoleAuthorizer`` plus: ``admin`` on ``replay`` only for the user ``root``."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        if resource == "replay" and action == "admin":
            return user.username == "root"
        return super().is_authorized(handler, user, action, resource)


@pytest.fixture
def jp_server_config() -> Config:
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"jupyter_replay.server": True},
                "authorizer_class": RoomsAuthorizer,
                "identity_provider_class": HeaderIdentityProvider,
            },
            "ReplayExtension": {"buffer_rows": 50_000},
        }
    )


def who(user: str, **extra: str) -> dict[str, str]:
    return {"X-Test-User": user, **extra}


async def make_session(api: Api, owner: str = "alice", n: int = 20_000, **body: Any) -> str:
    kid = await api.start_kernel()
    code, model, _ = await api.request(
        "POST", *SESSIONS, body={"kernel_id": kid, "source": {"kind": "sample", "n": n}, **body}, headers=who(owner)
    )
    assert code == 201, model
    assert model["owner"] == owner and model["role"] == "owner" and model["shared"] is False
    assert model["client_token"]
    return kid


async def share(api: Api, sid: str, body: dict, user: str = "alice", expect: int | None = None) -> dict:
    code, room, _ = await api.request("POST", *SESSIONS, sid, "room", body=body, headers=who(user))
    if expect is not None:
        assert code == expect, room
    return room


async def ws_as(api: Api, sid: str, user: str, **headers: str) -> Any:
    client = await api.ws(sid, headers=who(user, **headers))
    msgs = await client.until(lambda k, m: k == "frame" and m[0].get("history"))
    hello = msgs[0][1]
    assert hello["type"] == "hello"
    return client, hello


async def wait_closed(client: Any, timeout: float = 10.0) -> None:
    msgs = await client.until(lambda k, m: k == "closed", timeout=timeout)
    assert msgs[-1][0] == "closed"


@on_server_loop
async def test_sessions_are_private_by_default(api, replay_ext):
    assert replay_ext.sessions_private  # a multi-identity provider: "auto" turns privacy on
    sid = await make_session(api, n=500)
    other = await make_session(api, owner="bob", n=300)

    code, listing, _ = await api.request("GET", *SESSIONS, headers=who("alice"))
    assert code == 200 and [m["id"] for m in listing] == [sid] and listing[0]["role"] == "owner"
    code, listing, _ = await api.request("GET", *SESSIONS, headers=who("bob"))
    assert [m["id"] for m in listing] == [other]

    for method, parts, body in (
        ("GET", (*SESSIONS, sid), None),
        ("GET", (*SESSIONS, sid, "buffer"), None),
        ("POST", (*SESSIONS, sid, "actions", "play"), {}),
        ("DELETE", (*SESSIONS, sid), None),
        ("GET", (*SESSIONS, sid, "room"), None),
        ("POST", (*SESSIONS, sid, "room"), {"viewers": ["bob"]}),
    ):
        code, err, _ = await api.request(method, *parts, body=body, headers=who("bob"))
        assert code == 403 and "not shared with you" in err["message"], (method, parts, err)
    upload = arrow_bytes(sample_trades(n=5))
    code, err, _ = await api.request("PUT", *SESSIONS, sid, "data", raw=upload, headers=who("bob"))
    assert code == 403
    with pytest.raises(HTTPClientError) as excinfo:  # the WebSocket upgrade is refused
        await api.ws(sid, headers=who("bob"))
    assert excinfo.value.code == 403
    # bob may not use kernels here: the answer for a kernel that does not exist (no oracle, no squatting)
    code, err, _ = await api.request(
        "POST", *SESSIONS, body={"kernel_id": sid}, headers=who("bob", **{"X-Test-Role": "nokernels"})
    )
    assert code == 404 and err["reason"] == "SessionNotFoundError", err

    # the admin sees and may control everything, but never gets the owner's kernel capability
    code, listing, _ = await api.request("GET", *SESSIONS, headers=who("root"))
    assert sorted(m["id"] for m in listing) == sorted([sid, other])
    assert {m["role"] for m in listing} == {"admin"}
    code, model, _ = await api.request("GET", *SESSIONS, sid, headers=who("root"))
    assert code == 200 and model["role"] == "admin" and "client_token" not in model
    code, model, _ = await api.request("POST", *SESSIONS, sid, "actions", "step", body={"n": 2}, headers=who("root"))
    assert code == 200 and model["position"] == 2
    status = await api.status(sid, headers=who("alice"))
    assert status["position"] == 2 and status["client_token"]
    assert (await api.status(other, headers=who("bob")))["position"] == 0


@on_server_loop
async def test_viewer_watches_but_cannot_control(api):
    sid = await make_session(api, n=20_000)
    room = await share(api, sid, {"members": {"bob": "viewer"}}, expect=201)
    assert room == {**room, "session": sid, "owner": "alice", "members": {"bob": "viewer"}}

    model = await api.status(sid, headers=who("bob"))
    assert model["role"] == "viewer" and model["shared"] is True and "client_token" not in model
    code, listing, _ = await api.request("GET", *SESSIONS, headers=who("bob"))
    assert [(m["id"], m["role"]) for m in listing] == [(sid, "viewer")]
    code, got, _ = await api.request("GET", *SESSIONS, sid, "room", headers=who("bob"))
    assert code == 200 and got["members"] == {"bob": "viewer"}

    bob, hello = await ws_as(api, sid, "bob")
    assert hello["writable"] is False and hello["session"]["owner"] == "alice"
    code, _, _ = await api.request("POST", *SESSIONS, sid, "actions", "speed", body={"speed": 20}, headers=who("alice"))
    assert code == 200
    code, _, _ = await api.request("POST", *SESSIONS, sid, "actions", "play", body={}, headers=who("alice"))
    assert code == 200
    msgs = await bob.until(lambda k, m: k == "frame" and not m[0].get("history"))
    assert any(k == "text" and m["type"] == "state" and m["status"]["state"] == "playing" for k, m in msgs)
    assert msgs[-1][1][0]["rows"] > 0  # the viewer receives the stream

    reply = await bob.control("pause", id="p")
    assert reply["type"] == "error" and reply["status"] == 403
    reply = await bob.control("speed", id="s", speed=1000)
    assert reply["type"] == "error" and reply["status"] == 403
    for action, args in (
        ("pause", {}), ("stop", {}), ("speed", {"speed": 2}), ("loop", {"loop": True}),
        ("seek", {"fraction": 0.5}), ("mode", {"mode": "live"}), ("play", {}),
    ):
        code, err, _ = await api.request("POST", *SESSIONS, sid, "actions", action, body=args, headers=who("bob"))
        assert code == 403 and "may watch it but not control it" in err["message"], (action, err)
    code, err, _ = await api.request("DELETE", *SESSIONS, sid, headers=who("bob"))
    assert code == 403 and "owner" in err["message"]
    upload = arrow_bytes(sample_trades(n=5))
    code, err, _ = await api.request("PUT", *SESSIONS, sid, "data", raw=upload, headers=who("bob"))
    assert code == 403
    code, err, _ = await api.request("POST", *SESSIONS, sid, "room", body={"controllers": ["bob"]}, headers=who("bob"))
    assert code == 403
    code, body, _ = await api.request("GET", *SESSIONS, sid, "buffer", headers=who("bob"))
    assert code == 200 and len(body) > 0

    status = await api.status(sid, headers=who("alice"))
    assert status["state"] == "playing" and status["speed"] == 20 and not status["loop"]  # nothing bob did stuck
    bob.close()


@on_server_loop
async def test_controller_controls_and_everyone_sees_it(api, jp_serverapp):
    sid = await make_session(api, n=20_000)
    room = await share(api, sid, {"controllers": ["bob"], "viewers": ["carol"]}, expect=201)
    assert room["members"] == {"bob": "controller", "carol": "viewer"}

    alice, hello_a = await ws_as(api, sid, "alice")
    carol, hello_c = await ws_as(api, sid, "carol")
    bob, hello_b = await ws_as(api, sid, "bob")
    assert (hello_a["writable"], hello_b["writable"], hello_c["writable"]) == (True, True, False)

    settings = jp_serverapp.web_app.settings
    settings.pop("replay_last_activity", None)
    before = datetime.now(timezone.utc)
    ack = await bob.control("speed", id=1, speed=5)
    assert ack["type"] == "ack" and ack["status"]["speed"] == 5
    # a WebSocket control is user activity for idle culling (jupyter_server's last_activity)
    assert settings["replay_last_activity"] >= before
    assert jp_serverapp.web_app.last_activity() >= settings["replay_last_activity"]
    code, model, _ = await api.request("POST", *SESSIONS, sid, "actions", "step", body={"n": 7}, headers=who("bob"))
    assert code == 200 and model["position"] == 7 and model["state"] == "paused"
    for client in (alice, carol):  # the owner and the viewer see the controller's actions
        msgs = await client.until(lambda k, m: k == "text" and m["type"] == "state" and m["status"]["position"] == 7)
        states = [m["status"] for k, m in msgs if k == "text" and m["type"] == "state"]
        assert any(s["speed"] == 5 for s in states) and states[-1]["state"] == "paused"
    status = await api.status(sid, headers=who("alice"))
    assert (status["speed"], status["position"]) == (5, 7)

    # a controller still cannot delete, share or replace data (owner only)
    code, _, _ = await api.request("DELETE", *SESSIONS, sid, headers=who("bob"))
    assert code == 403
    code, _, _ = await api.request("POST", *SESSIONS, sid, "room", body={"viewers": ["dave"]}, headers=who("bob"))
    assert code == 403

    # a room never widens the Authorizer: a controller whose identity may only read is refused
    code, err, _ = await api.request(
        "POST", *SESSIONS, sid, "actions", "pause", body={}, headers=who("bob", **{"X-Test-Role": "viewer"})
    )
    assert code == 403 and "not authorized" in err["message"]
    limited, hello = await ws_as(api, sid, "bob", **{"X-Test-Role": "viewer"})
    assert hello["writable"] is False
    assert (await limited.control("play", id=2))["status"] == 403

    # demoted to viewer: the open socket loses control at once
    room = await share(api, sid, {"members": {"bob": "viewer"}}, expect=200)
    assert room["members"] == {"bob": "viewer", "carol": "viewer"}
    reply = await bob.control("play", id=3)
    assert reply["type"] == "error" and reply["status"] == 403
    # promoted again: control comes back (the Authorizer allowed write when bob connected)
    await share(api, sid, {"members": {"bob": "controller"}}, expect=200)
    assert (await bob.control("speed", id=4, speed=9))["type"] == "ack"
    assert (await limited.control("speed", id=5, speed=3))["status"] == 403  # still read-only by the Authorizer
    for client in (alice, bob, carol, limited):
        client.close()


@on_server_loop
async def test_revoke_and_unshare_disconnect_members(api):
    sid = await make_session(api, n=20_000)
    await share(api, sid, {"viewers": ["bob", "carol"], "controllers": ["dave"]}, expect=201)
    bob, _ = await ws_as(api, sid, "bob")
    carol, _ = await ws_as(api, sid, "carol")
    dave, _ = await ws_as(api, sid, "dave")
    alice, _ = await ws_as(api, sid, "alice")

    code, body, _ = await api.request("DELETE", *SESSIONS, sid, "room", "members", "bob", headers=who("alice"))
    assert code == 204 and body == b""
    await wait_closed(bob)
    assert bob.conn.close_code == 1008 and "revoked" in (bob.conn.close_reason or "")
    for method, parts in (("GET", (*SESSIONS, sid)), ("GET", (*SESSIONS, sid, "buffer"))):
        code, err, _ = await api.request(method, *parts, headers=who("bob"))
        assert code == 403, (method, parts)
    code, _, _ = await api.request("POST", *SESSIONS, sid, "actions", "play", body={}, headers=who("bob"))
    assert code == 403
    with pytest.raises(HTTPClientError) as excinfo:  # the WebSocket upgrade is refused
        await api.ws(sid, headers=who("bob"))
    assert excinfo.value.code == 403
    code, listing, _ = await api.request("GET", *SESSIONS, headers=who("bob"))
    assert listing == []
    code, err, _ = await api.request("DELETE", *SESSIONS, sid, "room", "members", "bob", headers=who("alice"))
    assert code == 404 and "not a member" in err["message"]

    # the others are untouched; a member may leave on their own; only the owner revokes others
    assert (await carol.control("play", id=1))["status"] == 403  # still connected (as a viewer)
    code, _, _ = await api.request("DELETE", *SESSIONS, sid, "room", "members", "dave", headers=who("carol"))
    assert code == 403
    code, _, _ = await api.request("DELETE", *SESSIONS, sid, "room", "members", "carol", headers=who("carol"))
    assert code == 204
    await wait_closed(carol)

    # unshare: every member is disconnected, the owner stays
    code, _, _ = await api.request("DELETE", *SESSIONS, sid, "room", headers=who("alice"))
    assert code == 204
    await wait_closed(dave)
    code, err, _ = await api.request("GET", *SESSIONS, sid, "room", headers=who("alice"))
    assert code == 404 and "not shared" in err["message"]
    code, _, _ = await api.request("GET", *SESSIONS, sid, headers=who("dave"))
    assert code == 403
    assert (await alice.control("speed", id=9, speed=2))["type"] == "ack"  # the owner's socket is still open
    assert (await api.status(sid, headers=who("alice")))["shared"] is False
    alice.close()


@on_server_loop
async def test_admin_view_and_room_validation(api, replay_manager):
    sid = await make_session(api, n=1000)
    other = await make_session(api, owner="bob", n=1000)
    await share(api, sid, {"members": {"bob": "controller", "carol": "viewer"}}, expect=201)
    bob, _ = await ws_as(api, sid, "bob")

    for user in ("alice", "bob"):
        code, err, _ = await api.request("GET", *ADMIN, headers=who(user))
        assert code == 403, user
    code, listing, _ = await api.request("GET", *ADMIN, headers=who("root"))
    assert code == 200
    by_id = {m["id"]: m for m in listing}
    assert set(by_id) == {sid, other}
    assert by_id[sid]["owner"] == "alice" and by_id[other]["owner"] == "bob" and by_id[other]["room"] is None
    assert by_id[sid]["room"]["members"] == {"bob": "controller", "carol": "viewer"}
    assert by_id[sid]["connections"] == [{"user": "bob", "writable": True}]
    assert "client_token" not in by_id[sid]

    # malformed room requests: 400 with a message, nothing changed
    for body in (
        {"members": {"bob": "owner"}},
        {"members": ["bob"]},
        {"viewers": "bob"},
        {"viewers": [""]},
        {"viewers": ["bob"], "controllers": ["bob"]},
        {"members": {"alice": "viewer"}},
        {"everyone": True},
        {"replace": "yes"},
    ):
        code, err, _ = await api.request("POST", *SESSIONS, sid, "room", body=body, headers=who("alice"))
        assert code == 400 and err["message"], (body, err)
    code, room, _ = await api.request("GET", *SESSIONS, sid, "room", headers=who("carol"))
    assert room["members"] == {"bob": "controller", "carol": "viewer"}
    room = await share(api, sid, {"viewers": ["erin"], "replace": True}, expect=200)
    assert room["members"] == {"erin": "viewer"}
    await wait_closed(bob)  # replaced away

    # the room goes with its session (kernel shutdown)
    code, _, _ = await api.request("DELETE", "api", "kernels", sid, headers=who("alice"))
    assert code == 204
    for _ in range(200):
        if sid not in replay_manager:
            break
        await asyncio.sleep(0.05)
    code, listing, _ = await api.request("GET", *ADMIN, headers=who("root"))
    assert [m["id"] for m in listing] == [other]


@on_server_loop
async def test_single_identity_servers_share_everything(api, replay_ext):
    """With private_sessions off (jupyter_server's own token/password login) everyone is the owner."""
    replay_ext.private_sessions = False
    try:
        sid = await make_session(api, n=100)
        code, model, _ = await api.request("GET", *SESSIONS, sid, headers=who("bob"))
        assert code == 200 and model["role"] == "owner" and model["client_token"]
        code, model, _ = await api.request("POST", *SESSIONS, sid, "actions", "step", body={"n": 1}, headers=who("bob"))
        assert code == 200
        code, err, _ = await api.request("POST", *SESSIONS, sid, "room", body={"viewers": ["bob"]})
        assert code == 409 and "not private" in err["message"]
    finally:
        replay_ext.private_sessions = "auto"
