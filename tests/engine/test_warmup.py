"""``seek(..., warmup=N rows | span)``: history before the cut stays in the buffer and reaches callbacks
flagged ``batch.warmup``; the replay resumes at the cut (engine ``Session`` and ``ThreadedSession``)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pandas as pd
import pytest

from jupyter_replay import DataFrameSource, InvalidValueError, Session, ThreadedSession
from jupyter_replay.controls import normalise_args, span_to_json


def monthly(n: int = 60) -> pd.DataFrame:
    return pd.DataFrame({"date": pd.date_range("2000-01-31", periods=n, freq="ME"),
                         "price": np.arange(n, dtype=float)})


def run(host: Any, **seek: Any) -> list[tuple[bool, int, int]]:
    seen: list[tuple[bool, int, int]] = []
    host.on_batch(lambda b, clock: seen.append((b.warmup, b.position, len(b))))
    host.step(3)
    host.seek(**seek)
    host.step(2)
    return seen


@pytest.mark.parametrize(
    ("seek", "expected", "buffer_first"),
    [
        ({"row": 30, "warmup": 12}, [(True, 18, 12), (False, 30, 2)], 18.0),
        ({"target": "2003-01", "warmup": "1Y"}, [(True, 24, 12), (False, 36, 2)], 24.0),
        ({"target": "2003-01", "warmup": pd.DateOffset(months=6)}, [(True, 30, 6), (False, 36, 2)], 30.0),
        ({"row": 5, "warmup": 100}, [(True, 0, 5), (False, 5, 2)], 0.0),  # clipped at the start
    ],
)
def test_engine_seek_with_warmup(seek: dict, expected: list, buffer_first: float) -> None:
    async def main() -> tuple[list, pd.DataFrame, dict]:
        s = Session(DataFrameSource(monthly(), time="date"), speed="max")
        seen = run(s, **seek)
        out = (seen, s.frame(), s.status())
        await s.aclose()
        return out

    seen, frame, status = asyncio.run(main())
    assert seen[0] == (False, 0, 3) and seen[1:] == expected
    assert frame["price"].iloc[0] == buffer_first and len(frame) == expected[0][2] + 2
    assert status["position"] == expected[1][1] + 2


def test_threaded_session_seek_with_warmup_matches_the_engine() -> None:
    s = ThreadedSession(DataFrameSource(monthly(), time="date"), speed="max")
    try:
        seen = run(s, target="2003-01", warmup="1Y")
        frame = s.frame()
    finally:
        s.close()
    assert seen == [(False, 0, 3), (True, 24, 12), (False, 36, 2)]
    assert list(frame["price"]) == [float(i) for i in range(24, 38)]


def test_warmup_is_one_control_argument() -> None:
    assert normalise_args("seek", {"row": 3, "warmup": 5}) == {"row": 3, "warmup": 5}
    assert normalise_args("seek", {"row": 3, "warmup": "30D"})["warmup"] == pd.Timedelta("30D")
    assert normalise_args("seek", {"row": 3, "warmup": "3M"})["warmup"] == pd.DateOffset(months=3)
    for bad in (0, -1, 1.5, True, "soon", "-3M"):
        with pytest.raises(InvalidValueError, match="warmup"):
            normalise_args("seek", {"row": 3, "warmup": bad})
    assert span_to_json(pd.DateOffset(years=1, months=2)) == "14M"
    assert pd.Timedelta(span_to_json(pd.Timedelta("36h"))) == pd.Timedelta("36h")
