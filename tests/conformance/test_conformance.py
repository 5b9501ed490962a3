"""One set of behaviour scenarios, one set of expectations (``golden``), run on every host (``hosts``).

Each scenario loads a fresh session with the same input and asserts what a user observes: events and
their order, the buffer with its columns and dtypes, ``status``, errors, callbacks. Expected values come
from the input data and written rules, never from a host. Determinism: ``step``, speed ``"max"``, or
waiting on conditions (events, status, callback state) with generous timeouts; no sleeps.
"""

from __future__ import annotations

import math
from typing import Any

import golden
import pytest

from jupyter_replay.exceptions import IllegalTransitionError, InvalidValueError

MAX_MESSAGE = 300  # error messages never echo unbounded input (exceptions.brief)
VALUE_COLUMNS = {name: [c for c in dtypes if c != "timestamp"] for name, dtypes in golden.BUFFER_DTYPES.items()}


# ----------------------------------------------------------------------------------------- helpers


def batches(events: list[dict]) -> list[dict]:
    return [e for e in events if e["kind"] == "batch"]


def resets(events: list[dict]) -> list[str]:
    return [e["reason"] for e in events if e["kind"] == "reset"]


def since_last_reset(events: list[dict]) -> list[dict]:
    idx = max((i for i, e in enumerate(events) if e["kind"] == "reset"), default=-1)
    return events[idx + 1:]


def rows(events: list[dict]) -> list[int]:
    return [t for b in batches(events) for t in b["ts"]]


def n_rows(events: list[dict]) -> int:
    return sum(b["n"] for b in batches(events))


def check_stream(events: list[dict]) -> None:
    """seq strictly increasing; within a reset-free stretch batches are contiguous from ``first_row`` 0."""
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs)), f"seq not strictly increasing: {seqs}"
    expected_first = None
    for e in events:
        if e["kind"] == "reset":
            expected_first = 0
        elif e["kind"] == "batch":
            if expected_first is not None:
                assert e["first_row"] == expected_first, f"batch seq {e['seq']} starts at row {e['first_row']}, expected {expected_first}"
            expected_first = e["first_row"] + e["n"]
            assert len(e["ts"]) == e["n"], e


def golden_ts(name: str, start: int = 0, stop: int | None = None) -> list[int]:
    return [int(t) for t in golden.ts_ns(golden.dataset(name), name)[start:stop]]


def num_rows(name: str) -> int:
    return len(golden.dataset(name))


def assert_frame(host: Any, name: str, start: int = 0, stop: int | None = None) -> None:
    problems = golden.frame_problems(host.frame(), golden.expected_frame(name, start, stop))
    assert not problems, f"{host.name}: r.buffer differs: " + "; ".join(problems)


def assert_cleared(host: Any, name: str) -> None:
    """The buffer after a reset: no rows, the same columns (dtypes: ``test_empty_buffer_keeps_its_dtypes``)."""
    frame = host.frame()
    assert (list(frame.columns), len(frame)) == (list(golden.BUFFER_DTYPES[name]), 0), (
        f"{host.name}: cleared buffer has columns {list(frame.columns)} and {len(frame)} rows")


def refused(host: Any, action: str, args: dict, cls: type[Exception]) -> str:
    """The message of the error ``control(action, args)`` raises; AssertionError if it is not ``cls``."""
    try:
        host.control(action, args)
    except cls as exc:
        return str(exc)
    except Exception as exc:
        raise AssertionError(f"{action} {args!r}: raised {type(exc).__name__}: {exc}, expected {cls.__name__}") from None
    raise AssertionError(f"{action} {golden_brief(args)} was accepted, expected {cls.__name__}")


def golden_brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."


# ----------------------------------------------------------------------------------------- rows, events, buffer


def test_step_releases_rows_in_order_with_every_column(host) -> None:
    host.load("mixed")
    st = host.control("step", {"n": 5})
    assert (st["state"], st["position"]) == ("paused", 5)
    st = host.control("step", {"n": 3})
    assert (st["state"], st["position"]) == ("paused", 8)
    events = host.wait_events(lambda ev: n_rows(ev) >= 8, what="8 rows")
    check_stream(events)
    assert rows(events) == golden_ts("mixed", 0, 8)
    for b in batches(events):
        assert b["mode"] == "replay"
        assert b["columns"] == VALUE_COLUMNS["mixed"], f"batch seq {b['seq']} carries columns {b['columns']}"
    assert_frame(host, "mixed", 0, 8)


