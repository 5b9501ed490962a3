"""User-facing time: one ``Clock`` interface, a virtual ``ReplayClock`` and a wall ``LiveClock``.

User callbacks receive a ``Clock`` and call ``clock.now()``; the same code runs in replay and live.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod

import pandas as pd

from .timeconv import ns_to_timestamp
from .timer import SystemTimer, Timer

__all__ = ["Clock", "ReplayClock", "LiveClock"]


class Clock(ABC):
    """The current time as seen by a session (data time in replay, wall time in live)."""

    #: True for the wall clock of LIVE mode.
    is_live: bool = False

    @abstractmethod
    def now_ns(self) -> int:
        """Current time, int nanoseconds since the epoch (UTC)."""

    def now(self) -> pd.Timestamp:
        """Current time as a UTC ``pd.Timestamp``."""
        return ns_to_timestamp(self.now_ns())


class LiveClock(Clock):
    """Wall-clock epoch time."""

    is_live = True

    def now_ns(self) -> int:
        return time.time_ns()


class ReplayClock(Clock):
    """Virtual data time driven by a ``Timer``: anchored at a data time, advancing at ``speed``.

    ``now_ns() = anchor_data + (timer.now() - anchor_wall) * speed`` while running; frozen when paused.
    With infinite speed ("max") time does not flow by itself: the controller moves it with ``set_time``.
    """

    def __init__(self, timer: Timer | None = None, *, start_ns: int = 0, speed: float = 1.0) -> None:
        self.timer = timer or SystemTimer()
        self._speed = float(speed)
        self._paused = True
        self._anchor_data = int(start_ns)
        self._anchor_wall = self.timer.now()

    @property
    def speed(self) -> float:
        """Data seconds per wall second (``math.inf`` for as fast as possible)."""
        return self._speed

    @property
    def paused(self) -> bool:
        """True while data time is frozen."""
        return self._paused

    def now_ns(self) -> int:
        if self._paused or math.isinf(self._speed):
            return self._anchor_data
        return self._anchor_data + int((self.timer.now() - self._anchor_wall) * self._speed)

    def _reanchor(self) -> None:
        self._anchor_data = self.now_ns()
        self._anchor_wall = self.timer.now()

    def set_time(self, data_ns: int) -> None:
        """Seek: data time becomes ``data_ns`` now."""
        self._anchor_data = int(data_ns)
        self._anchor_wall = self.timer.now()

    def set_speed(self, speed: float) -> None:
        """Change speed without a jump in data time."""
        self._reanchor()
        self._speed = float(speed)

    def pause(self) -> None:
        """Freeze data time."""
        if not self._paused:
            self._reanchor()
            self._paused = True

    def resume(self) -> None:
        """Let data time flow again from where it stopped."""
        if self._paused:
            self._anchor_wall = self.timer.now()
            self._paused = False

    def wall_deadline(self, data_ns: int) -> int:
        """Timer time at which ``data_ns`` is due (now if already due or speed is infinite)."""
        now = self.timer.now()
        if math.isinf(self._speed):
            return now
        due = self._anchor_wall + math.ceil((int(data_ns) - self._anchor_data) / self._speed)
        return max(due, self._anchor_wall) if self._paused else due
