"""End to end with a real JupyterHub on loopback: per-user replay servers and a read-only shared room.

alice and bob each get a single-user server from the hub (simple local spawner, the replay extension
enabled by its shared config, ``HubReplayAuthorizer``). The hub grants bob ``access:servers!user=alice`` and
``custom:jupyter_server:read:replay!user=alice``: he may reach alice's server only to watch the replays
she shares with him.
"""

from __future__ import annotations

import asyncio
import json
import time
from html.parser import HTMLParser
from typing import Any

import pytest
from hub_harness import HubProcess
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from jupyter_replay import wire

pytestmark = [pytest.mark.hub, pytest.mark.timeout(180)]

SESSIONS = ("replay", "api", "sessions")


class UserClient:
    """Requests as one hub user (their API token) to a single-user server through the proxy."""

    def __init__(self, hub: HubProcess, user: str) -> None:
        self.hub = hub
        self.user = user
        self.token = hub.tokens[user]

    async def request(self, method: str, owner: str, *parts: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body) if body is not None else ("" if method in ("POST", "PUT") else None)
        req = HTTPRequest(
            self.hub.server_url(owner, *parts),
            method=method,
            body=data,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
            follow_redirects=False,
            request_timeout=30,
            allow_nonstandard_methods=True,
        )
        try:
            resp = await AsyncHTTPClient().fetch(req)
        except HTTPClientError as err:
            resp = err.response
            assert resp is not None, err
        payload: Any = resp.body
        if resp.body and resp.headers.get("Content-Type", "").startswith("application/json"):
            payload = json.loads(resp.body)
        return resp.code, payload

    async def ok(self, method: str, owner: str, *parts: str, body: Any = None, expect: int = 200) -> Any:
        code, payload = await self.request(method, owner, *parts, body=body)
        assert code == expect, (self.user, method, owner, parts, code, payload)
        return payload

    async def start_session(self, n: int) -> str:
        kernel = await self.ok("POST", self.user, "api", "kernels", body={"name": "python3"}, expect=201)
        model = await self.ok(
            "POST", self.user, *SESSIONS, body={"kernel_id": kernel["id"], "source": {"kind": "sample", "n": n}},
            expect=201,
        )
        assert model["owner"] == self.user and model["client_token"]
        return model["id"]

    async def action(self, owner: str, sid: str, action: str, **args: Any) -> tuple[int, Any]:
        return await self.request("POST", owner, *SESSIONS, sid, "actions", action, body=args)

    async def status(self, owner: str, sid: str) -> dict:
        return await self.ok("GET", owner, *SESSIONS, sid)

    async def ws(self, owner: str, *parts: str) -> WebSocketClientConnection:
        url = self.hub.server_url(owner, *parts).replace("http://", "ws://", 1)
        req = HTTPRequest(url, headers={"Authorization": f"token {self.token}"}, request_timeout=30)
        return await websocket_connect(req)


async def recv(conn: WebSocketClientConnection, timeout: float = 20.0) -> tuple[str, Any]:
    msg = await asyncio.wait_for(conn.read_message(), timeout)
    if msg is None:
        return "closed", None
    if isinstance(msg, bytes):
        return "frame", wire.decode_frame(msg)
    return "text", json.loads(msg)


async def until(conn: WebSocketClientConnection, pred: Any, timeout: float = 20.0) -> list[tuple[str, Any]]:
    out, deadline = [], time.monotonic() + timeout
    while True:
        kind, msg = await recv(conn, max(0.1, deadline - time.monotonic()))
        out.append((kind, msg))
        if kind == "closed" or pred(kind, msg):
            return out


async def control(conn: WebSocketClientConnection, action: str, id: Any, **args: Any) -> dict:
    await conn.write_message(json.dumps({"type": "control", "id": id, "action": action, **args}))
    msgs = await until(conn, lambda k, m: k == "text" and m.get("type") in ("ack", "error") and m.get("id") == id)
    return msgs[-1][1]


