"""Attached path (issue 16): each ``Replay``'s callbacks run on its own worker, not on the WebSocket reader.

Two ``Replay`` widgets of one process are attached to two server sessions (real Jupyter server, real
kernels for the session ids) and share the process-wide background loop that reads both WebSockets. A
callback of replay A blocked on an Event the test holds must not hold back replay B's rows nor a control
call (``play()``/``pause()``) on either replay; once released, A resumes with every row delivered once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from pytest_jupyter.jupyter_server import *  # noqa: F403
from remote_helpers import (  # noqa: F401  (jp_server_config: a fixture)
    attach, jp_server_config, new_kernel, request, until,
)
from server_helpers import on_server_loop
from widget_helpers import RecordingReplay, trades

from jupyter_replay.widgets.remote import RemoteSession

#: generous: a busy 2-core machine; a control that waited for the blocked callback would never return
PROMPT = 30.0


async def attached_replay(fetch: Any, n: int) -> tuple[RecordingReplay, str]:
    """A rendered ``Replay`` attached to a fresh kernel's server session (the browser's part played here)."""
    kid = await new_kernel(fetch)
    r = await asyncio.to_thread(lambda: RecordingReplay(trades(n), speed=1).render())
    await attach(fetch, r, kid)
    assert isinstance(r.session, RemoteSession)
    return r, kid


async def returns_promptly(fn: Callable[[], Any], what: str) -> Any:
    try:
        return await asyncio.wait_for(asyncio.to_thread(fn), PROMPT)
    except asyncio.TimeoutError:
        raise AssertionError(f"{what} did not return within {PROMPT}s while a callback was blocked") from None


@on_server_loop
async def test_a_blocked_callback_holds_back_neither_another_replay_nor_controls(jp_fetch, jp_serverapp):
    n = 300
    a, ka = await attached_replay(jp_fetch, n)
    b, kb = await attached_replay(jp_fetch, n)
    release = threading.Event()
    entered, returned = threading.Event(), threading.Event()
    a_rows: list[int] = []
    b_rows: list[int] = []
    try:
        assert a.session.runner is b.session.runner  # one process-wide loop reads both sockets

        @a.on_batch
        def blocked(batch: Any, clock: Any) -> None:
            a_rows.append(len(batch))
            entered.set()
            release.wait(300)
            returned.set()

        b.on_batch(lambda batch, clock: b_rows.append(len(batch)))
        await asyncio.to_thread(a.play)  # speed 1: 30 s of data in many batches; the first one blocks
        await until(entered.is_set, what="a's callback to start")

        # (a) B replays to the end, every row through its callback, while A's callback is blocked
        await asyncio.to_thread(setattr, b, "speed", "max")
        await returns_promptly(b.play, "b.play()")
        assert await asyncio.to_thread(b.wait, ("finished",), PROMPT) == "finished"
        assert sum(b_rows) == n and len(b.buffer) == n
        assert not returned.is_set() and len(a_rows) == 1, "a's callback was meant to be still blocked"

        # (b) controls on the blocked replay and on the other one return while the callback still blocks
        await returns_promptly(a.pause, "a.pause()")
        assert a.status["state"] == "paused"
        await returns_promptly(b.stop, "b.stop()")
        await returns_promptly(a.play, "a.play()")
        await returns_promptly(b.play, "b.play()")
        await returns_promptly(lambda: a.session.status(), "a.status()")
        assert not returned.is_set() and len(a_rows) == 1, "a's callback was meant to be still blocked"
        assert a.session.status()["callback_queue"] >= 1  # the blocked run (and the ack behind it)

        # released: A goes on from where its callback held it, no row lost or repeated
        release.set()
        await until(returned.is_set, what="a's callback to return")
        await asyncio.to_thread(setattr, a, "speed", "max")
        assert await asyncio.to_thread(a.wait, ("finished",), 120) == "finished"
        assert sum(a_rows) == n
        st = await asyncio.to_thread(a.session.status)
        assert st["callback_max_ms"] >= 1.0 and st["callback_errors"] == 0 and st["rows_dropped"] == 0
        assert await asyncio.to_thread(b.wait, ("finished",), PROMPT) == "finished"
        assert sum(b_rows) == 2 * n  # b played once more meanwhile, unaffected
    finally:
        release.set()
        for r in (a, b):
            await asyncio.to_thread(r.close)
        for kid in (ka, kb):
            await request(jp_fetch, "DELETE", "api", "kernels", kid)


@on_server_loop
async def test_controls_from_a_callback_on_the_worker_do_not_deadlock(jp_fetch, jp_serverapp):
    """``pause()``, ``seek()``, ``play()`` and ``step()`` called from a callback (the worker thread) go
    over REST while the reader waits for that callback; the batch after ``pause()`` never reaches it."""
    n = 200
    r, kid = await attached_replay(jp_fetch, n)
    seen: list[tuple[int, int]] = []
    done = threading.Event()
    errors: list[str] = []
    try:
        @r.on_batch
        def drive(batch: Any, clock: Any) -> None:
            seen.append((int(batch.position or 0), len(batch)))
            try:
                if len(seen) == 1:
                    r.pause()  # the next row must not reach this callback before the step below
                    r.seek(row=100)
                    r.step(5)  # its rows follow this callback (the worker runs one item at a time)
                elif len(seen) == 2:
                    r.speed = "max"
                    r.play()
                    done.set()
            except Exception as exc:  # asserted below
                errors.append(f"{type(exc).__name__}: {exc}")
                done.set()

        await asyncio.to_thread(r.step, 3)
        await until(done.is_set, timeout=PROMPT, what="the callbacks to drive the replay")
        assert not errors, errors
        assert await asyncio.to_thread(r.wait, ("finished",), PROMPT) == "finished"
        assert seen[:2] == [(0, 3), (100, 5)]
        assert sum(k for _, k in seen[1:]) == n - 100
    finally:
        await asyncio.to_thread(r.close)
        await request(jp_fetch, "DELETE", "api", "kernels", kid)
