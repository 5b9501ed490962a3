"""``SessionClient``: everything a synchronous client of one replay session does that is not I/O.

Two adapters sit on it (the httpx ``BaseClient`` / ``Client`` / ``AsyncClient`` split is the model):
``runner.ThreadedSession`` (the engine ``Session`` on a background loop in this process) and
``widgets.remote.RemoteSession`` (the kernel's session on the Jupyter server, over REST + WebSocket).
The base holds the public API (play/pause/stop/step/seek/set_speed/set_loop/set_mode/control/status/
frame/subscribe/on_batch/wait/close, same signatures on both), subscribers, the ``on_batch`` callbacks and
their error accounting, ``wait``, the mirrored buffer and the cached status. An adapter supplies
``_control`` (run one action from ``controls.CONTROLS`` with its argument names), ``_read_status``,
``state``, ``clock`` and ``close``, and feeds events in with ``_on_event`` and ``_run_callbacks``.

A failing ``on_batch`` callback never stops the replay: its first failure is logged with the traceback
(logger ``jupyter_replay.client``, level ERROR: with logging not configured, Python's last-resort handler
prints it to stderr, which a kernel shows as cell output) and passed to ``on_callback_error`` listeners (the
``Replay`` widget shows it in its status line); every failure is counted in ``status()["callback_errors"]``
and described in ``status()["error"]``; later failures of the same callback are not logged again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd

from .batch import Batch, Event, MarkEvent, ResetEvent, StateEvent
from .buffer import RollingBuffer
from .clock import Clock
from .controller import State
from .controls import parse_mark
from .exceptions import brief
from .marks import marks_frame, returned_marks
from .timeconv import ns_to_iso
from .worker import DEFAULT_CAPACITY, CallbackWorker

__all__ = ["NOT_PLAYING", "BatchCallback", "BatchCallbacks", "SessionClient"]

log = logging.getLogger(__name__)

BatchCallback = Callable[[Batch, Clock], Any]
#: Runs of the callbacks the p50/p99 in ``status()`` are taken over.
TIMING_WINDOW = 1024
#: How long ``step``/``seek``/``wait`` wait for the callbacks of the rows they released.
FLUSH_TIMEOUT = 60.0
#: Actions that return after the callbacks of what they released (rows, warm-up, the reset) have run.
FLUSHING_ACTIONS = ("step", "seek")
#: The states ``wait()`` waits for by default.
NOT_PLAYING: tuple[State, ...] = (State.FINISHED, State.PAUSED, State.STOPPED)


def _name(fn: Any) -> str:
    return str(getattr(fn, "__name__", None) or type(fn).__name__)


class BatchCallbacks:
    """``on_batch`` (or ``on_reset``: ``label``) callbacks run in order; a failure is logged with its
    traceback once per callback, then only counted (``errors``, ``last_error``)."""

    def __init__(self, label: str = "on_batch") -> None:
        self.label = label
        self._fns: list[Callable[..., Any]] = []
        self._times_lock = threading.Lock()
        self._times: deque[float] = deque(maxlen=TIMING_WINDOW)  # ms per run (all callbacks of one event)
        self._max_ms: float | None = None
        self._reported: set[int] = set()
        self.errors = 0
        self.last_error: str | None = None
        #: called with the error text on the first failure of each callback (e.g. a widget shows it)
        self.first_failure: list[Callable[[str], None]] = []
        #: called with each callback's non-None return value and the callback's arguments (``on_batch``:
        #: marks); its failure is that callback's failure
        self.on_result: Callable[..., None] | None = None

    def __len__(self) -> int:
        return len(self._fns)

    def add(self, fn: Callable[..., Any]) -> None:
        self._fns.append(fn)

    def remove(self, fn: BatchCallback) -> None:
        self._fns = [f for f in self._fns if f is not fn]

    def clear(self) -> None:
        self._fns = []

    def timing(self) -> dict[str, float | None]:
        """``callback_p50_ms``/``callback_p99_ms`` (over the last ``TIMING_WINDOW`` runs) and
        ``callback_max_ms`` (since the start) of one run of all callbacks; None before the first run."""
        with self._times_lock:
            times = list(self._times)
            top = self._max_ms
        if not times:
            return {"callback_p50_ms": None, "callback_p99_ms": None, "callback_max_ms": None}
        p50, p99 = np.percentile(np.asarray(times), [50, 99])
        return {"callback_p50_ms": round(float(p50), 3), "callback_p99_ms": round(float(p99), 3),
                "callback_max_ms": round(float(top or 0.0), 3)}

    def run(self, *args: Any) -> None:
        """Call every callback with ``args`` (``(batch, clock)`` for ``on_batch``, ``(reason, position)``
        for ``on_reset``); the time they take is recorded (``timing``)."""
        if not self._fns:
            return
        start = time.perf_counter()
        try:
            self._run(args)
        finally:
            ms = (time.perf_counter() - start) * 1e3
            with self._times_lock:
                self._times.append(ms)
                self._max_ms = ms if self._max_ms is None else max(self._max_ms, ms)

    def _run(self, args: tuple[Any, ...]) -> None:
        for fn in list(self._fns):
            try:
                result = fn(*args)
                if result is not None and self.on_result is not None:
                    self.on_result(result, *args)
            except Exception as exc:
                self.errors += 1
                self.last_error = f"{self.label} callback {brief(_name(fn))} failed: {brief(exc, 200)}"
                if id(fn) not in self._reported:
                    self._reported.add(id(fn))
                    log.exception(
                        "%s callback %r failed (shown once; later failures are counted in "
                        "status()['callback_errors'])", self.label, _name(fn),
                    )
                    for notify in list(self.first_failure):
                        try:
                            notify(self.last_error)
                        except Exception:  # a broken listener must not hide the callback's error
                            log.exception("callback error listener failed")


class SessionClient:
    """The host-independent part of a synchronous session client (see the module docstring)."""

    id: str

    def __init__(
        self, *, buffer_rows: int = 100_000, tz: Any = None, mirror: bool = True,
        callback_queue: int = DEFAULT_CAPACITY,
    ) -> None:
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._subscribers: list[Callable[[Event], None]] = []
        self._callbacks = BatchCallbacks()
        self._callbacks.on_result = self._mark_returned  # marks a callback returns are marked
        self._reset_callbacks = BatchCallbacks("on_reset")
        #: the session's marks since the last reset (``MarkEvent.to_json()``), as received
        self._marks: list[dict[str, Any]] = []
        #: this client's callbacks run here, in order, off the event loop (see ``worker``)
        self._worker = CallbackWorker(capacity=callback_queue)
        self._buffer_rows = int(buffer_rows)
        self._tz = tz
        #: rows received since the last reset (None: the adapter reads the engine's own buffer)
        self._mirror: RollingBuffer | None = RollingBuffer(self._buffer_rows, {}, tz=tz) if mirror else None
        self._status: dict[str, Any] = {}
        self._status_at = time.monotonic()
        self._status_seq = -1
        self._recent: deque[tuple[int, int]] = deque(maxlen=4096)  # (seq, rows) of batches after the status
        self._last_ts: int | None = None
        self._closed = False

    # ------------------------------------------------------------------ what an adapter supplies
    def _control(self, action: str, args: dict[str, Any]) -> dict[str, Any]:
        """Run ``action`` (a ``controls.CONTROLS`` name) with ``args``; returns the status after it."""
        raise NotImplementedError

    def _read_status(self) -> dict[str, Any]:
        """The session's status as the adapter knows it (before the client's own keys are merged in)."""
        raise NotImplementedError

    @property
    def state(self) -> State:
        raise NotImplementedError

    @property
    def clock(self) -> Clock:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ views
    def status(self) -> dict[str, Any]:
        """The session's status; ``callback_errors`` includes this client's failing callbacks."""
        st = self._read_status()
        st["callback_errors"] = int(st.get("callback_errors") or 0) + self.callback_errors
        last = self._callbacks.last_error or self._reset_callbacks.last_error
        if last and not st.get("error"):
            st["error"] = last
        st.update(self._callback_timing())
        return st

    def frame(self) -> pd.DataFrame:
        """The buffered rows (most recent ``buffer_rows``) as a DataFrame with a ``timestamp`` column."""
        with self._lock:
            assert self._mirror is not None
            return self._mirror.to_frame()

    @property
    def marks(self) -> pd.DataFrame:
        """The plot's marks since the last reset: ``time`` (tz like ``frame()``), ``y`` (NaN: the plotted
        value), ``text``, ``side``."""
        with self._lock:
            return marks_frame(list(self._marks), self._tz)

    # ------------------------------------------------------------------ controls
    def control(self, action: str, args: dict[str, Any] | None = None, *, wait: bool = True) -> dict[str, Any]:
        """Any action of ``controls.CONTROLS`` with its argument names; returns the status after it
        (``step`` and ``seek``: after the callbacks of the rows they released have run, ``flush``, unless
        ``wait=False``: a button in the browser must not hold the kernel while callbacks run)."""
        st = self._control(str(action), dict(args or {}))
        if wait and action in FLUSHING_ACTIONS:
            self.flush(FLUSH_TIMEOUT)
        st = dict(st)
        st["callback_errors"] = int(st.get("callback_errors") or 0) + self.callback_errors
        st.update(self._callback_timing())
        return st

    def _callback_timing(self) -> dict[str, Any]:
        """This client's callbacks are the user's: their timing and queue replace the session's keys."""
        return {**self._callbacks.timing(), "callback_queue": self._worker.pending}

    def play(self) -> None:
        self.control("play")

    def pause(self) -> None:
        self.control("pause")

    def stop(self) -> None:
        self.control("stop")

    def step(self, n: int | None = None, *, duration: Any = None) -> int:
        """Release the next ``n`` rows (or those within ``duration`` of data time); returns the rows released."""
        args: dict[str, Any] = {}
        if n is not None:
            args["n"] = n
        if duration is not None:
            args["duration"] = duration
        before = int(self.status().get("position") or 0)
        st = self.control("step", args)  # returns once the callbacks of the rows stepped over have run
        return int(st.get("position") or 0) - before

    def seek(
        self, target: Any = None, *, fraction: float | None = None, row: int | None = None, warmup: Any = None,
    ) -> int:
        """Jump to a timestamp, a ``fraction`` in [0, 1] or a ``row``; returns the new position. ``warmup``
        (rows, or a span such as ``"30D"``/``"3M"``) keeps that history before the cut (``Session.seek``)."""
        args: dict[str, Any] = {}
        if warmup is not None:
            args["warmup"] = warmup
        if target is not None:
            args["timestamp"] = target
        if fraction is not None:
            args["fraction"] = fraction
        if row is not None:
            args["row"] = row
        return int(self.control("seek", args).get("position") or 0)  # after on_reset and the warm-up callbacks

    def set_speed(self, value: Any) -> float:
        """Set the speed (see ``controls.parse_speed``); returns it (``inf`` for ``"max"``)."""
        sp: Any = self.control("speed", {"speed": value}).get("speed")
        return float("inf") if sp == "max" else float(sp)

    def set_rate(self, value: Any) -> float | None:
        """Pace by rows (bars) per second; None goes back to pacing by data time (``Session.set_rate``)."""
        rate: Any = self.control("rate", {"rate": value}).get("rate")
        return None if rate is None else float(rate)

    def set_loop(self, flag: Any) -> None:
        self.control("loop", {"loop": flag})

    def set_mode(self, mode: Any, symbol: str | None = None) -> None:
        args: dict[str, Any] = {"mode": getattr(mode, "value", mode)}
        if symbol is not None:
            args["symbol"] = symbol
        self.control("mode", args)

    def mark(self, time: Any = None, y: Any = None, text: Any = None, side: Any = None) -> None:
        """Put a buy/sell marker and/or a label on the plot (``Session.mark``): at ``time`` (default: the
        last released row), at ``y`` (default: the plotted value there); cleared on every reset."""
        args = parse_mark(time, y, text, side)  # refused here as on every host, before any I/O
        self.control("mark", {k: v for k, v in args.items() if v is not None})

    def _mark_returned(self, result: Any, batch: Batch | None = None, *_: Any) -> None:
        """An ``on_batch`` callback returned marks (a dict, a list of them or a DataFrame): mark them in
        order, after its batch (no time: its last row's). Invalid marks raise: that callback failed."""
        for kwargs in returned_marks(result, batch):
            self.mark(**kwargs)

    # ------------------------------------------------------------------ subscriptions
    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """``callback(event)`` for every event, on the client's I/O thread; returns an unsubscribe function."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def on_batch(self, fn: BatchCallback) -> BatchCallback:
        """Decorator: ``fn(batch, clock)`` for every batch, on this client's callback thread (``flush``).

        A failure is logged once per callback with its traceback, then counted in
        ``status()["callback_errors"]``; it never stops the replay.
        """
        self._callbacks.add(fn)
        self._callbacks_changed()
        return fn

    def on_reset(self, fn: Callable[[str, int | None], Any]) -> Callable[[str, int | None], Any]:
        """Decorator: ``fn(reason, position)`` after every reset, as ``Session.on_reset`` (``position``:
        source row where the stream resumes; compare with the next batch's ``position``)."""
        self._reset_callbacks.add(fn)
        return fn

    def _callbacks_changed(self) -> None:
        """An adapter hook: the ``on_batch`` callbacks changed (the remote one tells the server to wait)."""

    def on_callback_error(self, fn: Callable[[str], None]) -> None:
        """``fn(message)`` on the first failure of each ``on_batch`` callback (the widget shows it)."""
        self._callbacks.first_failure.append(fn)

    @property
    def callback_errors(self) -> int:
        """Failures of this client's ``on_batch`` and ``on_reset`` callbacks."""
        return self._callbacks.errors + self._reset_callbacks.errors

    def wait(self, states: Iterable[State | str] = NOT_PLAYING, timeout: float = 60.0) -> State:
        """Block until the session is in one of ``states`` (default: not playing) and the callbacks of the
        rows released so far have run; returns the state."""
        wanted = {State(s) for s in states}
        deadline = time.monotonic() + timeout
        with self._cond:
            while (state := self.state) not in wanted:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"session still {state.value} after {timeout}s")
                self._cond.wait(min(left, 0.1))
        if not self.flush(max(0.0, deadline - time.monotonic())):
            raise TimeoutError(f"callbacks still running after {timeout}s ({self._worker.pending} queued)")
        return state

    def flush(self, timeout: float | None = FLUSH_TIMEOUT) -> bool:
        """Block until every callback queued so far has run (True) or ``timeout`` s passed (False).

        ``on_batch``/``on_reset`` callbacks run on this client's own worker thread, behind a bounded queue:
        a slow callback holds back this replay only (its producer waits for room), never another replay
        and never a control (``play()`` returns at once). ``step``, ``seek`` and ``wait`` flush."""
        return self._worker.flush(timeout)

    async def _callback_room(self) -> None:
        """Awaited by this client's producer (engine pacing, WebSocket reader) before more rows."""
        await self._worker.room()

    def _close_callbacks(self) -> None:
        self._worker.close()

    # ------------------------------------------------------------------ events in (from the adapter)
    def _on_event(self, event: Event) -> None:
        """An event of the session: update the mirror and the cached status, then tell the subscribers."""
        with self._cond:
            if isinstance(event, Batch):
                self._mirror_rows(event)
            elif isinstance(event, ResetEvent):
                if self._mirror is not None and event.columns:  # the new stream's schema (mode, source)
                    dtypes = {name: np.dtype(dt) for name, dt in event.columns}
                    if dtypes != self._mirror.dtypes:
                        self._mirror = RollingBuffer(self._buffer_rows, dtypes, tz=self._tz)
                if self._mirror is not None:
                    self._mirror.clear()
                self._last_ts = None
                self._recent.clear()
                self._marks = []
            elif isinstance(event, MarkEvent):
                self._marks.append(event.to_json())
            elif isinstance(event, StateEvent) and event.status:
                self._set_status(event.status)
            self._cond.notify_all()
        for cb in list(self._subscribers):
            try:
                cb(event)
            except Exception:  # one bad subscriber must not starve the others
                log.exception("session %s subscriber failed", getattr(self, "id", "?"))
        if isinstance(event, ResetEvent) and len(self._reset_callbacks):
            self._dispatch(self._reset_callbacks.run, event.reason, event.position)

    def _run_callbacks(self, batch: Batch, clock: Clock | None = None) -> None:
        """Queue the ``on_batch`` callbacks for ``batch`` (after the subscribers have it) on the worker."""
        if len(self._callbacks):
            self._dispatch(self._callbacks.run, batch, clock if clock is not None else self.clock)

    def _dispatch(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)`` on this client's worker (every adapter: the I/O thread never runs user code)."""
        self._worker.submit(fn, *args)

    def _mirror_rows(self, batch: Batch) -> None:
        if len(batch):
            self._last_ts = int(batch.ts[-1])
            if batch.seq > self._status_seq:
                self._recent.append((batch.seq, len(batch)))
        if self._mirror is None:
            return
        dtypes = {k: v.dtype for k, v in batch.columns.items()}
        if dtypes != self._mirror.dtypes:  # a new schema (new source, mode): a new buffer
            self._mirror = RollingBuffer(self._buffer_rows, dtypes, tz=self._tz)
        self._mirror.append(batch)  # type: ignore[arg-type]  # a Batch has the Chunk fields

    def _replace_mirror(self, batch: Batch) -> None:
        """The session's whole buffer (a history frame) replaces the mirror."""
        with self._cond:
            if self._mirror is not None:
                dtypes = {k: v.dtype for k, v in batch.columns.items()}
                self._mirror = RollingBuffer(self._buffer_rows, dtypes, tz=self._tz)
                self._mirror.append(batch)  # type: ignore[arg-type]
            self._last_ts = int(batch.ts[-1]) if len(batch) else None
            self._recent.clear()
            self._cond.notify_all()

    def _replace_marks(self, marks: list[dict[str, Any]]) -> None:
        """The session's current marks (sent with a history) replace the ones known."""
        with self._cond:
            self._marks = list(marks)

    # ------------------------------------------------------------------ cached status
    def _set_status(self, status: dict[str, Any]) -> None:
        """Keep ``status`` unless a newer one (higher ``seq``) is known."""
        with self._cond:
            seq = int(status.get("seq") or 0)
            if seq < self._status_seq:
                return
            self._status_seq = seq
            self._status = dict(status)
            while self._recent and self._recent[0][0] <= seq:
                self._recent.popleft()
            self._status_at = time.monotonic()
            self._cond.notify_all()

    def _cached_status(self) -> dict[str, Any]:
        """The last status received, moved on by the rows received since.

        A server sends a status on transitions only; ``position``, ``position_ns``, ``progress``,
        ``rows`` and ``buffer_rows`` are advanced by the rows of later batches.
        """
        with self._lock:
            st = dict(self._status)
            extra = sum(rows for seq, rows in self._recent if seq > self._status_seq)
            if extra:
                pos = int(st.get("position") or 0) + extra
                st["position"] = pos
                st["rows"] = int(st.get("rows") or 0) + extra
                cap = int(st.get("buffer_capacity") or self._buffer_rows)
                st["buffer_rows"] = min(cap, int(st.get("buffer_rows") or 0) + extra)
                if self._last_ts is not None:
                    st["position_ns"] = self._last_ts
                    st["position_iso"] = ns_to_iso(self._last_ts)
                if st.get("mode") != "live" and st.get("num_rows"):
                    st["progress"] = min(1.0, pos / int(st["num_rows"]))
            return st