def test_step_by_duration_releases_that_span_of_data_time(host) -> None:
    host.load("mixed")  # one row per second
    assert host.control("step", {"duration": "5s"})["position"] == 5  # rows at t0 .. t0+4s
    assert host.control("step", {"duration": "2s"})["position"] == 7  # the next two seconds
    events = host.wait_events(lambda ev: n_rows(ev) >= 7, what="7 rows")
    check_stream(events)
    assert rows(events) == golden_ts("mixed", 0, 7)
    assert_frame(host, "mixed", 0, 7)


def test_status_has_the_same_keys_everywhere(host) -> None:
    host.load("mixed")
    host.control("step", {"n": 2})
    st = host.wait_status(lambda s: s.get("position") == 2, what="position 2")
    keys = set(st)
    assert keys == golden.STATUS_KEYS, (
        f"{host.name}: missing {sorted(golden.STATUS_KEYS - keys)}, extra {sorted(keys - golden.STATUS_KEYS)}"
        f" (of which removed from the contract: {sorted(keys & golden.FORBIDDEN_STATUS_KEYS)})")
    assert st["num_rows"] == num_rows("mixed") and st["buffer_rows"] == 2 and st["has_data"] is True
    assert st["callback_errors"] == 0 and st["rows_dropped"] == 0


def test_status_values_follow_the_data(host) -> None:
    host.load("mixed")
    host.control("step", {"n": 5})
    st = host.wait_status(lambda s: s.get("position") == 5, what="position 5")
    ts = golden_ts("mixed")
    want = {
        "mode": "replay", "state": "paused", "speed": 1.0, "loop": False, "symbol": "DEMO", "has_data": True,
        "position": 5, "position_ns": ts[5], "position_iso": "2024-01-02T09:30:05+00:00", "time_ns": ts[4],
        "progress": 5 / num_rows("mixed"), "num_rows": num_rows("mixed"), "start_ns": ts[0], "end_ns": ts[-1],
        "columns": VALUE_COLUMNS["mixed"], "buffer_rows": 5, "rows": 5, "callback_errors": 0, "error": None,
    }
    got = {k: st.get(k, "<missing>") for k in want}
    assert got == want, {k: (got[k], want[k]) for k in want if got[k] != want[k]}
    last = st.get("last") or {}
    assert last.get("timestamp_ns") == ts[4] and set(last) == {"timestamp_ns", *VALUE_COLUMNS["mixed"]}, last
    assert (last["side"], last["venue"], last["size"], last["odd_lot"]) == ("sell", "XNAS", 5, True), last


def test_play_at_max_speed_releases_everything_once(host) -> None:
    host.load("mixed")
    assert host.control("speed", {"speed": "max"})["speed"] == "max"
    host.control("play")
    st = host.wait_state(("finished",))
    assert st["position"] == num_rows("mixed") and st["progress"] == 1.0
    events = host.wait_events(lambda ev: n_rows(ev) >= num_rows("mixed"), what="every row")
    check_stream(events)
    assert rows(events) == golden_ts("mixed")
    assert resets(events) == []
    assert_frame(host, "mixed")


@pytest.mark.parametrize("source", ["pandas", *golden.ARROW_INPUTS])
def test_long_format_buffer_keeps_the_symbol_column(host, source) -> None:
    """Long format (``date, symbol, price``) from pandas and each Arrow-native library: the same rows, value
    columns and buffer."""
    host.load("long", input=source)
    host.control("speed", {"speed": "max"})
    host.control("play")
    host.wait_state(("finished",))
    events = host.wait_events(lambda ev: n_rows(ev) >= num_rows("long"), what="every row")
    check_stream(events)
    assert rows(events) == golden_ts("long")
    assert {tuple(b["columns"]) for b in batches(events)} == {tuple(VALUE_COLUMNS["long"])}
    assert_frame(host, "long")