async def test_two_users_replay_independently(hub: HubProcess) -> None:
    alice, bob = UserClient(hub, "alice"), UserClient(hub, "bob")
    sa = await alice.start_session(n=200_000)
    sb = await bob.start_session(n=200_000)
    for user, sid in ((alice, sa), (bob, sb)):
        assert (await user.action(user.user, sid, "play"))[0] == 200

    # alice pauses and speeds up; bob's replay keeps playing at 1x
    code, model = await alice.action("alice", sa, "pause")
    assert code == 200 and model["state"] == "paused"
    code, model = await alice.action("alice", sa, "speed", speed=25)
    assert code == 200 and model["speed"] == 25
    before = await bob.status("bob", sb)
    await asyncio.sleep(0.5)
    after = await bob.status("bob", sb)
    assert after["state"] == "playing" and after["speed"] == 1
    assert after["position"] > before["position"]  # still advancing
    # bob steps back in his own replay; alice's stays paused where she left it
    paused_at = (await alice.status("alice", sa))["position"]
    assert (await bob.action("bob", sb, "pause"))[0] == 200
    assert (await bob.action("bob", sb, "seek", fraction=0.0))[0] == 200
    assert (await bob.action("bob", sb, "step", n=3))[1]["position"] == 3
    mine = await alice.status("alice", sa)
    assert (mine["state"], mine["speed"], mine["position"]) == ("paused", 25, paused_at)

    # each server is its owner's: alice cannot reach bob's at all (the hub refuses her)
    code, _ = await alice.request("GET", "bob", *SESSIONS)
    assert code == 403
    # bob may reach alice's server (read-only), but her unshared sessions stay private
    code, listing = await bob.request("GET", "alice", *SESSIONS)
    assert code == 200 and listing == []
    code, err = await bob.request("GET", "alice", *SESSIONS, sa)
    assert code == 403 and "not shared" in err["message"]


async def test_read_only_share_lets_bob_watch_but_not_control(hub: HubProcess) -> None:
    alice, bob = UserClient(hub, "alice"), UserClient(hub, "bob")
    sid = await alice.start_session(n=200_000)
    code, _ = await bob.request("GET", "alice", *SESSIONS, sid)
    assert code == 403  # private until shared

    room = await alice.ok("POST", "alice", *SESSIONS, sid, "room", body={"members": {"bob": "viewer"}}, expect=201)
    assert room["members"] == {"bob": "viewer"} and room["owner"] == "alice"
    model = await bob.status("alice", sid)
    assert model["role"] == "viewer" and "client_token" not in model

    # bob watches: hello (not writable), history, then the frames alice's playback produces
    conn = await bob.ws("alice", *SESSIONS, sid, "ws")
    msgs = await until(conn, lambda k, m: k == "frame" and m[0].get("history"))
    assert msgs[0][1]["type"] == "hello" and msgs[0][1]["writable"] is False
    assert (await alice.action("alice", sid, "speed", speed=20))[0] == 200
    assert (await alice.action("alice", sid, "play"))[0] == 200
    msgs = await until(conn, lambda k, m: k == "frame" and not m[0].get("history"))
    header, columns = msgs[-1][1]
    assert header["rows"] > 0 and len(columns["price"]) == header["rows"]

    # every control attempt is refused: WebSocket and REST
    for i, (action, args) in enumerate((("pause", {}), ("speed", {"speed": 1000}), ("stop", {}))):
        reply = await control(conn, action, id=i, **args)
        assert reply["type"] == "error" and reply["status"] == 403, reply
    for action, args in (("pause", {}), ("speed", {"speed": 2}), ("seek", {"fraction": 0.5}), ("stop", {})):
        code, err = await bob.action("alice", sid, action, **args)
        assert code == 403, (action, err)
    for method, parts, body in (
        ("DELETE", (*SESSIONS, sid), None),
        ("POST", (*SESSIONS, sid, "room"), {"controllers": ["bob"]}),
        ("GET", ("replay", "api", "admin", "sessions"), None),
    ):
        code, _ = await bob.request(method, "alice", *parts, body=body)
        assert code == 403, (method, parts)
    # ... and bob cannot run code on alice's server: no new kernel, no kernel channels
    code, _ = await bob.request("POST", "alice", "api", "kernels", body={"name": "python3"})
    assert code == 403
    with pytest.raises(HTTPClientError) as excinfo:
        await bob.ws("alice", "api", "kernels", sid, "channels")
    assert excinfo.value.code == 403

    # a room never widens the hub's grant: as "controller" bob is still read-only
    await alice.ok("POST", "alice", *SESSIONS, sid, "room", body={"members": {"bob": "controller"}})
    code, _ = await bob.action("alice", sid, "pause")
    assert code == 403
    assert (await control(conn, "pause", id="again"))["status"] == 403
    status = await alice.status("alice", sid)
    assert status["state"] == "playing" and status["speed"] == 20  # nothing bob tried took effect

    # alice (the server owner) sees the room in the admin view, then revokes bob
    listing = await alice.ok("GET", "alice", "replay", "api", "admin", "sessions")
    entry = next(m for m in listing if m["id"] == sid)
    assert entry["room"]["members"] == {"bob": "controller"}
    assert {"user": "bob", "writable": False} in entry["connections"]
    await alice.ok("DELETE", "alice", *SESSIONS, sid, "room", "members", "bob", expect=204)
    msgs = await until(conn, lambda k, m: k == "closed")
    assert msgs[-1][0] == "closed"
    code, _ = await bob.request("GET", "alice", *SESSIONS, sid)
    assert code == 403
    assert (await alice.action("alice", sid, "pause"))[1]["state"] == "paused"


