"""ReplayController and Session controls on a virtual timer (no wall time involved)."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pandas as pd
import pytest

from jupyter_replay import (
    Batch,
    IllegalTransitionError,
    InvalidValueError,
    Mode,
    ResetEvent,
    Session,
    State,
    StateEvent,
    TestTimer,
)
from jupyter_replay.sources import DataFrameSource

SEC = 1_000_000_000
T0 = pd.Timestamp("2024-01-02 09:30", tz="UTC")


def frame(n: int = 100, step: str = "1s") -> pd.DataFrame:
    ts = pd.date_range(T0, periods=n, freq=step)
    return pd.DataFrame({"timestamp": ts, "price": np.arange(n, dtype=float), "size": np.arange(n) % 7})


class Recorder:
    """Collects a session's events and checks sequence numbers and row accounting."""

    def __init__(self, session: Session) -> None:
        self.events: list = []
        session.subscribe(self.events.append)

    @property
    def batches(self) -> list[Batch]:
        return [e for e in self.events if isinstance(e, Batch)]

    def prices(self) -> list[float]:
        return [float(p) for b in self.batches for p in b.columns["price"]]

    def check_sequence(self) -> None:
        seqs = [e.seq for e in self.events]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "gap or duplicate in seq"
        expected_first = 0
        for e in self.events:
            if isinstance(e, ResetEvent):
                expected_first = 0
            elif isinstance(e, Batch):
                assert e.first_row == expected_first
                expected_first = e.last_row


@pytest.fixture
def timer() -> TestTimer:
    return TestTimer()


def make(timer: TestTimer, n: int = 100, step: str = "1s", **kw) -> tuple[Session, Recorder]:
    s = Session(DataFrameSource(frame(n, step)), timer=timer, **kw)
    return s, Recorder(s)


async def test_play_releases_rows_on_time(timer: TestTimer) -> None:
    s, rec = make(timer, frame_ns=0)
    s.play()
    await timer.run_until_idle(limit_ns=int(2.5 * SEC))
    assert rec.prices() == [0.0, 1.0, 2.0]  # rows at t=0,1,2 s; the row at 3 s is not due yet
    assert s.state is State.PLAYING
    await timer.run_until_idle()
    assert rec.prices() == [float(i) for i in range(100)]
    assert s.state is State.FINISHED
    assert len(s.frame()) == 100
    rec.check_sequence()