def test_stop_rewinds_and_resets_with_reason_stop(host) -> None:
    host.load("mixed")
    host.control("step", {"n": 5})
    st = host.control("stop")
    assert (st["state"], st["position"], st["buffer_rows"]) == ("stopped", 0, 0)
    events = host.wait_events(lambda ev: "stop" in resets(ev), what="reset 'stop'")
    check_stream(events)
    assert resets(events) == ["stop"] and batches(since_last_reset(events)) == []
    assert_cleared(host, "mixed")


def test_empty_buffer_keeps_its_dtypes(host) -> None:
    """After a reset the buffer is empty but typed as before: code that concatenates or filters it works."""
    host.load("mixed")
    host.control("step", {"n": 3})
    host.wait_events(lambda ev: n_rows(ev) >= 3, what="3 rows")
    assert_frame(host, "mixed", 0, 3)
    host.control("stop")
    host.wait_events(lambda ev: "stop" in resets(ev), what="reset 'stop'")
    assert_frame(host, "mixed", 0, 0)


def test_buffer_holds_the_stepped_rows_when_step_returns(host) -> None:
    """Read your writes: ``r.step(3); r.buffer`` shows the 3 rows, with no wait in between."""
    host.load("mixed")
    host.control("step", {"n": 3})
    assert len(host.frame()) == 3, f"{host.name}: the buffer lags the step that returned"
    host.control("stop")
    assert len(host.frame()) == 0, f"{host.name}: the buffer lags the stop that returned"


def test_seek_by_fraction_and_timestamp(host) -> None:
    host.load("mixed")
    at = golden.rows_before("mixed", golden.seek_fraction_ns("mixed", 0.5))
    st = host.control("seek", {"fraction": 0.5})
    assert (st["state"], st["position"]) == ("paused", at)
    host.control("step", {"n": 2})
    events = host.wait_events(lambda ev: n_rows(since_last_reset(ev)) >= 2, what="2 rows after the seek")
    check_stream(events)
    assert resets(events) == ["seek"]
    assert rows(since_last_reset(events)) == golden_ts("mixed", at, at + 2)
    assert_frame(host, "mixed", at, at + 2)
    target = golden_ts("mixed")[10]
    st = host.control("seek", {"timestamp": target})
    assert (st["state"], st["position"]) == ("paused", 10)
    host.wait_events(lambda ev: resets(ev) == ["seek", "seek"], what="second reset 'seek'")
    assert_cleared(host, "mixed")


def test_loop_restarts_with_reason_loop_then_finishes(host) -> None:
    host.load("mixed")
    assert host.control("loop", {"loop": True})["loop"] is True
    host.control("speed", {"speed": "max"})
    host.control("play")
    host.wait_events(lambda ev: "loop" in resets(ev), what="reset 'loop'")
    assert host.control("loop", {"loop": False})["loop"] is False
    st = host.wait_state(("finished",))
    assert st["position"] == num_rows("mixed")
    events = host.wait_events(lambda ev: n_rows(since_last_reset(ev)) >= num_rows("mixed"), what="a full last pass")
    check_stream(events)
    assert set(resets(events)) == {"loop"}
    assert rows(since_last_reset(events)) == golden_ts("mixed")
    assert_frame(host, "mixed")


def test_mode_switch_resets_and_refuses_replay_only_actions(host) -> None:
    host.load("mixed")
    host.control("step", {"n": 3})
    st = host.control("mode", {"mode": "live"})
    assert st["mode"] == "live"
    assert "LIVE" in refused(host, "step", {"n": 1}, IllegalTransitionError)
    assert "LIVE" in refused(host, "seek", {"fraction": 0.5}, IllegalTransitionError)
    st = host.control("mode", {"mode": "replay"})
    assert (st["mode"], st["buffer_rows"]) == ("replay", 0)
    events = host.wait_events(lambda ev: resets(ev) == ["mode", "mode"], what="two resets 'mode'")
    check_stream(events)
    first, second = [e["seq"] for e in events if e["kind"] == "reset"]
    assert [b["mode"] for b in batches(events) if b["seq"] < first] == ["replay"]
    assert {b["mode"] for b in batches(events) if first < b["seq"] < second} <= {"live"}
    assert_cleared(host, "mixed")


