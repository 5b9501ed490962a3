"""Every batch carries its source row (``Batch.position``); ``on_reset(reason, position)`` says where the
stream resumes, so a callback tells a resume from a restart (engine ``Session`` and ``ThreadedSession``)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np
import pandas as pd

from jupyter_replay import Batch, DataFrameSource, Session, ThreadedSession, wire
from jupyter_replay.batch import Mode, ResetEvent, can_merge, merge_batches


def prices(n: int = 50) -> pd.DataFrame:
    return pd.DataFrame({"timestamp": pd.date_range("2024-01-02", periods=n, freq="s"),
                         "price": np.arange(n, dtype=float)})


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.lock = threading.Lock()

    def batch(self, batch: Batch, clock: Any) -> None:
        with self.lock:
            self.events.append(("batch", batch.position, batch.first_row, len(batch), float(batch.columns["price"][0])))

    def reset(self, reason: str, position: int | None) -> None:
        with self.lock:
            self.events.append(("reset", reason, position))


def drive(host: Any) -> None:
    """step 5, seek row 20, step 3, stop, step 2: positions and resets as a strategy sees them."""
    host.step(5)
    host.seek(row=20)
    host.step(3)
    host.stop()
    host.step(2)


EXPECTED = [
    ("batch", 0, 0, 5, 0.0),
    ("reset", "seek", 20),
    ("batch", 20, 0, 3, 20.0),
    ("reset", "stop", 0),
    ("batch", 0, 0, 2, 0.0),
]


def test_engine_session_positions_and_on_reset() -> None:
    async def main() -> list[tuple[Any, ...]]:
        rec = Recorder()
        s = Session(DataFrameSource(prices()), speed="max")
        s.on_batch(rec.batch)
        s.on_reset(rec.reset)
        drive(s)
        await s.aclose()
        return rec.events

    assert asyncio.run(main()) == EXPECTED


def test_threaded_session_positions_and_on_reset() -> None:
    rec = Recorder()
    s = ThreadedSession(DataFrameSource(prices()), speed="max")
    try:
        s.on_batch(rec.batch)
        s.on_reset(rec.reset)
        drive(s)
    finally:
        s.close()
    assert rec.events == EXPECTED


def test_live_to_replay_resumes_where_it_was() -> None:
    async def main() -> list[tuple[Any, ...]]:
        rec = Recorder()
        s = Session(DataFrameSource(prices()), speed="max")
        s.on_reset(rec.reset)
        s.on_batch(rec.batch)
        s.step(20)
        s.set_mode("live")
        s.set_mode("replay")
        s.step(1)
        await s.aclose()
        return [e for e in rec.events if e[0] == "reset" or (e[1] is not None and e[4] >= 0)]

    events = asyncio.run(main())
    resets = [e for e in events if e[0] == "reset"]
    assert resets == [("reset", "mode", 0), ("reset", "mode", 20)]
    assert events[-1][:4] == ("batch", 20, 0, 1)  # resumed at source row 20, stream row 0


def test_failing_on_reset_is_counted_not_fatal() -> None:
    async def main() -> dict:
        s = Session(DataFrameSource(prices()), speed="max")
        s.on_reset(lambda reason, position: 1 / 0)
        s.step(2)
        s.stop()
        s.step(2)
        st = s.status()
        await s.aclose()
        return st

    st = asyncio.run(main())
    assert st["callback_errors"] == 1 and "on_reset" in st["error"]


def test_position_travels_in_frames_and_reset_messages() -> None:
    b = Batch(3, "s", Mode.REPLAY, np.arange(4, dtype=np.int64) + 10**18, {"x": np.arange(4.0)}, 0, 17)
    header, _ = wire.decode_frame(wire.encode_batch(b))
    assert header["position"] == 17 and "warmup" not in header
    w = Batch(3, "s", Mode.REPLAY, b.ts, b.columns, 0, 17, True)
    assert wire.decode_frame(wire.encode_batch(w))[0]["warmup"] is True
    assert wire.reset_message(ResetEvent(4, "s", Mode.REPLAY, "seek", position=20))["position"] == 20


def test_merge_rule_keeps_positions_and_warmup_apart() -> None:
    ts = np.arange(2, dtype=np.int64)
    a = Batch(1, "s", Mode.REPLAY, ts, {"x": np.zeros(2)}, 0, 10)
    b = Batch(2, "s", Mode.REPLAY, ts + 2, {"x": np.zeros(2)}, 2, 12)
    assert can_merge(a, b) and merge_batches([a, b]).position == 10
    assert not can_merge(a, Batch(2, "s", Mode.REPLAY, ts + 2, {"x": np.zeros(2)}, 2, 30))  # a jump in the source
    assert not can_merge(Batch(1, "s", Mode.REPLAY, ts, {"x": np.zeros(2)}, 0, 10, True), b)  # warm-up | live rows
