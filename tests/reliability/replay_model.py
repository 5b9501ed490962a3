"""A model of one replay session alone (state machine, settings, row accounting) and the control
inputs the isolation tests draw from, each paired with its normalized value (None: must be refused).

Shared by ``test_isolation_engine.py`` (events absorbed, rows tracked) and ``test_isolation_server.py``
(controls only: the model predicts status codes and the resulting mode/state/speed/loop/symbol).
"""

from __future__ import annotations

from collections import Counter, deque
from typing import Any, Callable

import numpy as np
import pandas as pd
from hypothesis import strategies as st

from jupyter_replay import Batch, State, StateEvent
from jupyter_replay.batch import ResetEvent
from jupyter_replay.exceptions import IllegalTransitionError, InvalidValueError

__all__ = [
    "SEC", "STATS", "SPEEDS", "LOOPS", "MODES", "SYMBOLS", "DURATIONS", "STEP_NS", "FRACTIONS",
    "mostly_valid", "kinds", "lookup", "Model",
]

SEC = 1_000_000_000
STATS: Counter[str] = Counter()  # what a run exercised (tests check it: a run that did nothing fails)

# (value, normalized or None when invalid)
SPEEDS = [
    (1, 1.0), (2.5, 2.5), ("max", "max"), ("MAX", "max"), (float("inf"), "max"), ("2x", 2.0), ("0.1", 0.1),
    (1000, 1000.0), (0.1, 0.1), (np.float64(3), 3.0),
    (0, None), (-1, None), (-0.5, None), (float("nan"), None), (float("-inf"), None), (1e308, None), (2**64, None),
    (0.099, None), (1000.5, None), ("fast", None), ("", None), (True, None), (None, None), ([1], None), ({}, None),
]
LOOPS = [(True, True), (False, False), (np.bool_(True), True), (1, None), (0, None), ("true", None), (None, None)]
MODES = [("replay", "replay"), ("live", "live"), ("LIVE", "live"), ("Replay", "replay"),
         ("sideways", None), ("", None), (None, None), (5, None), (["live"], None)]
SYMBOLS = [("DEMO", "DEMO"), ("ABC", "ABC"), ("X.Y-1", "X.Y-1"), ("feed:Z", "feed:Z"),
           ("", None), ("bad symbol!", None), (5, None), ("x" * 65, None), ("a\x00b", None)]
