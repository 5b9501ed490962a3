"""ParquetRecorder: live feeds to Parquet, replayed by ParquetSource."""

from __future__ import annotations

import asyncio

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jupyter_replay.batch import Chunk
from jupyter_replay.exceptions import DataError, InvalidValueError
from jupyter_replay.feeds.recorder import ParquetRecorder
from jupyter_replay.feeds.redis import CatchUpSource, apublish_chunk
from jupyter_replay.sources import ParquetSource, SyntheticFeed

T0 = 1_700_000_000_000_000_000


def chunk(start: int, n: int, step: int = 1_000) -> Chunk:
    ts = T0 + (start + np.arange(n, dtype=np.int64)) * step
    return Chunk(ts, {"x": (start + np.arange(n)).astype(np.float64), "k": (start + np.arange(n)).astype(np.int32)})


def test_row_groups_are_sized_for_seek_and_replayable(tmp_path) -> None:
    path = tmp_path / "rec.parquet"
    with ParquetRecorder(path, row_group_rows=100, metadata={"symbol": "X"}) as rec:
        for start in range(0, 1_050, 70):  # chunks that do not line up with row groups
            rec.write(chunk(start, min(70, 1_050 - start)))
        assert rec.row_groups == 10 and rec.buffered_rows == 50
        assert not path.exists() and rec.partial_path.exists()  # readers never see a partial file
    assert not rec.partial_path.exists() and rec.rows_written == 1_050
    pf = pq.ParquetFile(path)
    assert pf.metadata.num_row_groups == 11
    assert [pf.metadata.row_group(g).num_rows for g in range(11)] == [100] * 10 + [50]
    assert pf.schema_arrow.field("timestamp").type == pa.timestamp("ns", tz="UTC")
    assert b"jupyter_replay" in pf.schema_arrow.metadata and b'"symbol": "X"' in pf.schema_arrow.metadata[b"jupyter_replay"]
    src = ParquetSource(path)
    assert src.num_rows == 1_050 and src.columns == ["x", "k"] and src.dtypes["k"] == np.int32
    cur = src.open(T0 + 777 * 1_000)
    assert cur.position == 777 and src.row_groups_read == 1  # one row group read to seek
    got = cur.read(10)
    assert got.ts.tolist() == [T0 + i * 1_000 for i in range(777, 787)]
    assert got.columns["x"].tolist() == [float(i) for i in range(777, 787)]
    src.close()


def test_out_of_order_rows(tmp_path) -> None:
    late = Chunk(np.array([T0 + 5, T0 + 3, T0 + 6]), {"x": np.array([1.0, 2.0, 3.0])})
    rec = ParquetRecorder(tmp_path / "a.parquet")
    with pytest.raises(DataError, match="before the previous row"):
        rec.write(late)
    rec.abort()
    assert not (tmp_path / "a.parquet").exists() and not rec.partial_path.exists()
    for mode, ts, xs in [("clamp", [5, 5, 6], [1.0, 2.0, 3.0]), ("drop", [5, 6], [1.0, 3.0])]:
        path = tmp_path / f"{mode}.parquet"
        with ParquetRecorder(path, out_of_order=mode) as rec:
            rec.write(late)
        t = pq.read_table(path)
        assert (t["timestamp"].cast(pa.int64()).to_numpy() - T0).tolist() == ts
        assert t["x"].to_pylist() == xs and rec.out_of_order_rows == 1
    with pytest.raises(DataError, match="differ"):
        with ParquetRecorder(tmp_path / "b.parquet") as rec:
            rec.write(chunk(0, 3))
            rec.write(Chunk(np.array([T0 + 10]), {"y": np.array([1.0])}))
    with pytest.raises(InvalidValueError):
        ParquetRecorder(tmp_path / "c.parquet", row_group_rows=0)


async def test_records_a_synthetic_feed(tmp_path) -> None:
    path = tmp_path / "synthetic.parquet"
    feed = SyntheticFeed("DEMO", rate_hz=500, rows_per_batch=7, seed=42)
    with ParquetRecorder(path, row_group_rows=64) as rec:
        n = await asyncio.wait_for(rec.record(feed, max_rows=300), 20)
    assert n == 300 and feed.closed
    expected = SyntheticFeed("DEMO", seed=42).next_values(300)  # same seed: same values
    src = ParquetSource(path)
    got = src.open().read(1_000)
    assert len(got) == 300 and np.all(np.diff(got.ts) >= 0)
    for name in ("price", "size", "side"):
        np.testing.assert_array_equal(got.columns[name], expected[name])
        assert got.columns[name].dtype == expected[name].dtype
    src.close()


@pytest.mark.redis
async def test_records_a_redis_stream_and_replays_it(tmp_path, redis_server, aredis, stream_name) -> None:
    data = chunk(0, 500, step=250_000)
    data = Chunk(data.ts, {**data.columns, "side": np.where(np.arange(500) % 3, 1, -1).astype(np.int8)})
    ids = await apublish_chunk(aredis, stream_name, data)
    path = tmp_path / "redis.parquet"
    src = CatchUpSource(redis_server, stream_name, T0, speed="max", page=128, block_ms=100)
    stop = asyncio.Event()
    with ParquetRecorder(path, row_group_rows=200) as rec:
        task = asyncio.ensure_future(rec.record(src, stop=stop))
        while rec.rows_written + rec.buffered_rows < 500:
            await asyncio.sleep(0.01)
        stop.set()
        assert await asyncio.wait_for(task, 5) == 500
    assert src.closed
    replay = ParquetSource(path)
    got = replay.open().read(1_000)
    np.testing.assert_array_equal(got.ts, data.ts)
    for name in ("x", "k", "side"):
        np.testing.assert_array_equal(got.columns[name], data.columns[name])
    assert [f"{m}-{s}" for m, s in zip(got.columns["entry_ms"], got.columns["entry_seq"])] == ids
    assert pq.ParquetFile(path).metadata.num_row_groups == 3
    replay.close()
