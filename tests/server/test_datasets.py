"""Dataset sources over REST: data_dirs covers directories and globs, data_urls allow-lists object storage."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from data_helpers import put_parquet, s3_server, write_dataset
from server_helpers import on_server_loop, ts_ns

SESSIONS = ("replay", "api", "sessions")
BUCKET = "replay-srv"


async def refused(api, kid, source) -> tuple[int, dict]:
    code, err, _ = await api.request("POST", *SESSIONS, body={"kernel_id": kid, "source": source})
    return code, err


@on_server_loop
async def test_dataset_in_data_dirs(api, jp_root_dir, tmp_path):
    expected = write_dataset(jp_root_dir / "ticks")
    outside = tmp_path / "outside"
    write_dataset(outside, days=1)
    (jp_root_dir / "escape").symlink_to(outside)

    k1, k2, k3 = await api.start_kernel(), await api.start_kernel(), await api.start_kernel()
    model = await api.create(k1, source={"kind": "dataset", "path": "ticks", "symbols": ["BBB"]})
    assert model["num_rows"] == 120
    await api.ok(k1, "speed", speed="max")
    await api.ok(k1, "play")
    await api.wait_for(k1, lambda m: m["state"] == "finished")
    buf = await api.buffer(k1)
    want = expected[expected.symbol == "BBB"]
    np.testing.assert_array_equal(ts_ns(buf), want.timestamp.astype("int64"))
    np.testing.assert_array_equal(buf["price"], want.price)

    glob = await api.create(k2, source={"kind": "dataset", "path": "ticks/date=2024-01-03/*/*.parquet"})
    assert glob["num_rows"] == 180

    for path in ("escape", "../outside", str(outside), "ticks/../../outside", "ticks/*/../../../outside/*"):
        code, err = await refused(api, k3, {"kind": "dataset", "path": path})
        assert code == 403 and "outside the allowed" in err["message"], (path, err)
    code, err = await refused(api, k3, {"kind": "dataset", "path": "s3://bucket/ticks/"})
    assert code == 403 and "data_urls" in err["message"]
    for bad in (
        {"kind": "dataset", "path": "ticks", "symbols": "BBB"},
        {"kind": "dataset", "path": "ticks", "filter": "price > 1"},
        {"kind": "dataset", "path": "missing"},
        {"kind": "dataset", "path": "ticks", "time": "nope"},
    ):
        code, err = await refused(api, k3, bad)
        assert code == 400 and err["message"], (bad, err)


@pytest.fixture
def s3_ticks(tmp_path, monkeypatch, replay_ext):
    """``s3://replay-srv/ticks/`` (moto on loopback), credentials in the server's environment."""
    with s3_server(BUCKET) as (_, env):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        root = tmp_path / "ticks"
        expected = write_dataset(root, days=1)
        for f in sorted(root.rglob("*.parquet")):
            put_parquet(env, BUCKET, "ticks/" + f.relative_to(root).as_posix(), pq.read_table(f, partitioning=None))
        put_parquet(env, BUCKET, "private/x.parquet", pq.read_table(f, partitioning=None))
        replay_ext.data_urls = [f"s3://{BUCKET}/ticks"]
        yield expected


@on_server_loop
async def test_object_storage_allow_list(api, s3_ticks):
    k1, k2 = await api.start_kernel(), await api.start_kernel()
    model = await api.create(k1, source={"kind": "dataset", "path": f"s3://{BUCKET}/ticks/", "symbols": ["AAA"]})
    assert model["num_rows"] == 60
    await api.ok(k1, "speed", speed="max")
    await api.ok(k1, "play")
    await api.wait_for(k1, lambda m: m["state"] == "finished")
    want = s3_ticks[s3_ticks.symbol == "AAA"]
    np.testing.assert_array_equal(ts_ns(await api.buffer(k1)), want.timestamp.astype("int64"))
    for url in (f"s3://{BUCKET}/private/", f"s3://{BUCKET}/ticks/../private/", f"s3://{BUCKET}/ticksX/",
                f"gs://{BUCKET}/ticks/"):
        code, err = await refused(api, k2, {"kind": "dataset", "path": url})
        assert code == 403 and "data_urls" in err["message"], (url, err)