class _Form(HTMLParser):
    """The inputs of the hub's OAuth confirmation form (hidden fields and scope checkboxes)."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "input" and a.get("name") and a.get("type") in ("hidden", "checkbox", None):
            self.fields.append((a["name"] or "", a.get("value") or ""))


def test_browser_login_carries_the_read_only_scope(hub: HubProcess) -> None:
    """bob in a browser: hub login + OAuth to alice's server; his cookie watches a shared replay, nothing more.

    Checks the deployment guide's ``Spawner.oauth_client_allowed_scopes``: without it the browser token
    would not carry ``custom:jupyter_server:read:replay``.
    """
    import requests

    headers = {"Authorization": f"token {hub.tokens['alice']}"}
    kernel = requests.post(
        hub.server_url("alice", "api", "kernels"), json={"name": "python3"}, headers=headers, timeout=30
    )
    assert kernel.status_code == 201, kernel.text
    created = requests.post(
        hub.server_url("alice", *SESSIONS),
        json={"kernel_id": kernel.json()["id"], "source": {"kind": "sample", "n": 1000}},
        headers=headers,
        timeout=30,
    )
    assert created.status_code == 201, created.text
    sid = created.json()["id"]
    shared = requests.post(
        hub.server_url("alice", *SESSIONS, sid, "room"), json={"viewers": ["bob"]}, headers=headers, timeout=30
    )
    assert shared.status_code == 201, shared.text

    browser = requests.Session()
    browser.get(f"{hub.url}/hub/login", timeout=30)
    login = browser.post(
        f"{hub.url}/hub/login",
        data={"username": "bob", "password": hub.password, "_xsrf": browser.cookies.get("_xsrf", "")},
        timeout=30,
    )
    assert login.status_code == 200, login.text[:500]
    page = browser.get(hub.server_url("alice", "lab"), timeout=30)
    if "/oauth2/authorize" in page.url:  # bob confirms access to another user's server
        form = _Form()
        form.feed(page.text)
        page = browser.post(page.url, data=form.fields, timeout=30)
    assert page.status_code == 200 and page.url.startswith(hub.server_url("alice")), page.url

    got = browser.get(hub.server_url("alice", *SESSIONS, sid), timeout=30)
    assert got.status_code == 200 and got.json()["role"] == "viewer", got.text
    assert browser.get(hub.server_url("alice", "api", "kernels"), timeout=30).status_code == 403
    xsrf = {"X-XSRFToken": browser.cookies.get("_xsrf", path="/user/alice/") or browser.cookies.get("_xsrf", "")}
    refused = browser.post(
        hub.server_url("alice", *SESSIONS, sid, "actions", "play"), json={}, headers=xsrf, timeout=30
    )
    assert refused.status_code == 403 and "not authorized to write" in refused.json()["message"], refused.text
