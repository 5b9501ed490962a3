"""Every error jupyter_replay raises on bad input is typed: under ``ReplayError``, with an HTTP status."""

from __future__ import annotations

import pytest

from jupyter_replay import wire
from jupyter_replay.exceptions import InvalidValueError, ReplayError
from jupyter_replay.timer import SystemTimer, TestTimer


def test_wire_error_is_a_replay_error_answered_with_400() -> None:
    with pytest.raises(ReplayError) as info:
        wire.loads("[1, 2]")  # valid JSON, not a message object
    assert isinstance(info.value, wire.WireError) and isinstance(info.value, ValueError)
    assert info.value.http_status == 400


def test_timer_arguments_are_typed_errors() -> None:
    with pytest.raises(InvalidValueError, match="spin_ns"):
        SystemTimer(spin_ns=-1)
    timer = TestTimer(start_ns=10)
    with pytest.raises(InvalidValueError, match="backwards"):
        timer.set(5)