async def test_never_early_and_pause_holds(timer: TestTimer) -> None:
    s, rec = make(timer, frame_ns=0)
    s.play()
    await timer.run_until_idle(limit_ns=SEC // 2)
    assert rec.prices() == [0.0]
    s.pause()
    await timer.run_until_idle(limit_ns=50 * SEC)
    assert rec.prices() == [0.0] and s.state is State.PAUSED
    s.play()  # resumes where data time stopped: the next row is 0.5 s of data time later
    await timer.run_until_idle(limit_ns=timer.now() + SEC // 2 - 1)
    assert rec.prices() == [0.0]
    await timer.run_until_idle(limit_ns=timer.now() + 1)
    assert rec.prices() == [0.0, 1.0]


async def test_speed_scales_wall_time(timer: TestTimer) -> None:
    s, rec = make(timer, frame_ns=0, speed=10)
    s.play()
    await timer.run_until_idle(limit_ns=SEC)  # 1 wall second = 10 data seconds
    assert rec.prices() == [float(i) for i in range(11)]
    s.set_speed(0.5)
    await timer.run_until_idle(limit_ns=3 * SEC)  # 2 more wall seconds = 1 data second
    assert rec.prices()[-1] == 11.0


async def test_max_speed_releases_everything_without_waiting(timer: TestTimer) -> None:
    s, rec = make(timer, n=200_000, speed="max")
    s.play()
    for _ in range(50):
        await asyncio.sleep(0)
    assert s.state is State.FINISHED
    assert timer.now() == 0
    assert sum(len(b) for b in rec.batches) == 200_000
    assert len(rec.batches) < 10  # columnar batches, not rows
    assert s.status()["speed"] == "max"
    assert len(s.frame()) == 100_000  # bounded buffer keeps the most recent rows
    assert s.frame()["price"].iloc[-1] == 199_999


async def test_frame_coalescing(timer: TestTimer) -> None:
    # 1000 rows 1 ms apart at 100x = 10 us apart on the wall: one batch per 16.7 ms frame.
    s, rec = make(timer, n=10_000, step="1ms", speed=100, frame_ns=16_666_667)
    s.play()
    await timer.run_until_idle()
    sizes = [len(b) for b in rec.batches]
    assert sum(sizes) == 10_000
    # 10 000 rows over 100 ms of wall time: about 6 frames, not 10 000 batches
    assert 2 <= len(sizes) <= 10
    rec.check_sequence()


async def test_stop_rewinds_and_clears(timer: TestTimer) -> None:
    s, rec = make(timer, frame_ns=0)
    s.play()
    await timer.run_until_idle(limit_ns=5 * SEC)
    s.stop()
    assert s.state is State.STOPPED and len(s.frame()) == 0 and s.status()["position"] == 0
    assert isinstance(rec.events[-2], ResetEvent) and rec.events[-2].reason == "stop"
    with pytest.raises(IllegalTransitionError):
        s.pause()
    rec.check_sequence()


async def test_step_rows_and_duration(timer: TestTimer) -> None:
    s, rec = make(timer)
    assert s.step() == 1
    assert s.step(3) == 3
    assert rec.prices() == [0.0, 1.0, 2.0, 3.0]
    assert s.state is State.PAUSED
    assert s.step(duration="2s") == 2  # rows at 4 s and 5 s
    assert rec.prices()[-1] == 5.0
    s.play()
    with pytest.raises(IllegalTransitionError, match="pause first"):
        s.step()
    for bad in (0, -1, 1.5, "2", True):
        s.pause()
        with pytest.raises(InvalidValueError):
            s.step(bad)
    with pytest.raises(InvalidValueError):
        s.step(duration="-1s")
    rec.check_sequence()


async def test_step_to_end_finishes(timer: TestTimer) -> None:
    s, _ = make(timer, n=3)
    assert s.step(10) == 3
    assert s.state is State.FINISHED
    with pytest.raises(IllegalTransitionError):
        s.step()
    s.play()  # play after the end starts over
    assert s.state is State.PLAYING and s.status()["position"] == 0


async def test_seek_timestamp_and_fraction(timer: TestTimer) -> None:
    s, rec = make(timer, frame_ns=0)
    assert s.seek(T0 + pd.Timedelta(seconds=50)) == 50
    assert s.step() == 1 and rec.prices() == [50.0]
    assert s.seek(fraction=0.25) == 25  # 99 s range: 24.75 s rounds to the row at 25 s
    assert s.seek("2024-01-02T09:30:10Z") == 10
    s.play()
    assert s.seek(fraction=1.0) == 99  # keeps playing from the new place
    assert s.state is State.PLAYING
    await timer.run_until_idle()
    assert rec.prices()[-1] == 99.0 and s.state is State.FINISHED
    resets = [e.reason for e in rec.events if isinstance(e, ResetEvent)]
    assert resets.count("seek") == 4
    rec.check_sequence()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"target": pd.NaT},
        {"target": None},
        {"target": "not a time"},
        {"target": T0 - pd.Timedelta(seconds=1)},
        {"target": T0 + pd.Timedelta(hours=1)},
        {"target": 1.5},
        {"fraction": 1.5},
        {"fraction": -0.1},
        {"fraction": math.nan},
        {"fraction": math.inf},
        {"fraction": "half"},
    ],
)
async def test_bad_seek(timer: TestTimer, kwargs: dict) -> None:
    s, rec = make(timer)
    s.step(5)
    before = s.status()
    with pytest.raises(InvalidValueError):
        s.seek(kwargs.get("target"), fraction=kwargs.get("fraction"))
    after = s.status()
    assert after["position"] == before["position"] and after["buffer_rows"] == 5  # nothing lost


