"""``ReplayController``: the replay state machine and its pacing loop."""

from __future__ import annotations

import asyncio
import logging
import math
from enum import Enum
from numbers import Real
from typing import Any, Callable

import numpy as np

from .batch import Chunk
from .clock import ReplayClock
from .exceptions import IllegalTransitionError, InvalidValueError
from .sources.base import Cursor, ReplaySource
from .timeconv import TimeLike, ns_to_iso, to_duration_ns, to_ns
from .timer import Timer

__all__ = ["State", "ReplayController", "MIN_SPEED", "MAX_SPEED", "parse_speed", "speed_to_json"]

log = logging.getLogger(__name__)

MIN_SPEED = 0.1
MAX_SPEED = 1000.0
DEFAULT_FRAME_NS = 16_666_667  # one 60 Hz display frame


class State(str, Enum):
    """Where a replay is."""

    STOPPED = "stopped"  # at the start; nothing released since the last stop or reset
    PLAYING = "playing"  # the pacing loop is releasing rows on time
    PAUSED = "paused"  # position kept, nothing released until play or step
    FINISHED = "finished"  # the end of the data was reached with loop off


def parse_speed(value: Any, max_speed: float = MAX_SPEED) -> float:
    """Validate a speed: a real number in [0.1, max_speed], or ``"max"`` / ``inf`` (as fast as possible)."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("max", "inf", "fastest"):
            return math.inf
        try:
            value = float(text[:-1] if text.endswith("x") else text)
        except ValueError:
            raise InvalidValueError(f"speed must be a number or 'max', got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InvalidValueError(f"speed must be a number or 'max', got {value!r}")
    value = float(value)
    if math.isnan(value):
        raise InvalidValueError("speed must not be NaN")
    if value == math.inf:
        return math.inf
    if not (MIN_SPEED <= value <= max_speed):
        raise InvalidValueError(f"speed must be between {MIN_SPEED} and {max_speed:g} or 'max', got {value!r}")
    return value


def speed_to_json(speed: float) -> float | str:
    """``"max"`` for infinite speed, else the float."""
    return "max" if math.isinf(speed) else speed


class ReplayController:
    """Releases rows of a ``ReplaySource`` on a virtual clock.

    Control methods are synchronous and must be called on the event loop thread; the pacing loop
    runs as a task on that loop. A row is released when ``timer.now() >= clock.wall_deadline(ts)``:
    never early. Rows falling due within one ``frame_ns`` of wall time after the previous release go
    out together in one chunk (coalescing); no row is ever dropped or released twice.
    """

    def __init__(
        self,
        source: ReplaySource,
        *,
        emit: Callable[[Chunk], None],
        on_state: Callable[[], None] | None = None,
        on_rewind: Callable[[str], None] | None = None,
        timer: Timer | None = None,
        speed: float | str = 1.0,
        loop: bool = False,
        frame_ns: int = DEFAULT_FRAME_NS,
        max_batch_rows: int = 65_536,
        max_speed: float = MAX_SPEED,
    ) -> None:
        self.source = source
        self._emit = emit
        self._on_state = on_state or (lambda: None)
        self._on_rewind = on_rewind or (lambda reason: None)
        self.max_speed = float(max_speed)
        self.clock = ReplayClock(timer, start_ns=source.start_ns, speed=parse_speed(speed, self.max_speed))
        self.timer = self.clock.timer
        self.loop = self._check_loop(loop)
        self.frame_ns = int(frame_ns)
        self.max_batch_rows = int(max_batch_rows)
        self.state = State.STOPPED
        self._cursor: Cursor = source.open(None)
        self._task: asyncio.Task[None] | None = None
        self.last_release_lateness_ns: int | None = None  # for pacing diagnostics and benchmarks
        self.on_release: Callable[[int, int], None] | None = None  # (deadline, actual) hook for benches

    # ----------------------------------------------------------------- properties
    @property
    def speed(self) -> float:
        return self.clock.speed

    @property
    def position(self) -> int:
        """Index of the next row to release."""
        return self._cursor.position

    @property
    def position_ns(self) -> int | None:
        """Timestamp of the next row to release (None at the end)."""
        return self._cursor.peek_ns()

    @property
    def time_ns(self) -> int:
        """Current data time of the replay clock."""
        return self.clock.now_ns()

    @property
    def progress(self) -> float:
        """Fraction of rows released, 0..1."""
        n = self.source.num_rows
        return 1.0 if n == 0 else min(1.0, self.position / n)

    # ----------------------------------------------------------------- controls
    def play(self) -> None:
        """Start or resume releasing rows (from the start again once finished)."""
        if self.state is State.PLAYING:
            return
        if self.state is State.FINISHED:
            self._rewind("stop")
        self.state = State.PLAYING
        self.clock.resume()
        self._restart_task()
        self._on_state()

    def pause(self) -> None:
        """Keep the position and stop releasing rows."""
        if self.state is State.PAUSED:
            return
        if self.state is not State.PLAYING:
            raise IllegalTransitionError(f"cannot pause a replay that is {self.state.value}")
        self._cancel_task()
        self.clock.pause()
        self.state = State.PAUSED
        self._on_state()

    def stop(self) -> None:
        """Stop and rewind to the start."""
        self._cancel_task()
        self.clock.pause()
        self._rewind("stop")
        self.state = State.STOPPED
        self._on_state()

    def step(self, n: int | None = None, *, duration: Any = None) -> int:
        """Release the next ``n`` rows (default 1) or the rows within ``duration`` of data time.

        Only while not playing; the replay is paused afterwards. Returns the number of rows released.
        """
        if self.state is State.PLAYING:
            raise IllegalTransitionError("cannot step while playing; pause first")
        if n is not None and duration is not None:
            raise InvalidValueError("step takes n or duration, not both")
        if self.state is State.FINISHED or self._cursor.peek_ns() is None:
            raise IllegalTransitionError("cannot step past the end of the data; stop or seek first")
        if duration is not None:
            d = to_duration_ns(duration)
            if d <= 0:
                raise InvalidValueError(f"step duration must be positive, got {duration!r}")
            base = self.clock.now_ns() if self.state is State.PAUSED else self._cursor.peek_ns() - 1
            end = base + d
            released = self._release_until(end, limit=None)
            self.clock.set_time(end)
        else:
            if n is None:
                n = 1
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
                raise InvalidValueError(f"step n must be a positive integer, got {n!r}")
            chunk = self._cursor.read(int(n))
            released = len(chunk)
            if released:
                self._emit(chunk)
                self.clock.set_time(int(chunk.ts[-1]))
        self.clock.pause()
        self.state = State.FINISHED if self._cursor.peek_ns() is None and not self.loop else State.PAUSED
        self._on_state()
        return released

    def seek(self, target: TimeLike = None, *, fraction: float | None = None, row: int | None = None) -> int:
        """Move to a timestamp, a fraction 0..1 of the time range, or a row index; keeps playing if playing.

        Returns the new position (row index). Raises ``InvalidValueError`` outside the data.
        """
        if sum(x is not None for x in (target, fraction, row)) != 1:
            raise InvalidValueError("seek takes exactly one of a timestamp, fraction= or row=")
        src = self.source
        skip = 0
        if row is not None:
            if isinstance(row, bool) or not isinstance(row, (int, np.integer)) or not 0 <= row < src.num_rows:
                raise InvalidValueError(f"seek row must be an integer in [0, {src.num_rows}), got {row!r}")
            at, skip = None, int(row)
        elif fraction is not None:
            if isinstance(fraction, bool) or not isinstance(fraction, Real) or not math.isfinite(fraction):
                raise InvalidValueError(f"seek fraction must be a finite number in [0, 1], got {fraction!r}")
            if not 0.0 <= float(fraction) <= 1.0:
                raise InvalidValueError(f"seek fraction must be in [0, 1], got {fraction!r}")
            at = src.start_ns + int(round((src.end_ns - src.start_ns) * float(fraction)))
        else:
            at = to_ns(target)
            if not src.start_ns <= at <= src.end_ns:
                raise InvalidValueError(
                    f"seek target {ns_to_iso(at)} is outside the data "
                    f"({ns_to_iso(src.start_ns)} .. {ns_to_iso(src.end_ns)})"
                )
        playing = self.state is State.PLAYING
        self._cancel_task()
        self._cursor.close()
        self._cursor = src.open(at)
        while skip > 0:  # row index: walk forward in columnar reads (views for in-memory sources)
            skip -= len(self._cursor.read(min(skip, 1 << 20)))
        if at is None:
            at = self._cursor.peek_ns()
        self._on_rewind("seek")
        self.clock.set_time(at)
        if playing:
            self.clock.resume()
            self._restart_task()
        else:
            self.clock.pause()
            self.state = State.STOPPED if self.position == 0 else State.PAUSED
        self._on_state()
        return self.position

    def set_speed(self, value: Any) -> float:
        """Change speed (0.1..max_speed or "max"); takes effect immediately, no jump in data time."""
        speed = parse_speed(value, self.max_speed)
        self.clock.set_speed(speed)
        if self.state is State.PLAYING:
            self._restart_task()
        self._on_state()
        return speed

    def set_loop(self, flag: Any) -> None:
        """Restart from the beginning at the end of the data (True) or finish (False)."""
        self.loop = self._check_loop(flag)
        self._on_state()

    @staticmethod
    def _check_loop(flag: Any) -> bool:
        if not isinstance(flag, (bool, np.bool_)):
            raise InvalidValueError(f"loop must be true or false, got {flag!r}")
        return bool(flag)

    async def aclose(self) -> None:
        """Stop the pacing task and release the cursor."""
        task = self._task
        self._cancel_task()
        if task is not None:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._cursor.close()

    def cancel(self) -> None:
        """Stop releasing rows without a state change (used when a session leaves REPLAY)."""
        self._cancel_task()
        self.clock.pause()
        if self.state is State.PLAYING:
            self.state = State.PAUSED

    # ----------------------------------------------------------------- internals
    def _rewind(self, reason: str) -> None:
        self._cursor.close()
        self._cursor = self.source.open(None)
        self.clock.set_time(self.source.start_ns)
        self._on_rewind(reason)

    def _release_until(self, end_ns: int, limit: int | None) -> int:
        released = 0
        while True:
            chunk = self._cursor.read_until(end_ns, self.max_batch_rows if limit is None else limit)
            if not len(chunk):
                return released
            self._emit(chunk)
            released += len(chunk)
            if limit is not None:
                return released

    def _cancel_task(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None

    def _restart_task(self) -> None:
        self._cancel_task()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="jupyter_replay.pace")

    async def _run(self) -> None:
        try:
            await self._pace()
        except asyncio.CancelledError:
            raise
        except Exception:  # a broken source must not kill the event loop; surface as a paused replay
            log.exception("replay pacing failed")
            self.clock.pause()
            self.state = State.PAUSED
            self._task = None
            self._on_state()

    async def _pace(self) -> None:
        clock, timer = self.clock, self.timer
        next_wake = timer.now()
        while True:
            nxt = self._cursor.peek_ns()
            if nxt is None:
                if self.loop and self.source.num_rows:
                    self._rewind("loop")
                    await asyncio.sleep(0)
                    # next_wake is kept: at most one release per frame across the wrap as well, so data
                    # spanning less than a frame (e.g. one row) cannot loop in a busy spin at finite speed
                    continue
                clock.pause()
                clock.set_time(self.source.end_ns)
                self.state = State.FINISHED
                self._task = None
                self._on_state()
                return
            if math.isinf(clock.speed):
                chunk = self._cursor.read(self.max_batch_rows)
                self._emit(chunk)
                clock.set_time(int(chunk.ts[-1]))
                await asyncio.sleep(0)
                continue
            deadline = max(clock.wall_deadline(nxt), next_wake)
            await timer.sleep_until(deadline)
            now = timer.now()
            self.last_release_lateness_ns = now - deadline
            if self.on_release is not None:
                self.on_release(deadline, now)
            # Every row due by now goes out; never early, and each row exactly once.
            self._release_until(max(clock.now_ns(), nxt), limit=None)
            next_wake = now + self.frame_ns
