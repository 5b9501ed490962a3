"""The widget's browser code under node: the bundle anywidget loads, and its modules (js/src) against
frames and messages as the kernel and the server send them."""

from __future__ import annotations

import json
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jupyter_replay import controls, wire
from jupyter_replay.batch import Batch, Mode
from jupyter_replay.widgets.replay import STATIC, Replay

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "js" / "src"
BUNDLE = STATIC / "replay.js"
ESBUILD = ROOT / "node_modules" / ".bin" / "esbuild"


@pytest.fixture(scope="module")
def node(require_binary: Callable[..., str]) -> str:
    """The node binary (missing: a failure under ./dev test and CI, else a skip; see tests/conftest.py)."""
    return require_binary("node", "install Debian's nodejs; `./dev setup` does")


#: A view and a plot under node: animation frames run by ``run()``, BokehJS absent (tests give a source).
_VIEW_HARNESS = """
const rafs = [];
globalThis.requestAnimationFrame = (f) => rafs.push(f);
globalThis.document = { activeElement: null, hidden: false };
const { ReplayView } = await import("SRC/view.js");
const { StreamPlot, kindFor } = await import("SRC/plots/index.js");
const run = () => { const fs = rafs.splice(0); for (const f of fs) f(performance.now()); };
"""


def run_node(node: str, script_dir: Path, code: str) -> Any:
    """Run an ES module (``code``; ``SRC`` is the js/src file URL prefix) and return its JSON output."""
    script = script_dir / "run.mjs"
    script.write_text(code.replace("SRC/", SRC.as_uri() + "/"))
    proc = subprocess.run([node, str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_bundle_is_the_widget_asset() -> None:
    assert BUNDLE.is_file(), "the widget bundle is missing: run ./dev setup (npm run build)"
    assert (STATIC / "replay.css").is_file()
    assert str(Replay._esm) == (STATIC / "loader.js").read_text()  # per model: the small loader only
    assert len(str(Replay._esm)) < 3_000  # the bundle comes once per page from the kernel (need_esm)
    assert "cdn.bokeh.org" not in BUNDLE.read_text()  # BokehJS comes from the kernel's bokeh package, inline


def test_bundle_is_built_from_the_sources(require_binary: Callable[..., str], tmp_path: Path) -> None:
    """The bundle is exactly what esbuild makes of js/src now (a stale bundle would test old code)."""
    esbuild = require_binary("esbuild", "run ./dev setup (npm ci)", path=str(ESBUILD))
    script = json.loads((ROOT / "package.json").read_text())["scripts"]["build"]
    out = tmp_path / "replay.js"
    args = [a if not a.startswith("--outfile=") else f"--outfile={out}" for a in script.split()[1:]]
    proc = subprocess.run([esbuild, *args, "--log-level=error"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == BUNDLE.read_text(), "the bundle is stale: run npm run build (or ./dev setup)"


def test_bundle_is_an_es_module_with_render(node: str, tmp_path: Path) -> None:
    """anywidget imports the bundle and calls its default export's render({model, el})."""
    (tmp_path / "replay.mjs").write_text(BUNDLE.read_text())
    out = run_node(node, tmp_path, """
const mod = await import("./replay.mjs");
console.log(JSON.stringify({ keys: Object.keys(mod), render: typeof mod.default.render }));
""")
    assert out == {"keys": ["default"], "render": "function"}


def test_js_decoder_reads_python_frames(node: str, tmp_path: Path) -> None:
    """Frames as the kernel and the server send them decode identically in the browser code."""
    n = 7
    batch = Batch(
        seq=42, session_id="s", mode=Mode.REPLAY,
        ts=np.arange(n, dtype=np.int64) * 1_000_000 + 1_704_187_800_000_000_000,
        columns={
            "price": np.linspace(100, 101, n),
            "f32": np.arange(n, dtype=np.float32),
            "size": np.arange(n, dtype=np.int64) * 10,
            "i8": np.array([1, -1] * 3 + [1], np.int8),
            "flag": np.array([True, False] * 3 + [True]),
        },
        first_row=3,
    )
    frames = {"ms_only": wire.encode_batch(batch, ms_only=True), "full": wire.encode_batch(batch)}
    for name, data in frames.items():
        (tmp_path / f"{name}.bin").write_bytes(data)
    result = run_node(node, tmp_path, """
import { readFileSync } from "node:fs";
import { decodeFrame } from "SRC/wire.js";
const out = {};
for (const name of ["ms_only", "full"]) {
  const buf = readFileSync(new URL("./" + name + ".bin", import.meta.url));
  // an unaligned view, like the DataViews ipywidgets hands to custom message handlers
  const padded = new Uint8Array(buf.length + 3);
  padded.set(buf, 3);
  const view = new DataView(padded.buffer, 3, buf.length);
  const { header, columns } = decodeFrame(view);
  const cols = {};
  for (const [k, v] of Object.entries(columns)) cols[k] = Array.from(v, (x) => typeof x === "bigint" ? x.toString() : x);
  out[name] = { header, cols };
}
console.log(JSON.stringify(out));
""")
    for name, data in frames.items():
        header, cols = wire.decode_frame(data)
        js = result[name]
        assert js["header"] == header
        assert set(js["cols"]) == set(cols)
        for key, arr in cols.items():
            expected = [str(v) for v in arr.tolist()] if arr.dtype == np.int64 else arr.astype(float).tolist()
            got = js["cols"][key]
            if arr.dtype == np.int64:
                assert got == expected, key
            else:
                assert np.allclose(np.array(got, dtype=float), expected), key
    assert "timestamp_ns" not in result["ms_only"]["cols"]
    assert result["full"]["cols"]["timestamp_ns"][0] == str(batch.ts[0])


def dictionary_frame(seq: int, ts_ms: list[float], text: dict[str, tuple[list[int], int, list[str]]],
                     numeric: dict[str, np.ndarray] | None = None) -> bytes:
    """A binary frame built by hand per the wire contract: ``text`` maps a column name to (int32 codes,
    dictionary base, new dictionary values)."""
    arrays: list[tuple[str, np.ndarray, dict[str, Any]]] = [(wire.TIME_MS_COLUMN, np.asarray(ts_ms, "<f8"), {})]
    arrays += [(k, np.ascontiguousarray(v), {}) for k, v in (numeric or {}).items()]
    for name, (codes, base, values) in text.items():
        arrays.append((name, np.asarray(codes, "<i4"), {"dictionary": {"base": base, "values": values}}))
    specs, offset = [], 0
    for name, arr, extra in arrays:
        specs.append({"name": name, "dtype": arr.dtype.name, "offset": offset, "nbytes": arr.nbytes, **extra})
        offset += arr.nbytes + (-arr.nbytes) % 8
    head = json.dumps({"type": "batch", "seq": seq, "first_row": 0, "mode": "replay", "rows": len(ts_ms),
                       "columns": specs}).encode()
    prefix = 4 + len(head)
    out = bytearray(prefix + (-prefix) % 8 + offset)
    out[:prefix] = struct.pack("<I", len(head)) + head
    base = prefix + (-prefix) % 8
    for (_, arr, _), spec in zip(arrays, specs):
        out[base + spec["offset"]: base + spec["offset"] + arr.nbytes] = arr.tobytes()
    return bytes(out)


def test_js_decodes_dictionary_columns_per_stream(node: str, tmp_path: Path) -> None:
    """Text columns arrive as int32 codes plus dictionary deltas: one dictionary per column per stream,
    values appended at ``base`` (0 replaces it), -1 is null; a new socket connection starts afresh."""
    frames = [
        dictionary_frame(1, [1.0, 2.0, 3.0, 4.0], {"symbol": ([0, 1, -1, 0], 0, ["AAPL", "MSFT"]),
                                                   "venue": ([0, 0, 0, 0], 0, ["X"])},
                         {"price": np.array([1.5, 2.5, 3.5, 4.5])}),
        dictionary_frame(2, [5.0, 6.0], {"symbol": ([2, 1], 2, ["GOOG"]), "venue": ([0, -1], 1, [])}),
        dictionary_frame(3, [7.0], {"symbol": ([0], 0, ["TSLA"]), "venue": ([0], 1, [])}),  # symbol restarts
    ]
    decoder = wire.FrameDecoder()  # Python's per-stream decoder reads the same frames to the same values
    python_symbols = []
    for i, f in enumerate(frames):
        (tmp_path / f"d{i}.bin").write_bytes(f)
        _, cols = decoder.decode(f)
        python_symbols.append(cols["symbol"].tolist())
    assert python_symbols == [["AAPL", "MSFT", None, "AAPL"], ["GOOG", "MSFT"], ["TSLA"]]
    out = run_node(node, tmp_path, """
import { readFileSync } from "node:fs";
globalThis.window = { location: { href: "http://127.0.0.1:8888/lab" } };
globalThis.document = { cookie: "", hidden: false };
const sockets = [];
globalThis.WebSocket = class { constructor(url) { this.url = url; this.readyState = 0; sockets.push(this); }
  send() {} close() {} };
globalThis.WebSocket.OPEN = 1;
const { decodeFrame, Dictionaries } = await import("SRC/wire.js");
const { SocketTransport, CommTransport } = await import("SRC/transport.js");
const { tailColumns } = await import("SRC/plots/columns.js");
const frame = (i) => readFileSync(new URL("./d" + i + ".bin", import.meta.url));
const ab = (b) => b.buffer.slice(b.byteOffset, b.byteOffset + b.length);

// one stream: the deltas accumulate
const dicts = new Dictionaries();
const decoded = [0, 1, 2].map((i) => decodeFrame(frame(i), dicts));
const cols = decoded.map((d) => ({ symbol: d.columns.symbol, venue: d.columns.venue, codes: Array.from(d.codes.symbol) }));
const tail = tailColumns(decoded.map((d) => ({ columns: d.columns, rows: d.header.rows })), ["symbol", "price"], 4);

// the socket transport: a new connection starts with empty dictionaries
const got = [];
const entry = { acksSent: 0 };
const t = new SocketTransport({ baseUrl: "/", token: "tk" }, "s1", (m) => got.push(m),
                              { entry, pending: () => false, query: () => ({}) });
t.open();
sockets[0].onmessage({ data: ab(frame(0)) });
sockets[0].onmessage({ data: ab(frame(1)) });
sockets[0].onclose();
t.open();  // reconnected: frame 1's base-2 delta finds no earlier values
sockets[1].onmessage({ data: ab(frame(1)) });
t.close();
const batches = got.filter((m) => m.type === "batch").map((m) => m.frame.columns.symbol);

// the comm transport: its history frame (base 0) restarts the dictionaries
const handlers = {};
const model = { on: (e, f) => { handlers[e] = f; }, off() {}, get: () => undefined, send() {} };
const commGot = [];
const c = new CommTransport(model, (m) => commGot.push(m));
handlers["msg:custom"]({ type: "frame" }, [new DataView(ab(frame(0)))]);
handlers["msg:custom"]({ type: "history", rows: 1, seq: 3 }, [new DataView(ab(frame(2)))]);
const comm = commGot.map((m) => m.type === "batch" ? [m.type, m.history, m.frame.columns.symbol] : [m.type]);
console.log(JSON.stringify({ cols, tail: { symbol: tail.symbol, price: Array.from(tail.price) }, batches,
                             types: got.map((m) => m.type), url: sockets[0].url, comm }));
""")
    assert out["cols"][0] == {"symbol": ["AAPL", "MSFT", None, "AAPL"], "venue": ["X"] * 4, "codes": [0, 1, -1, 0]}
    assert out["cols"][1]["symbol"] == ["GOOG", "MSFT"] and out["cols"][1]["venue"] == ["X", None]
    assert out["cols"][2]["symbol"] == ["TSLA"]  # base 0: the dictionary was replaced
    # text columns reach the plot code as strings (numeric ones as float64; missing -> NaN = JSON null)
    assert out["tail"] == {"symbol": ["AAPL", "GOOG", "MSFT", "TSLA"], "price": [4.5, None, None, None]}
    # after the reconnect the delta's new value is known, codes of values sent on the old socket are null
    assert out["batches"] == [["AAPL", "MSFT", None, "AAPL"], ["GOOG", "MSFT"], ["GOOG", None]]
    assert out["types"] == ["batch", "batch", "closed", "batch"]
    assert "ms_only=1" in out["url"] and "ack=1" in out["url"] and "token=tk" in out["url"]
    assert out["comm"] == [["batch", False, ["AAPL", "MSFT", None, "AAPL"]], ["history"], ["batch", True, ["TSLA"]]]


def test_js_draws_the_window_once_per_animation_frame(node: str, tmp_path: Path) -> None:
    """Frames received between two animation frames go into the plot's window (the last `rollover` rows,
    converted to float64) and reach BokehJS as one update; every row counts, candles are built from every
    row, and a clear is applied together with the rows that follow it (no blank frame)."""
    rollover, sizes = 5, [4, 3, 6]
    t0 = 1_704_187_800_000_000_000
    batches, first = [], 0
    for i, n in enumerate(sizes):
        batches.append(Batch(
            seq=i + 1, session_id="s", mode=Mode.REPLAY,
            ts=(np.arange(first, first + n, dtype=np.int64) * 400_000_000) + t0,
            columns={"price": 100.0 + np.arange(first, first + n),
                     "size": np.arange(first, first + n, dtype=np.int64) + 1,
                     "side": np.array([1, -1] * n, np.int8)[:n]},
            first_row=first,
        ))
        first += n
    for i, b in enumerate(batches):
        (tmp_path / f"f{i}.bin").write_bytes(wire.encode_batch(b, ms_only=True))
    out = run_node(node, tmp_path, """
import { readFileSync } from "node:fs";
const rafs = [];
globalThis.requestAnimationFrame = (f) => rafs.push(f);
const { decodeFrame } = await import("SRC/wire.js");
const { StreamPlot, CandlesPlot, kindFor } = await import("SRC/plots/index.js");
const { RowWindow } = await import("SRC/plots/window.js");
const frame = (i) => decodeFrame(readFileSync(new URL("./f" + i + ".bin", import.meta.url)));
const events = [];
const fakeSource = (name) => ({
  len: 0,
  get_length() { return this.len; },
  set data(v) {
    const cols = Object.fromEntries(Object.entries(v).map(([k, c]) => [k, Array.from(c)]));
    events.push([name, "set", cols, Object.values(v).map((c) => c.constructor.name)]);
    this.len = Object.values(v).length ? Object.values(v)[0].length : 0;
  },
  get data() { return {}; },
  stream(d, r) {
    const cols = Object.fromEntries(Object.entries(d).map(([k, v]) => [k, Array.from(v)]));
    events.push([name, "stream", cols, r]);
    this.len = Math.min(r, this.len + Object.values(d)[0].length);
  },
  patch(p) { events.push([name, "patch", p]); },
});
const entry = { streamCalls: 0, rowsStreamed: 0 };
const plot = new StreamPlot(null, entry, kindFor);
plot.spec = { kind: "ohlc", columns: ["timestamp", "price", "size", "missing"], rollover: %d, price: "price",
              volume: "size", bar_ms: 1000, bar_rollover: 100 };
plot.useSeries([{ source: fakeSource("raw"), kind: new CandlesPlot(plot.spec, null, 0, fakeSource("bars")) }]);
const kinds = [kindFor({ kind: "ohlc" }).name, kindFor({ kind: "line" }).name, kindFor({ kind: "?" }).name];
let flushes = 0;
plot.onFlush = () => { flushes += 1; };
const run = () => { const fs = rafs.splice(0); for (const f of fs) f(); };
for (let i = 0; i < 3; i++) { const { header, columns } = frame(i); plot.push(columns, header.rows, header.first_row); }
const scheduled = plot.scheduled;
run();
const afterFirst = events.splice(0);
plot.clear();
const { header, columns } = frame(0);
plot.push(columns, 2, 0);  // a clear and the first 2 rows of frame 0, in the same animation frame
run();
console.log(JSON.stringify({ scheduled, afterFirst, afterClear: events, entry, flushes, pending: rafs.length, kinds }));
process.exit(0);
""" % rollover)
    assert out["kinds"] == ["CandlesPlot", "LinePlot", "LinePlot"]
    assert out["scheduled"] is True and out["flushes"] == 2
    raw = [e for e in out["afterFirst"] if e[0] == "raw"]
    assert len(raw) == 1 and raw[0][1] == "set"  # one update for three frames
    _, _, cols, ctors = raw[0]
    total = sum(sizes)
    last = np.arange(total - rollover, total)
    assert set(ctors) == {"Float64Array"}
    np.testing.assert_allclose(cols["timestamp"], (last * 400_000_000 + t0) / 1e6)
    np.testing.assert_array_equal(cols["price"], 100.0 + last)
    np.testing.assert_array_equal(cols["size"], last + 1)  # int64 -> float64
    assert all(v is None for v in cols["missing"])  # NaN (JSON null): a column the frames do not carry
    assert out["entry"]["streamCalls"] == 2 and out["entry"]["rowsStreamed"] == total + 2
    assert out["entry"]["windowRows"] == 2
    # candles from all 13 rows (0.4 s apart, 1 s buckets), not only the 5 the window keeps
    bars = [e for e in out["afterFirst"] if e[0] == "bars" and e[1] == "stream"]
    assert len(bars) == 1
    candles = bars[0][2]
    assert sum(candles["volume"]) == sum(range(1, total + 1))
    assert candles["open"][0] == 100.0 and candles["close"][-1] == 100.0 + total - 1
    # the clear is applied with the rows that follow it, in the same draw (bars restart too)
    after = out["afterClear"]
    assert [e[:2] for e in after if e[0] == "raw"] == [["raw", "set"]]
    assert [e for e in after if e[0] == "raw"][0][2]["price"] == [100.0, 101.0]
    assert [e[:2] for e in after if e[0] == "bars"] == [["bars", "set"], ["bars", "stream"]]


def test_js_m4_keeps_every_column_extreme_and_bounds_the_output(node: str, tmp_path: Path) -> None:
    """M4 over the plot's window: for every pixel column the first, last, min and max row are kept (spikes
    too), at most 4 x width rows go to BokehJS whatever the window holds (5k, 200k, 1M rows; a window that
    rolled over many times), zoomed ranges are decimated from full resolution, and a range holding fewer
    rows than that is drawn row for row."""
    out = run_node(node, tmp_path, """
const { RowWindow } = await import("SRC/plots/window.js");
const { decimate } = await import("SRC/plots/m4.js");
let seed = 12345;
const rnd = () => { seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5; return (seed >>> 0) / 4294967296; };
function fill(win, total, chunkMax) {
  let t = 1.7e12; let p = 100; let i = 0;
  while (i < total) {
    const n = Math.min(total - i, 1 + Math.floor(rnd() * chunkMax));
    const ts = new Float64Array(n); const price = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      t += rnd() < 0.1 ? 50 * rnd() : 1 + rnd();  // irregular spacing, sorted
      p += rnd() - 0.5;
      price[k] = rnd() < 0.0005 ? p + (rnd() < 0.5 ? -1000 : 1000) : p;  // rare spikes
      if (rnd() < 0.0005) price[k] = NaN;
      ts[k] = t;
    }
    win.append({ timestamp: ts, price }, 0, n);
    i += n;
  }
}
/** Brute force: per pixel column of [x0, x1] over the window rows, check the kept rows. */
function check(win, res, x0, x1, width) {
  const { x } = win; const y = win.ys[0];
  const xs = res.data.timestamp; const ys = res.data.price;
  const kept = new Set(); for (let k = 0; k < xs.length; k++) kept.add(xs[k] + ":" + ys[k]);
  for (let k = 1; k < xs.length; k++) if (xs[k] < xs[k - 1]) return "not in time order";
  const dx = (x1 - x0) / width; const cols = new Map();
  for (let i = win.start; i < win.end; i++) {
    if (x[i] < x0 || x[i] > x1) continue;
    const c = Math.min(width - 1, Math.floor((x[i] - x0) / dx));
    let g = cols.get(c);
    if (!g) { g = { first: i, last: i, min: Infinity, max: -Infinity }; cols.set(c, g); }
    g.last = i;
    if (y[i] < g.min) g.min = y[i];
    if (y[i] > g.max) g.max = y[i];
  }
  const xsKept = new Set(xs);  // a NaN row is kept with its value bridged (m4.js): its time is what counts
  const has = (i) => (y[i] === y[i] ? kept.has(x[i] + ":" + y[i]) : xsKept.has(x[i]));
  const byCol = new Map();  // pixel column -> values kept in it
  for (let k = 0; k < xs.length; k++) {
    if (xs[k] < x0 || xs[k] > x1) continue;
    const c = Math.min(width - 1, Math.floor((xs[k] - x0) / dx));
    if (!byCol.has(c)) byCol.set(c, new Set());
    byCol.get(c).add(ys[k]);
  }
  const hasValue = (c, v) => byCol.has(c) && byCol.get(c).has(v);
  let spikes = 0;
  for (const [c, g] of cols) {
    if (!has(g.first) || !has(g.last)) return "column " + c + " lost its first/last row";
    if (g.min < Infinity && !hasValue(c, g.min)) return "column " + c + " lost its min";
    if (g.max > -Infinity && !hasValue(c, g.max)) return "column " + c + " lost its max";
    if (Math.abs(g.max - g.min) > 500) spikes += 1;
  }
  return { columns: cols.size, spikes };
}
const width = 300;
const out = {};
for (const [name, total, rollover, chunk] of [["5k", 5000, 5000, 700], ["200k", 200000, 200000, 5000],
                                              ["1M", 1000000, 1000000, 65536], ["rolled", 600000, 70000, 3000]]) {
  const win = new RowWindow("timestamp", ["price"], rollover);
  fill(win, total, chunk);
  const full = decimate(win, null, null, width);
  const x0 = win.x[win.start]; const x1 = win.x[win.end - 1];
  const zx0 = x0 + (x1 - x0) * 0.4; const zx1 = x0 + (x1 - x0) * 0.41;  // zoomed in
  const zoom = decimate(win, zx0, zx1, width);
  out[name] = { rows: win.length, points: full.points, rowsDrawn: full.rows, check: check(win, full, x0, x1, width),
                zoomPoints: zoom.points, zoomCheck: check(win, zoom, zx0, zx1, width),
                firstTs: full.data.timestamp[0] === x0, lastTs: full.data.timestamp[full.points - 1] === x1 };
}
const small = new RowWindow("timestamp", ["price"], 1000);
small.append({ timestamp: Float64Array.from([1, 2, 3, 4]), price: Float64Array.from([5, 9, 1, 5]) }, 0, 4);
out.small = Array.from(decimate(small, null, null, width).data.price);
console.log(JSON.stringify(out));
""")
    for name, rows in [("5k", 5000), ("200k", 200_000), ("1M", 1_000_000), ("rolled", 70_000)]:
        r = out[name]
        assert r["rows"] == rows and r["rowsDrawn"] == rows, (name, r)
        assert isinstance(r["check"], dict), (name, r["check"])
        assert r["points"] <= 4 * 300, (name, r["points"])  # bounded by the pixels, not the rows
        assert r["firstTs"] and r["lastTs"], name
        assert isinstance(r["zoomCheck"], dict), (name, r["zoomCheck"])
        assert r["zoomPoints"] <= 4 * 300 + 2, (name, r["zoomPoints"])  # + the row either side of the range
    assert out["1M"]["check"]["spikes"] > 0 and out["1M"]["check"]["columns"] == 300
    assert out["5k"]["points"] > 300  # M4 keeps more than one point per column
    assert out["small"] == [5, 9, 1, 5]  # fewer rows than 4 x width: every row


def test_js_pause_stops_the_picture_at_the_pause_point(node: str, tmp_path: Path) -> None:
    """The one dispatcher, on either transport: a Pause click draws what arrived before it and holds
    what arrives after; the session's paused status (position P) applies held rows before P and discards
    rows from P on, also ones arriving later, until the next play."""
    out = run_node(node, tmp_path, _VIEW_HARNESS + """
function batch(seq, first, rows) {
  const ts = new Float64Array(rows); const price = new Float64Array(rows);
  for (let i = 0; i < rows; i++) { ts[i] = 1000 * (first + i); price[i] = first + i; }
  return { type: "batch", history: false, frame: { header: { seq, rows, first_row: first, mode: "replay" },
                                                   columns: { timestamp: ts, price } } };
}
const result = {};
for (const name of ["local", "ws"]) {
  const applied = [];
  const source = { len: 0, maxTs: null, get_length() { return this.len; }, get data() { return {}; },
    set data(v) { const t = v.timestamp; this.len = t.length; this.maxTs = t.length ? t[t.length - 1] : null;
                  applied.push(this.maxTs); } };
  const entry = { transport: name, framesMerged: 0, rowsDropped: 0, lastSeq: 0, errors: [], controls: null,
                  rowsReceived: 0, rowsTotal: 0, framesReceived: 0, resets: 0, streamCalls: 0, rowsStreamed: 0 };
  const plot = new StreamPlot(null, entry, kindFor);
  plot.spec = { kind: "line", columns: ["timestamp", "price"], rollover: 100000 };
  plot.useSeries([{ source, kind: new (kindFor(plot.spec))(plot.spec, null, 0) }]);
  const bar = { update() {}, progress() {} };
  const root = { dataset: {}, getAttribute: () => null, setAttribute() {} };
  const model = { get: (k) => (k === "plot" ? {} : null), send() {}, on() {}, off() {} };
  const view = new ReplayView(model, entry, { root, bar, statusLine: { textContent: "" }, plot });
  const sent = [];
  const t = { name, flushed() {}, control: (a) => sent.push(a) };
  view.transport = t;
  view.dispatch({ type: "state", seq: 1, status: { state: "playing", mode: "replay", position: 0 } }, t);
  view.dispatch(batch(2, 0, 100), t);
  run();
  const beforeClick = source.maxTs;
  view.dispatch(batch(3, 100, 50), t);  // arrived, not yet drawn, when the user clicks
  view.control("pause");
  const atClick = source.maxTs;  // drawn in the click's frame: rows up to the click
  view.dispatch(batch(4, 150, 50), t);  // in flight when the server paused (rows 150..199)
  run();
  const frozen = source.maxTs;
  view.dispatch({ type: "state", seq: 5, status: { state: "playing", mode: "replay", position: 180 } }, t);  // stale
  view.dispatch({ type: "state", seq: 6, status: { state: "paused", mode: "replay", position: 180 } }, t);
  const settled = source.maxTs;
  view.dispatch(batch(7, 180, 40), t);  // late rows beyond the pause point
  run();
  const afterLate = source.maxTs;
  view.control("play");
  view.dispatch({ type: "state", seq: 8, status: { state: "playing", mode: "replay", position: 180 } }, t);
  view.dispatch(batch(9, 180, 10), t);
  run();
  result[name] = { beforeClick, atClick, frozen, settled, afterLate, resumed: source.maxTs, sent,
                   discarded: entry.rowsDiscarded, shownPos: view.current().position };
}
console.log(JSON.stringify(result));
process.exit(0);
""")
    for name in ("local", "ws"):
        r = out[name]
        assert r["beforeClick"] == 99_000 and r["atClick"] == 149_000, r
        assert r["frozen"] == 149_000, r  # nothing applied between the click and the session's answer
        assert r["settled"] == 179_000, r  # rows before the pause point (180) applied, none after
        assert r["afterLate"] == 179_000 and r["discarded"] == 20 + 40, r
        assert r["resumed"] == 189_000 and r["sent"] == ["pause", "play"], r
    assert out["local"] == out["ws"]


def test_js_dispatcher_controls_table_and_flow_counts(node: str, tmp_path: Path) -> None:
    """One dispatcher for both transports: `hello` carries the control table (buttons follow it), merged
    frames show neutrally, lost rows only when there are any; old (`dropped`) and new (`merged`) names."""
    table = {
        "actions": {
            "play": {"args": [], "allowed": {"replay": ["stopped", "paused"], "live": ["stopped", "paused"]}},
            "pause": {"args": [], "allowed": {"replay": ["playing"], "live": ["playing"]}},
            "stop": {"args": [], "allowed": {"replay": ["playing", "paused"], "live": ["playing", "paused"]}},
            "step": {"args": ["n"], "allowed": {"replay": ["stopped", "paused"], "live": []}},
            "seek": {"args": ["fraction"], "allowed": {"replay": ["stopped", "paused", "playing"], "live": []}},
            "speed": {"args": ["speed"], "allowed": {"replay": ["stopped", "paused", "playing"], "live": []}},
            "loop": {"args": ["loop"], "allowed": {"replay": ["stopped", "paused", "playing"], "live": []}},
            "mode": {"args": ["mode", "symbol"], "allowed": {"replay": ["stopped", "paused"], "live": ["stopped"]}},
        },
        "speed": {"min": 0.5, "max": 100.0, "allow_max": False},
    }
    out = run_node(node, tmp_path, """
globalThis.requestAnimationFrame = (f) => f();
const { ReplayView } = await import("SRC/view.js");
const { allowedBy, speedChoices } = await import("SRC/controls.js");
const table = %s;
const real = %s;  // controls.table_json(), what the server sends in hello
const realAllowed = {};
for (const mode of ["replay", "live"]) {
  for (const state of ["stopped", "playing", "paused", "finished"]) {
    realAllowed[mode + "/" + state] = Object.keys(real.actions).filter((a) => allowedBy(real, a, mode, state));
  }
}
const updates = [];
const bar = { update: (st, t) => updates.push({ state: st.state, mode: st.mode, table: !!t }), progress() {} };
const attrs = {};
const root = { dataset: {}, getAttribute: (k) => attrs[k] ?? null, setAttribute: (k, v) => { attrs[k] = v; } };
const statusLine = { textContent: "" };
const embeds = [];
const plot = { hold() {}, release() {}, clear() {}, push() { return 0; }, freeze() {}, settle() {}, resume() {},
               frozen: false, scheduled: false, embed: async (s) => embeds.push(s) };
const traits = { status: { state: "stopped", mode: "replay", position: 0, buffer_rows: 0 },
                 plot: { replay: "replay-spec" } };
const model = { get: (k) => traits[k], send() {}, on() {}, off() {} };
const entry = { transport: "local", framesMerged: 0, rowsDropped: 0, lastSeq: 0, errors: [], controls: null,
                rowsReceived: 0, resets: 0 };
const view = new ReplayView(model, entry, { root, bar, statusLine, plot });
const t = { name: "ws", flushed() {}, control() {} };
view.transport = t;
const lines = [];
const snap = () => { view.progressKey = null; view.updateUi(); lines.push(statusLine.textContent); };
snap();
view.dispatch({ type: "hello", status: { state: "playing", mode: "replay", position: 5, buffer_rows: 5 },
                controls: table, instance: "i1" }, t);
snap();
view.dispatch({ type: "merged", frames_merged: 3, rows_dropped: 0 }, t);
view.dispatch({ type: "dropped", count: 2, total: 2 }, t);
snap();
view.dispatch({ type: "merged", frames_merged: 0, rows_dropped: 7 }, t);
snap();
view.dispatch({ type: "state", seq: 9, status: { state: "paused", mode: "replay", frames_merged: 40 } }, t);
snap();
view.dispatch({ type: "merged", frames_merged: 100 }, { name: "other" });  // not the followed transport
view.dispatch({ type: "error", message: "boom", status: 400 }, { name: "other" });  // errors always show
snap();
const allowed = {};
for (const [mode, state] of [["replay", "playing"], ["replay", "paused"], ["live", "playing"]]) {
  allowed[mode + "/" + state] = Object.keys(table.actions).filter((a) => allowedBy(table, a, mode, state));
}
console.log(JSON.stringify({ lines, entry: { framesMerged: entry.framesMerged, rowsDropped: entry.rowsDropped,
  lastSeq: entry.lastSeq, instance: entry.instance, controls: !!entry.controls, errors: entry.errors },
  last: updates[updates.length - 1], allowed, embeds, noTable: allowedBy(null, "play", "replay", "stopped"),
  speeds: speedChoices(table), allSpeeds: speedChoices(null).length, realAllowed,
  realSpeeds: speedChoices(real).length }));
process.exit(0);  // (the view's redraw timers)
""" % (json.dumps(table), json.dumps(controls.table_json())))
    lines = out["lines"]
    assert lines[0] == "stopped · replay · row 0 (0%) · 0 rows buffered · kernel"
    assert "merged" not in lines[1] and "dropped" not in lines[1]  # ordinary play: nothing about flow
    assert "merged 5 frames" in lines[2] and "rows dropped" not in lines[2]
    assert "7 rows dropped" in lines[3]
    assert "merged 40 frames" in lines[4]  # the session's count in status (frames_merged)
    assert lines[5].endswith("error: boom")
    assert out["entry"] == {"framesMerged": 5, "rowsDropped": 7, "lastSeq": 9, "instance": "i1", "controls": True,
                            "errors": ["boom"]}
    assert out["last"] == {"state": "paused", "mode": "replay", "table": True}
    assert out["allowed"] == {
        "replay/playing": ["pause", "stop", "seek", "speed", "loop"],
        "replay/paused": ["play", "stop", "step", "seek", "speed", "loop", "mode"],
        "live/playing": ["pause", "stop"],
    }
    assert out["embeds"] == ["replay-spec"]  # hello from the server: the plot of its mode
    assert out["noTable"] is None  # no table: the built-in rule
    assert out["speeds"] == ["0.5", "1", "2", "5", "10", "25", "50", "100"] and out["allSpeeds"] == 14
    # the real table reads as intended: step only when stopped/paused in replay, no seek/speed/step in live
    real = out["realAllowed"]
    assert {"pause", "seek", "speed", "stop"} <= set(real["replay/playing"]) and "step" not in real["replay/playing"]
    assert {"play", "step", "seek"} <= set(real["replay/paused"])
    assert not {"step", "seek", "speed"} & set(real["live/playing"]) and "pause" in real["live/playing"]
    assert out["realSpeeds"] == 14  # the default policy: 0.1x .. 1000x and max


def test_js_pause_at_max_holds_resync_histories_and_draws_the_answer_at_once(node: str, tmp_path: Path) -> None:
    """At speed max the socket carries resync histories. A history in flight at the click must not move
    the frozen picture; the pause's resync (reset, paused state at P, history ending at P) is drawn as
    soon as its rows arrive, not at a later animation frame, and nothing beyond P is drawn after it. Rows
    released after a stop (a step called from the kernel) are drawn: the cut is for rows released before."""
    out = run_node(node, tmp_path, _VIEW_HARNESS + """
function frame(seq, first, rows, history) {
  const ts = new Float64Array(rows); const price = new Float64Array(rows);
  for (let i = 0; i < rows; i++) { ts[i] = 1000 * (first + i); price[i] = first + i; }
  return { type: "batch", history, frame: { header: { seq, rows, first_row: first, mode: "replay", history },
                                             columns: { timestamp: ts, price } } };
}
const applied = [];
const source = { len: 0, maxTs: null, get_length() { return this.len; }, get data() { return {}; },
  set data(v) { const t = v.timestamp; this.len = t.length; this.maxTs = t.length ? t[t.length - 1] : null;
                applied.push(this.maxTs); } };
const entry = { transport: "ws", framesMerged: 0, rowsDropped: 0, lastSeq: 0, errors: [], controls: null,
                rowsReceived: 0, rowsTotal: 0, framesReceived: 0, resets: 0, streamCalls: 0, rowsStreamed: 0 };
const plot = new StreamPlot(null, entry, kindFor);
plot.spec = { kind: "line", columns: ["timestamp", "price"], rollover: 1000 };
plot.useSeries([{ source, kind: new (kindFor(plot.spec))(plot.spec, null, 0) }]);
const view = new ReplayView({ get: (k) => (k === "plot" ? {} : null), send() {}, on() {}, off() {} }, entry,
  { root: { dataset: {}, getAttribute: () => null, setAttribute() {} }, bar: { update() {}, progress() {} },
    statusLine: { textContent: "" }, plot });
const t = { name: "ws", flushed() {}, control() {} };
view.transport = t;
const resync = (seq, first, rows) => {
  view.dispatch({ type: "reset", seq, mode: "replay", reason: "resync" }, t);
  return seq;
};
view.dispatch({ type: "state", seq: 1, status: { state: "playing", mode: "replay", position: 0 } }, t);
resync(2);
view.dispatch({ type: "history", seq: 2, rows: 1000, mode: "replay" }, t);
view.dispatch(frame(2, 0, 1000, true), t);
run();
const beforeClick = source.maxTs;
view.control("pause");
// a resync history snapshotted before the pause, in flight at the click
resync(3);
view.dispatch({ type: "state", seq: 3, status: { state: "playing", mode: "replay", position: 5000 } }, t);
view.dispatch({ type: "history", seq: 3, rows: 1000, mode: "replay" }, t);
view.dispatch(frame(3, 4000, 1000, true), t);
run();
const frozen = source.maxTs;
// the pause's resync: reset, the paused state at 9000, the history ending there
resync(4);
view.dispatch({ type: "state", seq: 4, status: { state: "paused", mode: "replay", position: 9000 } }, t);
view.dispatch({ type: "history", seq: 4, rows: 1000, mode: "replay" }, t);
view.dispatch(frame(4, 8000, 1000, true), t);
const answered = source.maxTs;  // no animation frame run: drawn when the rows arrived
view.dispatch(frame(5, 9000, 10, false), t);  // late rows beyond the pause point
run();
const after = source.maxTs; const afterRows = source.len;
// stopped, then a step from the kernel (no click here, no state change): its rows were released after
// the stopped status (higher seq), so they are drawn though they start at the stop position
view.dispatch({ type: "reset", seq: 19, mode: "replay", reason: "stop" }, t);
view.dispatch({ type: "state", seq: 20, status: { state: "stopped", mode: "replay", position: 0, seq: 20 } }, t);
view.dispatch(frame(21, 0, 5, false), t);
run();
console.log(JSON.stringify({ beforeClick, frozen, answered, after, rows: afterRows, stepped: source.maxTs,
                             steppedRows: source.len }));
process.exit(0);
""")
    assert out["beforeClick"] == 999_000, out
    assert out["frozen"] == 999_000, out  # the in-flight history did not move the frozen picture
    assert out["answered"] == 8_999_000, out  # the window ending at the pause point, drawn at once
    assert out["after"] == 8_999_000 and out["rows"] == 1000, out  # nothing beyond the pause point
    assert out["stepped"] == 4_000 and out["steppedRows"] == 5, out  # a later step's rows are not cut


def test_js_uses_canvas_where_webgl_is_software(node: str, tmp_path: Path) -> None:
    """BokehJS's WebGL path renders in software and copies back with drawImage where the GPU is emulated
    (SwiftShader in headless Chromium: 5 fps instead of 60), so specs asking for WebGL get canvas there."""
    out = run_node(node, tmp_path, """
const results = {};
for (const renderer of ["ANGLE (Google, Vulkan 1.3.0 (SwiftShader Device (Subzero)), SwiftShader driver)",
                        "llvmpipe (LLVM 15.0.6, 256 bits)", "ANGLE (NVIDIA, NVIDIA GeForce RTX 3060)", null]) {
  globalThis.document = { createElement: () => ({ getContext: () => (renderer === null ? null : {
    RENDERER: 1, getExtension: (n) => (n === "WEBGL_debug_renderer_info" ? { UNMASKED_RENDERER_WEBGL: 2 } : null),
    getParameter: () => renderer }) }) };
  const mod = await import("SRC/bokeh.js?" + encodeURIComponent(String(renderer)));  // a fresh module (cache)
  const item = { doc: { roots: [{ type: "object", name: "Figure", attributes: { output_backend: "webgl",
    renderers: [{ attributes: { output_backend: "webgl" } }] } }] } };
  const out = mod.withBackend(item);
  results[String(renderer)] = [mod.hardwareWebgl(), out.doc.roots[0].attributes.output_backend,
                               out.doc.roots[0].attributes.renderers[0].attributes.output_backend];
}
console.log(JSON.stringify(results));
process.exit(0);
""")
    assert [v[0] for v in out.values()] == [False, False, True, False], out
    assert out["ANGLE (NVIDIA, NVIDIA GeForce RTX 3060)"][1:] == ["webgl", "webgl"], out
    for k in list(out)[:2] + ["null"]:
        assert out[k][1:] == ["canvas", "canvas"], out


def test_marks_layer_resolves_y_from_the_window_and_clears(node: str, tmp_path: Path) -> None:
    """marks.js: a mark without y takes the plotted value at its time (the last row at or before it), waits
    while its row has not arrived, keeps its own y, clears with the plot and is drawn again in a new plot."""
    out = run_node(node, tmp_path, """
const { MarksLayer, valueAt } = await import("SRC/plots/marks.js");
const { RowWindow } = await import("SRC/plots/window.js");
const win = new RowWindow("timestamp", ["price"], 100);
win.append({ timestamp: new Float64Array([1000, 2000, 3000]), price: new Float64Array([10, 20, 30]) }, 0, 3);
const at = [500, 1000, 2500, 3000, 3500].map((t) => valueAt(win, t));
const unsorted = new RowWindow("timestamp", ["price"], 100);
unsorted.append({ timestamp: new Float64Array([3000, 1000, 2000]), price: new Float64Array([30, 10, 20]) }, 0, 3);
const streams = [];
const source = { data: null, stream(d) { streams.push(d); } };
const doc = { get_model_by_name: (n) => (n === "replay_marks" ? source : null) };
const layer = new MarksLayer();
layer.add([{ time_ms: 2500, y: null, side: "buy", text: "in" }, { time_ms: 9000, y: null, side: "sell" },
           { time_ms: 1000, y: 5.5, side: null, text: "note" }, { time_ms: "bad" }]);
layer.attach({ marks: "replay_marks" }, doc);
layer.draw(win);
const first = streams.map((d) => ({ x: d.x, y: d.y, glyph: d.glyph, text: d.text, off: d.glyph_offset }));
const waiting = layer.pending.length;
win.append({ timestamp: new Float64Array([9000]), price: new Float64Array([90]) }, 0, 1);
layer.draw(win);
const second = streams[1] && { x: streams[1].x, y: streams[1].y, glyph: streams[1].glyph };
layer.attach({ marks: "replay_marks" }, doc);  // a new plot (mode switch, replot): drawn again
layer.draw(win);
const redrawn = streams[2] && streams[2].x.length;
layer.clear();
layer.draw(win);
console.log(JSON.stringify({ at, unsortedAt: valueAt(unsorted, 2500), first, waiting, second, redrawn,
  cleared: source.data && source.data.x.length, all: layer.all.length, streams: streams.length }));
""")
    assert out["at"] == [10, 10, 20, 30, None]  # before the window: its first value; NaN (JSON null) after it
    assert out["unsortedAt"] == 20
    assert out["first"] == [{"x": [2500, 1000], "y": [20, 5.5], "glyph": ["▲", ""], "text": ["in", "note"],
                             "off": [14, 0]}]
    assert out["waiting"] == 1  # the sell at 9000 waits for its row
    assert out["second"] == {"x": [9000], "y": [90], "glyph": ["▼"]}
    assert out["redrawn"] == 3
    assert out["cleared"] == 0 and out["all"] == 0 and out["streams"] == 3


def test_js_status_counts_rows_released_after_it_only(node: str, tmp_path: Path) -> None:
    """The status line moves on with rows released after the last status (the server sends status on
    transitions only), never with rows released before it: the last frames of a replay that finished at
    speed max arrive after its 'finished' status and are in its position already (48 rows, not 96)."""
    out = run_node(node, tmp_path, """
const { StatusStore } = await import("SRC/status.js");
const s = new StatusStore();
s.set({ state: "playing", mode: "replay", position: 10, buffer_rows: 10, num_rows: 48, seq: 5 });
s.addRows(8, 18000, 6);  // released after the playing status: the position moves on
const playing = s.current().position;
s.set({ state: "finished", mode: "replay", position: 48, buffer_rows: 48, num_rows: 48, seq: 20 });
s.addRows(30, 47000, 19);  // in flight when 'finished' was sent
const finished = s.current();  // as sent
s.addRows(5, 52000, 21);  // a later step's rows
console.log(JSON.stringify({ playing, finished: [finished.position, finished.buffer_rows],
                             stepped: s.current().position }));
process.exit(0);
""")
    assert out == {"playing": 18, "finished": [48, 48], "stepped": 53}, out