def test_live_mode_streams_the_feed_and_pauses(host) -> None:
    host.load("mixed")
    if host.callbacks:  # the same callback code runs in REPLAY and LIVE
        host.add_callback("record")
    host.control("mode", {"mode": "live", "symbol": "ACME"})
    events = host.wait_events(lambda ev: n_rows(since_last_reset(ev)) >= 3, what="live rows")
    check_stream(events)
    live = batches(since_last_reset(events))
    assert {b["mode"] for b in live} == {"live"} and resets(events) == ["mode"]
    assert {tuple(b["columns"]) for b in live} == {tuple(c for c in golden.LIVE_DTYPES if c != "timestamp")}
    if host.callbacks:
        host.wait_store(lambda s: s.get("rows", 0) >= 1, timeout=10, what="live rows in the callback")
    st = host.control("pause")
    assert (st["mode"], st["state"], st["symbol"]) == ("live", "paused", "ACME")
    frame = host.frame()
    assert {c: str(t) for c, t in frame.dtypes.items()} == golden.LIVE_DTYPES and len(frame) >= 3
    assert host.control("mode", {"mode": "replay"})["mode"] == "replay"


# ----------------------------------------------------------------------------------------- values and errors

SPEEDS_ACCEPTED: list[tuple[Any, Any]] = [
    (10, 10.0), (2.5, 2.5), (0.1, 0.1), (1000, 1000.0), ("10", 10.0), ("10x", 10.0), ("2.5x", 2.5),
    ("max", "max"), ("MAX", "max"), (math.inf, "max"),
]
SPEEDS_REFUSED: list[Any] = [
    0, -1, 0.05, 1001, math.nan, -math.inf, "fastest", "inf", "10y", "", "x", True, None, [10], 10**400,
    "9" * 500, "y" * 10_000,
]


def test_speed_grammar_is_the_same_everywhere(host) -> None:
    host.load("mixed")
    problems = []
    for value, want in SPEEDS_ACCEPTED:
        try:
            got = host.control("speed", {"speed": value})["speed"]
        except Exception as exc:
            problems.append(f"speed {value!r} refused: {type(exc).__name__}: {exc}")
            continue
        if got != want:
            problems.append(f"speed {value!r} -> {got!r}, expected {want!r}")
    host.control("speed", {"speed": 1})
    for value in SPEEDS_REFUSED:
        try:
            message = refused(host, "speed", {"speed": value}, InvalidValueError)
        except AssertionError as exc:
            problems.append(str(exc)[:200])
            continue
        if "speed" not in message or len(message) > MAX_MESSAGE:
            problems.append(f"speed {golden_brief(value)}: message {message[:200]!r} must name 'speed' and be bounded")
        elif message != (want_msg := golden.normaliser_message("speed", {"speed": value})):
            problems.append(f"speed {golden_brief(value)}: message {message!r}, the control table says {want_msg!r}")
    if host.status()["speed"] != 1.0:
        problems.append(f"a refused speed changed the speed to {host.status()['speed']!r}")
    assert not problems, f"{host.name}:\n  " + "\n  ".join(problems)


BAD_VALUES: list[tuple[str, dict, str]] = [
    ("step", {"n": 0}, "n"), ("step", {"n": -1}, "n"), ("step", {"n": 1.5}, "n"), ("step", {"n": "3"}, "n"),
    ("step", {"n": 10**400}, "n"), ("step", {"duration": "-5s"}, "duration"),
    ("seek", {"fraction": 1.5}, "fraction"), ("seek", {"fraction": math.nan}, "fraction"),
    ("seek", {"timestamp": "2000-01-01"}, "outside"), ("seek", {"timestamp": "not a time " * 1000}, "time"),
    ("loop", {"loop": "yes"}, "loop"), ("loop", {"loop": None}, "loop"),
    ("mode", {"mode": "sideways"}, "mode"), ("mode", {"mode": "live", "symbol": "../etc"}, "symbol"),
    ("fly", {}, "fly"), ("z" * 5000, {}, "action"), ("step", {"bogus": 1}, "bogus"),
    ("seek", {"fraction": 0.5, "timestamp": 0}, "seek"),
    ("mark", {"side": "sideways"}, "side"), ("mark", {"side": "z" * 5000}, "side"),
    ("mark", {"text": "z" * 5000}, "at most 200 characters"), ("mark", {"text": 5}, "string"),
    ("mark", {"side": "buy", "y": "high"}, "y"), ("mark", {"side": "buy", "y": math.nan}, "y"),
    ("mark", {"side": "buy", "time": "not a time " * 1000}, "time"), ("mark", {}, "side"),
    ("mark", {"side": "buy", "color": "red"}, "color"),
]


