"""Attach without a copy: a kernel on the server's host hands its data over as a mapped Arrow IPC file;
a kernel that cannot see the server's hand-off directory uploads over HTTP. Same data either way."""

from __future__ import annotations

import asyncio
import os

import numpy as np
import pandas as pd
import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403  (jp_serverapp, jp_fetch, ... for this module)
from remote_helpers import attach, new_kernel, request, until
from server_helpers import on_server_loop
from traitlets.config import Config
from widget_helpers import RecordingReplay

from jupyter_replay.sources.handoff import SERVER_ID_FILE
from jupyter_replay.widgets.remote import RemoteSession


@pytest.fixture
def jp_server_config() -> Config:
    # a hand-off file may be larger than any HTTP body the server accepts
    return Config({"ServerApp": {"jpserver_extensions": {"jupyter_replay.server": True}},
                   "ReplayExtension": {"max_body_bytes": 1024 * 1024}})


def big_frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame({
        "timestamp": pd.date_range("2024-01-02 09:30", periods=rows, freq="1ms", tz="UTC"),
        "price": 100 + np.cumsum(rng.standard_normal(rows)) * 0.01,
        "bid": rng.normal(99, 1, rows),
        "ask": rng.normal(101, 1, rows),
        "size": rng.integers(1, 100, rows),
        "symbol": rng.choice(["AAA", "BBB", "CCC"], rows),
    })


@on_server_loop
async def test_millions_of_rows_attach_through_the_mapped_file(jp_fetch, jp_serverapp):
    rows = 3_000_000  # ~150 MB: far above max_body_bytes (1 MiB), so an upload would be refused
    df = big_frame(rows)
    kid = await new_kernel(jp_fetch)
    r = await asyncio.to_thread(lambda: RecordingReplay(df, speed=10).render())
    try:
        await attach(jp_fetch, r, kid)
        assert r.attached == kid and isinstance(r.session, RemoteSession)
        assert r.session.handoff_used is True
        code, model = await request(jp_fetch, "GET", "replay", "api", "sessions", kid)
        assert model["num_rows"] == rows and model["has_data"]
        await asyncio.to_thread(r.seek, row=rows - 500)
        await asyncio.to_thread(r.step, 500)
        await until(lambda: len(r.buffer) == 500, what="the last 500 rows mirrored")
        assert r.buffer["price"].tolist() == df["price"].iloc[-500:].tolist()
        assert r.buffer["size"].dtype == np.int64
        code, where = await request(jp_fetch, "GET", "replay", "api", "sessions", kid, "data", "handoff")
        directory = where["dir"]
        assert code == 200
        assert os.listdir(directory) == [SERVER_ID_FILE]  # the file was unlinked once mapped
    finally:
        await asyncio.to_thread(r.close)


@on_server_loop
async def test_a_kernel_that_cannot_see_the_directory_uploads(jp_fetch, jp_serverapp):
    df = big_frame(2_000)
    kid = await new_kernel(jp_fetch)
    code, model = await request(jp_fetch, "POST", "replay", "api", "sessions", body={"kernel_id": kid})
    assert code == 201
    code, where = await request(jp_fetch, "GET", "replay", "api", "sessions", kid, "data", "handoff")
    directory = where["dir"]
    os.unlink(os.path.join(directory, SERVER_ID_FILE))  # as on another host: the server's id is not there
    r = await asyncio.to_thread(lambda: RecordingReplay(df).render())
    try:
        await attach(jp_fetch, r, kid)
        assert r.attached == kid and r.session.handoff_used is False
        code, model = await request(jp_fetch, "GET", "replay", "api", "sessions", kid)
        assert model["num_rows"] == 2_000
        await asyncio.to_thread(r.step, 2_000)
        await until(lambda: len(r.buffer) == 2_000, what="rows mirrored")
        assert r.buffer["ask"].tolist() == df["ask"].tolist()
    finally:
        await asyncio.to_thread(r.close)


@on_server_loop
async def test_polars_input_attaches_with_the_buffer_pandas_gives(jp_fetch, jp_serverapp):
    import polars as pl

    df = big_frame(3_000)
    kid = await new_kernel(jp_fetch)
    r = await asyncio.to_thread(lambda: RecordingReplay(pl.from_pandas(df)).render())
    try:
        local = await asyncio.to_thread(lambda: (r.step(100), r.buffer.copy())[1])
        await attach(jp_fetch, r, kid)
        assert r.attached == kid and r.session.handoff_used is True
        await asyncio.to_thread(r.step, 2_900)
        await until(lambda: len(r.buffer) == 3_000, what="every row mirrored")
        for name in ("price", "bid", "ask", "size"):
            assert r.buffer[name].tolist() == df[name].tolist()
            assert r.buffer[name].dtype == df[name].dtype
        assert local["price"].tolist() == df["price"].iloc[:100].tolist()  # the kernel-local path too
    finally:
        await asyncio.to_thread(r.close)
