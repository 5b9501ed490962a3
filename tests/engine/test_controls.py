"""The control table: one grammar per value, one guard per (mode, state, action), controls from callbacks."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pandas as pd
import pytest

from jupyter_replay import Batch, IllegalTransitionError, InvalidValueError, Mode, ResetEvent, Session, State, TestTimer
from jupyter_replay import controls
from jupyter_replay.controls import CONTROLS, TRANSITIONS, Policy, check_allowed, normalise_args, parse_speed, table_json
from jupyter_replay.sources import DataFrameSource

SEC = 1_000_000_000


def frame(n: int = 2000) -> pd.DataFrame:
    ts = pd.date_range("2024-01-02 09:30", periods=n, freq="1ms", tz="UTC")
    return pd.DataFrame({"timestamp": ts, "price": np.arange(n, dtype=float)})


@pytest.mark.parametrize(
    "text,expected",
    [("10", 10.0), ("10x", 10.0), (" 2.5X ", 2.5), ("MAX", math.inf), ("max", math.inf), (math.inf, math.inf), (7, 7.0)],
)
def test_one_speed_grammar(text, expected) -> None:
    assert parse_speed(text) == expected


@pytest.mark.parametrize("bad", ["inf", "fastest", "Infinity", "1e999", 10**400, "x" * 1_000_000, "nan", True, None])
def test_speed_refusals_are_typed_and_bounded(bad) -> None:
    with pytest.raises(InvalidValueError) as info:
        parse_speed(bad)
    assert len(str(info.value)) < 200  # never echoes unbounded input


def test_policy_limits_speed_and_step() -> None:
    strict = Policy(max_speed=50, allow_max_speed=False, max_step_rows=10)
    assert parse_speed(50, strict) == 50.0
    with pytest.raises(InvalidValueError, match="at most|between|\\[0.1, 50\\]"):
        parse_speed(51, strict)
    with pytest.raises(InvalidValueError, match="disabled"):
        parse_speed("max", strict)
    assert normalise_args("step", {"n": 10}, strict) == {"n": 10}
    with pytest.raises(InvalidValueError, match="at most 10 rows"):
        normalise_args("step", {"n": 11}, strict)


def test_unknown_names_are_bounded() -> None:
    with pytest.raises(InvalidValueError) as info:
        normalise_args("seek", {f"k{i}": 1 for i in range(450_000)})
    assert len(str(info.value)) < 400 and "449995 more" in str(info.value)
    with pytest.raises(InvalidValueError) as info:
        normalise_args("x" * 100_000, {})
    assert len(str(info.value)) < 400


@pytest.mark.parametrize("fraction", [10**400, -(10**400), math.nan, "0.5", True])
def test_seek_fraction_refusals(fraction) -> None:
    with pytest.raises(InvalidValueError, match="fraction"):
        normalise_args("seek", {"fraction": fraction})


def test_every_action_has_a_session_method_and_table_rows() -> None:
    for name, control in CONTROLS.items():
        assert callable(getattr(Session, control.method)), name
        assert any(key[2] == name for key in TRANSITIONS), f"{name} has no row in TRANSITIONS"
    table = table_json()
    assert set(table["actions"]) == set(CONTROLS)
    assert table["actions"]["step"]["allowed"] == {"replay": ["stopped", "paused"], "live": []}
    assert table["actions"]["seek"]["allowed"]["live"] == []


@pytest.mark.parametrize(
    "mode,state,action,message",
    [
        (Mode.REPLAY, State.PLAYING, "step", "pause first"),
        (Mode.REPLAY, State.FINISHED, "step", "past the end"),
        (Mode.REPLAY, State.STOPPED, "pause", "replay that is stopped"),
        (Mode.LIVE, State.PLAYING, "seek", "switch to REPLAY"),
        (Mode.LIVE, State.PAUSED, "speed", "switch to REPLAY"),
        (Mode.LIVE, State.STOPPED, "pause", "live feed that is stopped"),
    ],
)
def test_guard_refusals_say_why(mode, state, action, message) -> None:
    with pytest.raises(IllegalTransitionError, match=message):
        check_allowed(action, mode, state)


async def test_values_are_checked_before_the_state_guard() -> None:
    s = Session(DataFrameSource(frame()), timer=TestTimer())
    s.set_mode("live")
    try:
        with pytest.raises(InvalidValueError):  # a bad value is a 400 whatever the state
            s.control("speed", {"speed": 0})
        with pytest.raises(IllegalTransitionError):
            s.control("speed", {"speed": 2})
    finally:
        await s.aclose()


@pytest.mark.parametrize("action", ["stop", "pause", "seek"])
async def test_control_from_a_callback_takes_effect_at_once(action: str) -> None:
    """``stop()`` inside ``on_batch`` at speed max: no row of that play arrives after it."""
    s = Session(DataFrameSource(frame(200_000)), speed="max")
    events: list = []
    s.subscribe(events.append)
    calls = []

    @s.on_batch
    def take_control(batch: Batch, clock) -> None:
        if not calls:
            calls.append(batch.first_row + len(batch))
            if action == "seek":
                s.seek(row=5)
            else:
                getattr(s, action)()

    s.play()
    for _ in range(200):
        await asyncio.sleep(0)
    after_call = events[next(i for i, e in enumerate(events) if isinstance(e, Batch)) + 1 :]
    batches_after = [e for e in after_call if isinstance(e, Batch)]
    try:
        if action == "stop":
            assert s.state is State.STOPPED and s.status()["position"] == 0
            assert batches_after == [] and len(s.buffer) == 0
            assert isinstance(after_call[0], ResetEvent) and after_call[0].reason == "stop"
        elif action == "pause":
            assert s.state is State.PAUSED and batches_after == []
            assert s.status()["position"] == calls[0] == len(s.buffer)
        else:  # seek keeps playing from row 5: the rows after the cut start at row 5, first_row 0
            resets = [e for e in after_call if isinstance(e, ResetEvent)]
            assert resets and resets[0].reason == "seek"
            first = next(e for e in after_call if isinstance(e, Batch))
            assert first.first_row == 0 and float(first.columns["price"][0]) == 5.0
    finally:
        await s.aclose()


async def test_step_releases_in_bounded_batches() -> None:
    s = Session(DataFrameSource(frame(200_000)), timer=TestTimer())
    sizes: list[int] = []
    s.subscribe(lambda e: sizes.append(len(e)) if isinstance(e, Batch) else None)
    try:
        assert s.step(150_000) == 150_000
        assert sum(sizes) == 150_000 and max(sizes) <= s.controller.max_batch_rows
        assert s.status()["position"] == 150_000 and s.state is State.PAUSED
    finally:
        await s.aclose()


def test_state_is_the_one_enum() -> None:
    from jupyter_replay import controller, session

    assert controller.State is controls.State is session.State


async def test_calendar_steps_and_year_seeks() -> None:
    """Monthly bars step by "3 months", "1Y" or a DateOffset; "2005" seeks to a year; an int hints at text."""
    df = pd.DataFrame({"date": pd.date_range("2000-01-31", periods=300, freq="ME", tz="UTC"), "price": np.arange(300.0)})
    s = Session(DataFrameSource(df, time="date"), timer=TestTimer())
    try:
        assert s.step(duration="3 months") == 3  # Jan, Feb, Mar: month ends do not add a bar
        assert s.status()["position_iso"].startswith("2000-04-30")
        assert s.control("step", {"duration": "1Y"})["position"] == 15
        assert s.step(duration=pd.DateOffset(months=1)) == 1
        assert s.step(duration="1m") == 0  # lower-case m stays a minute, as in pandas
        s.seek("2005")
        assert s.status()["position_iso"].startswith("2005-01-31")
        s.seek("2005-03")
        assert s.status()["position_iso"].startswith("2005-03-31")
        with pytest.raises(InvalidValueError, match="pass text"):
            s.seek(2005)
        with pytest.raises(InvalidValueError, match="positive"):
            s.step(duration=pd.DateOffset(months=-1))
    finally:
        await s.aclose()