def test_bad_values_raise_typed_bounded_errors(host) -> None:
    host.load("mixed")
    problems = []
    for action, args, fragment in BAD_VALUES:
        try:
            message = refused(host, action, args, InvalidValueError)
        except AssertionError as exc:
            problems.append(str(exc)[:240])
            host.control("stop")  # the value was accepted: start the next one from the same place
            continue
        if fragment not in message or len(message) > MAX_MESSAGE:
            problems.append(f"{golden_brief(action)} {golden_brief(args)}: message {message[:200]!r} "
                            f"must mention {fragment!r} and be at most {MAX_MESSAGE} characters")
        elif (want_msg := golden.normaliser_message(action, args)) is not None and message != want_msg:
            problems.append(f"{golden_brief(action)} {golden_brief(args)}: message {message!r}, "
                            f"the control table says {want_msg!r}")
    st = host.status()
    if (st["state"], st["position"], st["mode"]) != ("stopped", 0, "replay"):
        problems.append(f"a refused control changed the session: {st['state']}, position {st['position']}, {st['mode']}")
    assert not problems, f"{host.name}:\n  " + "\n  ".join(problems)


def test_illegal_transitions(host) -> None:
    host.load("mixed")
    assert "stopped" in refused(host, "pause", {}, IllegalTransitionError)
    host.control("speed", {"speed": 1})
    assert host.control("play")["state"] == "playing"
    assert "pause" in refused(host, "step", {"n": 1}, IllegalTransitionError)
    assert host.control("pause")["state"] == "paused"
    host.control("seek", {"fraction": 1.0})
    host.control("step", {"n": 1})
    st = host.wait_state(("finished",))
    assert st["position"] == num_rows("mixed")
    assert "end" in refused(host, "step", {"n": 1}, IllegalTransitionError)


# ----------------------------------------------------------------------------------------- callbacks


def test_callback_reads_the_text_column_of_long_data(host, needs_callbacks) -> None:
    host.load("long")
    host.add_callback("count_symbols", column="symbol")
    host.control("speed", {"speed": "max"})
    host.control("play")
    host.wait_state(("finished",))
    host.wait_events(lambda ev: n_rows(ev) >= num_rows("long"), what="every row")
    # callbacks run right after the event is published: seconds are plenty once every row has arrived
    store = host.wait_store(lambda s: s.get("rows", 0) >= num_rows("long"), timeout=10, what="every row in the callback")
    assert host.status()["callback_errors"] == 0, host.status().get("error")
    assert store["symbols"] == golden.symbol_counts()


def test_raising_callback_is_counted_in_status(host, needs_callbacks) -> None:
    host.load("mixed")
    host.add_callback("raise")
    for _ in range(3):
        host.control("step", {"n": 1})
    host.wait_store(lambda s: s.get("calls", 0) >= 3, what="3 callback calls")
    st = host.wait_status(lambda s: s.get("callback_errors", 0) >= 3, timeout=10, what="callback_errors == 3")
    assert st["callback_errors"] == 3 and st["position"] == 3 and st["state"] == "paused"
    assert "conformance: this callback always fails" in (st.get("error") or "")


def test_callback_time_and_queue_are_in_status(host, needs_callbacks) -> None:
    """Issue 16: every host times its callbacks (p50/p99 over the last runs, max) and reports its queue;
    ``step`` returns once the callbacks of the rows it released have run (on their worker, on every client)."""
    host.load("mixed")
    st = host.status()
    assert (st["callback_p50_ms"], st["callback_p99_ms"], st["callback_max_ms"]) == (None, None, None)
    host.add_callback("record", work_s=0.003)
    for _ in range(3):
        host.control("step", {"n": 2})
    assert host.store().get("rows") == 6  # no waiting: step returned after the callbacks ran
    st = host.status()
    assert st["callback_p50_ms"] >= 3.0, st["callback_p50_ms"]
    assert st["callback_max_ms"] >= st["callback_p99_ms"] >= st["callback_p50_ms"]
    assert (st["callback_queue"], st["callback_errors"], st["error"]) == (0, 0, None)


