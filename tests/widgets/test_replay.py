"""``Replay`` on the local path (no server): traits, validation, the Python API and what reaches the browser."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from traitlets import TraitError

from jupyter_replay import wire
from jupyter_replay.batch import Batch, Mode
from jupyter_replay.exceptions import IllegalTransitionError, InvalidValueError, ReplayError
from jupyter_replay.widgets import Replay, replay
from jupyter_replay.sources import as_source as make_source
from jupyter_replay.widgets.attach import bokehjs_code
from jupyter_replay.widgets.comm import FRAME_RATE

from widget_helpers import trades, wait_until


# ------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    "bad", [0, -1, math.nan, -math.inf, "fast", "fastest", "inf", "", True, None, 1001, 0.05, [1], 10**400, "9" * 500]
)
def test_bad_speed_raises_traiterror_and_changes_nothing(make_replay, bad) -> None:
    r = make_replay(trades(20), speed=2)
    with pytest.raises(TraitError) as info:
        r.speed = bad
    assert isinstance(info.value, InvalidValueError)  # one exception for both worlds
    assert r.speed == 2.0
    assert r.session.status()["speed"] == 2.0
    assert r.status["speed"] == 2.0


@pytest.mark.parametrize("value, expected", [("10x", 10.0), ("2.5x", 2.5), ("10", 10.0), (math.inf, "max"),
                                             ("MAX", "max"), (3, 3.0)])
def test_speed_takes_the_control_tables_grammar(make_replay, value, expected) -> None:
    """``r.speed`` accepts what REST accepts (controls.parse_speed), and reports it as every host does."""
    r = make_replay(trades(20), speed=2)
    r.speed = value
    assert r.speed == expected and r.session.status()["speed"] == expected == r.status["speed"]


def test_bad_speed_message_is_the_engines(make_replay) -> None:
    from jupyter_replay.controls import parse_speed

    r = make_replay(trades(20))
    with pytest.raises(InvalidValueError) as engine:
        parse_speed("fastest")
    with pytest.raises(TraitError) as trait:
        r.speed = "fastest"
    assert str(trait.value) == str(engine.value)


@pytest.mark.parametrize("bad", [1, 0, "true", None])
def test_bad_loop_raises_like_rest(make_replay, bad) -> None:
    """``loop`` is True or False only (controls.parse_loop), as over REST: 0/1 and text are refused."""
    r = make_replay(trades(10))
    with pytest.raises(TraitError):
        r.loop = bad
    assert r.loop is False and r.session.status()["loop"] is False


def test_bad_constructor_values() -> None:
    df = trades(10)
    with pytest.raises(TraitError):
        Replay(df, speed=0)
    with pytest.raises(TraitError):
        Replay(df, symbol="not a symbol!")
    with pytest.raises(InvalidValueError):
        Replay(df, kind="pie")
    with pytest.raises(InvalidValueError):
        Replay(df, buffer_rows=0)
    with pytest.raises(InvalidValueError, match=r"cannot plot \['nope'\]") as info:
        Replay(df, y="nope")
    assert "price" in str(info.value)  # names the columns that can be plotted
    with pytest.raises(InvalidValueError, match="cannot plot") as info:
        Replay(df, y="x" * 10_000)
    assert len(str(info.value)) < 300  # never echoes unbounded input
    with pytest.raises(InvalidValueError, match="volume"):
        Replay(df, kind="ohlc", volume="nope")


@pytest.mark.parametrize("bad", ["sideways", "", 3, None, "x" * 10_000])
def test_bad_mode_raises(make_replay, bad) -> None:
    r = make_replay(trades(10))
    with pytest.raises(TraitError) as info:
        r.mode = bad
    assert len(str(info.value)) < 200  # bounded: never the whole input
    assert r.mode == "replay" and r.session.status()["mode"] == "replay"


@pytest.mark.parametrize("bad", ["", "a b", "x" * 65, 5])
def test_bad_symbol_raises(make_replay, bad) -> None:
    r = make_replay(trades(10))
    with pytest.raises(TraitError):
        r.symbol = bad
    assert r.symbol == "DEMO"


def test_engine_refusals_propagate_typed(make_replay) -> None:
    r = make_replay(trades(10))
    with pytest.raises(IllegalTransitionError):
        r.pause()  # nothing is playing
    r.mode = "live"
    with pytest.raises(IllegalTransitionError):
        r.speed = 5  # LIVE runs on the wall clock
    assert r.speed == 1.0
    with pytest.raises(IllegalTransitionError):
        r.seek(0.5)


# ------------------------------------------------------------------------------ trait sync


def test_python_trait_changes_reach_the_session(make_replay) -> None:
    r = make_replay(trades(10))
    r.speed = 10
    assert r.session.status()["speed"] == 10.0 and r.status["speed"] == 10.0
    r.speed = "MAX"
    assert r.speed == "max" and r.session.status()["speed"] == "max"
    r.speed = 0.1
    assert r.session.status()["speed"] == 0.1
    r.loop = True
    assert r.session.status()["loop"] is True and r.status["loop"] is True


def test_browser_controls_update_python_traits(make_replay) -> None:
    """Local path: a control message from the JS acts on the session; traits mirror the session."""
    r = make_replay(trades(50))
    r.from_browser({"type": "control", "action": "speed", "speed": 25})
    assert r.speed == 25.0 and r.session.status()["speed"] == 25.0
    r.from_browser({"type": "control", "action": "speed", "speed": "max"})
    assert r.speed == "max"
    r.from_browser({"type": "control", "action": "loop", "loop": True})
    assert r.loop is True
    r.from_browser({"type": "control", "action": "step", "n": 3})
    assert r.status["position"] == 3 and len(r.buffer) == 3
    r.from_browser({"type": "control", "action": "seek", "fraction": 0.5})
    assert r.status["position"] == 25 and len(r.buffer) == 0
    # a bad value from the browser: an error message back, nothing changed
    r.from_browser({"type": "control", "action": "speed", "speed": 0})
    errors = r.messages("error")
    assert errors and errors[-1][0]["status"] == 400 and "speed" in errors[-1][0]["message"]
    assert r.speed == "max"
    r.from_browser({"type": "control", "action": "explode"})
    assert len(r.messages("error")) == 2


def test_readonly_traits_ignore_browser_state(make_replay) -> None:
    r = make_replay(trades(10))
    before = dict(r.status)
    r.set_state({"status": {"state": "hacked"}, "attached": "x", "kernel_id": "k", "plot": {}})
    assert r.status == before and r.attached == "" and r.plot
    with pytest.raises(TraitError):
        r.status = {}
    with pytest.raises(TraitError):
        r.attached = "x"


# ------------------------------------------------------------------------------ Python API -> local session


def test_play_to_the_end_streams_every_row_to_the_browser(make_replay) -> None:
    df = trades(3000)
    r = make_replay(df, speed="max")
    r.play()
    assert r.wait(timeout=20) == "finished"
    assert r.status["state"] == "finished" and r.status["buffer_rows"] == 3000
    buf = r.buffer
    assert len(buf) == 3000 and buf["price"].tolist() == df["price"].tolist()
    frames = wait_until(lambda: (fr := r.frames()) and sum(h["rows"] for h, _ in fr) == 3000 and fr)
    # rows are contiguous and in order, time as float ms only (what BokehJS wants)
    expected = 0
    for header, cols in frames:
        assert header["first_row"] == expected and header["mode"] == "replay"
        expected += header["rows"]
        assert set(cols) == {"timestamp", "price", "size"}
        assert cols["timestamp"].dtype == np.float64
    ms = np.concatenate([c["timestamp"] for _, c in frames])
    assert np.array_equal(ms, df["timestamp"].dt.as_unit("ns").astype("int64").to_numpy() / 1e6)
    assert np.array_equal(np.concatenate([c["size"] for _, c in frames]), df["size"].to_numpy())


def test_no_view_no_frames_then_history(make_replay) -> None:
    """Without a rendered view (scripts, nbval) nothing is streamed; a view gets the buffer on render."""
    r = make_replay(trades(300), speed="max", render=False)
    r.play()
    r.wait(timeout=20)
    assert r.messages("frame") == [] and len(r.buffer) == 300
    r.render()
    (content, buffers), = wait_until(lambda: r.messages("history"))
    assert content["rows"] == 300 and wire.decode_frame(buffers[0])[0]["rows"] == 300
    r.stop()
    r.step(2)
    wait_until(lambda: r.messages("frame"))  # from now on rows are streamed


def test_batches_are_coalesced_into_few_frames(make_replay) -> None:
    """Batches queued between two sends go out as one frame (first_seq..seq)."""
    r = make_replay(trades(10))
    sender = r._sender
    batches = [
        Batch(seq=100 + i, session_id="x", mode=Mode.REPLAY, ts=np.array([i * 1_000_000], np.int64),
              columns={"price": np.array([float(i)]), "size": np.array([i], np.int64)}, first_row=i)
        for i in range(200)
    ]
    before = len(r.messages("frame"))
    with sender._cond:  # the sender cannot drain while we queue
        for b in batches:
            sender._items.append(b)
        sender._cond.notify()
    wait_until(lambda: len(r.messages("frame")) > before)
    frames = r.messages("frame")[before:]
    assert len(frames) == 1
    header, cols = wire.decode_frame(frames[0][1][0])
    assert (header["first_seq"], header["seq"], header["rows"]) == (100, 299, 200)
    assert cols["price"].tolist() == [float(i) for i in range(200)]
    assert FRAME_RATE <= 60


def test_step_seek_stop(make_replay) -> None:
    df = trades(100)
    r = make_replay(df)
    assert r.step(5) == 5
    assert r.buffer["price"].tolist() == df["price"].iloc[:5].tolist()
    assert r.step(duration="1s") == 10  # 100 ms apart
    assert r.status["position"] == 15
    r.seek(df["timestamp"].iloc[50])
    assert r.status["position"] == 50 and len(r.buffer) == 0
    wait_until(lambda: any(m[0].get("reason") == "seek" for m in r.messages("reset")))
    r.seek(0.25)
    assert r.status["position"] == 25
    r.step(1)
    assert r.buffer["price"].tolist() == [df["price"].iloc[25]]
    r.stop()
    assert r.status["state"] == "stopped" and r.status["position"] == 0 and len(r.buffer) == 0


def test_pause_stops_rows(make_replay) -> None:
    r = make_replay(trades(100_000, freq="1ms"), speed=1)
    r.play()
    wait_until(lambda: len(r.buffer) > 0)
    r.pause()
    assert r.status["state"] == "paused"
    n = len(r.buffer)
    pos = r.status["position"]
    assert r.session.status()["position"] == pos == n
    import time as _t

    _t.sleep(0.2)
    assert len(r.buffer) == n  # nothing released while paused


def test_on_batch_runs_for_every_batch_and_survives_errors(make_replay) -> None:
    r = make_replay(trades(400), speed="max")
    seen: list[int] = []
    clocks = []

    @r.on_batch
    def collect(batch, clock):
        seen.append(len(batch))
        clocks.append(clock.now())

    @r.on_batch
    def broken(batch, clock):
        raise RuntimeError("user bug")

    r.play()
    r.wait(timeout=20)
    assert sum(seen) == 400
    assert all(isinstance(c, pd.Timestamp) for c in clocks)
    assert r.status["callback_errors"] == len(seen)
    assert r.status["state"] == "finished"


# ------------------------------------------------------------------------------ modes


def test_mode_switch_clears_buffer_and_resets_the_plot(make_replay) -> None:
    r = make_replay(trades(200), speed="max", symbol="ABC")
    r.play()
    r.wait(timeout=20)
    assert len(r.buffer) == 200
    r.mode = "live"
    assert r.status["mode"] == "live" and r.status["symbol"] == "ABC"
    assert all(c in ("timestamp", "price", "size", "side") for c in r.buffer.columns)
    reset = wait_until(lambda: [m for m in r.messages("reset") if m[0]["mode"] == "live"])
    assert reset[0][0]["reason"] == "mode"
    # live rows flow, and reach the browser as live frames after the reset
    wait_until(lambda: len(r.buffer) > 0, timeout=10)
    wait_until(lambda: any(h["mode"] == "live" for h, _ in r.frames()))
    reset_at = r.messages().index(reset[0])
    after = [wire.decode_frame(b[0])[0] for c, b in r.messages()[reset_at:] if c["type"] == "frame"]
    assert after and all(h["mode"] == "live" for h in after)
    # changing the symbol in LIVE restarts the feed for the new symbol
    r.symbol = "XYZ"
    assert r.status["symbol"] == "XYZ"
    r.mode = "replay"
    assert r.status["mode"] == "replay" and len(r.buffer) == 0
    wait_until(lambda: [m for m in r.messages("reset") if m[0]["mode"] == "replay"])


def test_two_replays_are_independent(make_replay) -> None:
    a = make_replay(trades(100_000, freq="1ms"), speed=1, symbol="AAA")
    b = make_replay(trades(300, seed=2), speed="max", symbol="BBB")
    a.play()
    b.play()
    b.wait(timeout=20)
    a.pause()
    assert a.status["state"] == "paused" and b.status["state"] == "finished"
    assert len(b.buffer) == 300 and len(a.buffer) < 100_000
    b.mode = "live"
    assert a.mode == "replay" and a.status["mode"] == "replay"
    a.speed = 7
    assert b.status["speed"] == "max" and b.speed == "max"
    n_a = len(a.buffer)
    wait_until(lambda: len(b.buffer) > 0)
    assert len(a.buffer) == n_a  # b's live rows never reach a
    assert all(h["mode"] == "replay" for h, _ in a.frames())
    assert a.session is not b.session and a.session.id != b.session.id


def test_history_for_a_late_view(make_replay) -> None:
    """A view rendered later asks for the buffer; it comes as one frame behind the queued rows."""
    df = trades(50)
    r = make_replay(df)
    r.step(20)
    r.from_browser({"type": "history"})
    hist = wait_until(lambda: [m for m in r.messages("history") if m[0]["rows"]])
    content, buffers = hist[-1]
    assert content["rows"] == 20 and content["mode"] == "replay"
    header, cols = wire.decode_frame(buffers[0])
    assert header["history"] is True and header["rows"] == 20
    assert cols["price"].tolist() == df["price"].iloc[:20].tolist()


def test_bokehjs_is_sent_inline_on_request(make_replay) -> None:
    r = make_replay(trades(10))
    r.from_browser({"type": "need_bokeh"})
    (content, buffers), = r.messages("bokehjs")
    assert buffers[0] == bokehjs_code() and b"Bokeh" in buffers[0][:100_000]
    assert b"cdn.bokeh.org" not in buffers[0][:2000]


# ------------------------------------------------------------------------------ plots and sources


def test_plot_specs(make_replay) -> None:
    r = make_replay(trades(100), y=["price", "size"])
    spec = r.plot["replay"]
    assert spec["kind"] == "line" and spec["columns"] == ["timestamp", "price", "size"]
    text = json.dumps(spec["item"])
    assert '"replay_source"' in text and "DatetimeAxis" in text
    assert r.plot["live"]["columns"] == ["timestamp", "price", "size"]
    o = make_replay(trades(100), kind="ohlc", bar="5s")
    ospec = o.plot["replay"]
    assert ospec["bars"] == "replay_bars" and ospec["bar_ms"] == 5000 and ospec["volume"] == "size"
    assert '"replay_bars"' in json.dumps(ospec["item"])


def test_plots_have_axes_without_data_and_clock_time_ticks(make_replay) -> None:
    """Empty plots keep axes and grid (a visible anchor spans the data until rows arrive; the ranges count
    visible renderers only, so they follow the rows afterwards); time ticks are clock times at every scale."""
    from bokeh.document import Document
    from bokeh.models import DataRange1d, DatetimeTickFormatter, Plot

    df = trades(100)
    for kind, anchors in (("line", ["replay_anchor"]), ("ohlc", ["replay_anchor", "replay_anchor_volume"])):
        r = make_replay(df, kind=kind)
        spec = r.plot["replay"]
        assert spec["anchors"] == anchors and spec["anchor_now_ms"] is None
        doc = Document.from_json(spec["item"]["doc"])
        main = doc.select_one({"name": "replay_anchor"})
        assert main.visible  # the source is empty: the anchor gives the ranges their extent
        data = main.data_source.data
        assert list(data["x"]) == [df["timestamp"].iloc[0].value / 1e6, df["timestamp"].iloc[-1].value / 1e6]
        assert list(data["y"]) == [df["price"].min(), df["price"].max()]
        for plot in doc.select({"type": Plot}):
            for rng in (plot.x_range, plot.y_range):
                assert isinstance(rng, DataRange1d) and rng.only_visible and math.isnan(rng.start)  # computed
        formatters = [a.formatter for p in doc.select({"type": Plot}) for a in p.xaxis]
        assert formatters and all(isinstance(f, DatetimeTickFormatter) for f in formatters)
        f = formatters[0]
        assert (f.milliseconds, f.seconds, f.minsec, f.minutes, f.hourmin, f.hours, f.days) == (
            "%H:%M:%S.%3N", "%H:%M:%S", "%H:%M:%S", "%H:%M", "%H:%M", "%H:%M", "%m/%d")
        assert "ms" not in f.milliseconds and f.context.milliseconds == "%Y-%m-%d"
        live = r.plot["live"]
        assert live["anchor_now_ms"] == 60_000 and live["anchors"] == anchors  # the JS keeps it at "now"


def test_make_source_inputs(tmp_path) -> None:
    df = trades(30)
    assert make_source(df).num_rows == 30
    assert make_source(df.set_index("timestamp")).num_rows == 30
    renamed = df.rename(columns={"timestamp": "ts"})
    assert make_source(renamed).num_rows == 30  # the only datetime column
    path = tmp_path / "t.parquet"
    df.to_parquet(path)
    assert make_source(str(path)).num_rows == 30
    merged = make_source({"a": df, "b": trades(10, seed=3)})
    assert merged.num_rows == 40
    with pytest.raises(ReplayError):
        make_source(42)
    two_dt = df.assign(other=df["timestamp"])
    with pytest.raises(ReplayError, match="time="):
        make_source(two_dt.drop(columns="timestamp").assign(t2=df["timestamp"]))


def test_replay_function_and_close() -> None:
    r = replay(trades(10), speed=3, loop=True, buffer_rows=5)
    try:
        assert isinstance(r, Replay) and r.speed == 3.0 and r.loop is True
        assert r.status["buffer_capacity"] == 5
        r.step(8)
        assert len(r.buffer) == 5  # rolling
    finally:
        r.close()
    with pytest.raises(ReplayError):
        r.play()


# ------------------------------------------------------------------------------ text columns, callback errors


def test_text_columns_on_the_local_path(make_replay, caplog) -> None:
    """Long format with text and categorical columns: ``r.buffer`` and the batches have them, the comm
    carries them as dictionary codes (each value once per comm), a failing callback is logged once."""
    from widget_helpers import long_format

    df = long_format(60)
    r = make_replay(df, "date", speed="max")
    seen: list[str] = []
    r.on_batch(lambda batch, clock: seen.extend(batch.columns["symbol"].tolist()))

    def broken(batch, clock):
        raise KeyError("symbol")

    r.on_batch(broken)
    with caplog.at_level("ERROR", logger="jupyter_replay.client"):
        r.play()
        assert r.wait(timeout=20) == "finished"
    assert seen == df["symbol"].tolist()
    assert r.buffer["symbol"].tolist() == df["symbol"].tolist()
    assert r.buffer["venue"].tolist() == list(df["venue"].astype(object))
    assert r.buffer["note"].tolist() == df["note"].tolist()
    logged = [rec for rec in caplog.records if rec.name == "jupyter_replay.client"]
    assert len(logged) == 1 and "KeyError" in (logged[0].exc_text or "")
    assert r.status["callback_errors"] == r.session.status()["callback_errors"] > 0
    assert "symbol" in (r.status["error"] or "")
    # ... and shown once in the widget (its status line), not once per batch
    shown = wait_until(lambda: r.messages("error"))
    assert len(shown) == 1 and "broken" in shown[0][0]["message"] and "KeyError" in shown[0][0]["message"]
    # what the browser received: every row, text decoded with one decoder for the comm
    wait_until(lambda: sum(h["rows"] for h, _ in r.frames()) >= 60)
    symbols = sum((cols["symbol"].tolist() for _, cols in r.frames()), [])
    assert symbols == df["symbol"].tolist()
    sent_values = sum((c["dictionary"]["values"] for c in _frame_columns(r) if c["name"] == "symbol"), [])
    assert sorted(sent_values) == ["AAPL", "GOOG", "MSFT"]  # each value once


def _frame_columns(r) -> list[dict]:
    """The column specs of every frame sent over the comm (headers only: dictionaries as sent)."""
    out = []
    for content, buffers in r.messages():
        if content.get("type") in ("frame", "history") and buffers:
            head_len = int.from_bytes(buffers[0][:4], "little")
            out.extend(json.loads(buffers[0][4 : 4 + head_len])["columns"])
    return out


def test_marks_reach_the_browser_on_the_local_path(make_replay) -> None:
    """``r.mark`` and marks returned by a callback go over the comm after their rows; a late view gets the
    current marks after the history; a reset clears them (the browser clears its plot on the reset)."""
    df = trades(50)
    r = make_replay(df)
    assert r.plot["replay"]["marks"] == "replay_marks"  # every spec has the marks source

    @r.on_batch
    def strategy(batch, clock):
        return {"side": "buy", "text": "in"} if batch.first_row == 0 else None

    r.step(5)
    r.mark(side="sell", y=99.5)
    sent = wait_until(lambda: [m for m in r.messages("marks") if not m[0].get("history")][:2])
    ts = df["timestamp"].dt.as_unit("ns").astype("int64").tolist()
    assert [(m["time_ns"], m["side"], m["text"], m["y"]) for c, _ in sent for m in c["marks"]] == [
        (ts[4], "buy", "in", None), (ts[4], "sell", None, 99.5)]
    kinds = [c["type"] for c, _ in r.messages() if c["type"] == "frame" or (c["type"] == "marks" and not c.get("history"))]
    assert kinds.index("frame") < kinds.index("marks")  # after the rows they are on
    assert list(r.marks["side"]) == ["buy", "sell"] and r.status["marks"] == 2
    def histories() -> list[dict]:
        return [c for c, _ in r.messages("marks") if c.get("history")]

    before = len(histories())  # (the first view's, before any mark)
    r.from_browser({"type": "history"})
    hist = wait_until(lambda: histories()[before:])
    assert [m["side"] for m in hist[-1]["marks"]] == ["buy", "sell"]
    r.stop()
    assert len(r.marks) == 0 and r.status["marks"] == 0
    r.from_browser({"type": "history"})
    assert wait_until(lambda: histories()[before + 1:])[-1]["marks"] == []


def test_step_button_does_not_hold_the_kernel_while_callbacks_run(make_replay) -> None:
    """``r.step()`` from code returns after the callbacks of its rows (scripts rely on it), but the Step
    button (a comm message, handled on the kernel's shell thread) must not: while a callback is blocked,
    the kernel still handles the next click (Pause) and runs cells."""
    import threading

    r = make_replay(trades(50), speed=1)
    entered, release = threading.Event(), threading.Event()

    @r.on_batch
    def slow(batch, clock):
        entered.set()
        release.wait(60)

    try:
        clicks = threading.Thread(target=lambda: (
            r.from_browser({"type": "control", "action": "step", "n": 1}),
            r.from_browser({"type": "control", "action": "pause"}),
        ))
        clicks.start()
        assert entered.wait(30), "the step's callback never ran"
        clicks.join(30)
        assert not clicks.is_alive(), "a Step click held the kernel until its callback finished"
        assert not release.is_set() and r.status["callback_queue"] >= 1  # the callback is still blocked
        assert not [m for m, _ in r.messages("error")], r.messages("error")
    finally:
        release.set()
    assert r.session.flush(30)
    assert r.status["state"] in ("paused", "stopped") and r.status["callback_errors"] == 0
