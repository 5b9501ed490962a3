"""Pacing by rows (bars) per second: ``rate`` is one control action on every host; monthly bars replay in
seconds; ``speed`` goes back to data-time pacing."""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest

from jupyter_replay import DataFrameSource, InvalidValueError, Session, State, TestTimer, ThreadedSession
from jupyter_replay.controls import normalise_args, parse_rate, table_json


def monthly(n: int = 120) -> DataFrameSource:
    return DataFrameSource(pd.DataFrame({"date": pd.date_range("2000-01-31", periods=n, freq="ME"),
                                         "price": np.arange(n, dtype=float)}), time="date")


def test_rate_grammar() -> None:
    assert parse_rate(5) == 5.0 and parse_rate("2.5/s") == 2.5
    assert parse_rate("off") is None and parse_rate(None) is None
    for bad in (0, -1, True, "fast", float("nan"), float("inf"), 10**400, "9" * 200):
        with pytest.raises(InvalidValueError, match="rate must be rows per second"):
            parse_rate(bad)
    assert normalise_args("rate", {"rate": 12}) == {"value": 12.0}
    with pytest.raises(InvalidValueError, match="needs a 'rate'"):
        normalise_args("rate", {})
    assert table_json()["actions"]["rate"]["allowed"]["live"] == []


def test_rows_per_second_on_the_virtual_timer() -> None:
    """10 rows/s: after 1 s of (test) wall time, 11 rows are out (the first at once), whatever the spacing."""

    async def main() -> tuple[int, int, dict]:
        timer = TestTimer()
        s = Session(monthly(), timer=timer, rate=10)
        s.play()
        await timer.run_until_idle(10**9)
        at_1s = s.status()["position"]
        s.set_speed(1.0)  # back to data time: a month is far away at 1x
        await timer.run_until_idle(2 * 10**9)
        at_2s = s.status()["position"]
        st = s.status()
        await s.aclose()
        return at_1s, at_2s, st

    at_1s, at_2s, st = asyncio.run(main())
    assert at_1s == 11
    assert at_2s == 11 and st["pacing"] == "time" and st["rate"] is None


def test_threaded_session_rate_reaches_the_end_and_reports_pacing() -> None:
    s = ThreadedSession(monthly(60), rate=200)
    try:
        assert s.status()["pacing"] == "rows" and s.status()["rate"] == 200.0
        seen: list[int] = []
        s.on_batch(lambda b, c: seen.append(len(b)))
        s.play()
        assert s.wait(timeout=60) is State.FINISHED
        assert sum(seen) == 60 and len(seen) > 1  # paced: several batches, not one
        assert s.set_rate(None) is None and s.status()["pacing"] == "time"
        with pytest.raises(InvalidValueError):
            s.set_rate(0)
    finally:
        s.close()