#: fast enough that a client which only learns of rows after they were sent cannot win the race by luck:
#: rows of a play keep coming for ~60 ms; a control from a callback must still end them at once
CALLBACK_SPEED = 1000


def _action_stretch(host: Any, store: dict) -> list[dict]:
    """Batches that arrived after the batch whose callback acted, up to the reset that action caused."""
    events = host.events()
    acted = [b for b in batches(events) if b["first_row"] + b["n"] >= store["action_after_rows"]]
    first = acted[0]["seq"] if acted else 0
    out = []
    for e in events:
        if e["seq"] <= first:
            continue
        if e["kind"] == "reset":
            break
        if e["kind"] == "batch":
            out.append(e)
    return out


@pytest.mark.parametrize("work_s", [0.0, 0.3], ids=["quick", "slow"])
def test_stop_from_a_callback_takes_effect_at_once(host, needs_callbacks, work_s) -> None:
    """A slow callback (0.3 s of work before ``stop()``) must not let rows of the play slip in meanwhile."""
    host.load("long")
    host.control("speed", {"speed": CALLBACK_SPEED})
    host.add_callback("stop", at_rows=3, work_s=work_s)
    host.control("play")
    store = host.wait_store(lambda s: s.get("acted"), what="the callback to stop")
    host.wait_events(lambda ev: "stop" in resets(ev), what="reset 'stop'")
    st = host.wait_state(("stopped",))
    store = host.store()
    assert "action_error" not in store, store["action_error"]
    assert (st["position"], st["buffer_rows"]) == (0, 0)
    late = _action_stretch(host, store)
    assert not late, f"rows after stop() in the callback: {[(b['first_row'], b['n']) for b in late]}"
    assert store.get("rows_after_action", 0) == 0, f"the callback saw {store['rows_after_action']} rows after stop()"
    assert_cleared(host, "long")


def test_pause_from_a_callback_takes_effect_at_once(host, needs_callbacks) -> None:
    host.load("long")
    host.control("speed", {"speed": CALLBACK_SPEED})
    host.add_callback("pause", at_rows=3)
    host.control("play")
    host.wait_store(lambda s: s.get("acted"), what="the callback to pause")
    st = host.wait_state(("paused",))
    store = host.store()
    assert "action_error" not in store, store["action_error"]
    assert st["position"] == store["action_after_rows"], (st["position"], store)
    assert store.get("rows_after_action", 0) == 0, f"the callback saw {store['rows_after_action']} rows after pause()"
    assert_frame(host, "long", 0, store["action_after_rows"])


def test_seek_from_a_callback_takes_effect_at_once(host, needs_callbacks) -> None:
    host.load("long")
    at = golden.rows_before("long", golden.seek_fraction_ns("long", 0.5))
    host.control("speed", {"speed": CALLBACK_SPEED})
    host.add_callback("seek", at_rows=3, fraction=0.5)
    host.control("play")
    host.wait_store(lambda s: s.get("acted"), what="the callback to seek")
    st = host.wait_state(("finished",))
    assert st["position"] == num_rows("long")
    store = host.store()
    assert "action_error" not in store, store["action_error"]
    events = host.wait_events(lambda ev: n_rows(since_last_reset(ev)) >= num_rows("long") - at, what="rows after the seek")
    check_stream(events)
    late = _action_stretch(host, store)
    assert not late, f"rows of the old position after seek() in the callback: {[(b['first_row'], b['n']) for b in late]}"
    assert resets(events) == ["seek"]
    assert rows(since_last_reset(events)) == golden_ts("long", at)
    assert_frame(host, "long", at)