DURATIONS = [("1s", SEC), (SEC // 4, SEC // 4), ("250ms", SEC // 4), (pd.Timedelta("3s"), 3 * SEC), ("1h", 3600 * SEC),
             (2**63 - 1, 2**63 - 1),
             (0, None), (-5, None), ("-1s", None), ("soon", None), (float("nan"), None), (1e308, None),
             (2**64, None), ([1], None), (True, None)]
STEP_NS = [(1, 1), (3, 3), (1000, 1000), (2**64, None), (0, None), (-1, None), (1.5, None), ("2", None), (True, None)]
FRACTIONS = [(0.0, 0.0), (0.25, 0.25), (0.5, 0.5), (1.0, 1.0), (1, 1.0), (-0.1, None), (1.5, None),
             (float("nan"), None), (float("inf"), None), ("0.5", None), (True, None), (None, None)]


def mostly_valid(table: list[tuple[Any, Any]]) -> st.SearchStrategy[tuple[Any, Any]]:
    """Entries of ``table``, valid ones three times as often as invalid ones."""
    valid = st.sampled_from([t for t in table if t[1] is not None])
    return st.one_of(valid, valid, valid, st.sampled_from([t for t in table if t[1] is None]))


def kinds(events: list[Any]) -> str:
    """Event kinds as a string: B batch, S state, R<reason> reset (e.g. ``R:seek``), space separated."""
    out = []
    for e in events:
        if isinstance(e, Batch):
            out.append("B")
        elif isinstance(e, StateEvent):
            out.append("S")
        else:
            out.append(f"R:{e.reason}")
    return " ".join(out)


class Model:
    """What one session alone should look like."""

    def __init__(self, index: int, ts: np.ndarray, buffer_rows: int = 0, tables: dict[str, Any] | None = None) -> None:
        self.tables = {"duration": DURATIONS, "n": STEP_NS, "fraction": FRACTIONS, "speed": SPEEDS, "loop": LOOPS,
                       "mode": MODES, "symbol": SYMBOLS, **(tables or {})}
        self.index = index
        self.buffer_rows = buffer_rows
        self.ts = ts
        self.n = len(ts)
        self.mode = "replay"
        self.rstate = State.STOPPED
        self.lstate = State.STOPPED
        self.speed: float | str = 1.0
        self.loop = False
        self.symbol = "DEMO"
        self.next_row = 0  # next source row to replay
        self.live_alive = False  # a live task is consuming the current feed
        self.live_next = 0  # id of the next row pushed to a live feed
        self.live_expected: deque[int] = deque()
        self.pending_end: State | None = None  # the feed was told to end (FINISHED) or fail (PAUSED)
        self.error = False
        self.rows = 0  # rows since the last reset
        self.stream_ts: list[np.ndarray] = []
        self.stream_ids: list[np.ndarray] = []
        self.seq = 0

    @property
    def state(self) -> State:
        return self.lstate if self.mode == "live" else self.rstate

    # ------------------------------------------------------------------ events
    def absorb(self, event: Any, sid: str, during_action: bool) -> None:
        assert event.seq == self.seq + 1, f"seq {event.seq} after {self.seq}"
        self.seq = event.seq
        assert event.session_id == sid
        STATS[f"event:{type(event).__name__}:{self.mode}"] += 1
        if isinstance(event, Batch):
            self._batch(event, during_action)
        elif isinstance(event, ResetEvent):
            assert event.mode.value == self.mode
            if event.reason == "loop":
                assert not during_action and self.mode == "replay" and self.rstate is State.PLAYING
                assert self.loop and self.next_row == self.n, "loop reset before the end of the data"
                self.next_row = 0
            else:
                assert during_action, f"unexpected reset {event.reason!r} without an action"
            self.rows = 0
            self.stream_ts.clear()
            self.stream_ids.clear()
        else:
            assert isinstance(event, StateEvent)
            status = event.status
            assert status["seq"] == event.seq and status["id"] == sid
            if not during_action:  # only the pacing loop (end of data) or the feed (end/failure) may do this
                if self.mode == "replay":
                    assert status["state"] == "finished", status
                    assert self.rstate is State.PLAYING and not self.loop and self.next_row == self.n
                    self.rstate = State.FINISHED
                else:
                    assert self.pending_end is not None, f"live state change without a feed event: {status}"
                    self.lstate, self.pending_end = self.pending_end, None
                    self.live_alive = False
                    self.error = self.lstate is State.PAUSED
                    assert status["state"] == self.lstate.value

    def _batch(self, batch: Batch, during_action: bool) -> None:
        k = len(batch)
        assert k > 0
        assert batch.mode.value == self.mode
        assert batch.first_row == self.rows, f"first_row {batch.first_row}, expected {self.rows}"
        assert np.all(batch.columns["tag"] == self.index), "another session's rows"
        ids = np.asarray(batch.columns["row"])
        if self.mode == "replay":
            expected = np.arange(self.next_row, self.next_row + k)
            np.testing.assert_array_equal(ids, expected, err_msg="replayed rows skipped or duplicated")
            np.testing.assert_array_equal(batch.ts, self.ts[expected])
            if not during_action:
                assert self.rstate is State.PLAYING, "rows released while not playing"
            self.next_row += k
        else:
            assert not during_action
            want = [self.live_expected.popleft() for _ in range(min(k, len(self.live_expected)))]
            assert ids.tolist() == want, "live rows lost, duplicated or from a stale feed"
        self.rows += k
        self.stream_ts.append(np.array(batch.ts))
        self.stream_ids.append(ids.copy())

    # ------------------------------------------------------------------ actions
    def expect(self, action: str, args: dict[str, Any]) -> tuple[type | None, str, Callable[[], None]]:
        """(expected exception, expected event kinds as a regex, model update after the events)."""
        nothing: Callable[[], None] = lambda: None  # noqa: E731
        accepted = {"play": (), "pause": (), "stop": (), "step": ("n", "duration"), "seek": ("timestamp", "fraction"),
                    "speed": ("speed",), "mode": ("mode", "symbol"), "loop": ("loop",)}
        if action not in accepted or set(args) - set(accepted[action]):
            return InvalidValueError, "", nothing
        live = self.mode == "live"
        if action == "play":
            if live:
                if not self.live_alive:
                    self.live_alive, self.error = True, False
                self.lstate = State.PLAYING
                return None, "S", nothing
            if self.rstate is State.PLAYING:
                return None, "", nothing
            pattern = "S"
            if self.rstate is State.FINISHED:
                self.next_row, pattern = 0, "R:stop S"
            self.rstate = State.PLAYING
            return None, pattern, nothing
        if action == "pause":
            current = self.state
            if current is State.PAUSED:
                return None, "", nothing
            if current is not State.PLAYING:
                return IllegalTransitionError, "", nothing
            if live:
                self.lstate = State.PAUSED
            else:
                self.rstate = State.PAUSED
            return None, "S", nothing
        if action == "stop":
            if live:
                self.lstate, self.live_alive = State.STOPPED, False
                self.live_expected.clear()
            else:
                self.rstate, self.next_row = State.STOPPED, 0
            return None, "R:stop S", nothing
        if action == "step":
            # values first (400 whatever the state), then the state guard (409)
            n, duration = args.get("n"), args.get("duration")
            if n is not None and duration is not None:
                return InvalidValueError, "", nothing
            if duration is not None and lookup(self.tables['duration'], duration) is None:
                return InvalidValueError, "", nothing
            if n is not None and lookup(self.tables['n'], n) is None:
                return InvalidValueError, "", nothing
            if live or self.rstate is State.PLAYING:
                return IllegalTransitionError, "", nothing
            if self.rstate is State.FINISHED or self.next_row >= self.n:
                return IllegalTransitionError, "", nothing

            def after_step() -> None:
                self.rstate = State.FINISHED if self.next_row >= self.n and not self.loop else State.PAUSED

            return None, ("B S" if duration is None else "(B )?S"), after_step
        if action == "seek":
            if ("timestamp" in args) == ("fraction" in args):
                return InvalidValueError, "", nothing
            if "fraction" in args and lookup(self.tables['fraction'], args["fraction"]) is None:
                return InvalidValueError, "", nothing
            if "timestamp" in args and args["timestamp"][1] is None:
                return InvalidValueError, "", nothing
            if live:
                return IllegalTransitionError, "", nothing
            if "fraction" in args:
                fraction = lookup(self.tables['fraction'], args["fraction"])
                if fraction is None:
                    return InvalidValueError, "", nothing
                start, end = int(self.ts[0]), int(self.ts[-1])
                at = start + int(round((end - start) * fraction))
            else:
                at = args["timestamp"][1]  # (value, ns or None)
                if at is None or not int(self.ts[0]) <= at <= int(self.ts[-1]):
                    return InvalidValueError, "", nothing
            self.next_row = int(np.searchsorted(self.ts, at, side="left"))
            if self.rstate is not State.PLAYING:
                self.rstate = State.STOPPED if self.next_row == 0 else State.PAUSED
            return None, "R:seek S", nothing
        if action == "speed":
            if "speed" not in args:
                return InvalidValueError, "", nothing
            speed = lookup(self.tables['speed'], args["speed"])
            if speed is None:
                return InvalidValueError, "", nothing
            if live:
                return IllegalTransitionError, "", nothing
            self.speed = speed
            return None, "S", nothing
        if action == "loop":
            loop = lookup(self.tables['loop'], args.get("loop"))
            if "loop" not in args or loop is None:
                return InvalidValueError, "", nothing
            self.loop = loop
            return None, "S", nothing
        assert action == "mode"
        mode = lookup(self.tables['mode'], args.get("mode"))
        if "mode" not in args or mode is None:
            return InvalidValueError, "", nothing
        symbol = self.symbol
        if "symbol" in args:
            symbol = lookup(self.tables['symbol'], args["symbol"])
            if symbol is None:
                return InvalidValueError, "", nothing
        if mode == self.mode and (mode == "replay" or symbol == self.symbol):
            return None, "", nothing
        self.symbol = symbol
        if self.mode == "replay" and self.rstate is State.PLAYING:
            self.rstate = State.PAUSED  # the replay waits where it was
        self.live_expected.clear()
        self.pending_end = None
        self.mode = mode
        if mode == "live":
            self.lstate, self.live_alive, self.error = State.PLAYING, True, False
        else:
            self.lstate, self.live_alive = State.STOPPED, False
        return None, "R:mode S", nothing

    def check_status(self, status: dict[str, Any]) -> None:
        got = {k: status[k] for k in ("mode", "state", "speed", "loop", "symbol", "rows", "seq")}
        want = {"mode": self.mode, "state": self.state.value, "speed": self.speed, "loop": self.loop,
                "symbol": self.symbol, "rows": self.rows, "seq": self.seq}
        assert got == want
        assert status["buffer_rows"] == min(self.rows, self.buffer_rows)
        assert (status["error"] is not None) == self.error
        if self.mode == "replay":
            assert status["position"] == self.next_row
            assert status["num_rows"] == self.n


def lookup(table: list[tuple[Any, Any]], value: Any) -> Any:
    """The normalized value for an input of ``table`` (None if invalid); matched by identity/type."""
    for raw, normalized in table:
        if raw is value or (type(raw) is type(value) and _same(raw, value)):
            return normalized
    raise AssertionError(f"value {value!r} not in the table")


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) or (a != a and b != b)  # NaN equals NaN here
    except (TypeError, ValueError):  # incomparable (e.g. ambiguous truth values): not the same input
        return False