@pytest.mark.parametrize("bad", [0, -1, 0.05, 1000.5, math.nan, -math.inf, "fast", None, True, [2], "0"])
async def test_bad_speed(timer: TestTimer, bad) -> None:
    s, _ = make(timer, speed=2)
    with pytest.raises(InvalidValueError, match="speed"):
        s.set_speed(bad)
    assert s.speed == 2.0


@pytest.mark.parametrize("good,expected", [(0.1, 0.1), (1000, 1000.0), ("max", math.inf), (math.inf, math.inf), ("10x", 10.0)])
async def test_good_speed(timer: TestTimer, good, expected) -> None:
    s, _ = make(timer)
    assert s.set_speed(good) == expected
    assert s.speed == expected


async def test_loop_restarts_with_reset(timer: TestTimer) -> None:
    s, rec = make(timer, n=5, frame_ns=0, loop=True)
    s.play()
    await timer.run_until_idle(limit_ns=12 * SEC)
    assert s.state is State.PLAYING
    assert rec.prices()[:7] == [0.0, 1.0, 2.0, 3.0, 4.0, 0.0, 1.0]
    assert any(isinstance(e, ResetEvent) and e.reason == "loop" for e in rec.events)
    with pytest.raises(InvalidValueError):
        s.set_loop("yes")
    s.set_loop(False)
    await timer.run_until_idle(limit_ns=40 * SEC)
    assert s.state is State.FINISHED
    rec.check_sequence()


async def test_mode_switch_clears_only_this_session(timer: TestTimer) -> None:
    a, rec_a = make(timer, frame_ns=0)
    b, rec_b = make(timer, frame_ns=0)
    a.step(10)
    b.step(20)
    a.set_mode("live", symbol="ABC")
    assert a.mode is Mode.LIVE and len(a.frame()) == 0 and a.status()["last"] is None
    assert isinstance(rec_a.events[-2], ResetEvent) and rec_a.events[-2].reason == "mode"
    assert len(b.frame()) == 20 and b.mode is Mode.REPLAY  # untouched
    with pytest.raises(IllegalTransitionError):
        a.seek(fraction=0.5)
    with pytest.raises(IllegalTransitionError):
        a.set_speed(2)
    with pytest.raises(IllegalTransitionError):
        a.step()
    with pytest.raises(InvalidValueError):
        a.set_mode("sideways")
    with pytest.raises(InvalidValueError):
        a.set_mode("live", symbol="bad symbol!")
    with pytest.raises(InvalidValueError):
        a.set_mode("live", symbol="../../x")
    a.set_mode("replay")
    assert a.mode is Mode.REPLAY and len(a.frame()) == 0 and a.status()["position"] == 10
    await a.aclose()
    await b.aclose()


async def test_live_mode_streams_and_callbacks_run_in_both_modes() -> None:
    from jupyter_replay.sources import SyntheticFeed

    s = Session(
        DataFrameSource(frame(20)),
        live_factory=lambda sym: SyntheticFeed(symbol=sym, rate_hz=200, seed=1),
        speed="max",
    )
    rec = Recorder(s)
    seen: list[tuple[str, bool]] = []

    @s.on_batch
    def signal(batch, clock):
        seen.append((batch.mode.value, clock.is_live))
        raise RuntimeError("user bug")  # must be counted, never stop the session

    s.play()
    for _ in range(100):
        await asyncio.sleep(0.001)
        if s.state is State.FINISHED:
            break
    assert s.state is State.FINISHED
    s.set_mode("live")
    for _ in range(200):
        await asyncio.sleep(0.005)
        if len(s.frame()) >= 5:
            break
    assert len(s.frame()) >= 5
    assert set(s.frame().columns) >= {"timestamp", "price", "size", "side"}
    s.pause()
    await asyncio.sleep(0.05)
    n = s.status()["rows"]
    await asyncio.sleep(0.05)
    assert s.status()["rows"] == n  # paused live session ignores incoming rows
    s.set_mode("replay")
    assert ("replay", False) in seen and ("live", True) in seen
    assert s.status()["callback_errors"] == len(seen)
    rec.check_sequence()
    await s.aclose()