def test_batches_carry_source_positions_and_warmup_seeks_keep_history(host) -> None:
    """``Batch.position`` / ``ResetEvent.position`` and ``seek(..., warmup=N)``, the same on every host."""
    host.load("long")
    host.control("step", {"n": 4})
    host.wait_events(lambda ev: n_rows(ev) >= 4, what="4 rows")
    host.control("seek", {"row": 30, "warmup": 6})
    host.control("step", {"n": 2})
    events = host.wait_events(lambda ev: n_rows(since_last_reset(ev)) >= 8, what="warm-up and 2 rows")
    tail = [e for e in events if e["kind"] in ("batch", "reset")]
    last_reset = max(i for i, e in enumerate(tail) if e["kind"] == "reset")
    assert (tail[last_reset]["reason"], tail[last_reset]["position"]) == ("seek", 30)
    after = tail[last_reset + 1:]
    assert [(b["position"], b["n"], b["warmup"]) for b in after] == [(24, 6, True), (30, 2, False)]
    assert rows(after) == golden_ts("long", 24, 32)
    assert_frame(host, "long", 24, 32)
    first = [e for e in tail[:last_reset] if e["kind"] == "batch"]
    assert first and first[0]["position"] == 0 and not first[0]["warmup"]


def test_rate_paces_by_rows_on_every_host(host) -> None:
    host.load("mixed")
    st = host.control("rate", {"rate": "20/s"})
    assert (st["rate"], st["pacing"]) == (20.0, "rows")
    message = refused(host, "rate", {"rate": 0}, InvalidValueError)
    assert message.startswith("rate must be rows per second")
    st = host.control("speed", {"speed": 5})
    assert (st["rate"], st["pacing"], st["speed"]) == (None, "time", 5.0)


# ----------------------------------------------------------------------------------------- Arrow-native inputs


@pytest.mark.parametrize("source", golden.ARROW_INPUTS)
def test_arrow_input_gives_the_pandas_result(host, source) -> None:
    """Issue 17: the same data as a pyarrow Table, Polars DataFrame or DuckDB relation replays exactly as the
    pandas frame does: status keys and values, the buffer (columns, dtypes, values) after a step and after
    a play at max. Every input x host pair is collected: the engine, threaded and local-widget hosts get the
    object, the attached host builds it in its kernel, the REST host uploads its Arrow IPC stream."""
    host.load("mixed", input=source)
    st = host.control("step", {"n": 5})
    assert (st["state"], st["position"]) == ("paused", 5)
    st = host.wait_status(lambda s: s.get("buffer_rows") == 5, what="5 rows in the buffer")
    assert set(st) == golden.STATUS_KEYS, (
        f"{host.name}/{source}: missing {sorted(golden.STATUS_KEYS - set(st))}, extra {sorted(set(st) - golden.STATUS_KEYS)}")
    ts = golden_ts("mixed")
    want = {"num_rows": num_rows("mixed"), "start_ns": ts[0], "end_ns": ts[-1], "time_ns": ts[4],
            "position_iso": "2024-01-02T09:30:05+00:00", "columns": VALUE_COLUMNS["mixed"], "has_data": True}
    got = {k: st.get(k, "<missing>") for k in want}
    assert got == want, {k: (got[k], want[k]) for k in want if got[k] != want[k]}
    last = st.get("last") or {}
    assert (last.get("side"), last.get("venue"), last.get("size"), last.get("odd_lot")) == ("sell", "XNAS", 5, True), last
    assert_frame(host, "mixed", 0, 5)
    host.control("speed", {"speed": "max"})
    host.control("play")
    st = host.wait_state(("finished",))
    assert st["position"] == num_rows("mixed")
    events = host.wait_events(lambda ev: n_rows(ev) >= num_rows("mixed"), what="every row")
    check_stream(events)
    assert rows(events) == golden_ts("mixed") and resets(events) == []
    assert {tuple(b["columns"]) for b in batches(events)} == {tuple(VALUE_COLUMNS["mixed"])}
    assert_frame(host, "mixed")


# ----------------------------------------------------------------------------------------- marks, on_reset


def marks_of(events: list[dict]) -> list[dict]:
    return [{k: e[k] for k in ("time_ns", "y", "text", "side")} for e in events if e["kind"] == "mark"]


