"""Attach without a copy: a kernel's Arrow IPC hand-off file, memory-mapped read-only by the server."""

from __future__ import annotations

import os
import stat

import numpy as np
import pyarrow as pa
from server_helpers import on_server_loop, ts_ns

from jupyter_replay.sources.handoff import can_hand_off, write_handoff

SESSIONS = ("replay", "api", "sessions")
T0 = 1_704_186_000_000_000_000


def rss_anon() -> int:
    """Anonymous resident memory of this process (the server runs in it): heap, not mapped files."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon in /proc/self/status")


def frame(rows: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    cols = {f"c{i}": rng.normal(100, 1, rows) for i in range(4)}
    return pa.table({
        "timestamp": pa.array(T0 + np.arange(rows, dtype=np.int64) * 1_000_000, pa.timestamp("ns", tz="UTC")),
        **cols,
        "size": rng.integers(1, 100, rows),
        "symbol": pa.array(rng.choice(["AAA", "BBB"], rows)).dictionary_encode(),
    })


@on_server_loop
async def test_handoff_replays_like_an_upload(api):
    kid = await api.start_kernel()
    sid = (await api.create(kid))["id"]
    code, info, _ = await api.request("GET", *SESSIONS, sid, "data", "handoff")
    assert code == 200 and os.path.isabs(info["dir"])
    assert stat.S_IMODE(os.stat(info["dir"]).st_mode) == 0o700
    assert can_hand_off(info["dir"], info["server_id"])  # this process shares the server's filesystem
    assert not can_hand_off(info["dir"], "another-server") and not can_hand_off("/nonexistent", info["server_id"])
    table = frame(5_000)
    name = write_handoff(table, info["dir"])
    assert stat.S_IMODE(os.stat(os.path.join(info["dir"], name)).st_mode) == 0o600
    code, model, _ = await api.request("POST", *SESSIONS, sid, "data", "handoff", body={"name": name})
    assert code == 200 and model["num_rows"] == 5_000 and model["has_data"]
    assert not os.path.exists(os.path.join(info["dir"], name))  # unlinked once mapped
    await api.ok(sid, "speed", speed="max")
    await api.ok(sid, "play")
    await api.wait_for(sid, lambda m: m["state"] == "finished")
    buf = await api.buffer(sid)
    want = table.column("timestamp").to_numpy().astype("datetime64[ns]").view(np.int64)
    np.testing.assert_array_equal(ts_ns(buf), want)
    np.testing.assert_array_equal(buf["c2"], table.column("c2").to_numpy())
    assert buf["size"].dtype == np.int64


@on_server_loop
async def test_handoff_refusals(api, replay_ext, tmp_path):
    kid = await api.start_kernel()
    sid = (await api.create(kid))["id"]
    directory = (await api.request("GET", *SESSIONS, sid, "data", "handoff"))[1]["dir"]
    for body, status, text in (
        ({"name": "../../etc/passwd"}, 400, "not a hand-off file name"),
        ({"name": "0" * 32 + ".arrow"}, 400, "no hand-off file"),
        ({"name": 7}, 400, "not a hand-off file name"),
        ({"name": "0" * 32 + ".arrow", "path": "/x"}, 400, "unknown field"),
    ):
        code, err, _ = await api.request("POST", *SESSIONS, sid, "data", "handoff", body=body)
        assert code == status and text in err["message"], (body, err)
    (tmp_path / "x").write_bytes(b"not arrow")
    bogus = "1" * 32 + ".arrow"
    os.symlink(tmp_path / "x", os.path.join(directory, bogus))
    code, err, _ = await api.request("POST", *SESSIONS, sid, "data", "handoff", body={"name": bogus})
    assert code == 400 and "private regular file" in err["message"]
    garbage = write_handoff(frame(10), directory)
    with open(os.path.join(directory, garbage), "r+b") as f:
        f.truncate(os.path.getsize(f.name) // 2)  # the footer is gone
    code, err, _ = await api.request("POST", *SESSIONS, sid, "data", "handoff", body={"name": garbage})
    assert code == 400 and "not an Arrow IPC file" in err["message"]
    replay_ext.max_mapped_bytes = 10_000
    big = write_handoff(frame(5_000), directory)
    code, err, _ = await api.request("POST", *SESSIONS, sid, "data", "handoff", body={"name": big})
    assert code == 413 and "max_mapped_bytes" in err["message"] and "bytes" in err["message"]
    assert os.listdir(directory) == ["server-id"]  # every refused file was removed too
    assert (await api.status(sid))["has_data"] is False


@on_server_loop
async def test_millions_of_rows_attach_without_growing_server_memory(api):
    rows = 4_000_000
    table = frame(rows).drop_columns(["symbol"])  # numeric columns: all zero-copy views of the mapping
    nbytes = table.nbytes
    kid = await api.start_kernel()
    sid = (await api.create(kid))["id"]
    directory = (await api.request("GET", *SESSIONS, sid, "data", "handoff"))[1]["dir"]
    name = write_handoff(table, directory)
    before = rss_anon()
    code, model, _ = await api.request("POST", *SESSIONS, sid, "data", "handoff", body={"name": name})
    grown = rss_anon() - before
    assert code == 200 and model["num_rows"] == rows
    # the data (~190 MB) stays in file-backed pages; the server's own heap grows by a small fraction
    assert grown < nbytes / 10, (grown, nbytes)
    await api.ok(sid, "seek", row=rows - 1000)
    await api.ok(sid, "step", n=1000)
    buf = await api.buffer(sid)
    np.testing.assert_array_equal(buf["c0"], table.column("c0").to_numpy()[-1000:])


@on_server_loop
async def test_budgets_count_what_the_server_materialises_not_what_it_maps(api, replay_ext):
    kid = await api.start_kernel()
    sid = (await api.create(kid))["id"]
    directory = (await api.request("GET", *SESSIONS, sid, "data", "handoff"))[1]["dir"]
    replay_ext.max_session_bytes = 100_000  # far below the 5,000-row frame's ~300 KB
    numeric = write_handoff(frame(5_000).drop_columns(["symbol"]), directory)
    code, model, _ = await api.request("POST", *SESSIONS, sid, "data", "handoff", body={"name": numeric})
    assert code == 200 and model["num_rows"] == 5_000  # mapped columns are not server memory
    text = write_handoff(frame(5_000), directory)  # the symbol column becomes Python objects on the server
    code, err, _ = await api.request("POST", *SESSIONS, sid, "data", "handoff", body={"name": text})
    assert code == 413 and "max_session_bytes" in err["message"]
    assert (await api.status(sid))["num_rows"] == 5_000  # the session kept its data
