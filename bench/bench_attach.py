"""Attach a kernel's frame to its server session: the mapped hand-off file vs today's HTTP upload.

Two processes, like a kernel and its Jupyter server on one host. The "server" child does exactly what the
extension does with the data: for an upload it receives the Arrow IPC stream body (joined in memory, as
the handler buffers it), decodes it and builds the source (``load_arrow``: ``read_all`` + ``to_pandas`` +
``DataFrameSource``); for a hand-off it maps the file (``open_handoff``) and builds a ``TableSource``
over the mapping. The "kernel" (this process) produces the bytes with the widget's own code
(``source_to_arrow_stream`` / ``source_to_arrow_batch`` + ``write_handoff``) and sends them over a pipe
(no HTTP stack: the upload's real cost is higher).

- 10M rows (timestamp + 4 float64 + int64, ~480 MB) through the hand-off against the upload of the
  largest frame the server accepts (``max_body_bytes`` = 256 MiB: ~5.5M such rows). Ratios per row:
  seconds per million rows, and server memory per row: anonymous memory kept once the source is built
  (RssAnon; mapped file pages are shared with the page cache and evictable) and the peak (VmHWM, every
  resident page). The server's own copy is what the issue measured (+130 MB for 2M rows).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np
import pandas as pd

from .common import Figure, at_most, info

__all__ = ["run"]

NAME = "data"
MAX_BODY = 256 * 1024 * 1024  # the server's default max_body_bytes

_SERVER = r"""
import io, json, struct, sys
import pyarrow as pa
from jupyter_replay.sources import DataFrameSource, TableSource
from jupyter_replay.sources.handoff import open_handoff

def mem():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key = line.split(":")[0]
            if key in ("RssAnon", "VmRSS", "VmHWM"):
                out[key] = int(line.split()[1]) * 1024
    return out

keep = []
inp, outp = sys.stdin.buffer, sys.stdout
outp.write(json.dumps(mem()) + "\n"); outp.flush()
for line in inp:
    req = json.loads(line)
    before = mem()
    if req["mode"] == "upload":
        parts = []
        while True:
            (n,) = struct.unpack("<Q", inp.read(8))
            if n == 0:
                break
            parts.append(inp.read(n))
        body = b"".join(parts)
        del parts
        table = pa.ipc.open_stream(io.BytesIO(body)).read_all()
        source = DataFrameSource(table.to_pandas(), time="timestamp")
        del table, body
    else:
        table = open_handoff(req["dir"], req["name"], 2**40)
        source = TableSource(table, time="timestamp")
        del table
    keep.append(source)
    after = mem()
    outp.write(json.dumps({"rows": source.num_rows, "before": before, "after": after}) + "\n"); outp.flush()
