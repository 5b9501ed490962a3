"""Plot specs for analyst data (issue 16): ``by=`` one series per group, ``ohlc=`` bars from columns,
bar widths from the row spacing, and the browser side (js/src/plots) splitting rows by group, drawing a
bar per row and bridging a merged stream's NaN rows."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bokeh.document import Document
from bokeh.models import GlyphRenderer, Legend, Line, VBar
from test_frontend import run_node
from widget_helpers import long_format

from jupyter_replay import wire
from jupyter_replay.batch import Batch, Mode
from jupyter_replay.exceptions import DataError, InvalidValueError, ReplayError
from jupyter_replay.sources import as_source
from jupyter_replay.widgets import plots
from jupyter_replay.widgets.replay import replay

DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def node(require_binary: Callable[..., str]) -> str:
    return require_binary("node", "install Debian's nodejs; `./dev setup` does")


def stocks(symbols: tuple[str, ...] = ("MSFT", "AAPL", "IBM"), months: int = 24) -> pd.DataFrame:
    """Monthly long-format prices (``date, symbol, price``), rows of the symbols interleaved by date."""
    dates = pd.date_range("2000-01-01", periods=months, freq="MS")
    return pd.DataFrame(
        [(d, s, 10.0 * (k + 1) + i) for i, d in enumerate(dates) for k, s in enumerate(symbols)],
        columns=["date", "symbol", "price"],
    )


def monthly_bars(months: int = 36) -> pd.DataFrame:
    dates = pd.date_range("2001-01-01", periods=months, freq="MS")
    o = 100 + np.arange(months, dtype=float)
    return pd.DataFrame(
        {
            "date": dates,
            "open": o,
            "high": o + 3,
            "low": o - 2,
            "close": o + 1,
            "volume": np.arange(months, dtype=np.int64) * 10 + 5,
        }
    )


def spec_for(df: pd.DataFrame, kind: str = "line", **kw) -> dict:
    src = as_source(df, "date")
    return plots.plot_spec(
        kind,
        src.dtypes,
        values=src.data,
        times_ns=src.ts,
        span_ns=src.end_ns - src.start_ns,
        time_ns=(src.start_ns, src.end_ns),
        **kw,
    )


def batch(ts_ms: np.ndarray, columns: dict, first: int = 0, seq: int = 1) -> Batch:
    return Batch(
        seq=seq,
        session_id="s",
        mode=Mode.REPLAY,
        ts=np.asarray(ts_ms, np.int64) * 1_000_000,
        columns=columns,
        first_row=first,
    )


def width(glyph: VBar) -> float:
    w = glyph.width
    return float(w.value if hasattr(w, "value") else w)


def document(spec: dict) -> Document:
    return Document.from_json(spec["item"]["doc"])


# ------------------------------------------------------------------------------ by= specs


def test_by_draws_one_line_per_group_with_a_hiding_legend_and_fixed_colours() -> None:
    spec = spec_for(stocks(), y="price", by="symbol")
    assert spec["by"] == "symbol" and spec["groups"] == ["AAPL", "IBM", "MSFT"]  # sorted
    assert spec["sources"] == ["replay_source", "replay_source_1", "replay_source_2"]
    assert spec["source"] == "replay_source" and spec["columns"] == ["timestamp", "price"]
    doc = document(spec)
    legend = doc.select_one({"type": Legend})
    assert legend.click_policy == "hide"
    assert [item.label["value"] for item in legend.items] == ["AAPL", "IBM", "MSFT"]
    colours = []
    for g, name in enumerate(spec["sources"]):
        source = doc.select_one({"name": name})
        (r,) = [r for r in doc.select({"type": GlyphRenderer}) if r.data_source is source]
        assert isinstance(r.glyph, Line) and r.glyph.y.field == "price"
        assert legend.items[g].renderers == [r]
        colours.append(r.glyph.line_color)
    assert len(set(colours)) == 3
    # the same groups in another frame order keep their colours (palette by sorted group)
    again = spec_for(stocks(("IBM", "MSFT", "AAPL")), y="price", by="symbol")
    doc2 = document(again)
    colours2 = [
        next(
            r.glyph.line_color
            for r in doc2.select({"type": GlyphRenderer})
            if r.data_source is doc2.select_one({"name": n})
        )
        for n in again["sources"]
    ]
    assert colours2 == colours


def test_groups_pick_a_subset_in_their_order_and_integer_groups_work() -> None:
    spec = spec_for(stocks(), y="price", by="symbol", groups=["MSFT", "AAPL"])
    assert spec["groups"] == ["MSFT", "AAPL"] and len(spec["sources"]) == 2
    df = stocks().assign(code=lambda d: d["symbol"].map({"MSFT": 7, "AAPL": 3, "IBM": 5}).astype(np.int64))
    spec = spec_for(df, y="price", by="code")
    assert spec["groups"] == [3, 5, 7]
    merged = as_source({"m": stocks(("A",)), "d": stocks(("B",))}, "date")  # MergedSource: stream/stream_id
    spec = plots.plot_spec("line", merged.dtypes, y="price", by="stream", values=merged.data)
    assert spec["groups"] == ["d", "m"]


def test_by_errors_name_the_column_and_the_fix() -> None:
    with pytest.raises(DataError, match=r"by column 'sym' not found; the columns are \['symbol', 'price'\]"):
        spec_for(stocks(), by="sym")
    with pytest.raises(DataError, match="holds float64"):
        spec_for(stocks(), by="price")
    many = pd.DataFrame(
        {
            "date": pd.date_range("2020", periods=40, freq="D"),
            "symbol": [f"S{i:02d}" for i in range(40)],
            "price": np.arange(40.0),
        }
    )
    with pytest.raises(DataError, match=r"has 40 groups, at most 32 .*filter the data or pass groups="):
        spec_for(many, by="symbol")
    assert len(spec_for(many, by="symbol", groups=["S01", "S02"])["sources"]) == 2
    src = as_source(stocks(), "date")
    with pytest.raises(InvalidValueError, match=r"by='symbol' needs groups=\[\.\.\.\] for data that is not in memory"):
        plots.plot_spec("line", src.dtypes, by="symbol")  # no values: e.g. a parquet file
    assert plots.plot_spec("line", src.dtypes, by="symbol", groups=["IBM"])["groups"] == ["IBM"]
    with pytest.raises(InvalidValueError, match="pass by= too"):
        spec_for(stocks(), groups=["IBM"])
    with pytest.raises(InvalidValueError, match="twice"):
        spec_for(stocks(), by="symbol", groups=["IBM", "IBM"])
    with pytest.raises(InvalidValueError, match="at most 32"):
        spec_for(many, by="symbol", groups=[f"S{i:02d}" for i in range(33)])


def test_default_y_is_never_the_by_column() -> None:
    df = stocks().assign(code=np.int64(1))
    spec = spec_for(df[["date", "code", "symbol", "price"]], by="code")
    assert spec["columns"] == ["timestamp", "price"]


# ------------------------------------------------------------------------------ ohlc= and bar widths


def test_ohlc_columns_draw_a_bar_per_row_as_wide_as_the_row_spacing() -> None:
    spec = spec_for(monthly_bars(), "ohlc", ohlc=("open", "high", "low", "close"))
    assert spec["ohlc"] == ["open", "high", "low", "close"] and spec["price"] == "close"
    assert spec["volume"] == "volume" and spec["columns"] == ["timestamp", "close", "volume"]
    assert spec["bar_ms"] == 31 * DAY_MS  # the median gap of monthly rows
    doc = document(spec)
    widths = {width(r.glyph) for r in doc.select({"type": GlyphRenderer}) if isinstance(r.glyph, VBar)}
    assert len(widths) == 1 and widths.pop() == pytest.approx(0.7 * 31 * DAY_MS)  # candles and volume bars
    weekly = monthly_bars().assign(date=pd.date_range("2001-01-01", periods=36, freq="W"))
    assert spec_for(weekly, "ohlc", ohlc=("open", "high", "low", "close"))["bar_ms"] == 7 * DAY_MS
    assert spec_for(monthly_bars(), "ohlc", ohlc=("open", "high", "low", "close"), bar_ms=DAY_MS)["bar_ms"] == DAY_MS


def test_ohlc_per_group_widths_and_legend_hides_the_groups_volume_too() -> None:
    a = monthly_bars().assign(symbol="A")
    b = monthly_bars(20).assign(symbol="B", date=pd.date_range("2001-01-01", periods=20, freq="W"))
    spec = spec_for(
        pd.concat([a, b]).sort_values("date", kind="stable"), "ohlc", ohlc=("open", "high", "low", "close"), by="symbol"
    )
    assert spec["bar_widths"] == [31 * DAY_MS, 7 * DAY_MS]
    assert spec["bar_sources"] == ["replay_bars", "replay_bars_1"] and spec["bars"] == "replay_bars"
    doc = document(spec)
    legend = doc.select_one({"type": Legend})
    assert legend.click_policy == "hide" and [i.label["value"] for i in legend.items] == ["A", "B"]
    bars_b = doc.select_one({"name": "replay_bars_1"})
    # B's legend item holds B's candles (segment, body), its close line and its volume bars (other panel)
    on_b = [r for r in legend.items[1].renderers if r.data_source is bars_b]
    assert len(on_b) == 3 and all(
        width(r.glyph) == pytest.approx(0.7 * 7 * DAY_MS) for r in on_b if isinstance(r.glyph, VBar)
    )


def test_auto_bar_width_reaches_weeks_months_quarters_years() -> None:
    assert plots.auto_bar_ms(3_600 * 10**9) == 30_000  # an hour of ticks: 30 s bars, as before
    assert plots.auto_bar_ms(None, spacing_ms=DAY_MS) == DAY_MS
    assert plots.auto_bar_ms(None, spacing_ms=7 * DAY_MS) == 7 * DAY_MS
    assert plots.auto_bar_ms(None, spacing_ms=31 * DAY_MS) == pytest.approx(30.436875 * DAY_MS)
    assert plots.auto_bar_ms(None, spacing_ms=92 * DAY_MS) == pytest.approx(91.310625 * DAY_MS)
    assert plots.auto_bar_ms(None, spacing_ms=365 * DAY_MS) == pytest.approx(365.2425 * DAY_MS)
    # bucketed monthly prices (kind="ohlc" on y=): bars no narrower than a month
    spec = spec_for(stocks(months=12), "ohlc", y="price")
    assert spec["bar_ms"] >= 30 * DAY_MS


def test_ohlc_with_several_y_columns_points_to_ohlc() -> None:
    with pytest.raises(InvalidValueError, match=r"pass ohlc=\('open', 'high', 'low', 'close'\)"):
        spec_for(monthly_bars(), "ohlc", y=["open", "high", "low", "close"])
    with pytest.raises(InvalidValueError, match="4 columns"):
        spec_for(monthly_bars(), "ohlc", ohlc=("open", "close"))
    with pytest.raises(InvalidValueError, match="ohlc= one of the numeric columns"):
        spec_for(monthly_bars(), "ohlc", ohlc=("open", "high", "low", "nope"))
    with pytest.raises(InvalidValueError, match="kind='ohlc'"):
        spec_for(monthly_bars(), "line", ohlc=("open", "high", "low", "close"))


# ------------------------------------------------------------------------------ the widget, headless


def test_replay_by_works_headless_and_live_keeps_no_unknown_groups() -> None:
    r = replay(stocks(), time="date", y="price", by="symbol")
    try:
        assert r.attached == "" and r.plot["replay"]["groups"] == ["AAPL", "IBM", "MSFT"]
        assert r.plot["live"]["by"] is None  # the live feed has no symbol column
        r.step(6)
        assert list(r.buffer["symbol"]) == ["MSFT", "AAPL", "IBM"] * 2
    finally:
        r.close()
    o = replay(monthly_bars(), time="date", ohlc=("open", "high", "low", "close"))
    try:
        assert o.plot["replay"]["kind"] == "ohlc" and o.plot["replay"]["ohlc"] == ["open", "high", "low", "close"]
    finally:
        o.close()
    with pytest.raises(ReplayError, match="not found"):
        replay(stocks(), time="date", by="ticker")
    # merged frames (a monthly and a daily stream): one series per stream, by their stream column
    daily = stocks(("D",), months=3).assign(date=lambda d: pd.date_range("2000-01-01", periods=3, freq="D"))
    m = replay({"monthly": stocks(("M",)), "daily": daily}, time="date", y="price", by="stream")
    try:
        assert m.plot["replay"]["groups"] == ["daily", "monthly"]
        m.step(5)
        assert set(m.buffer["stream"]) == {"daily", "monthly"}
    finally:
        m.close()
    lf = long_format()  # text + categorical columns: both can group
    for col in ("symbol", "venue"):
        r = replay(lf, time="date", y="price", by=col)
        try:
            assert len(r.plot["replay"]["sources"]) == (3 if col == "symbol" else 2)
        finally:
            r.close()


# ------------------------------------------------------------------------------ the browser side (node)


_FAKE = """
import { readFileSync } from "node:fs";
const rafs = [];
globalThis.requestAnimationFrame = (f) => rafs.push(f);
const run = () => { const fs = rafs.splice(0); for (const f of fs) f(); };
const { decodeFrame, Dictionaries } = await import("SRC/wire.js");
const { StreamPlot, CandlesPlot, kindFor } = await import("SRC/plots/index.js");
const dicts = new Dictionaries();
const frame = (i) => decodeFrame(readFileSync(new URL("./f" + i + ".bin", import.meta.url)), dicts);
const fakeSource = (name) => ({
  len: 0, last: null, streamed: [],
  get_length() { return this.len; },
  set data(v) {
    this.last = Object.fromEntries(Object.entries(v).map(([k, c]) => [k, Array.from(c)]));
    this.len = Object.values(v).length ? Object.values(v)[0].length : 0;
  },
  get data() { return {}; },
  stream(d, r) {
    this.streamed.push(Object.fromEntries(Object.entries(d).map(([k, c]) => [k, Array.from(c)])));
    this.len += Object.values(d)[0].length;
  },
  patch() {},
});
"""


def test_js_splits_rows_by_group_into_one_source_each(node: str, tmp_path: Path) -> None:
    """Text groups arrive dictionary-coded and decode to strings; each group's rows reach its own source,
    rows of a group not in the spec's list are not drawn, and a clear empties every series."""
    syms = np.array(["MSFT", "AAPL", "IBM", "XXX"], dtype=object)
    batches = []
    for k in range(2):
        n = 8
        i = np.arange(k * n, (k + 1) * n)
        batches.append(
            batch(
                1_700_000_000_000 + i * 1000,
                {"symbol": syms[i % 4], "price": i.astype(float)},
                first=int(i[0]),
                seq=k + 1,
            )
        )
    enc = wire.FrameEncoder(ms_only=True)  # one stream: the dictionary goes once
    for j, b in enumerate(batches):
        (tmp_path / f"f{j}.bin").write_bytes(enc.encode(b))
    out = run_node(
        node,
        tmp_path,
        _FAKE
        + """
const entry = { streamCalls: 0, rowsStreamed: 0 };
const plot = new StreamPlot(null, entry, kindFor);
plot.spec = { kind: "line", by: "symbol", groups: ["AAPL", "IBM", "MSFT"], columns: ["timestamp", "price"],
              rollover: 1000, sources: ["a", "b", "c"] };
const sources = [fakeSource("a"), fakeSource("b"), fakeSource("c")];
plot.useSeries(sources.map((source, g) => ({ source, kind: new (kindFor(plot.spec))(plot.spec, null, g) })));
for (let i = 0; i < 2; i++) { const f = frame(i); plot.push(f.columns, f.header.rows, f.header.first_row); }
run();
const drawn = sources.map((s) => s.last.price);
const meta = { windowRows: entry.windowRows, pointsDrawn: entry.pointsDrawn, sources: entry.sources.length };
plot.clear();
run();
console.log(JSON.stringify({ drawn, meta, cleared: sources.map((s) => s.len) }));
""",
    )
    assert out["drawn"] == [[1, 5, 9, 13], [2, 6, 10, 14], [0, 4, 8, 12]]  # AAPL, IBM, MSFT; XXX not drawn
    assert out["meta"] == {"windowRows": 12, "pointsDrawn": 12, "sources": 3}
    assert out["cleared"] == [0, 0, 0]


