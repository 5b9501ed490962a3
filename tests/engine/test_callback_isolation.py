"""Each client's callbacks run on its own worker behind a bounded queue: a stalled callback holds back its
own replay only (no rows lost), never another replay on the same loop, and never a control call."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np
import pandas as pd

from jupyter_replay import DataFrameSource, Session, State, ThreadedSession

TIMING_KEYS = {"callback_errors", "callback_p50_ms", "callback_p99_ms", "callback_max_ms", "callback_queue"}


def rows(n: int, step_ms: int = 10) -> DataFrameSource:
    ts = pd.Timestamp("2024-01-02") + pd.to_timedelta(np.arange(n) * step_ms, unit="ms")
    return DataFrameSource(pd.DataFrame({"timestamp": ts, "price": np.arange(n, dtype=float)}))


def until(pred: Any, timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while not (value := pred()):
        assert time.monotonic() < deadline, f"timed out waiting for {what or pred}"
        time.sleep(0.01)
    return value


def test_a_stalled_callback_holds_back_its_own_replay_only() -> None:
    release = threading.Event()
    got: list[int] = []
    a = ThreadedSession(rows(2_000), speed=20, callback_queue=2)
    b = ThreadedSession(rows(500), speed=20)  # same process-wide loop as a
    try:
        @a.on_batch
        def stalled(batch: Any, clock: Any) -> None:
            release.wait(60)
            got.append(len(batch))

        b_rows: list[int] = []
        b.on_batch(lambda batch, clock: b_rows.append(len(batch)))
        a.play()
        until(lambda: a.status()["callback_queue"] >= 2, what="a's queue to fill")
        b.play()
        assert b.wait(timeout=60) is State.FINISHED  # b runs to the end while a's callback is stalled
        assert sum(b_rows) == 500
        st = a.status()
        assert st["state"] == "playing" and st["position"] < 2_000  # a waits for its callback (back-pressure)
        assert st["callback_queue"] <= 3  # bounded: capacity 2 queued + 1 running
        # a control returns at once while the callback is stalled
        done = threading.Event()
        threading.Thread(target=lambda: (a.pause(), done.set()), daemon=True).start()
        assert done.wait(30), "pause() blocked behind a stalled callback"
        release.set()
        a.play()
        assert a.wait(timeout=60) is State.FINISHED
        assert sum(got) == 2_000  # nothing lost: every row reached the callback once
    finally:
        release.set()
        a.close()
        b.close()


def test_callback_timing_and_queue_are_status_keys_on_every_in_process_host() -> None:
    async def engine() -> dict:
        s = Session(rows(50), speed="max")
        s.on_batch(lambda b, c: None)
        s.step(10)
        st = s.status()
        await s.aclose()
        return st

    st_engine = asyncio.run(engine())
    t = ThreadedSession(rows(50), speed="max")
    try:
        before = t.status()
        t.on_batch(lambda b, c: time.sleep(0.002))
        t.step(10)
        t.step(10)
        st_threaded = t.status()
    finally:
        t.close()
    for st in (st_engine, st_threaded, before):
        assert TIMING_KEYS <= set(st)
    assert before["callback_p50_ms"] is None and before["callback_queue"] == 0
    assert st_threaded["callback_p50_ms"] >= 2.0 and st_threaded["callback_max_ms"] >= st_threaded["callback_p50_ms"]
    assert st_threaded["callback_queue"] == 0  # step returns after the callbacks of its rows ran
    assert st_engine["callback_p50_ms"] is not None


def test_a_callback_may_call_controls_of_its_own_session() -> None:
    s = ThreadedSession(rows(200), speed="max")
    seen: list[int] = []
    try:
        @s.on_batch
        def stop_after_first(batch: Any, clock: Any) -> None:
            seen.append(len(batch))
            if len(seen) == 1:
                s.pause()  # from the worker thread: no deadlock

        s.step(5)
        s.play()
        assert s.wait(timeout=30) in (State.PAUSED, State.FINISHED)
        assert seen[0] == 5
    finally:
        s.close()
