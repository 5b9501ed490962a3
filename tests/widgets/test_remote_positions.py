"""Over the server (REST + WebSocket), a ``RemoteSession`` sees the same batch positions and
``on_reset(reason, position)`` calls as the engine (tests/engine/test_positions.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403
from remote_helpers import jp_server_config, kernel_session, request, until  # noqa: F401  (jp_server_config: a fixture)
from server_helpers import on_server_loop
from widget_helpers import trades

from jupyter_replay.sources import as_source
from jupyter_replay.widgets.remote import RemoteSession


@on_server_loop
async def test_remote_session_sees_positions_and_resets(jp_fetch, jp_serverapp):
    kid, model = await kernel_session(jp_fetch)
    remote = RemoteSession(model["server_url"], model["id"], model["client_token"])
    events: list[tuple[Any, ...]] = []
    remote.on_batch(lambda b, clock: events.append(("batch", b.position, b.first_row, len(b))))
    remote.on_reset(lambda reason, position: events.append(("reset", reason, position)))
    try:
        await asyncio.to_thread(remote.upload, as_source(trades(60)))
        await asyncio.to_thread(remote.start)
        await asyncio.to_thread(remote.step, 5)
        await until(lambda: ("batch", 0, 0, 5) in events, what="first batch")
        await asyncio.to_thread(lambda: remote.seek(row=20))
        await asyncio.to_thread(remote.step, 3)
        await until(lambda: ("batch", 20, 0, 3) in events, what="batch after the seek")
        await asyncio.to_thread(remote.stop)
        await asyncio.to_thread(remote.step, 2)
        await until(lambda: events and events[-1] == ("batch", 0, 0, 2), what="batch after the stop")
        st = await asyncio.to_thread(remote.status)
        keys = {"callback_errors", "callback_p50_ms", "callback_p99_ms", "callback_max_ms", "callback_queue"}
        assert keys <= set(st) and st["callback_p50_ms"] is not None  # the client's own callbacks' timing
        tail = [e for e in events if e != ("reset", "source", 0)]  # the upload's reset comes first
        assert tail[-5:] == [("batch", 0, 0, 5), ("reset", "seek", 20), ("batch", 20, 0, 3),
                             ("reset", "stop", 0), ("batch", 0, 0, 2)]
    finally:
        await asyncio.to_thread(remote.close)
        await request(jp_fetch, "DELETE", "api", "kernels", kid)


@on_server_loop
async def test_remote_seek_with_warmup_keeps_history_flagged(jp_fetch, jp_serverapp):
    import numpy as np
    import pandas as pd

    kid, model = await kernel_session(jp_fetch)
    remote = RemoteSession(model["server_url"], model["id"], model["client_token"])
    seen: list[tuple[bool, int, int]] = []
    remote.on_batch(lambda b, clock: seen.append((b.warmup, b.position, len(b))))
    df = pd.DataFrame({"date": pd.date_range("2000-01-31", periods=60, freq="ME"), "price": np.arange(60.0)})
    try:
        await asyncio.to_thread(remote.upload, as_source(df, time="date"))
        await asyncio.to_thread(remote.start)
        await asyncio.to_thread(lambda: remote.seek("2003-01", warmup=pd.DateOffset(years=1)))
        await asyncio.to_thread(remote.step, 2)
        await until(lambda: (False, 36, 2) in seen, what="rows after the cut")
        assert seen == [(True, 24, 12), (False, 36, 2)]
        frame = await asyncio.to_thread(remote.frame)
        assert list(frame["price"]) == [float(i) for i in range(24, 38)]
        # rows-per-second pacing is a control action over REST too
        assert await asyncio.to_thread(remote.set_rate, "50/s") == 50.0
        st = await asyncio.to_thread(remote.status)
        assert st["pacing"] == "rows" and st["rate"] == 50.0
        from jupyter_replay.exceptions import InvalidValueError

        with pytest.raises(InvalidValueError, match="rate must be rows per second"):
            await asyncio.to_thread(remote.set_rate, 0)
    finally:
        await asyncio.to_thread(remote.close)
        await request(jp_fetch, "DELETE", "api", "kernels", kid)
