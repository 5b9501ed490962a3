"""The widget's ESM: valid module syntax, and its wire decoder agrees with ``wire.decode_frame``."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from jupyter_replay import wire
from jupyter_replay.batch import Batch, Mode
from jupyter_replay.widgets.replay import STATIC, Replay

NODE = shutil.which("node")
JS = STATIC / "replay.js"
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed")


def test_static_files_are_the_widget_assets() -> None:
    assert JS.is_file() and (STATIC / "replay.css").is_file()
    text = JS.read_text()
    assert "export default" in text and "render" in text
    assert "cdn.bokeh.org" not in text  # BokehJS comes from the kernel's bokeh package, inline
    # the widget sends the ESM text itself (anywidget), so a notebook needs no lab extension
    assert Replay._esm is not None


@needs_node
def test_js_is_a_valid_es_module(tmp_path: Path) -> None:
    mod = tmp_path / "replay.mjs"
    mod.write_text(JS.read_text())
    proc = subprocess.run([NODE, "--check", str(mod)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


@needs_node
def test_js_decoder_reads_python_frames(tmp_path: Path) -> None:
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
    proc = subprocess.run([NODE, str(script)], capture_output=True, text=True, timeout=30)
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
