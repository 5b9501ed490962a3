"""Redis Streams sources against a real redis-server: replay by time, live tail, catch-up to live."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from jupyter_replay.batch import Chunk
from jupyter_replay.controller import ReplayController
from jupyter_replay.exceptions import DataError, FeedError, InvalidValueError
from jupyter_replay.feeds.redis import (
    CatchUpSource,
    RedisStreamReplay,
    RedisStreamSource,
    apublish_chunk,
    catch_up_then_live,
    parse_entry_id,
    publish_chunk,
    time_to_id,
)
from jupyter_replay.timer import TestTimer
from feed_helpers import collect

pytestmark = pytest.mark.redis

T0 = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z in ns


def trades(n: int, start_ns: int = T0, step_ns: int = 250_000, seed: int = 0) -> Chunk:
    """``n`` rows, 4 per millisecond (so several entries share an id millisecond)."""
    rng = np.random.default_rng(seed)
    ts = start_ns + np.arange(n, dtype=np.int64) * step_ns
    return Chunk(ts, {
        "price": 100 + np.cumsum(rng.normal(0, 0.1, n)),
        "size": rng.integers(1, 100, n).astype(np.int64),
        "side": rng.choice(np.array([-1, 1], dtype=np.int8), n),
        "flag": rng.random(n) > 0.5,
    })


def ids_of(chunk: Chunk) -> list[tuple[int, int]]:
    return list(zip(chunk.columns["entry_ms"].tolist(), chunk.columns["entry_seq"].tolist()))


# --- ids and publishing -------------------------------------------------------------------------


def test_entry_id_helpers() -> None:
    assert parse_entry_id(b"1700000000000-3") == (1_700_000_000_000, 3)
    assert parse_entry_id("5") == (5, 0)
    assert time_to_id(T0 + 999_999) == "1700000000000-0"
    assert time_to_id(T0, end=True) == "1700000000000-18446744073709551615"


def test_publish_roundtrip_keeps_values_and_dtypes(redis_server: str, sredis, stream_name: str) -> None:
    chunk = trades(200)
    ids = publish_chunk(sredis, stream_name, chunk)
    assert len(ids) == 200 and ids[0] == "1700000000000-0" and ids[4] == "1700000000001-0"
    src = RedisStreamReplay(redis_server, stream_name)
    assert src.num_rows == 200 and (src.start_ns, src.end_ns) == (int(chunk.ts[0]), int(chunk.ts[-1]))
    assert src.columns == ["price", "size", "side", "flag", "entry_ms", "entry_seq"]
    got = src.open().read(1000)
    np.testing.assert_array_equal(got.ts, chunk.ts)
    for name in ("price", "size", "side", "flag"):
        assert got.columns[name].dtype == chunk.columns[name].dtype, name
        np.testing.assert_array_equal(got.columns[name], chunk.columns[name])  # floats exact via repr
    assert [f"{m}-{s}" for m, s in ids_of(got)] == ids
    assert src.last_id == ids[-1]


def test_publish_refuses_going_back_in_time(sredis, stream_name: str) -> None:
    publish_chunk(sredis, stream_name, trades(10, start_ns=T0 + 10**9))
    with pytest.raises(FeedError, match="XADD"):
        publish_chunk(sredis, stream_name, trades(10))


# --- replay by time -----------------------------------------------------------------------------


def test_replay_reads_exactly_the_time_range_in_pages(redis_server: str, sredis, stream_name: str) -> None:
    chunk = trades(2_000)  # 500 ms of data
    publish_chunk(sredis, stream_name, chunk)
    start, end = T0 + 100_250_000, T0 + 299_500_000  # mid-millisecond bounds: filtered by the exact ts
    src = RedisStreamReplay(redis_server, stream_name, start=start, end=end, page=64)
    expected = (chunk.ts >= start) & (chunk.ts <= end)
    assert src.num_rows == int(expected.sum())
    assert src.start_ns == start and src.end_ns == end
    cursor = src.open()
    got = Chunk.concat([cursor.read(100) for _ in range(src.num_rows // 100 + 2)])
    np.testing.assert_array_equal(got.ts, chunk.ts[expected])
    np.testing.assert_array_equal(got.columns["price"], chunk.columns["price"][expected])
    # open(at) positions at the first row >= at, read_until respects time and limit
    cur = src.open(T0 + 200_000_000)
    assert cur.position == int(np.searchsorted(chunk.ts[expected], T0 + 200_000_000))
    part = cur.read_until(T0 + 201_000_000, limit=3)
    assert len(part) == 3 and part.ts[0] == T0 + 200_000_000
    rest = cur.read_until(T0 + 201_000_000, limit=100)
    assert rest.ts[-1] == T0 + 201_000_000 and cur.peek_ns() == T0 + 201_250_000


def test_replay_of_empty_range_is_a_data_error(redis_server: str, sredis, stream_name: str) -> None:
    publish_chunk(sredis, stream_name, trades(10))
    with pytest.raises(DataError, match="no entries"):
        RedisStreamReplay(redis_server, stream_name, start=T0 + 10**10)
    with pytest.raises(InvalidValueError):
        RedisStreamReplay(redis_server, stream_name, start=T0 + 10, end=T0)
    with pytest.raises(DataError, match="max_rows"):
        RedisStreamReplay(redis_server, stream_name, page=3, max_rows=5)


async def test_replay_aload_and_paced_release_in_order(redis_server: str, aredis, stream_name: str) -> None:
    chunk = trades(400)
    await apublish_chunk(aredis, stream_name, chunk)
    src = await RedisStreamReplay.aload(redis_server, stream_name, start=T0, end=T0 + 49_999_999, page=50)
    assert src.num_rows == 200
    timer = TestTimer()
    released: list[tuple[int, Chunk]] = []  # (timer ns since play, chunk)
    ctl = ReplayController(src, emit=lambda c: released.append((timer.now(), c)), timer=timer,
                           speed=1.0, frame_ns=1_000_000)
    ctl.play()
    await timer.run_until_idle(limit_ns=200_000_000)
    out = Chunk.concat([c for _, c in released])
    np.testing.assert_array_equal(out.ts, chunk.ts[:200])  # all rows, once, in time order
    assert len(released) > 10  # paced over 50 ms, not dumped at once
    for wall, c in released:  # never early: a row comes out once 1x data time has reached it
        assert int(c.ts[-1]) - T0 <= wall
    await ctl.aclose()


# --- live tail ----------------------------------------------------------------------------------


async def test_live_tail_delivers_new_entries_only(redis_server: str, aredis, stream_name: str) -> None:
    await apublish_chunk(aredis, stream_name, trades(5))  # history: not part of a "$" tail
    src = RedisStreamSource(redis_server, stream_name, symbol="X", block_ms=100)
    assert src.columns == [] and src.symbol == "X"
    live = trades(30, start_ns=T0 + 10**9)
    got: list[Chunk] = []

    async def consume() -> None:
        n = 0
        async for c in src.batches():
            got.append(c)
            n += len(c)
            if n >= 30:
                break

    task = asyncio.ensure_future(consume())
    await asyncio.sleep(0.2)  # the tail is blocked in XREAD now
    for i in range(0, 30, 10):
        await apublish_chunk(aredis, stream_name, live.slice(i, i + 10))
        await asyncio.sleep(0.02)
    await asyncio.wait_for(task, 10)
    out = Chunk.concat(got)
    np.testing.assert_array_equal(out.ts, live.ts)
    np.testing.assert_array_equal(out.columns["side"], live.columns["side"])
    assert out.columns["side"].dtype == np.int8  # schema hash read at start
    assert src.columns[:4] == ["price", "size", "side", "flag"]
    await src.aclose()
    assert src.closed


async def test_live_tail_from_id_and_close_while_blocked(redis_server: str, aredis, stream_name: str) -> None:
    ids = await apublish_chunk(aredis, stream_name, trades(10))
    src = RedisStreamSource(redis_server, stream_name, {"price": "float64"}, start_id=ids[4], block_ms=5_000)
    assert src.columns == ["price", "entry_ms", "entry_seq"]
    chunks = await collect(src, 5)
    assert [f"{m}-{s}" for c in chunks for m, s in ids_of(c)] == ids[5:]
    # a consumer blocked in XREAD (5 s) ends promptly when the source is closed
    got_more: list[Chunk] = []

    async def consume() -> None:
        async for c in src_b.batches():
            got_more.append(c)

    src_b = RedisStreamSource(redis_server, stream_name, block_ms=5_000)
    task = asyncio.ensure_future(consume())
    await asyncio.sleep(0.2)
    t = time.monotonic()
    await src_b.aclose()
    await asyncio.wait_for(task, 2)
    assert time.monotonic() - t < 2 and got_more == []
    await src.aclose()


async def test_batches_iterates_once(redis_server: str, stream_name: str) -> None:
    src = RedisStreamSource(redis_server, stream_name, ["price"], block_ms=50)
    it = src.batches()
    task = asyncio.ensure_future(it.__anext__())
    await asyncio.sleep(0.1)
    with pytest.raises(FeedError, match="only once"):
        await src.batches().__anext__()
    await src.aclose()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(task, 2)


# --- catch up, then live ------------------------------------------------------------------------


async def test_catch_up_then_live_is_gapless(redis_server: str, aredis, stream_name: str) -> None:
    """History (2 s) replayed at 5x while a publisher keeps writing; then live: every id once, in order."""
    now = time.time_ns()
    history = trades(400, start_ns=now - 2_000_000_000, step_ns=5_000_000)  # 2 s back until now
    await apublish_chunk(aredis, stream_name, history)
    start = int(history.ts[40])  # from 1.8 s ago
    stop_publishing = asyncio.Event()
    published: list[str] = []

    async def publisher() -> None:  # ~200 rows/s with wall-clock ids during catch-up and after
        i = 0
        while not stop_publishing.is_set():
            c = trades(2, start_ns=time.time_ns(), step_ns=1_000, seed=i)
            published.extend(await apublish_chunk(aredis, stream_name, c, ids="auto", write_schema=False))
            i += 1
            await asyncio.sleep(0.01)

    handovers: list[str | None] = []
    src = catch_up_then_live(redis_server, stream_name, start, speed=5, page=64, on_live=handovers.append,
                             block_ms=200)
    assert isinstance(src, CatchUpSource)
    pub = asyncio.ensure_future(publisher())
    received: list[tuple[int, int]] = []
    phases: list[str] = []

    async def consume() -> None:
        async for c in src.batches():
            received.extend(ids_of(c))
            phases.append(src.phase)

    async def until(cond) -> None:
        while not cond():
            await asyncio.sleep(0.01)

    consumer = asyncio.ensure_future(consume())
    await asyncio.wait_for(until(lambda: src.live_rows >= 20), 20)
    stop_publishing.set()
    await pub
    last = parse_entry_id(published[-1])
    await asyncio.wait_for(until(lambda: bool(received) and received[-1] == last), 10)
    await src.aclose()
    await asyncio.wait_for(consumer, 5)
    everything = [parse_entry_id(e[0]) for e in await aredis.xrange(stream_name, min=time_to_id(start))]
    assert received == everything  # no gap, no duplicate, same order
    assert all(a < b for a, b in zip(received, received[1:]))  # strictly increasing ids
    assert "catch_up" in phases and "live" in phases and phases.index("live") > 0
    assert src.catch_up_rows >= 360 and src.live_rows >= 20
    assert handovers == [src.handover_id] and src.handover_id is not None
    assert len(published) > 20  # the publisher really wrote during the run


async def test_catch_up_paces_by_data_time(redis_server: str, aredis, stream_name: str) -> None:
    """With a manual timer, rows 1 s apart at speed 4 are released 250 ms of timer time apart."""
    c = trades(5, start_ns=T0, step_ns=1_000_000_000)
    await apublish_chunk(aredis, stream_name, c)
    timer = TestTimer(start_ns=10**12)
    src = CatchUpSource(redis_server, stream_name, T0, speed=4, timer=timer, frame_ns=1_000_000, block_ms=100)
    released: list[tuple[int, int]] = []  # (timer ns - start, row ts - T0)

    async def consume() -> None:
        async for chunk in src.batches():
            released.extend((timer.now() - 10**12, int(t) - T0) for t in chunk.ts)
            if len(released) == 5:
                return

    task = asyncio.ensure_future(consume())
    while not task.done():
        await asyncio.sleep(0.01)
        # manual time moves only while the source sleeps on it: while it waits on redis (real I/O, slow on
        # a loaded machine) the timer stands still, so I/O time never shows up as lateness
        if timer.next_deadline is not None:
            await timer.run_until_idle(limit_ns=timer.now() + 50_000_000)
    await task
    await src.aclose()
    assert [r[1] for r in released] == [i * 10**9 for i in range(5)]
    for wall, data in released:  # never early, at most one frame (+ a timer step) late
        assert data / 4 <= wall <= data / 4 + 51_000_000


def test_catch_up_speed_must_reach_live(redis_server: str, stream_name: str) -> None:
    for bad in (1, 0.5, "slow", float("nan"), "inf", "fastest", True, 10**400, "9" * 10_000):
        with pytest.raises(InvalidValueError):
            CatchUpSource(redis_server, stream_name, T0, speed=bad)
    assert CatchUpSource(redis_server, stream_name, T0, speed="max").speed == float("inf")
    assert CatchUpSource(redis_server, stream_name, T0, speed="2.5x").speed == 2.5  # the one speed grammar
    assert CatchUpSource(redis_server, stream_name, T0, speed=5000).speed == 5000.0  # no upper bound for catch-up
    with pytest.raises(InvalidValueError) as info:
        CatchUpSource(redis_server, stream_name, T0, speed="9" * 10_000)
    assert len(str(info.value)) < 300  # the message never echoes unbounded input


async def test_catch_up_with_no_history_goes_live_without_loss(redis_server: str, aredis, stream_name: str) -> None:
    src = CatchUpSource(redis_server, stream_name, time.time_ns(), ["price"], speed="max", block_ms=100)
    task = asyncio.ensure_future(collect(src, 3))
    await asyncio.sleep(0.2)
    assert src.phase == "live"
    await apublish_chunk(aredis, stream_name, Chunk(np.array([1, 2, 3]) + time.time_ns(),
                                                    {"price": np.array([1.0, 2.0, 3.0])}))
    chunks = await task
    np.testing.assert_array_equal(Chunk.concat(chunks).columns["price"], [1.0, 2.0, 3.0])
    await src.aclose()


async def test_live_tail_survives_a_killed_connection(redis_server: str, aredis, stream_name: str) -> None:
    """The server drops the tail's connection: it reconnects and resumes after the last id, losing nothing."""
    src = RedisStreamSource(redis_server, stream_name, ["price"], block_ms=200, backoff_initial=0.01,
                            client_name="tail-under-test")
    task = asyncio.ensure_future(collect(src, 10))
    await asyncio.sleep(0.3)
    t0 = time.time_ns()
    ids = await apublish_chunk(aredis, stream_name, Chunk(t0 + np.arange(5), {"price": np.arange(5.0)}))
    await asyncio.sleep(0.2)
    assert await aredis.execute_command("CLIENT", "KILL", "SKIPME", "yes", "TYPE", "normal") >= 1
    # also entries written while the tail is disconnected
    ids += await apublish_chunk(aredis, stream_name, Chunk(t0 + 5 + np.arange(5), {"price": 5 + np.arange(5.0)}))
    chunks = await task
    assert [f"{m}-{s}" for c in chunks for m, s in ids_of(c)] == ids
    names = [c.get("name") for c in await aredis.client_list()]
    assert "tail-under-test" in names  # reconnected (with its name)
    await src.aclose()
