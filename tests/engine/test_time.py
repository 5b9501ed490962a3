"""Timers, clocks and time conversion."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import statistics
import time

import numpy as np
import pandas as pd
import pytest

from jupyter_replay import InvalidValueError, LiveClock, ReplayClock, SystemTimer, TestTimer
from jupyter_replay.timeconv import ns_to_iso, ns_to_timestamp, to_duration_ns, to_ns

SEC = 1_000_000_000


async def test_test_timer_wakes_sleepers_in_order() -> None:
    timer = TestTimer()
    woke: list[int] = []

    async def sleeper(deadline: int) -> None:
        await timer.sleep_until(deadline)
        woke.append(timer.now())

    tasks = [asyncio.create_task(sleeper(d)) for d in (30, 10, 20)]
    await asyncio.sleep(0)
    assert timer.next_deadline == 10
    timer.advance(15)
    await asyncio.sleep(0)
    assert woke == [15]
    await timer.run_until_idle()
    await asyncio.gather(*tasks)
    assert woke == [15, 20, 30]
    with pytest.raises(ValueError):
        timer.set(0)


async def test_system_timer_is_never_early_and_precise() -> None:
    timer = SystemTimer()
    late = []
    for _ in range(40):
        deadline = timer.now() + 2_000_000
        await timer.sleep_until(deadline)
        late.append(time.monotonic_ns() - deadline)
    assert min(late) >= 0
    # Behaviour, not a benchmark: the spin phase removes the ~1 ms epoll rounding of asyncio.sleep.
    assert statistics.median(late) < 500_000


def test_replay_clock_speed_pause_seek() -> None:
    timer = TestTimer()
    clock = ReplayClock(timer, start_ns=1_000 * SEC, speed=2.0)
    assert clock.paused and clock.now_ns() == 1_000 * SEC
    clock.resume()
    timer.advance(SEC)
    assert clock.now_ns() == 1_002 * SEC
    clock.set_speed(0.5)  # no jump in data time
    assert clock.now_ns() == 1_002 * SEC
    timer.advance(2 * SEC)
    assert clock.now_ns() == 1_003 * SEC
    clock.pause()
    timer.advance(10 * SEC)
    assert clock.now_ns() == 1_003 * SEC
    clock.resume()
    assert clock.wall_deadline(1_004 * SEC) == timer.now() + 2 * SEC
    clock.set_time(5 * SEC)
    assert clock.now_ns() == 5 * SEC
    assert clock.now() == pd.Timestamp(5 * SEC, unit="ns", tz="UTC")
    clock.set_speed(math.inf)
    assert clock.wall_deadline(10**18) == timer.now()


def test_live_clock_is_wall_time() -> None:
    clock = LiveClock()
    assert clock.is_live and abs(clock.now_ns() - time.time_ns()) < 10 * 1_000_000
    assert clock.now().tzinfo is not None


@pytest.mark.parametrize(
    "value",
    [
        pd.Timestamp("2024-01-02 09:30:00", tz="UTC"),
        pd.Timestamp("2024-01-02 04:30:00", tz="America/New_York"),
        dt.datetime(2024, 1, 2, 9, 30),
        dt.datetime(2024, 1, 2, 9, 30, tzinfo=dt.timezone.utc),
        np.datetime64("2024-01-02T09:30:00"),
        "2024-01-02T09:30:00Z",
        "2024-01-02 09:30",
        1704187800 * SEC,
    ],
)
def test_to_ns_accepts_time_like(value) -> None:
    assert to_ns(value) == 1704187800 * SEC


@pytest.mark.parametrize("bad", [None, pd.NaT, "nope", 1.5, True, np.datetime64("NaT")])
def test_to_ns_rejects(bad) -> None:
    with pytest.raises(InvalidValueError):
        to_ns(bad)


def test_durations_and_formatting() -> None:
    assert to_duration_ns("5s") == 5 * SEC
    assert to_duration_ns(dt.timedelta(milliseconds=3)) == 3_000_000
    assert to_duration_ns(pd.Timedelta("1min")) == 60 * SEC
    for bad in ("soon", None, math.inf, pd.NaT):
        with pytest.raises(InvalidValueError):
            to_duration_ns(bad)
    assert ns_to_iso(0) == "1970-01-01T00:00:00+00:00"
    assert ns_to_iso(None) is None
    assert str(ns_to_timestamp(0, "Europe/Paris").tz) == "Europe/Paris"