"""


def _frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    data: dict[str, Any] = {"timestamp": pd.date_range("2024-01-02", periods=rows, freq="1ms", tz="UTC")}
    for i in range(4):
        data[f"c{i}"] = rng.normal(100, 1, rows)
    data["size"] = rng.integers(1, 1000, rows)
    return pd.DataFrame(data)


class _Server:
    """The child process; one request at a time."""

    def __init__(self) -> None:
        env = dict(os.environ)
        self.proc = subprocess.Popen([sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=env)
        self.baseline = json.loads(self.proc.stdout.readline())  # type: ignore[union-attr]

    def send(self, header: dict, pieces: Any = ()) -> dict:
        stdin = self.proc.stdin
        assert stdin is not None
        stdin.write((json.dumps(header) + "\n").encode())
        for piece in pieces:
            stdin.write(struct.pack("<Q", len(piece)))
            stdin.write(piece)
        if header["mode"] == "upload":
            stdin.write(struct.pack("<Q", 0))
        stdin.flush()
        return json.loads(self.proc.stdout.readline())  # type: ignore[union-attr]

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def _upload(rows: int) -> dict:
    from jupyter_replay.sources import as_source
    from jupyter_replay.sources.arrow import source_to_arrow_stream

    source = as_source(_frame(rows))
    server = _Server()
    try:
        sent = 0

        def pieces():
            nonlocal sent
            for piece in source_to_arrow_stream(source):
                sent += len(piece)
                yield piece

        t0 = time.perf_counter()
        reply = server.send({"mode": "upload"}, pieces())
        reply["seconds"] = time.perf_counter() - t0
        reply["body"] = sent
    finally:
        server.close()
    return reply


def _handoff(rows: int, directory: str) -> dict:
    from jupyter_replay.sources import as_source
    from jupyter_replay.sources.arrow import source_to_arrow_batch
    from jupyter_replay.sources.handoff import write_handoff

    source = as_source(_frame(rows))
    server = _Server()
    try:
        t0 = time.perf_counter()
        batch = source_to_arrow_batch(source)
        name = write_handoff(batch, directory)
        del batch
        reply = server.send({"mode": "handoff", "dir": directory, "name": name})
        reply["seconds"] = time.perf_counter() - t0
    finally:
        server.close()
    return reply


def _grown(reply: dict, key: str) -> int:
    return max(0, reply["after"][key] - reply["before"][key])


def run(quick: bool = False, tiny: bool = False, **_: Any) -> list[Figure]:
    big = 200_000 if tiny else 10_000_000
    upload_rows = 100_000 if tiny else int(MAX_BODY / 48 * 0.98)  # 48 bytes a row in the stream
    up = _upload(upload_rows)
    if not tiny and up["body"] > MAX_BODY:
        raise RuntimeError(f"the upload baseline is {up['body']} bytes, above max_body_bytes")
    with tempfile.TemporaryDirectory(prefix="replay-handoff-") as directory:
        os.chmod(directory, 0o700)
        ho = _handoff(big, directory)

    def per_m(r: dict) -> float:
        return r["seconds"] / (r["rows"] / 1e6)

    def anon(r: dict) -> float:
        return _grown(r, "RssAnon") / r["rows"]

    def peak(r: dict) -> float:
        return max(0, r["after"]["VmHWM"] - r["before"]["VmRSS"]) / r["rows"]

    label = f"{ho['rows'] / 1e6:g}M rows by hand-off vs {up['rows'] / 1e6:.2f}M by upload (largest accepted)"
    return [
        Figure(NAME, f"attach time per 1M rows: {label}", per_m(ho), per_m(up), unit="s",
               target=at_most(1 / 2, "<= 1/2 (0.5)"), baseline_name="PUT data (Arrow IPC stream)",
               note=f"hand-off {ho['seconds']:.2f} s for {ho['rows']:,} rows; upload {up['seconds']:.2f} s for "
                    f"{up['rows']:,} rows ({up['body'] / 2**20:.0f} MiB body); pipe, no HTTP stack"),
        Figure(NAME, "server memory kept per row after attach (RssAnon)", anon(ho), anon(up), unit="B",
               target=at_most(1 / 10, "<= 1/10 (0.1)"), baseline_name="upload: body, table, pandas, source",
               note=f"hand-off +{_grown(ho, 'RssAnon') / 1e6:.0f} MB anonymous for {ho['rows']:,} rows (data mapped "
                    f"read-only, file-backed); upload +{_grown(up, 'RssAnon') / 1e6:.0f} MB for {up['rows']:,}"),
        Figure(NAME, "server peak resident memory per row during attach (VmHWM)", peak(ho), peak(up), unit="B",
               target=at_most(1 / 2, "<= 1/2 (0.5)"), baseline_name="upload",
               note="includes mapped pages the server touched (the time column is scanned once for order)"),
        info(NAME, f"hand-off of {ho['rows'] / 1e6:g}M rows: wall time", ho["seconds"], "s",
             note="kernel: one record batch (zero-copy views) written to a 0600 file; server: map + TableSource"),
    ]
