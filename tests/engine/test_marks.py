"""Plot marks in the engine: the ``mark`` control's normaliser, the per-session cap, what callbacks may
return, and the ``marks`` DataFrame (the hosts are held to the same in ``tests/conformance``)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pandas as pd
import pytest

from jupyter_replay import DataFrameSource, MarkEvent, Session, ThreadedSession
from jupyter_replay.controls import MAX_MARK_TEXT, MAX_MARKS, normalise_args, parse_mark
from jupyter_replay.exceptions import IllegalTransitionError, InvalidValueError
from jupyter_replay.marks import marks_frame, returned_marks


def prices(n: int = 20, tz: Any = None) -> pd.DataFrame:
    return pd.DataFrame({"timestamp": pd.date_range("2024-01-02", periods=n, freq="s", tz=tz),
                         "price": np.arange(n, dtype=float)})


def test_parse_mark_normalises_and_refuses_with_bounded_messages() -> None:
    assert parse_mark("2024-01-02", 1, "hi", "BUY") == {
        "time": pd.Timestamp("2024-01-02").value, "y": 1.0, "text": "hi", "side": "buy"}
    assert parse_mark(side="sell") == {"time": None, "y": None, "text": None, "side": "sell"}
    assert normalise_args("mark", {"text": "note"})["text"] == "note"
    for args, fragment in [({"side": "up"}, "side"), ({"text": "x" * (MAX_MARK_TEXT + 1)}, "at most 200"),
                           ({"side": "buy", "y": np.inf}, "y"), ({"side": "buy", "y": True}, "y"),
                           ({"text": ["a"]}, "string"), ({}, "side"), ({"side": "buy", "time": 1.5}, "float")]:
        with pytest.raises(InvalidValueError, match=fragment) as info:
            normalise_args("mark", args)
        assert len(str(info.value)) < 200
    with pytest.raises(InvalidValueError) as info:
        parse_mark(text="secret" * 1000)
    assert "secret" not in str(info.value)  # the text is counted, never echoed


def test_returned_marks_forms_in_order() -> None:
    ts = np.array([5, 7], np.int64)
    from jupyter_replay.batch import Batch, Mode

    batch = Batch(1, "s", Mode.REPLAY, ts, {"price": np.array([1.0, 2.0])}, 0, 0)
    assert returned_marks(None, batch) == []
    assert returned_marks({"side": "buy"}, batch) == [{"time": 7, "y": None, "text": None, "side": "buy"}]
    frame = pd.DataFrame({"side": ["buy", None], "text": [None, "t"], "y": [np.nan, 3.0]})
    assert returned_marks(frame, batch) == [{"time": 7, "y": None, "text": None, "side": "buy"},
                                            {"time": 7, "y": 3.0, "text": "t", "side": None}]
    # all are checked before any is marked
    with pytest.raises(InvalidValueError, match="side"):
        returned_marks([{"side": "buy"}, {"side": "up"}], batch)
    with pytest.raises(InvalidValueError, match="colour"):
        returned_marks({"side": "buy", "colour": "red"}, batch)
    with pytest.raises(InvalidValueError, match="returns None or marks"):
        returned_marks("buy", batch)
    with pytest.raises(InvalidValueError, match="at most"):
        returned_marks([{"side": "buy"}] * (MAX_MARKS + 1), batch)


def test_session_marks_are_capped_never_wrapped() -> None:
    async def run() -> None:
        s = Session(DataFrameSource(prices()))
        events: list[Any] = []
        s.subscribe(events.append)
        with pytest.raises(IllegalTransitionError, match="no row released"):
            s.mark(side="buy")
        s.step(3)
        for i in range(MAX_MARKS):
            s.mark(time=int(i), text="m")
        with pytest.raises(IllegalTransitionError, match="10,000 marks"):
            s.mark(side="buy")
        assert len(s.marks) == MAX_MARKS == s.status()["marks"]
        assert s.marks[0].time_ns == 0 and s.marks[-1].time_ns == MAX_MARKS - 1  # the first kept, none wrapped
        marks = [e for e in events if isinstance(e, MarkEvent)]
        assert len(marks) == MAX_MARKS and [e.seq for e in marks] == sorted({e.seq for e in marks})
        s.stop()
        assert s.marks == [] and s.status()["marks"] == 0
        await s.aclose()

    asyncio.run(run())


def test_marks_frame_has_the_replays_time_zone() -> None:
    t = ThreadedSession(DataFrameSource(prices(tz="Europe/Paris")))
    try:
        t.step(2)
        t.mark(side="buy", text="in")
        frame = t.marks
        assert list(frame.columns) == ["time", "y", "text", "side"]
        assert str(frame["time"].dt.tz) == "Europe/Paris"
        assert frame["time"].iloc[0] == t.frame()["timestamp"].iloc[-1]
        assert np.isnan(frame["y"].iloc[0]) and frame["side"].tolist() == ["buy"]
    finally:
        t.close()
    empty = marks_frame([])
    assert list(empty.columns) == ["time", "y", "text", "side"] and len(empty) == 0
