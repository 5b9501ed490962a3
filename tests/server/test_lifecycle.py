"""Sessions follow their kernel: shutdown, cull, death and restart; idle sessions expire."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
from server_helpers import on_server_loop

SESSIONS = ("replay", "api", "sessions")


@pytest.fixture
def jp_server_config(jp_server_config):
    # A kernel that dies is declared dead at once (no auto-restart), checked every 0.2 s.
    jp_server_config.KernelRestarter.restart_limit = 0
    jp_server_config.KernelRestarter.time_to_dead = 0.2
    return jp_server_config


async def wait_gone(api, kid, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        code, _, _ = await api.request("GET", *SESSIONS, kid)
        if code == 404:
            return
        assert time.monotonic() < deadline, "session still there"
        await asyncio.sleep(0.05)


@on_server_loop
async def test_kernel_shutdown_removes_session(api):
    ka, kb = await api.start_kernel(), await api.start_kernel()
    await api.create(ka, source={"kind": "sample", "n": 100})
    await api.create(kb, source={"kind": "sample", "n": 100})
    ws = await api.ws(ka)
    code, _, _ = await api.request("DELETE", "api", "kernels", ka)
    assert code == 204
    await wait_gone(api, ka)
    msgs = await ws.until(lambda kind, msg: False)  # everything up to the close
    assert msgs[-1] == ("closed", None)
    assert ws.conn.close_code == 1001
    ws.close()
    assert (await api.status(kb))["kernel_id"] == kb  # the other kernel's session is untouched


@on_server_loop
async def test_kernel_restart_clears_buffer(api):
    ka, kb = await api.start_kernel(), await api.start_kernel()
    for kid in (ka, kb):
        await api.create(kid, source={"kind": "sample", "n": 500}, speed="max")
        await api.ok(kid, "play")
        await api.wait_for(kid, lambda m: m["state"] == "finished" and m["buffer_rows"] == 500)
    ws = await api.ws(ka)
    await ws.until(lambda kind, msg: kind == "frame")  # hello, history + its frame
    code, _, _ = await api.request("POST", "api", "kernels", ka, "restart")
    assert code == 200
    msgs = await ws.until(lambda kind, msg: kind == "text" and msg["type"] == "reset")
    assert msgs[-1][1]["reason"] == "restart"
    model = await api.wait_for(ka, lambda m: m["buffer_rows"] == 0)
    assert model["kernel_id"] == ka and model["rows"] == 0
    assert len(await api.buffer(ka)) == 0
    assert (await api.status(kb))["buffer_rows"] == 500  # the other kernel keeps its buffer
    ws.close()


@on_server_loop
async def test_dead_kernel_removes_session(api, jp_serverapp):
    kid = await api.start_kernel()
    await api.create(kid, source={"kind": "sample", "n": 100})
    km = jp_serverapp.kernel_manager.get_kernel(kid)
    # restart_limit = 0: the restarter fires "dead" and the kernel is removed without a kernel_actions event
    os.kill(km.provisioner.process.pid, signal.SIGKILL)
    await wait_gone(api, kid)
    code, kernels, _ = await api.request("GET", "api", "kernels")
    assert kid not in [k["id"] for k in kernels]


@on_server_loop
async def test_idle_sessions_expire(api, replay_ext, replay_manager):
    replay_ext.idle_check_interval = 0.1  # read when the first session starts the periodic check
    ka, kb = await api.start_kernel(), await api.start_kernel()
    await api.create(ka, source={"kind": "sample", "n": 100})
    await api.create(kb, source={"kind": "sample", "n": 100})
    ws = await api.ws(kb)  # a session with a client never expires
    replay_ext.idle_timeout = 0.5
    await wait_gone(api, ka)
    assert (await api.status(kb))["clients"] == 1
    ws.close()
    await wait_gone(api, kb)
    # idle_timeout = 0 keeps sessions forever
    replay_ext.idle_timeout = 0
    await api.create(ka)
    await asyncio.sleep(0.5)
    assert await replay_manager.expire_idle(time.monotonic() + 10**6) == []
    assert (await api.status(ka))["kernel_id"] == ka


@on_server_loop
async def test_limits(api, replay_ext):
    replay_ext.max_sessions = 1
    ka, kb = await api.start_kernel(), await api.start_kernel()
    await api.create(ka)
    code, err, _ = await api.request("POST", *SESSIONS, body={"kernel_id": kb})
    assert code == 409 and "max_sessions" in err["message"]
    replay_ext.allow_max_speed = False
    code, err = await api.action(ka, "speed", speed="max")
    assert code == 400 and "disabled" in err["message"]
    replay_ext.max_speed = 10.0
    code, err, _ = await api.request("DELETE", *SESSIONS, ka)
    assert code == 204
    code, err, _ = await api.request("POST", *SESSIONS, body={"kernel_id": kb, "speed": 50})
    assert code == 400 and "10" in err["message"]
    assert (await api.create(kb, speed=10))["speed"] == 10
