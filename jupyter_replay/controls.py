"""Every control action in one table: its arguments, their normaliser, where it is allowed, what it calls.

A control action is one ``Control`` row here plus one ``Session`` method (plus one button in the JS, which
receives this table in ``hello``). REST, WebSocket, the widget traits, ``ThreadedSession`` and
``RemoteSession`` all validate through these functions, so every host accepts and refuses the same values
with the same messages. States move only through ``TRANSITIONS``, an explicit ``(mode, state, trigger) ->
state`` table (the model is nautilus_trader's component state machine): ``check_allowed`` is the guard
every control method calls at entry, ``next_state`` the only way a state changes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from numbers import Real
from typing import Any

import numpy as np
import pandas as pd

from .batch import Mode
from .exceptions import IllegalTransitionError, InvalidValueError, brief
from .timeconv import to_duration_ns, to_ns

__all__ = [
    "MIN_SPEED",
    "MAX_SPEED",
    "MAX_STEP_ROWS",
    "State",
    "Policy",
    "Control",
    "CONTROLS",
    "TRANSITIONS",
    "parse_speed",
    "speed_to_json",
    "MIN_RATE",
    "MAX_RATE",
    "parse_rate",
    "parse_loop",
    "parse_mode",
    "check_symbol",
    "parse_step",
    "parse_calendar",
    "parse_seek",
    "parse_warmup",
    "span_to_json",
    "MARK_SIDES",
    "MAX_MARK_TEXT",
    "MAX_MARKS",
    "parse_mark",
    "normalise_args",
    "check_allowed",
    "next_state",
    "allowed_states",
    "table_json",
]

MIN_SPEED = 0.1
MAX_SPEED = 1000.0
#: Rows per second of row pacing (``rate``): TradingView-style bar replay, whatever the data's spacing.
MIN_RATE = 0.1
MAX_RATE = 1_000_000.0
#: Most rows one ``step(n)`` may release (a bigger step is a seek; see docs/design.md).
MAX_STEP_ROWS = 1_000_000
#: A mark's side: a buy (green triangle up, below the value) or a sell (red triangle down, above it).
MARK_SIDES = ("buy", "sell")
#: Longest mark label (characters); a longer text is refused, never cut.
MAX_MARK_TEXT = 200
#: Most marks a session keeps between resets; one more is refused (``IllegalTransitionError``, HTTP 409,
#: naming the cap and the fix), never wrapped silently.
MAX_MARKS = 10_000
_MAX_TEXT = 64  # longest speed/mode text worth parsing; anything longer is refused unread


class State(str, Enum):
    """Where a replay (or a live feed) is."""

    STOPPED = "stopped"  # at the start; nothing released since the last stop or reset
    PLAYING = "playing"  # rows are being released
    PAUSED = "paused"  # position kept, nothing released until play or step
    FINISHED = "finished"  # the end of the data was reached with loop off (or the feed ended)


@dataclass(frozen=True)
class Policy:
    """Limits a host puts on control values (the server's ``ReplayExtension`` settings; defaults elsewhere)."""

    max_speed: float = MAX_SPEED
    allow_max_speed: bool = True
    max_step_rows: int = MAX_STEP_ROWS


DEFAULT_POLICY = Policy()


# ----------------------------------------------------------------------------- value normalisers
def _real(value: Any, error: str) -> float:
    """``value`` as a float when it is a real number (a bool is not); else ``InvalidValueError(error, got ...)``
    (huge ints that overflow a float included, with a bounded message)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
        raise InvalidValueError(f"{error}, got {brief(value)}")
    try:
        return float(value)
    except (OverflowError, ValueError):
        raise InvalidValueError(f"{error}, got {brief(value)}") from None


def parse_speed(value: Any, policy: Policy | float = DEFAULT_POLICY) -> float:
    """A speed as a float (``math.inf`` = as fast as possible).

    Grammar, the same on every host: a real number (not a bool), or text holding one with an optional
    trailing ``x`` (``"10"``, ``"10x"``), in ``[MIN_SPEED, policy.max_speed]``; ``"max"`` (any case) or
    ``float("inf")`` for as fast as possible (refused where ``policy.allow_max_speed`` is off).
    """
    if not isinstance(policy, Policy):
        policy = Policy(max_speed=float(policy))
    hint = f"a number in [{MIN_SPEED:g}, {policy.max_speed:g}] (e.g. 10 or '10x') or 'max'"
    if isinstance(value, str):
        text = value.strip().lower()
        if len(text) > _MAX_TEXT:
            raise InvalidValueError(f"speed must be {hint}, got {brief(value)}")
        if text == "max":
            value = math.inf
        else:
            try:
                value = float(text[:-1] if text.endswith("x") else text)
            except ValueError:
                raise InvalidValueError(f"speed must be {hint}, got {brief(value)}") from None
            if math.isinf(value):  # "inf" spelled as text: only "max" means as fast as possible
                raise InvalidValueError(f"speed must be {hint}, got {brief(value)}")
    speed = _real(value, f"speed must be {hint}")
    if math.isnan(speed):
        raise InvalidValueError(f"speed must be {hint}, got NaN")
    if speed == math.inf:
        if not policy.allow_max_speed:
            raise InvalidValueError("speed 'max' is disabled on this server (ReplayExtension.allow_max_speed)")
        return math.inf
    if not MIN_SPEED <= speed <= policy.max_speed:
        raise InvalidValueError(f"speed must be {hint}, got {brief(value)}")
    return speed


def speed_to_json(speed: float) -> float | str:
    """``"max"`` for infinite speed, else the float (how every host reports speed)."""
    return "max" if math.isinf(speed) else float(speed)


def parse_rate(value: Any) -> float | None:
    """Row pacing: a number of rows per second in ``[MIN_RATE, MAX_RATE]`` (or text holding one, with an
    optional ``"/s"``), or None / ``"off"`` to pace by data time (``speed``) again."""
    hint = f"rows per second in [{MIN_RATE:g}, {MAX_RATE:g}] (e.g. 5 or '5/s'), or None/'off' to pace by time"
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if len(text) > _MAX_TEXT:
            raise InvalidValueError(f"rate must be {hint}, got {brief(value)}")
        if text in ("off", "none", ""):
            return None
        try:
            value = float(text[:-2] if text.endswith("/s") else text)
        except ValueError:
            raise InvalidValueError(f"rate must be {hint}, got {brief(value)}") from None
    rate = _real(value, f"rate must be {hint}")
    if not (math.isfinite(rate) and MIN_RATE <= rate <= MAX_RATE):
        raise InvalidValueError(f"rate must be {hint}, got {brief(value)}")
    return rate


def parse_loop(value: Any) -> bool:
    """``True`` / ``False`` only (no 0/1, no text: a typo must not silently mean something)."""
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidValueError(f"loop must be true or false, got {brief(value)}")
    return bool(value)


def parse_mode(value: Any) -> Mode:
    """``"replay"`` or ``"live"`` (any case) or a ``Mode``."""
    if isinstance(value, Mode):
        return value
    if isinstance(value, str) and len(value) <= _MAX_TEXT:
        try:
            return Mode(value.lower())
        except ValueError:
            pass
    raise InvalidValueError(f"mode must be 'replay' or 'live', got {brief(value)}")


def check_symbol(symbol: Any) -> str:
    """A live-feed symbol: 1-64 ASCII letters, digits or ``. _ - : /``, not starting with ``/`` or ``.``
    and without ``..`` (symbols end up in stream keys and upstream URLs)."""
    ok = isinstance(symbol, str) and 1 <= len(symbol) <= 64 and symbol.isascii()
    if ok and not all(c.isalnum() or c in "._-:/" for c in symbol):
        ok = False
    if not ok:
        raise InvalidValueError(f"symbol must be 1-64 letters, digits or . _ - : / characters, got {brief(symbol)}")
    if ".." in symbol or symbol.startswith(("/", ".")):
        raise InvalidValueError(f"symbol must not start with '/' or '.' or contain '..', got {brief(symbol)}")
    return symbol


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


_CALENDAR = re.compile(
    r"\s*(\d{1,4})?\s*(M|mo|mon|mons|month|months|Q|quarter|quarters|Y|y|yr|yrs|year|years)\s*", re.ASCII
)
_CALENDAR_MONTHS = {"m": 1, "mo": 1, "mon": 1, "mons": 1, "month": 1, "months": 1, "q": 3, "quarter": 3,
                    "quarters": 3, "y": 12, "yr": 12, "yrs": 12, "year": 12, "years": 12}


def parse_calendar(value: Any) -> pd.DateOffset | None:
    """A calendar span (months, quarters, years) as a ``pd.DateOffset``; None for fixed spans.

    ``"1M"``, ``"3 months"``, ``"1Q"``, ``"1Y"``, ``"2 years"`` or a ``pd.DateOffset`` (months and years
    vary in length, so they are not nanosecond durations). ``"1m"`` stays one minute, as in pandas.
    """
    if isinstance(value, pd.DateOffset):
        return value
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        return None
    match = _CALENDAR.fullmatch(value)
    if match is None or match.group(2) == "m":
        return None
    count = int(match.group(1) or 1)
    unit = match.group(2) if match.group(2) == "M" else match.group(2).lower()
    return pd.DateOffset(months=count * _CALENDAR_MONTHS["m" if unit == "M" else unit])


def parse_step(n: Any = None, duration: Any = None, policy: Policy = DEFAULT_POLICY) -> dict[str, Any]:
    """``{"n": rows}`` (1 .. policy.max_step_rows), ``{"duration": ns}`` (positive) or ``{"duration":
    DateOffset}`` for calendar spans (``"1M"``, ``"3 months"``, ``"1Y"``); never both n and duration."""
    if n is not None and duration is not None:
        raise InvalidValueError("step takes n or duration, not both")
    if duration is not None:
        offset = parse_calendar(duration)
        if offset is not None:
            probe = pd.Timestamp("2000-01-01") + offset
            if probe <= pd.Timestamp("2000-01-01"):
                raise InvalidValueError(f"step duration must be positive, got {brief(duration)}")
            return {"duration": offset}
        d = to_duration_ns(duration)
        if d <= 0:
            raise InvalidValueError(f"step duration must be positive, got {brief(duration)}")
        return {"duration": d}
    if n is None:
        return {"n": 1}
    if not _is_int(n) or n < 1:
        raise InvalidValueError(f"step n must be a positive integer, got {brief(n)}")
    if n > policy.max_step_rows:
        raise InvalidValueError(
            f"step n must be at most {policy.max_step_rows:,} rows, got {brief(n)}; use seek to jump further"
        )
    return {"n": int(n)}


def span_to_json(value: Any) -> Any:
    """A step/warm-up span as a JSON value the normalisers read back (``DateOffset`` -> ``"3M"``,
    ``timedelta`` -> text); ints and text are kept."""
    if value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, pd.DateOffset):
        kw = getattr(value, "kwds", {})
        if set(kw) <= {"months", "years"} and getattr(value, "n", 1) == 1:
            return f"{int(kw.get('years', 0)) * 12 + int(kw.get('months', 0))}M"
        raise InvalidValueError(f"only month/year DateOffsets can be sent to a server, got {brief(value)}")
    return str(pd.Timedelta(value))


def parse_warmup(warmup: Any, policy: Policy = DEFAULT_POLICY) -> int | pd.DateOffset | str | None:
    """A seek's warm-up: None, a row count (int 1 .. ``policy.max_step_rows``) or a span of data time before
    the cut (``"30D"``, ``"3M"``, ``timedelta``, ``DateOffset``) as ``("ns", int)`` / ``DateOffset``."""
    if warmup is None:
        return None
    if _is_int(warmup):
        if not 1 <= warmup <= policy.max_step_rows:
            raise InvalidValueError(
                f"seek warmup must be a row count in [1, {policy.max_step_rows:,}] or a duration, got {brief(warmup)}"
            )
        return int(warmup)
    offset = parse_calendar(warmup)
    if offset is not None:
        if pd.Timestamp("2000-01-01") + offset <= pd.Timestamp("2000-01-01"):
            raise InvalidValueError(f"seek warmup must be positive, got {brief(warmup)}")
        return offset
    if isinstance(warmup, (bool, float, np.bool_, np.floating)):
        raise InvalidValueError(
            f"seek warmup must be a row count (int) or a duration ('30D', '3M'), got {brief(warmup)}"
        )
    try:
        d = to_duration_ns(warmup)
    except InvalidValueError as exc:
        raise InvalidValueError(f"seek warmup must be a row count (int) or a duration ('30D', '3M'): {exc}") from None
    if d <= 0:
        raise InvalidValueError(f"seek warmup must be positive, got {brief(warmup)}")
    return pd.Timedelta(d, unit="ns")


def parse_seek(
    timestamp: Any = None, fraction: Any = None, row: Any = None, warmup: Any = None,
    policy: Policy = DEFAULT_POLICY,
) -> dict[str, Any]:
    """Exactly one of a timestamp (-> int ns), a fraction in [0, 1] or a non-negative row index; plus an
    optional ``warmup`` (``parse_warmup``: rows, or a span of data time, released before the cut)."""
    given = [k for k, v in (("timestamp", timestamp), ("fraction", fraction), ("row", row)) if v is not None]
    if len(given) != 1:
        raise InvalidValueError("seek takes exactly one of a timestamp, fraction= or row=")
    w = parse_warmup(warmup, policy)
    out = _parse_seek_target(timestamp, fraction, row)
    if w is not None:
        out["warmup"] = w
    return out


def _parse_seek_target(timestamp: Any, fraction: Any, row: Any) -> dict[str, Any]:
    if timestamp is not None:
        return {"target": to_ns(timestamp)}
    if fraction is not None:
        f = _real(fraction, "seek fraction must be a number in [0, 1]")
        if not (math.isfinite(f) and 0.0 <= f <= 1.0):
            raise InvalidValueError(f"seek fraction must be a number in [0, 1], got {brief(fraction)}")
        return {"fraction": f}
    if not _is_int(row) or row < 0:
        raise InvalidValueError(f"seek row must be a non-negative integer, got {brief(row)}")
    return {"row": int(row)}


def parse_mark(time: Any = None, y: Any = None, text: Any = None, side: Any = None) -> dict[str, Any]:
    """A plot marker: ``{"time": ns | None, "y": float | None, "text": str | None, "side": "buy" | "sell"
    | None}``. ``time`` None: the time of the last released row; ``y`` None: the plotted value at that
    time (the plot resolves it). A mark needs a ``side`` or a ``text`` (else nothing would show)."""
    t = None if time is None else to_ns(time)
    if y is not None:
        yf = _real(y, "mark y must be a finite number or None (the plotted value)")
        if not math.isfinite(yf):
            raise InvalidValueError(f"mark y must be a finite number or None (the plotted value), got {brief(y)}")
        y = yf
    if text is not None:
        if not isinstance(text, str):
            raise InvalidValueError(f"mark text must be a string, got {type(text).__name__}")
        if len(text) > MAX_MARK_TEXT:
            raise InvalidValueError(f"mark text must be at most {MAX_MARK_TEXT} characters, got {len(text):,}")
        text = text or None
    if side is not None:
        key = side.lower() if isinstance(side, str) and len(side) <= _MAX_TEXT else None
        if key not in MARK_SIDES:
            raise InvalidValueError(f"mark side must be 'buy', 'sell' or None, got {brief(side)}")
        side = key
    if side is None and text is None:
        raise InvalidValueError("a mark needs side='buy'/'sell' or a text (or both)")
    return {"time": t, "y": y, "text": text, "side": side}


# ----------------------------------------------------------------------------- the table
Normaliser = Callable[[Mapping[str, Any], Policy], dict[str, Any]]


@dataclass(frozen=True)
class Control:
    """One control action: accepted argument names, the normaliser, and the ``Session`` method it calls."""

    name: str
    args: tuple[str, ...]
    method: str
    normalise: Normaliser
    doc: str


def _required(args: Mapping[str, Any], name: str, action: str) -> Any:
    if name not in args:
        raise InvalidValueError(f"{action} needs a {name!r} argument")
    return args[name]


def _no_args(args: Mapping[str, Any], policy: Policy) -> dict[str, Any]:
    return {}


def _speed_args(args: Mapping[str, Any], policy: Policy) -> dict[str, Any]:
    return {"value": parse_speed(_required(args, "speed", "speed"), policy)}


def _rate_args(args: Mapping[str, Any], policy: Policy) -> dict[str, Any]:
    if "rate" not in args:
        raise InvalidValueError("rate needs a 'rate' argument (rows per second, or null to pace by time)")
    return {"value": parse_rate(args["rate"])}


def _loop_args(args: Mapping[str, Any], policy: Policy) -> dict[str, Any]:
    return {"flag": parse_loop(_required(args, "loop", "loop"))}


def _mode_args(args: Mapping[str, Any], policy: Policy) -> dict[str, Any]:
    symbol = args.get("symbol")
    return {
        "mode": parse_mode(_required(args, "mode", "mode")),
        "symbol": None if symbol is None else check_symbol(symbol),
    }


def _step_args(args: Mapping[str, Any], policy: Policy) -> dict[str, Any]:
    return parse_step(args.get("n"), args.get("duration"), policy)


def _mark_args(args: Mapping[str, Any], policy: Policy) -> dict[str, Any]:
    return parse_mark(args.get("time"), args.get("y"), args.get("text"), args.get("side"))


def _seek_args(args: Mapping[str, Any], policy: Policy) -> dict[str, Any]:
    return parse_seek(args.get("timestamp"), args.get("fraction"), args.get("row"), args.get("warmup"), policy)


CONTROLS: dict[str, Control] = {
    c.name: c
    for c in (
        Control("play", (), "play", _no_args, "start or resume releasing rows"),
        Control("pause", (), "pause", _no_args, "hold; the position is kept"),
        Control("stop", (), "stop", _no_args, "stop and rewind to the start"),
        Control("step", ("n", "duration"), "step", _step_args, "release the next n rows or span of data time"),
        Control("seek", ("timestamp", "fraction", "row", "warmup"), "seek", _seek_args,
                "jump to a time, fraction or row (warmup: rows or a span before the cut, kept as history)"),
        Control("speed", ("speed",), "set_speed", _speed_args, "data time per wall time, or 'max'"),
        Control("rate", ("rate",), "set_rate", _rate_args,
                "pace by rows (bars) per second instead of data time; null: back to speed"),
        Control("loop", ("loop",), "set_loop", _loop_args, "start over at the end of the data"),
        Control("mode", ("mode", "symbol"), "set_mode", _mode_args, "switch REPLAY <-> LIVE (clears the buffer)"),
        Control("mark", ("time", "y", "text", "side"), "mark", _mark_args,
                "put a buy/sell marker or a label on the plot (cleared on reset)"),
    )
}

#: Triggers that are not user actions: the data ran out, a position at the start was reached, a failure
#: paused the replay, the session left this mode.
INTERNAL_TRIGGERS = ("end", "at_start", "fail", "leave")

_S = State
_R, _L = Mode.REPLAY, Mode.LIVE
_ALL = tuple(State)
_SAME = {s: s for s in _ALL}


def _rows(mode: Mode, trigger: str, moves: Mapping[State, State]) -> dict[tuple[Mode, State, str], State]:
    return {(mode, s, trigger): t for s, t in moves.items()}


TRANSITIONS: dict[tuple[Mode, State, str], State] = {
    # REPLAY
    **_rows(_R, "play", dict.fromkeys(_ALL, _S.PLAYING)),  # from FINISHED: rewinds first
    **_rows(_R, "pause", {_S.PLAYING: _S.PAUSED, _S.PAUSED: _S.PAUSED}),
    **_rows(_R, "stop", dict.fromkeys(_ALL, _S.STOPPED)),
    **_rows(_R, "step", {_S.STOPPED: _S.PAUSED, _S.PAUSED: _S.PAUSED}),
    **_rows(_R, "seek", {_S.STOPPED: _S.PAUSED, _S.PAUSED: _S.PAUSED, _S.FINISHED: _S.PAUSED, _S.PLAYING: _S.PLAYING}),
    **_rows(_R, "speed", _SAME),
    **_rows(_R, "rate", _SAME),
    **_rows(_R, "loop", _SAME),
    **_rows(_R, "mode", _SAME),
    **_rows(_R, "mark", _SAME),  # marks never change the state: allowed everywhere
    **_rows(_R, "end", {_S.PLAYING: _S.FINISHED, _S.PAUSED: _S.FINISHED}),
    **_rows(_R, "at_start", {_S.PAUSED: _S.STOPPED, _S.STOPPED: _S.STOPPED}),
    **_rows(_R, "fail", {_S.PLAYING: _S.PAUSED}),
    **_rows(_R, "leave", {s: (_S.PAUSED if s is _S.PLAYING else s) for s in _ALL}),
    # LIVE: rows flow while PLAYING; no step, seek or speed (there is no recorded data to move in)
    **_rows(_L, "play", dict.fromkeys(_ALL, _S.PLAYING)),
    **_rows(_L, "pause", {_S.PLAYING: _S.PAUSED, _S.PAUSED: _S.PAUSED}),
    **_rows(_L, "stop", dict.fromkeys(_ALL, _S.STOPPED)),
    **_rows(_L, "loop", _SAME),
    **_rows(_L, "mode", _SAME),
    **_rows(_L, "mark", _SAME),
    **_rows(_L, "end", {**_SAME, _S.PLAYING: _S.FINISHED, _S.PAUSED: _S.FINISHED}),
    **_rows(_L, "fail", {**_SAME, _S.PLAYING: _S.PAUSED}),
    **_rows(_L, "leave", dict.fromkeys(_ALL, _S.STOPPED)),
}

#: Why a user action is refused where the table has no row (the fix is part of the message).
_REFUSALS: dict[tuple[Mode | None, State | None, str], str] = {
    (_R, _S.PLAYING, "step"): "cannot step while playing; pause first",
    (_R, _S.FINISHED, "step"): "cannot step past the end of the data; stop or seek first",
    (_R, None, "pause"): "cannot pause a replay that is {state}",
    (_L, None, "pause"): "cannot pause a live feed that is {state}",
    (_L, None, "step"): "cannot step in LIVE mode; switch to REPLAY first",
    (_L, None, "seek"): "cannot seek in LIVE mode; switch to REPLAY first",
    (_L, None, "speed"): "cannot change speed in LIVE mode; switch to REPLAY first",
    (_L, None, "rate"): "cannot change the rate in LIVE mode; switch to REPLAY first",
}


def allowed_states(action: str, mode: Mode) -> list[State]:
    """States of ``mode`` in which ``action`` is allowed."""
    return [s for s in State if (mode, s, action) in TRANSITIONS]


def check_allowed(action: str, mode: Mode, state: State) -> State:
    """The guard every control calls at entry: the next state, or ``IllegalTransitionError`` saying why."""
    target = TRANSITIONS.get((mode, state, action))
    if target is not None:
        return target
    why = (
        _REFUSALS.get((mode, state, action))
        or _REFUSALS.get((mode, None, action))
        or f"cannot {action} while {state.value} in {mode.value.upper()} mode"
    )
    raise IllegalTransitionError(why.format(state=state.value, mode=mode.value))


def next_state(mode: Mode, state: State, trigger: str) -> State:
    """Apply a trigger (user action or internal) to a state; unknown pairs are programming errors."""
    try:
        return TRANSITIONS[(mode, state, trigger)]
    except KeyError:
        raise IllegalTransitionError(f"no transition for {trigger!r} from {state.value} in {mode.value}") from None


def normalise_args(action: Any, args: Mapping[str, Any] | None, policy: Policy = DEFAULT_POLICY) -> dict[str, Any]:
    """Validate a named action's JSON-style arguments; returns keyword arguments for its Session method."""
    control = CONTROLS.get(action) if isinstance(action, str) else None
    if control is None:
        raise InvalidValueError(f"unknown action {brief(action)}; expected one of {sorted(CONTROLS)}")
    if args is None:
        args = {}
    if not isinstance(args, Mapping):
        raise InvalidValueError(f"arguments of {action!r} must be an object, got {type(args).__name__}")
    unknown = [k for k in args if k not in control.args]
    if unknown:
        names = ", ".join(brief(k, 40) for k in unknown[:5])
        if len(unknown) > 5:
            names += f" and {len(unknown) - 5} more"
        raise InvalidValueError(f"unknown argument(s) {names} for {action!r}; accepted: {list(control.args)}")
    return control.normalise(args, policy)


def table_json(policy: Policy = DEFAULT_POLICY) -> dict[str, Any]:
    """The table for clients (sent in ``hello``): actions, their arguments, where they are allowed, speeds."""
    return {
        "actions": {
            name: {
                "args": list(c.args),
                "doc": c.doc,
                "allowed": {m.value: [s.value for s in allowed_states(name, m)] for m in Mode},
            }
            for name, c in CONTROLS.items()
        },
        "speed": {"min": MIN_SPEED, "max": policy.max_speed, "allow_max": policy.allow_max_speed},
        "rate": {"min": MIN_RATE, "max": MAX_RATE},
        "max_step_rows": policy.max_step_rows,
    }