def test_js_integer_groups_and_merged_nan_rows_are_bridged(node: str, tmp_path: Path) -> None:
    """An int64 group column (BigInt in the browser) splits like text; a column that is NaN on another
    stream's rows (a merged monthly + daily frame) draws as one line through its values, never gaps."""
    n = 10
    i = np.arange(n)
    monthly = np.where(i % 5 == 0, 100.0 + i, np.nan)  # values on rows 0, 5 only; NaN on the daily rows
    b = batch(
        1_700_000_000_000 + i * 1000, {"sid": (i % 2).astype(np.int64), "daily": i.astype(float), "monthly": monthly}
    )
    (tmp_path / "f0.bin").write_bytes(wire.encode_batch(b, ms_only=True))
    out = run_node(
        node,
        tmp_path,
        _FAKE
        + """
const entry = { streamCalls: 0, rowsStreamed: 0 };
const plot = new StreamPlot(null, entry, kindFor);
plot.spec = { kind: "line", by: "sid", groups: [1, 0], columns: ["timestamp", "daily", "monthly"], rollover: 1000,
              sources: ["a", "b"] };
const sources = [fakeSource("a"), fakeSource("b")];
plot.useSeries(sources.map((source, g) => ({ source, kind: new (kindFor(plot.spec))(plot.spec, null, g) })));
const f = frame(0); plot.push(f.columns, f.header.rows, 0);
run();
const one = new StreamPlot(null, { streamCalls: 0, rowsStreamed: 0 }, kindFor);
one.spec = { kind: "line", columns: ["timestamp", "daily", "monthly"], rollover: 1000, sources: ["m"] };
const m = fakeSource("m");
one.useSeries([{ source: m, kind: new (kindFor(one.spec))(one.spec, null, 0) }]);
one.push(f.columns, f.header.rows, 0);
run();
console.log(JSON.stringify({ odd: sources[0].last.daily, even: sources[1].last.daily, monthly: m.last.monthly }));
""",
    )
    assert out["odd"] == [1, 3, 5, 7, 9] and out["even"] == [0, 2, 4, 6, 8]
    # rows 1..4 lie on the line from (0, 100) to (5, 105); rows 6..9 have no value after them: no line
    assert out["monthly"][:6] == [100, 101, 102, 103, 104, 105]
    assert out["monthly"][6:] == [None] * 4