def test_marks_stream_list_and_clear_on_seek_and_stop(host) -> None:
    host.load("mixed")
    ts = golden_ts("mixed")
    host.control("step", {"n": 5})
    st = host.control("mark", {"side": "buy", "text": "in"})  # no time: the last released row
    assert st["marks"] == 1
    st = host.control("mark", {"time": ts[2], "y": 101.5, "side": "SELL"})
    assert (st["marks"], st["state"], st["position"]) == (2, "paused", 5)  # a mark changes nothing else
    want = [{"time_ns": ts[4], "y": None, "text": "in", "side": "buy"},
            {"time_ns": ts[2], "y": 101.5, "text": None, "side": "sell"}]
    events = host.wait_events(lambda ev: len(marks_of(ev)) >= 2, what="2 mark events")
    assert marks_of(events) == want
    assert host.wait_status(lambda s: s.get("marks") == 2, what="2 marks")["marks"] == 2
    assert host.marks() == want
    st = host.control("seek", {"fraction": 0.5})
    assert st["marks"] == 0
    host.wait_events(lambda ev: "seek" in resets(ev), what="reset 'seek'")
    assert host.marks() == []
    assert "no row released" in refused(host, "mark", {"side": "buy"}, IllegalTransitionError)
    host.control("step", {"n": 1})
    assert host.control("mark", {"text": "after the seek"})["marks"] == 1
    assert host.control("stop")["marks"] == 0
    host.wait_events(lambda ev: "stop" in resets(ev), what="reset 'stop'")
    assert host.marks() == [] and host.status()["marks"] == 0


def test_marks_clear_on_mode_switch_and_work_in_live(host) -> None:
    host.load("mixed")
    host.control("step", {"n": 3})
    assert host.control("mark", {"side": "buy"})["marks"] == 1
    assert host.control("mode", {"mode": "live", "symbol": "ACME"})["marks"] == 0
    host.wait_events(lambda ev: "mode" in resets(ev) and n_rows(since_last_reset(ev)) >= 1, what="live rows")
    assert host.control("mark", {"side": "sell", "text": "live"})["marks"] == 1
    host.wait_status(lambda s: s.get("marks") == 1, what="1 mark in LIVE")
    assert host.control("mode", {"mode": "replay"})["marks"] == 0
    host.wait_events(lambda ev: resets(ev) == ["mode", "mode"], what="two resets 'mode'")
    assert host.marks() == []


def test_marks_returned_by_a_callback(host, needs_callbacks) -> None:
    """A dict, a list, a DataFrame: marked in order after the batch; an invalid one is a callback error."""
    host.load("mixed")
    ts = golden_ts("mixed")
    host.add_callback("return_marks")
    for _ in range(5):
        host.control("step", {"n": 1})
    host.wait_store(lambda s: s.get("rows", 0) >= 5, what="5 callback calls")
    st = host.wait_status(lambda s: s.get("marks") == 4 and s.get("callback_errors") == 1, timeout=10,
                          what="4 marks and 1 callback error")
    assert (st["state"], st["position"]) == ("paused", 5)
    assert "side" in (st.get("error") or "")
    want = [{"time_ns": ts[0], "y": None, "text": "in", "side": "buy"},
            {"time_ns": ts[1], "y": None, "text": None, "side": "sell"},
            {"time_ns": ts[1], "y": 101.5, "text": "note", "side": None},
            {"time_ns": ts[2], "y": None, "text": "frame", "side": "buy"}]
    assert host.marks() == want
    assert marks_of(host.wait_events(lambda ev: len(marks_of(ev)) >= 4, what="4 mark events")) == want


def test_on_reset_reports_reason_and_resume_position(host, needs_callbacks) -> None:
    """seek, stop and LIVE -> REPLAY give their reason and where the stream resumes; the next batch's
    position tells a resume from a restart."""
    host.load("mixed")
    host.add_callback("record_resets")
    host.add_callback("record")
    host.control("step", {"n": 4})
    host.control("seek", {"row": 10})
    host.control("stop")
    host.control("step", {"n": 5})
    host.control("mode", {"mode": "live", "symbol": "ACME"})
    host.control("mode", {"mode": "replay"})
    store = host.wait_store(lambda s: len(s.get("resets", [])) >= 4, timeout=10, what="4 on_reset calls")
    assert store["resets"] == [["seek", 10], ["stop", 0], ["mode", 0], ["mode", 5]]
    st = host.control("step", {"n": 1})
    assert (st["mode"], st["position"]) == ("replay", 6)
    store = host.wait_store(lambda s: s.get("positions", [None])[-1] == 5, timeout=10,
                            what="the batch after LIVE -> REPLAY at position 5")
    assert store["positions"][:2] == [0, 0]  # step 4, then (after seek and stop) step 5 from the start