async def test_control_dispatch_validates_actions(timer: TestTimer) -> None:
    s, _ = make(timer)
    assert s.control("step", {"n": 2})["position"] == 2
    assert s.control("seek", {"fraction": 0})["position"] == 0
    assert s.control("speed", {"speed": "max"})["speed"] == "max"
    with pytest.raises(InvalidValueError, match="unknown action"):
        s.control("explode")
    with pytest.raises(InvalidValueError, match="unknown argument"):
        s.control("play", {"now": True})
    with pytest.raises(InvalidValueError):
        s.control("seek", {})
    with pytest.raises(InvalidValueError):
        s.control("speed", {})


async def test_session_without_data(timer: TestTimer) -> None:
    s = Session(timer=timer)
    assert s.status()["has_data"] is False
    with pytest.raises(IllegalTransitionError, match="no data"):
        s.play()
    s.set_speed(5)
    s.set_source(DataFrameSource(frame(10)))
    assert s.speed == 5.0
    s.step(2)
    assert len(s.frame()) == 2


def _run_script(speed, frame_ns: int) -> list[tuple]:
    """Drive one session with a fixed command script at data times; return rows and events."""

    async def main():
        timer = TestTimer()
        s, rec = make(timer, n=300, speed=speed, frame_ns=frame_ns)
        s.play()
        await _until_data_time(s, timer, 50)
        s.pause()
        s.step(7)
        s.seek(fraction=0.5)
        s.play()
        await _until_data_time(s, timer, 200)
        s.stop()
        s.step(duration="3s")
        rows = [
            (b.mode.value, b.first_row + i, int(t), float(p))
            for b in rec.batches
            for i, (t, p) in enumerate(zip(b.ts, b.columns["price"]))
        ]
        kinds = [(type(e).__name__, getattr(e, "reason", None)) for e in rec.events if not isinstance(e, (Batch, StateEvent))]
        return rows, kinds

    return asyncio.run(main())


async def _until_data_time(s: Session, timer: TestTimer, seconds: int) -> None:
    target = int(T0.value) + seconds * SEC
    while s.status()["position_ns"] is not None and s.status()["position_ns"] <= target:
        d = timer.next_deadline
        if d is None:
            await asyncio.sleep(0)
            continue
        timer.set(d)
        for _ in range(3):
            await asyncio.sleep(0)


def test_deterministic_at_any_speed() -> None:
    baseline = _run_script(1, 0)
    assert len(baseline[0]) > 100
    for speed, frame_ns in [(7.5, 0), (100, 16_666_667), (1000, 16_666_667), (0.1, 5_000_000)]:
        assert _run_script(speed, frame_ns) == baseline


async def test_seek_row(timer: TestTimer) -> None:
    s, rec = make(timer)
    assert s.seek(row=42) == 42
    assert s.step(2) == 2 and rec.prices() == [42.0, 43.0]
    assert s.control("seek", {"row": 0})["position"] == 0
    for bad in (-1, 100, 1.0, True, "3"):
        with pytest.raises(InvalidValueError):
            s.seek(row=bad)
    with pytest.raises(InvalidValueError):
        s.control("seek", {"row": 1, "fraction": 0.5})


@pytest.mark.parametrize("bad", ["ÄBC", " DEMO", "../x", "/abs", ".hidden", "a" * 65, "", 5])
def test_check_symbol_rejects(bad) -> None:
    from jupyter_replay.session import check_symbol

    with pytest.raises(InvalidValueError):
        check_symbol(bad)
