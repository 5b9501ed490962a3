"""``Session``: one replay/live stream with its own clock, controller, buffer and sequence numbers.

A session is single-threaded asyncio: create and drive it on one event loop (``runner.ThreadedSession``
wraps it for synchronous callers). Nothing in here is global: every piece of state belongs to one session.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pandas as pd

from .batch import TIME_COLUMN, Batch, Chunk, Event, MarkEvent, Mode, ResetEvent, StateEvent
from .buffer import RollingBuffer
from .client import BatchCallbacks
from .clock import Clock, LiveClock
from .controller import DEFAULT_FRAME_NS, ReplayController
from .controls import (
    CONTROLS,
    MAX_MARKS,
    MAX_SPEED,
    Policy,
    State,
    check_allowed,
    check_symbol,
    next_state,
    normalise_args,
    parse_loop,
    parse_mark,
    parse_mode,
    parse_rate,
    parse_seek,
    parse_speed,
    parse_step,
    speed_to_json,
)
from .exceptions import FeedError, IllegalTransitionError
from .marks import returned_marks
from .sources.base import LiveSource, ReplaySource
from .timeconv import ns_to_iso
from .timer import Timer

__all__ = ["Session", "Mode", "State", "BatchCallback", "check_symbol"]

log = logging.getLogger(__name__)

BatchCallback = Callable[[Batch, Clock], Any]

def _default_live_factory(symbol: str) -> LiveSource:
    from .sources.synthetic import SyntheticFeed

    return SyntheticFeed(symbol=symbol)


def _json_scalar(value: Any) -> Any:
    if isinstance(value, (np.floating, float)):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    return str(value)


class Session:
    """A replay of recorded data (REPLAY) or a live feed (LIVE) with a bounded DataFrame buffer.

    Every event (``Batch``, ``StateEvent``, ``ResetEvent``) carries ``seq = previous + 1``. Within one
    mode between resets, batches' ``first_row`` values are contiguous. Switching mode, stopping or
    seeking clears the buffer and emits a ``ResetEvent`` before any new rows.
    """

    def __init__(
        self,
        source: ReplaySource | None = None,
        *,
        session_id: str | None = None,
        live_factory: Callable[[str], LiveSource] | None = None,
        buffer_rows: int = 100_000,
        timer: Timer | None = None,
        speed: float | str = 1.0,
        loop: bool = False,
        frame_ns: int = DEFAULT_FRAME_NS,
        symbol: str = "DEMO",
        max_speed: float = MAX_SPEED,
        policy: Policy | None = None,
        rate: float | str | None = None,
    ) -> None:
        self.id = session_id or uuid.uuid4().hex
        self.policy = policy or Policy(max_speed=float(max_speed))
        self.live_factory = live_factory or _default_live_factory
        self.buffer_rows = int(buffer_rows)
        self.timer = timer
        self.frame_ns = int(frame_ns)
        self.symbol = check_symbol(symbol)
        self.mode = Mode.REPLAY
        self.seq = 0
        self.rows = 0  # rows emitted in this mode since the last reset
        self.rows_total = 0  # rows emitted since the session began (never reset: throughput, e.g. at "max")
        self.frames_merged = 0  # display frames coalesced for slow clients, no data lost (set by the server)
        self.rows_dropped = 0  # rows a client never received (resyncs; set by the server)
        self.callback_errors = 0
        self.last_error: str | None = None
        self.last: dict[str, Any] | None = None  # latest row snapshot, cleared with the buffer
        #: plot markers since the last reset (``mark``), at most ``controls.MAX_MARKS``
        self.marks: list[MarkEvent] = []
        self._speed_setting: float = parse_speed(speed, self.policy)
        self._loop_setting = parse_loop(loop)
        self._rate_setting = parse_rate(rate)
        self._subscribers: list[Callable[[Event], None]] = []
        self._holds: list[Callable[[], Awaitable[None]]] = []
        self._callbacks = BatchCallbacks()  # a failure is logged once per callback, then counted
        self._callbacks.on_result = self._mark_returned  # marks a callback returns are marked
        self._reset_callbacks = BatchCallbacks("on_reset")
        self._live_clock = LiveClock()
        self._live: LiveSource | None = None
        self._live_task: asyncio.Task[None] | None = None
        self._live_state = State.STOPPED
        self._closing: set[asyncio.Task[Any]] = set()
        self.source: ReplaySource | None = None
        self.controller: ReplayController | None = None
        self.buffer = RollingBuffer(self.buffer_rows, {})
        if source is not None:
            self._install_source(source)

    # ----------------------------------------------------------------- read-only views
    @property
    def state(self) -> State:
        """Replay state in REPLAY; in LIVE, PLAYING while rows flow, PAUSED or STOPPED otherwise."""
        if self.mode is Mode.LIVE:
            return self._live_state
        return self.controller.state if self.controller else State.STOPPED

    @property
    def clock(self) -> Clock:
        """The replay clock in REPLAY, the wall clock in LIVE."""
        if self.mode is Mode.LIVE or self.controller is None:
            return self._live_clock
        return self.controller.clock

    @property
    def max_speed(self) -> float:
        return self.policy.max_speed

    @property
    def speed(self) -> float:
        return self.controller.speed if self.controller else self._speed_setting

    @property
    def rate(self) -> float | None:
        """Rows per second when pacing by rows; None when pacing by data time (``speed``)."""
        return self.controller.rate if self.controller else self._rate_setting

    @property
    def loop(self) -> bool:
        return self.controller.loop if self.controller else bool(self._loop_setting)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def frame(self, time_column: str = TIME_COLUMN) -> pd.DataFrame:
        """The buffered rows (most recent ``buffer_rows``) as a DataFrame."""
        return self.buffer.to_frame(time_column)

    def status(self) -> dict[str, Any]:
        """JSON-safe summary of everything a client shows."""
        ctl, src = self.controller, self.source
        time_ns: int | None
        if self.mode is Mode.REPLAY and ctl is not None:
            position, position_ns, progress = ctl.position, ctl.position_ns, ctl.progress
            time_ns = ctl.time_ns
        else:
            position, position_ns, progress = self.rows, self.buffer.last_ns, None
            time_ns = self._live_clock.now_ns() if self.mode is Mode.LIVE else None
        return {
            "id": self.id,
            "mode": self.mode.value,
            "state": self.state.value,
            "speed": speed_to_json(self.speed),
            "rate": self.rate,
            "pacing": "time" if self.rate is None else "rows",
            "loop": self.loop,
            "symbol": self.symbol,
            "has_data": src is not None,
            "position": int(position),
            "position_ns": position_ns,
            "position_iso": ns_to_iso(position_ns),
            "time_ns": time_ns,
            "progress": progress,
            "num_rows": int(src.num_rows) if src else 0,
            "start_ns": int(src.start_ns) if src else None,
            "end_ns": int(src.end_ns) if src else None,
            "columns": list(self.buffer.dtypes),
            "buffer_rows": len(self.buffer),
            "buffer_capacity": self.buffer.capacity,
            "rows": self.rows,
            "rows_total": self.rows_total,
            "seq": self.seq,
            "frames_merged": self.frames_merged,
            "rows_dropped": self.rows_dropped,
            "subscribers": self.subscribers,
            "marks": len(self.marks),
            "callback_errors": self.callback_errors,
            **self._callbacks.timing(),
            "callback_queue": 0,  # engine callbacks run inline; a client's worker reports its own queue
            "error": self.last_error,
            "last": self.last,
        }

    # ----------------------------------------------------------------- subscriptions
    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event; returns a function that unsubscribes."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            try:
                self._subscribers.remove(callback)
            except ValueError:
                pass

        return unsubscribe

    def hold(self, gate: Callable[[], Awaitable[None]]) -> Callable[[], None]:
        """Pacing waits for ``await gate()`` before each release (returns a function that removes it).

        The server gives this to the kernel's own client while it runs ``on_batch`` callbacks, so a
        callback in the kernel sees rows the way it does headless: the next rows wait until it returned,
        and a ``stop()`` or ``pause()`` it calls takes effect before anything else is released.
        """
        self._holds.append(gate)

        def release() -> None:
            if gate in self._holds:
                self._holds.remove(gate)

        return release

    async def _wait_holds(self) -> None:
        for gate in list(self._holds):
            await gate()

    def on_batch(self, fn: BatchCallback) -> BatchCallback:
        """Decorator: ``fn(batch, clock)`` runs for every batch in REPLAY and LIVE.

        Exceptions are logged and counted (``status()["callback_errors"]``); they never stop the session.
        """
        self._callbacks.add(fn)
        return fn

    def remove_callback(self, fn: BatchCallback) -> None:
        """Forget a callback added with ``on_batch`` or ``on_reset``."""
        self._callbacks.remove(fn)
        self._reset_callbacks.remove(fn)

    def on_reset(self, fn: Callable[[str, int | None], Any]) -> Callable[[str, int | None], Any]:
        """Decorator: ``fn(reason, position)`` after every reset (buffer cleared: stop, seek, mode, loop,
        source, restart). ``position`` is where the stream resumes: the source row of the next row in
        REPLAY (0 on a restart; the old position after LIVE -> REPLAY), 0 in LIVE. Compare it with the
        next batch's ``position`` to tell a resume from a restart. Failures count in ``callback_errors``."""
        self._reset_callbacks.add(fn)
        return fn

    # ----------------------------------------------------------------- controls
    # One method per row of ``controls.CONTROLS``. The rule on every host: argument values are checked
    # first (InvalidValueError, HTTP 400, whatever the state), then the transition table's guard
    # (IllegalTransitionError, HTTP 409); checks that need the data (a seek target's range) come last.
    def play(self) -> None:
        if self.mode is Mode.LIVE:
            target = check_allowed("play", Mode.LIVE, self._live_state)
            if self._live_task is None:
                self._start_live()
            self._live_state = target
            self._emit_state()
            return
        self._ctl().play()

    def pause(self) -> None:
        if self.mode is Mode.LIVE:
            target = check_allowed("pause", Mode.LIVE, self._live_state)
            if target is not self._live_state:
                self._live_state = target
                self._emit_state()
            return
        self._ctl().pause()

    def stop(self) -> None:
        if self.mode is Mode.LIVE:
            target = check_allowed("stop", Mode.LIVE, self._live_state)
            self._stop_live()
            self._reset("stop")
            self._live_state = target
            self._emit_state()
            return
        self._ctl().stop()

    def step(self, n: int | None = None, *, duration: Any = None) -> int:
        args = parse_step(n, duration, self.policy)
        check_allowed("step", self.mode, self.state)
        return self._ctl().step(**args)

    def seek(
        self, target: Any = None, *, fraction: float | None = None, row: int | None = None, warmup: Any = None,
    ) -> int:
        """Jump to a timestamp, ``fraction`` or ``row``. ``warmup`` (rows, or a span of data time such as
        ``"30D"``/``"3M"``) releases that history before the cut right after the reset, as batches with
        ``warmup=True``: the buffer, the plot and the callbacks have it, the replay resumes at the cut."""
        args = parse_seek(target, fraction, row, warmup, self.policy)
        check_allowed("seek", self.mode, self.state)
        return self._ctl().seek(**args)

    def set_speed(self, value: Any) -> float:
        speed = parse_speed(value, self.policy)
        check_allowed("speed", self.mode, self.state)
        if self.controller is None:
            self._speed_setting = speed
            self._rate_setting = None
            self._emit_state()
            return speed
        return self.controller.set_speed(speed)

    def set_rate(self, value: Any) -> float | None:
        """Pace by rows (bars) per second (None: by data time at ``speed``, as setting a speed does).

        Per-batch logic sees different batches at different paces: rows due within one display frame
        go out together, so faster replays bring fewer, bigger batches (docs/design.md, "Pacing")."""
        rate = parse_rate(value)
        check_allowed("rate", self.mode, self.state)
        if self.controller is None:
            self._rate_setting = rate
            self._emit_state()
            return rate
        return self.controller.set_rate(rate)

    def set_loop(self, flag: Any) -> None:
        self._loop_setting = parse_loop(flag)
        check_allowed("loop", self.mode, self.state)
        if self.controller is not None:
            self.controller.set_loop(self._loop_setting)
        else:
            self._emit_state()

    def set_mode(self, mode: Any, symbol: str | None = None) -> None:
        """Switch REPLAY <-> LIVE: stops the current stream, clears the buffer, emits a reset.

        LIVE starts streaming ``symbol`` (default: the current symbol) right away; back in REPLAY the
        replay is paused where it was.
        """
        new = parse_mode(mode)
        sym = self.symbol if symbol is None else check_symbol(symbol)
        check_allowed("mode", self.mode, self.state)
        if new is self.mode and (new is Mode.REPLAY or sym == self.symbol):
            return
        self.symbol = sym
        if self.mode is Mode.LIVE:
            self._stop_live()
            self._live_state = next_state(Mode.LIVE, self._live_state, "leave")
        elif self.controller is not None:
            self.controller.cancel()
        self.mode = new
        if new is Mode.LIVE:
            self._live = None
            self._start_live()
            self._live_state = next_state(Mode.LIVE, State.STOPPED, "play")
        self._reset("mode")
        self._emit_state()

    def mark(self, time: Any = None, y: Any = None, text: Any = None, side: Any = None) -> MarkEvent:
        """Put a marker on the plot: ``side`` "buy" (green triangle below) / "sell" (red triangle above)
        and/or a ``text`` label, at ``time`` (default: the last released row) and ``y`` (default: the
        plotted value there). Published as a ``MarkEvent``, kept until the next reset (stop, seek, mode,
        source), at most ``controls.MAX_MARKS`` (one more is refused, 409)."""
        args = parse_mark(time, y, text, side)
        check_allowed("mark", self.mode, self.state)
        t = args["time"]
        if t is None:
            if self.last is None:
                raise IllegalTransitionError("mark needs a time: no row released since the last reset; pass time=")
            t = int(self.last["timestamp_ns"])
        if len(self.marks) >= MAX_MARKS:
            raise IllegalTransitionError(
                f"this replay already holds {MAX_MARKS:,} marks (the most kept); they clear on the next reset "
                "(stop, seek)"
            )
        event = MarkEvent(self._next_seq(), self.id, t, args["y"], args["text"], args["side"])
        self.marks.append(event)
        self._publish(event)
        return event

    def _mark_returned(self, result: Any, batch: Batch | None = None, *_: Any) -> None:
        """What an ``on_batch`` callback returned: marks (``marks.returned_marks``), marked in order."""
        for kwargs in returned_marks(result, batch):
            self.mark(**kwargs)

    def set_source(self, source: ReplaySource) -> None:
        """Replace the recorded data (the replay is stopped and rewound; the buffer is cleared)."""
        if self.controller is not None:
            self.controller.cancel()
            old = self.controller
            self._spawn(old.aclose())
        self._install_source(source)
        if self.mode is Mode.REPLAY:
            self._reset("source")
        self._emit_state()

    def reset(self, reason: str = "restart") -> None:
        """Clear the buffer and snapshot (e.g. after a kernel restart), keeping mode and position."""
        self._reset(reason)
        self._emit_state()

    def control(self, action: str, args: dict[str, Any] | None = None, policy: Policy | None = None) -> dict[str, Any]:
        """Run a named action (REST, WebSocket and clients): normalise its arguments with the control
        table (under ``policy``, default this session's), call its method; returns ``status()``."""
        kwargs = normalise_args(action, args, policy or self.policy)
        getattr(self, CONTROLS[action].method)(**kwargs)
        return self.status()

    async def aclose(self) -> None:
        """Stop everything and release sources, feeds and subscribers."""
        self._stop_live()
        if self.controller is not None:
            await self.controller.aclose()
        if self._closing:
            await asyncio.gather(*list(self._closing), return_exceptions=True)
        self._subscribers.clear()
        self._callbacks.clear()
        self._reset_callbacks.clear()

    # ----------------------------------------------------------------- internals
    def _ctl(self) -> ReplayController:
        if self.controller is None:
            raise IllegalTransitionError("no data loaded in this session; load a source first")
        return self.controller

    def _replay_only(self, what: str) -> None:
        if self.mode is Mode.LIVE:
            raise IllegalTransitionError(f"cannot {what} in LIVE mode; switch to REPLAY first")

    def _install_source(self, source: ReplaySource) -> None:
        self.source = source
        self.controller = ReplayController(
            source,
            emit=self._emit_rows,
            emit_warmup=lambda chunk, position: self._emit_rows(chunk, position, warmup=True),
            on_state=self._emit_state,
            on_rewind=self._reset,
            timer=self.timer,
            speed=self._speed_setting if self.controller is None else self.controller.speed,
            loop=self._loop_setting if self.controller is None else self.controller.loop,
            rate=self._rate_setting if self.controller is None else self.controller.rate,
            frame_ns=self.frame_ns,
            policy=self.policy,
        )
        self.controller.gate = self._wait_holds
        if self.mode is Mode.REPLAY:
            self.buffer = RollingBuffer(self.buffer_rows, source.dtypes, tz=source.tz)

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def _publish(self, event: Event) -> None:
        for cb in list(self._subscribers):
            try:
                cb(event)
            except Exception:  # one bad subscriber must not starve the others
                log.exception("session %s subscriber failed", self.id)

    def _emit_rows(self, chunk: Chunk, position: int | None = None, warmup: bool = False) -> None:
        if not len(chunk):
            return
        self.buffer.append(chunk)
        batch = Batch(
            self._next_seq(), self.id, self.mode, chunk.ts, dict(chunk.columns), self.rows,
            self._source_position(len(chunk)) if position is None else position, warmup,
        )
        self.rows += len(chunk)
        self.rows_total += len(chunk)
        self.last = {"timestamp_ns": int(chunk.ts[-1])}
        for name, col in chunk.columns.items():
            self.last[name] = _json_scalar(col[-1])
        self._publish(batch)
        self._run(self._callbacks, batch, self.clock)

    def _run(self, callbacks: BatchCallbacks, *args: Any) -> None:
        errors = callbacks.errors
        callbacks.run(*args)
        if callbacks.errors != errors:
            self.callback_errors += callbacks.errors - errors
            self.last_error = callbacks.last_error

    def _source_position(self, rows: int) -> int:
        """Source row of the first of the ``rows`` just read (REPLAY: the cursor has moved past them)."""
        if self.mode is Mode.REPLAY and self.controller is not None:
            return self.controller.position - rows
        return self.rows

    def _resume_position(self) -> int:
        return self.controller.position if self.mode is Mode.REPLAY and self.controller is not None else 0

    def _emit_state(self) -> None:
        self._publish(StateEvent(self._next_seq(), self.id, self.status()))

    def _reset(self, reason: str) -> None:
        dtypes = self.buffer.dtypes
        if self.mode is Mode.LIVE and self._live is not None:
            dtypes = dict(self._live.dtypes)
        elif self.mode is Mode.REPLAY and self.source is not None:
            dtypes = dict(self.source.dtypes)
        tz = self.source.tz if (self.mode is Mode.REPLAY and self.source) else None
        if dtypes != self.buffer.dtypes or tz != self.buffer.tz:
            self.buffer = RollingBuffer(self.buffer_rows, dtypes, tz=tz)
        else:
            self.buffer.clear()
        self.rows = 0
        self.last = None
        self.marks = []
        columns = tuple((name, np.dtype(dt).str) for name, dt in self.buffer.dtypes.items())
        position = self._resume_position()
        self._publish(ResetEvent(self._next_seq(), self.id, self.mode, reason, columns, position))
        self._run(self._reset_callbacks, reason, position)

    def _spawn(self, coro: Any) -> None:
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:  # no loop (closing outside asyncio): run nothing, drop the coroutine
            coro.close()
            return
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _start_live(self) -> None:
        try:
            self._live = self.live_factory(self.symbol)
        except Exception as exc:
            raise FeedError(f"cannot open live feed for {self.symbol!r}: {exc}") from exc
        self.last_error = None
        self._live_task = asyncio.get_running_loop().create_task(
            self._consume_live(self._live), name=f"jupyter_replay.live.{self.symbol}"
        )

    def _stop_live(self) -> None:
        if self._live_task is not None:
            self._live_task.cancel()
            self._live_task = None
        if self._live is not None:
            self._spawn(self._live.aclose())
            self._live = None

    async def _consume_live(self, source: LiveSource) -> None:
        try:
            async for chunk in source.batches():
                await self._wait_holds()  # a client's callbacks hold this session's rows (``hold``)
                if self._live is not source:
                    return
                if self._live_state is State.PLAYING:
                    self._emit_rows(chunk)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("session %s live feed failed", self.id)
            self.last_error = f"live feed failed: {exc!r}"
        if self._live is source:  # the feed ended or failed by itself
            self._live_state = next_state(Mode.LIVE, self._live_state, "fail" if self.last_error else "end")
            self._live_task = None
            self._emit_state()
