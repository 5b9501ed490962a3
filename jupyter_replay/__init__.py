"""jupyter_replay: interactive replay of recorded time series, one isolated session per kernel.

Engine API (pure asyncio, usable anywhere; never imports the widget or server stacks)::

    import asyncio
    from jupyter_replay import DataFrameSource, Session, sample_trades

    async def main() -> None:
        session = Session(DataFrameSource(sample_trades(1_000), time="timestamp"), speed="max")
        session.step(10)                  # release the first 10 rows now
        print(session.frame().tail(3))    # the session's buffer as a DataFrame
        await session.aclose()

    asyncio.run(main())

Notebook widget (controls + streaming plot; imported on first use)::

    import jupyter_replay as jr
    r = jr.replay(df, time="ts")
"""

from __future__ import annotations

from typing import Any

from .batch import TIME_COLUMN, Batch, Chunk, Event, MarkEvent, Mode, ResetEvent, StateEvent
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
from .sources import (
    ArraySource,
    CSVSource,
    DataFrameSource,
    LiveSource,
    MergedSource,
    ParquetSource,
    ReplaySource,
    SyntheticFeed,
    as_source,
    sample_quotes,
    sample_trades,
)
from .timer import SystemTimer, TestTimer, Timer

__version__ = "0.1.0"

__all__ = [
    "__version__",
    # data and events
    "TIME_COLUMN", "Batch", "Chunk", "Event", "Mode", "ResetEvent", "StateEvent", "MarkEvent", "RollingBuffer",
    # sources
    "ReplaySource", "LiveSource", "ArraySource", "DataFrameSource", "CSVSource", "ParquetSource", "MergedSource",
    "SyntheticFeed", "as_source", "sample_trades", "sample_quotes",
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
