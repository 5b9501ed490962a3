"""The widget's ESM: valid module syntax, and its wire decoder agrees with ``wire.decode_frame``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from jupyter_replay import wire
from jupyter_replay.batch import Batch, Mode
from jupyter_replay.widgets.replay import STATIC, Replay

JS = STATIC / "replay.js"


@pytest.fixture(scope="module")
def node(require_binary: Callable[..., str]) -> str:
    """The node binary (missing: a failure under ./dev test and CI, else a skip)."""
    return require_binary("node", "install Debian's nodejs; `./dev setup` does")


def test_static_files_are_the_widget_assets() -> None:
    assert JS.is_file() and (STATIC / "replay.css").is_file()
    text = JS.read_text()
    assert "export default" in text and "render" in text
    assert "cdn.bokeh.org" not in text  # BokehJS comes from the kernel's bokeh package, inline
    # the widget sends the ESM text itself (anywidget), so a notebook needs no lab extension
    assert Replay._esm is not None


def test_js_is_a_valid_es_module(node: str, tmp_path: Path) -> None:
    mod = tmp_path / "replay.mjs"
    mod.write_text(JS.read_text())
    proc = subprocess.run([node, "--check", str(mod)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


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
            "name": np.array(["x"] * n, dtype=object),  # not sent
        },
        first_row=3,
    )
    frames = {"ms_only": wire.encode_batch(batch, ms_only=True), "full": wire.encode_batch(batch)}
    for name, data in frames.items():
        (tmp_path / f"{name}.bin").write_bytes(data)
    mod = tmp_path / "replay.mjs"
    mod.write_text(JS.read_text())
    script = tmp_path / "run.mjs"
    script.write_text(
        """
import { readFileSync } from "node:fs";
import { decodeFrame } from "./replay.mjs";
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
"""
    )
    proc = subprocess.run([node, str(script)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
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
    assert "name" not in result["full"]["cols"] and "timestamp_ns" not in result["ms_only"]["cols"]
    assert result["full"]["cols"]["timestamp_ns"][0] == str(batch.ts[0])


def test_js_streams_only_the_last_rollover_rows_per_frame(node: str, tmp_path: Path) -> None:
    """Frames queued between two animation frames go to BokehJS as one stream() of their last `rollover`
    rows (converted to float64); every row still counts, candles are built from every row, and a clear is
    applied together with the rows that follow it (no blank frame)."""
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
    (tmp_path / "replay.mjs").write_text(JS.read_text())
    script = tmp_path / "run.mjs"
    script.write_text(
        """
import { readFileSync } from "node:fs";
const rafs = [];
globalThis.requestAnimationFrame = (f) => rafs.push(f);
const { decodeFrame, StreamPlot } = await import("./replay.mjs");
const frame = (i) => decodeFrame(readFileSync(new URL("./f" + i + ".bin", import.meta.url)));
const events = [];
const fakeSource = (name) => ({
  data: {},
  len: 0,
  get_length() { return this.len; },
  set data(v) { events.push([name, "set", Object.keys(v).length]); this.len = 0; },
  get data() { return {}; },
  stream(d, r) {
    const cols = Object.fromEntries(Object.entries(d).map(([k, v]) => [k, Array.from(v)]));
    events.push([name, "stream", cols, r, Object.values(d).map((v) => v.constructor.name)]);
    this.len = Math.min(r, this.len + Object.values(d)[0].length);
  },
  patch(p) { events.push([name, "patch", p]); },
});
const entry = { streamCalls: 0, rowsStreamed: 0 };
const plot = new StreamPlot(null, entry);
plot.spec = { columns: ["timestamp", "price", "size", "missing"], rollover: %d, price: "price", volume: "size",
              bar_ms: 1000, bar_rollover: 100 };
plot.source = fakeSource("raw");
plot.bars = fakeSource("bars");
let flushes = 0;
plot.onFlush = () => { flushes += 1; };
const run = () => { const fs = rafs.splice(0); for (const f of fs) f(); };
for (let i = 0; i < 3; i++) { const { header, columns } = frame(i); plot.push(columns, header.rows); }
const scheduled = plot.scheduled;
run();
const afterFirst = events.splice(0);
plot.clear();
const { header, columns } = frame(0);
plot.push(columns, 2);  // a clear and the first 2 rows of frame 0, in the same animation frame
run();
console.log(JSON.stringify({ scheduled, afterFirst, afterClear: events, entry, flushes, pending: rafs.length }));
process.exit(0);
""" % rollover
    )
    proc = subprocess.run([node, str(script)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["scheduled"] is True and out["flushes"] == 2
    raw = [e for e in out["afterFirst"] if e[0] == "raw"]
    assert len(raw) == 1 and raw[0][1] == "stream"  # one stream() for three frames
    _, _, cols, roll, ctors = raw[0]
    total = sum(sizes)
    last = np.arange(total - rollover, total)
    assert roll == rollover and set(ctors) == {"Float64Array"}
    np.testing.assert_allclose(cols["timestamp"], (last * 400_000_000 + t0) / 1e6)
    np.testing.assert_array_equal(cols["price"], 100.0 + last)
    np.testing.assert_array_equal(cols["size"], last + 1)  # int64 -> float64
    assert all(v is None for v in cols["missing"])  # NaN (JSON null): a column the frames do not carry
    assert out["entry"]["streamCalls"] == 2 and out["entry"]["rowsStreamed"] == rollover + 2
    # candles from all 13 rows (0.4 s apart, 1 s buckets), not only the 5 streamed ones
    bars = [e for e in out["afterFirst"] if e[0] == "bars" and e[1] == "stream"]
    assert len(bars) == 1
    candles = bars[0][2]
    assert sum(candles["volume"]) == sum(range(1, total + 1))
    assert candles["open"][0] == 100.0 and candles["close"][-1] == 100.0 + total - 1
    # the clear is applied right before the rows that follow it, in the same flush
    after = out["afterClear"]
    assert [e[:2] for e in after if e[0] == "raw"] == [["raw", "set"], ["raw", "stream"]]
    assert [e for e in after if e[0] == "raw"][1][2]["price"] == [100.0, 101.0]