def test_js_ohlc_rows_are_bars_per_group(node: str, tmp_path: Path) -> None:
    n = 6
    i = np.arange(n)
    o = 10.0 + i
    c = np.where(i % 2 == 0, o + 1, o - 1)
    b = batch(
        1_700_000_000_000 + i * 86_400_000,
        {
            "symbol": np.array(["A", "B"], dtype=object)[i % 2],
            "open": o,
            "high": o + 2,
            "low": o - 2,
            "close": np.where(i == 4, np.nan, c),
            "volume": (i + 1).astype(np.int64),
        },
    )
    (tmp_path / "f0.bin").write_bytes(wire.encode_batch(b, ms_only=True))
    out = run_node(
        node,
        tmp_path,
        _FAKE
        + """
const entry = { streamCalls: 0, rowsStreamed: 0 };
const plot = new StreamPlot(null, entry, kindFor);
plot.spec = { kind: "ohlc", by: "symbol", groups: ["A", "B"], columns: ["timestamp", "close", "volume"],
              ohlc: ["open", "high", "low", "close"], price: "close", volume: "volume", rollover: 1000,
              bar_ms: 86400000, bar_widths: [86400000, 86400000], bar_rollover: 100, sources: ["a", "b"],
              bar_sources: ["ba", "bb"] };
const bars = [fakeSource("ba"), fakeSource("bb")];
plot.useSeries(bars.map((b, g) => ({ source: fakeSource("raw" + g), kind: new CandlesPlot(plot.spec, null, g, b) })));
const f = frame(0); plot.push(f.columns, f.header.rows, 0);
run();
console.log(JSON.stringify(bars.map((b) => b.streamed)));
""",
    )
    a, bb = out
    assert len(a) == 1 and a[0]["open"] == [10, 12] and a[0]["close"] == [11, 13]  # row 4 (NaN close) skipped
    assert a[0]["dir"] == [1, 1] and a[0]["volume"] == [1, 3]
    assert bb[0]["open"] == [11, 13, 15] and bb[0]["dir"] == [-1, -1, -1] and bb[0]["high"] == [13, 15, 17]
    t0 = 1_700_000_000_000
    assert bb[0]["time"] == [t0 + 86_400_000, t0 + 3 * 86_400_000, t0 + 5 * 86_400_000]  # a bar at its row's time


def test_spec_is_json() -> None:
    spec = spec_for(stocks(), y="price", by="symbol")
    assert json.loads(json.dumps(spec))["groups"] == ["AAPL", "IBM", "MSFT"]
