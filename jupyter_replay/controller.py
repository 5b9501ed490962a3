"""``ReplayController``: releases a source's rows on a virtual clock; states move through ``controls``."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pandas as pd

from .batch import Chunk, Mode
from .clock import ReplayClock
from .controls import (
    MAX_SPEED,
    MIN_SPEED,
    Policy,
    State,
    check_allowed,
    next_state,
    parse_loop,
    parse_rate,
    parse_seek,
    parse_speed,
    parse_step,
    speed_to_json,
)
from .exceptions import InvalidValueError
from .sources.base import Cursor, ReplaySource
from .timeconv import NS_MAX, TimeLike, ns_to_iso
from .timer import Timer

__all__ = ["State", "ReplayController", "MIN_SPEED", "MAX_SPEED", "parse_speed", "speed_to_json"]

log = logging.getLogger(__name__)

DEFAULT_FRAME_NS = 16_666_667  # one 60 Hz display frame
_REPLAY = Mode.REPLAY


def _advance(base_ns: int, span: int | pd.DateOffset) -> int:
    """``base_ns`` plus a fixed span (ns) or a calendar span (months and years in UTC); a span past the
    last representable time (year 2262) reaches to it: such a step releases everything to the end."""
    if isinstance(span, int):
        return min(base_ns + span, NS_MAX)
    try:
        # rows strictly before (base + 1 ns) + span: "3 months" from Jan 31 is Jan, Feb and Mar
        return min(int((pd.Timestamp(base_ns + 1, tz="UTC") + span).value) - 1, NS_MAX)
    except (OverflowError, ValueError, pd.errors.OutOfBoundsDatetime):
        return NS_MAX


class ReplayController:
    """Releases rows of a ``ReplaySource`` on a virtual clock.

    Control methods are synchronous and must be called on the event loop thread; the pacing loop
    runs as a task on that loop. A row is released when ``timer.now() >= clock.wall_deadline(ts)``:
    never early. Rows falling due within one ``frame_ns`` of wall time after the previous release go
    out together in one chunk (coalescing); no row is ever dropped or released twice.

    Every control calls ``controls.check_allowed`` at entry and changes ``state`` only through
    ``controls.TRANSITIONS``. A control called from inside ``emit`` (an ``on_batch`` callback calling
    ``stop()``, ``pause()`` or ``seek()``) takes effect at once: it bumps ``_epoch`` and any release loop
    in progress stops before reading another row.
    """

    def __init__(
        self,
        source: ReplaySource,
        *,
        emit: Callable[[Chunk], None],
        on_state: Callable[[], None] | None = None,
        on_rewind: Callable[[str], None] | None = None,
        emit_warmup: Callable[[Chunk, int], None] | None = None,
        timer: Timer | None = None,
        speed: float | str = 1.0,
        loop: bool = False,
        frame_ns: int = DEFAULT_FRAME_NS,
        max_batch_rows: int = 65_536,
        max_speed: float = MAX_SPEED,
        policy: Policy | None = None,
        rate: float | None = None,
    ) -> None:
        self.source = source
        self._emit = emit
        self._on_state = on_state or (lambda: None)
        self._on_rewind = on_rewind or (lambda reason: None)
        self._emit_warmup = emit_warmup or (lambda chunk, position: self._emit(chunk))
        self.policy = policy or Policy(max_speed=float(max_speed))
        self.clock = ReplayClock(timer, start_ns=source.start_ns, speed=parse_speed(speed, self.policy))
        self.timer = self.clock.timer
        self.loop = parse_loop(loop)
        self.frame_ns = int(frame_ns)
        self.max_batch_rows = int(max_batch_rows)
        #: rows per second when pacing by rows (``set_rate``); None: by data time at ``speed``
        self.rate: float | None = parse_rate(rate)
        self.state = State.STOPPED
        self._epoch = 0  # bumped whenever a release in progress must stop (pause, stop, seek, speed)
        self._cursor: Cursor = source.open(None)
        self._task: asyncio.Task[None] | None = None
        self.last_release_lateness_ns: int | None = None  # for pacing diagnostics and benchmarks
        self.on_release: Callable[[int, int], None] | None = None  # (deadline, actual) hook for benches
        #: awaited before each release while playing (``Session.hold``): a client's callbacks set the pace
        self.gate: Callable[[], Awaitable[None]] | None = None

    # ----------------------------------------------------------------- properties
    @property
    def max_speed(self) -> float:
        return self.policy.max_speed

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
        target = check_allowed("play", _REPLAY, self.state)
        if self.state is target:
            return
        if self.state is State.FINISHED:
            self._rewind("stop")
        self.state = target
        self.clock.resume()
        self._restart_task()
        self._on_state()

    def pause(self) -> None:
        """Keep the position and stop releasing rows."""
        target = check_allowed("pause", _REPLAY, self.state)
        if self.state is target:
            return
        self._cancel_task()
        self.clock.pause()
        self.state = target
        self._on_state()

    def stop(self) -> None:
        """Stop and rewind to the start."""
        target = check_allowed("stop", _REPLAY, self.state)
        self._cancel_task()
        self.clock.pause()
        self._rewind("stop")
        self.state = target
        self._on_state()

    def step(self, n: int | None = None, *, duration: Any = None) -> int:
        """Release the next ``n`` rows (default 1) or the rows within ``duration`` of data time.

        Only while not playing; the replay is paused afterwards. Returns the number of rows released.
        """
        args = parse_step(n, duration, self.policy)
        target = check_allowed("step", _REPLAY, self.state)
        next_ns = self._cursor.peek_ns()
        if next_ns is None:
            check_allowed("step", _REPLAY, State.FINISHED)  # raises: nothing left to step over
            return 0
        epoch = self._epoch
        if "duration" in args:
            base = self.clock.now_ns() if self.state is State.PAUSED else next_ns - 1
            end = _advance(base, args["duration"])
            released = self._release_until(end)
            if self._epoch == epoch:
                self.clock.set_time(end)
        else:
            released = self._release_rows(args["n"])
        if self._epoch != epoch:  # a callback took control while rows went out: its state stands
            return released
        self.clock.pause()
        self.state = target
        if self._cursor.peek_ns() is None and not self.loop:
            self.state = next_state(_REPLAY, self.state, "end")
        self._on_state()
        return released

    def seek(
        self, target: TimeLike = None, *, fraction: float | None = None, row: int | None = None, warmup: Any = None,
    ) -> int:
        """Move to a timestamp, a fraction 0..1 of the time range, or a row index; keeps playing if playing.

        ``warmup`` (rows, or a span of data time) is released right after the reset through ``emit_warmup``
        (history before the cut). Returns the new position (row index). Raises ``InvalidValueError``
        outside the data.
        """
        args = parse_seek(target, fraction, row, warmup, self.policy)
        new_state = check_allowed("seek", _REPLAY, self.state)
        src = self.source
        skip = 0
        if "row" in args:
            if not args["row"] < src.num_rows:
                raise InvalidValueError(f"seek row must be an integer in [0, {src.num_rows}), got {args['row']}")
            at, skip = None, args["row"]
        elif "fraction" in args:
            at = src.start_ns + round((src.end_ns - src.start_ns) * args["fraction"])
        else:
            at = args["target"]
            if not src.start_ns <= at <= src.end_ns:
                hint = ""
                if isinstance(target, (int, np.integer)) and abs(int(target)) < 10**12:
                    hint = "; an int is nanoseconds since the epoch: for a year or a date pass text ('2005', '2005-03')"
                raise InvalidValueError(
                    f"seek target {ns_to_iso(at)} is outside the data "
                    f"({ns_to_iso(src.start_ns)} .. {ns_to_iso(src.end_ns)}){hint}"
                )
        self._cancel_task()
        self._cursor.close()
        self._cursor = src.open(at)
        while skip > 0:  # row index: walk forward in columnar reads (views for in-memory sources)
            skip -= len(self._cursor.read(min(skip, 1 << 20)))
        if at is None:
            at = self._cursor.peek_ns()
            assert at is not None  # row < num_rows: a row is there
        self._on_rewind("seek")
        if "warmup" in args:
            self._release_warmup(args["warmup"], at)
        self.clock.set_time(at)
        self.state = new_state
        if new_state is State.PLAYING:
            self.clock.resume()
            self._restart_task()
        else:
            self.clock.pause()
            if self.position == 0:
                self.state = next_state(_REPLAY, self.state, "at_start")
        self._on_state()
        return self.position

    def set_speed(self, value: Any) -> float:
        """Change speed (0.1..max_speed or "max"); takes effect immediately, no jump in data time.
        Pacing goes back to data time if it was by rows (``set_rate``)."""
        speed = parse_speed(value, self.policy)
        check_allowed("speed", _REPLAY, self.state)
        self.clock.set_speed(speed)
        self._pace_by(None)
        return speed

    def set_rate(self, value: Any) -> float | None:
        """Pace by rows (bars) per second, whatever the data's spacing (None: by data time at ``speed``).

        The clock follows the rows released (data time = the last row's timestamp)."""
        rate = parse_rate(value)
        check_allowed("rate", _REPLAY, self.state)
        self._pace_by(rate)
        return rate

    def _pace_by(self, rate: float | None) -> None:
        self.rate = rate
        if self.state is State.PLAYING:
            self.clock.resume()  # row pacing pauses the clock; time pacing needs it flowing
            self._restart_task()
        self._on_state()

    def set_loop(self, flag: Any) -> None:
        """Restart from the beginning at the end of the data (True) or finish (False)."""
        loop = parse_loop(flag)
        check_allowed("loop", _REPLAY, self.state)
        self.loop = loop
        self._on_state()

    async def aclose(self) -> None:
        """Stop the pacing task and release the cursor."""
        task = self._task
        self._cancel_task()
        if task is not None:
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - _run already logged any failure
                pass
        self._cursor.close()

    def cancel(self) -> None:
        """Stop releasing rows (the session leaves REPLAY): a playing replay is paused where it is."""
        self._cancel_task()
        self.clock.pause()
        self.state = next_state(_REPLAY, self.state, "leave")

    # ----------------------------------------------------------------- internals
    def _rewind(self, reason: str) -> None:
        self._cursor.close()
        self._cursor = self.source.open(None)
        self.clock.set_time(self.source.start_ns)
        self._on_rewind(reason)

    def _release_warmup(self, warmup: int | pd.Timedelta | pd.DateOffset, cut_ns: int) -> None:
        """Emit the rows before the cursor (``warmup`` rows, or those within the span before ``cut_ns``)
        as warm-up, with their source positions; at most ``policy.max_step_rows`` rows."""
        cut = self.position
        if isinstance(warmup, int):
            start = max(0, cut - warmup)
            cursor = self.source.open(None)
            skip = start
            while skip > 0:
                skip -= len(cursor.read(min(skip, 1 << 20)))
        else:
            start_ns = int((pd.Timestamp(cut_ns, tz="UTC") - warmup).value)
            cursor = self.source.open(max(start_ns, self.source.start_ns))
            start = cursor.position
        start = max(start, cut - self.policy.max_step_rows)
        try:
            while cursor.position < start:  # the span held more than max_step_rows: keep the newest
                cursor.read(min(start - cursor.position, 1 << 20))
            while cursor.position < cut:
                pos = cursor.position
                chunk = cursor.read(min(cut - pos, self.max_batch_rows))
                if not len(chunk):
                    break
                self._emit_warmup(chunk, pos)
        finally:
            cursor.close()

    def _release_until(self, end_ns: int) -> int:
        """Emit every row with ts <= end_ns in chunks of at most ``max_batch_rows``."""
        released, epoch = 0, self._epoch
        while self._epoch == epoch:
            chunk = self._cursor.read_until(end_ns, self.max_batch_rows)
            if not len(chunk):
                break
            self._emit(chunk)
            released += len(chunk)
        return released

    def _release_rows(self, n: int) -> int:
        """Emit the next ``n`` rows in chunks of at most ``max_batch_rows``; the clock follows the rows."""
        released, epoch = 0, self._epoch
        while released < n and self._epoch == epoch:
            chunk = self._cursor.read(min(n - released, self.max_batch_rows))
            if not len(chunk):
                break
            self._emit(chunk)
            released += len(chunk)
            if self._epoch == epoch:
                self.clock.set_time(int(chunk.ts[-1]))
        return released

    def _cancel_task(self) -> None:
        self._epoch += 1
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
        except Exception:  # a broken source must not kill the loop; surface as a paused replay (logged)
            log.exception("replay pacing failed")
            self.clock.pause()
            self.state = next_state(_REPLAY, self.state, "fail")
            self._task = None
            self._on_state()

    async def _pace(self) -> None:
        if self.rate is not None:
            await self._pace_rows(self.rate)
            return
        clock, timer = self.clock, self.timer
        epoch = self._epoch
        next_wake = timer.now()
        while self._epoch == epoch:
            if self.gate is not None:
                await self.gate()
                if self._epoch != epoch:  # a control came while we waited: its state stands
                    return
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
                self.state = next_state(_REPLAY, self.state, "end")
                self._task = None
                self._on_state()
                return
            if math.isinf(clock.speed):
                self._release_rows(self.max_batch_rows)
                await asyncio.sleep(0)
                continue
            deadline = max(clock.wall_deadline(nxt), next_wake)
            await timer.sleep_until(deadline)
            now = timer.now()
            self.last_release_lateness_ns = now - deadline
            if self.on_release is not None:
                self.on_release(deadline, now)
            # Every row due by now goes out; never early, and each row exactly once.
            self._release_until(max(clock.now_ns(), nxt))
            next_wake = now + self.frame_ns

    async def _pace_rows(self, rate: float) -> None:
        """Release ``rate`` rows per wall second (the first at once), coalesced per frame; the clock is
        frozen and set to each released row's time."""
        clock, timer = self.clock, self.timer
        epoch = self._epoch
        clock.pause()
        origin_wall, origin_pos = timer.now(), self.position
        next_wake = origin_wall
        while self._epoch == epoch:
            if self.gate is not None:
                await self.gate()
                if self._epoch != epoch:
                    return
            if self._cursor.peek_ns() is None:
                if self.loop and self.source.num_rows:
                    self._rewind("loop")
                    origin_wall, origin_pos = timer.now(), 0
                    await asyncio.sleep(0)
                    continue
                clock.set_time(self.source.end_ns)
                self.state = next_state(_REPLAY, self.state, "end")
                self._task = None
                self._on_state()
                return
            now = timer.now()
            due = origin_pos + 1 + int((now - origin_wall) * rate / 1e9)
            if due <= self.position or now < next_wake:
                deadline = origin_wall + math.ceil((self.position - origin_pos) * 1e9 / rate)
                await timer.sleep_until(max(deadline, next_wake))
                continue
            self._release_rows(min(due - self.position, self.max_batch_rows))
            next_wake = timer.now() + self.frame_ns
