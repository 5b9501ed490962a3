"""jupyter_replay: interactive replay of recorded time series, one isolated session per kernel.

Engine API (pure asyncio, usable anywhere)::

    from jupyter_replay import Session, DataFrameSource
    r = jupyter_replay.replay(df, time="ts")   # notebook widget: controls + streaming plot
"""

from __future__ import annotations

from typing import Any

from .batch import TIME_COLUMN, Batch, Chunk, Event, Mode, ResetEvent, StateEvent
from .buffer import RollingBuffer
from .clock import Clock, LiveClock, ReplayClock
from .controller import MAX_SPEED, MIN_SPEED, ReplayController, State
from .exceptions import (
    DataError,
    FeedError,
    IllegalTransitionError,
    InvalidValueError,
    PathNotAllowedError,
    ReplayError,
    SessionLimitError,
    SessionNotFoundError,
)
from .runner import BackgroundLoop, ThreadedSession
from .session import Session
from .timer import SystemTimer, TestTimer, Timer

__version__ = "0.1.0"

__all__ = [
    "__version__",
    # data and events
    "TIME_COLUMN", "Batch", "Chunk", "Event", "Mode", "ResetEvent", "StateEvent", "RollingBuffer",
    # time
    "Clock", "LiveClock", "ReplayClock", "SystemTimer", "TestTimer", "Timer",
    # control
    "MAX_SPEED", "MIN_SPEED", "ReplayController", "State", "Session", "BackgroundLoop", "ThreadedSession",
    # errors
    "DataError", "FeedError", "IllegalTransitionError", "InvalidValueError", "PathNotAllowedError",
    "ReplayError", "SessionLimitError", "SessionNotFoundError",
    # notebook entry points (lazy: importing the engine never imports ipywidgets or bokeh)
    "replay", "Replay",
]


def __getattr__(name: str) -> Any:
    if name in ("replay", "Replay"):
        from . import widgets

        return getattr(widgets, name)
    raise AttributeError(f"module 'jupyter_replay' has no attribute {name!r}")
