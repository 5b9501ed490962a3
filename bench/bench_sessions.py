"""Figure 6: many concurrent replay sessions in one real Jupyter server, each streaming to a WebSocket client.

A ``jupyter server`` subprocess (the jupyter_replay extension enabled, token auth, 127.0.0.1) gets N
kernels and one replay session per kernel, all replaying the same Parquet file (``bench/.cache``) at 1x;
the file has bursts of 100 rows every 100 ms of data, so every session releases 10 batches/s. N tornado
WebSocket clients in this process (``?ms_only=1``, like the browser) read every frame and check that the
rows arrive without gaps. Reported: server CPU (psutil, % of one core), server memory per session, and
the server's memory growth against N in-memory copies of the data (sessions share the file: each holds
only its rolling buffer and one read batch, never the table).

Kernels: the server only allows a session for a kernel it knows, and N ipykernels do not fit on a small
machine, so the kernels here are a kernelspec whose process is ``sleep infinity``: real kernels to the
server's kernel manager (started, watched, shut down by it), idle and tiny. The server-side work measured
(sessions, pacing, encoding, WebSockets) is the same as with ipykernels.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from jupyter_replay import wire

from .common import CACHE_DIR, Figure, at_least, at_most, info, not_available, use_e2e_harness

__all__ = ["NAME", "run", "ensure_file", "JupyterServer"]

NAME = "sessions"
BURST_ROWS = 100
TICK_NS = 100_000_000  # 100 ms of data between bursts: 10 batches/s at 1x
START_NS = 1_704_186_000_000_000_000
STARTUP_S = 90.0


def ensure_file(rows: int, directory: Path = CACHE_DIR) -> Path:
    """``rows`` rows in bursts of ``BURST_ROWS`` equal timestamps, ``TICK_NS`` apart (cached)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"bursts_{rows}.parquet"
    if path.exists():
        try:
            if pq.ParquetFile(path).metadata.num_rows == rows:
                return path
        except Exception:
            pass
    rng = np.random.default_rng(2)
    ts = START_NS + (np.arange(rows, dtype=np.int64) // BURST_ROWS) * TICK_NS
    table = pa.table({"timestamp": pa.array(ts, pa.timestamp("ns", tz="UTC")),
                      **{f"c{i}": 100.0 + np.cumsum(rng.normal(0, 0.01, rows)) for i in range(4)}})
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp, row_group_size=100_000)
    tmp.replace(path)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterServer:
    """A ``jupyter server`` subprocess with the replay extension and a ``sleeper`` kernelspec."""

    def __init__(self, tmp: Path, data_dir: Path, max_sessions: int) -> None:
        self.tmp = tmp
        self.token = uuid.uuid4().hex
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        cfg, runtime, kpath, root = (tmp / d for d in ("config", "runtime", "share", "root"))
        for d in (cfg, runtime, root, kpath / "kernels" / "sleeper"):
            d.mkdir(parents=True, exist_ok=True)
        sleep = shutil.which("sleep") or "/bin/sleep"
        (kpath / "kernels" / "sleeper" / "kernel.json").write_text(json.dumps(
            {"argv": [sleep, "infinity"], "display_name": "sleeper (bench)", "language": "none"}))
        (cfg / "jupyter_server_config.json").write_text(json.dumps({
            "ServerApp": {"jpserver_extensions": {"jupyter_replay.server": True}},
            # one token for all clients: the bench is one user with N sockets (the default per-user cap is 64)
            "ReplayExtension": {"max_sessions": max_sessions, "idle_timeout": 0, "data_dirs": [str(data_dir)],
                                "ws_max_connections_per_user": max_sessions + 16},
            # 'sleep' ignores shutdown requests: do not wait 5 s for each before terminating it.
            "KernelManager": {"shutdown_wait_time": 0.5},
        }))
        env = dict(os.environ, JUPYTER_CONFIG_DIR=str(cfg), JUPYTER_RUNTIME_DIR=str(runtime),
                   JUPYTER_PATH=str(kpath), PYTHONUNBUFFERED="1")
        cmd = [sys.executable, "-m", "jupyter_server", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}",
               "--ServerApp.allow_root=True", "--ServerApp.log_level=WARN"]
        self.log_path = tmp / "server.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + STARTUP_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                self.api("GET", "api/status", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"jupyter server did not start:\n{self.log_tail()}")
                time.sleep(0.2)

    def api(self, method: str, path: str, body: Any = None, timeout: float = 30.0) -> Any:
        use_e2e_harness()
        from lab_harness import jupyter_api

        return jupyter_api(self.url, self.token, method, path, body, timeout)

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Shut the server down (it shuts its kernels down); kill what is left of its processes."""
        use_e2e_harness()
        from lab_harness import stop_server

        stop_server(self.proc, lambda: self.api("POST", "api/shutdown", timeout=10),
                    wait=60, term_wait=15, children_wait=10)


class _Client:
    """One WebSocket client of one session: counts frames and rows, checks contiguity."""

    def __init__(self) -> None:
        self.frames = 0
        self.rows = 0
        self.next_row: int | None = None
        self.gaps = 0
        self.conn: Any = None
        self.task: asyncio.Task | None = None
        self.acked = asyncio.Event()

    async def read(self) -> None:
        while True:
            msg = await self.conn.read_message()
            if msg is None:
                return
            if isinstance(msg, bytes):
                header, _ = wire.decode_frame(msg)
                if header.get("history"):
                    self.next_row = header["first_row"] + header["rows"]
                    continue
                if self.next_row is not None and header["first_row"] != self.next_row:
                    self.gaps += 1
                self.next_row = header["first_row"] + header["rows"]
                self.frames += 1
                self.rows += header["rows"]
            else:
                m = json.loads(msg)
                if m.get("type") == "ack":
                    self.acked.set()
                elif m.get("type") == "reset":
                    self.next_row = 0


async def _gather_limited(coros: list, limit: int) -> list:
    sem = asyncio.Semaphore(limit)

    async def one(c):
        async with sem:
            return await c

    return await asyncio.gather(*(one(c) for c in coros))


async def _drive(server: JupyterServer, n: int, path: Path, measure_s: float, warmup_s: float) -> dict[str, Any]:
    import psutil
    from tornado.httpclient import AsyncHTTPClient, HTTPRequest
    from tornado.websocket import websocket_connect

    proc = psutil.Process(server.proc.pid)
    http = AsyncHTTPClient(max_clients=16)
    headers = {"Authorization": f"token {server.token}", "Content-Type": "application/json"}

    async def call(method: str, p: str, body: Any = None) -> Any:
        resp = await http.fetch(HTTPRequest(server.url + p, method=method, headers=headers,
                                            body=None if body is None else json.dumps(body),
                                            request_timeout=120))
        return json.loads(resp.body) if resp.body else None

    out: dict[str, Any] = {"rss_start": proc.memory_info().rss}
    t0 = time.perf_counter()
    kernels = await _gather_limited([call("POST", "api/kernels", {"name": "sleeper"}) for _ in range(n)], 8)
    out["kernels_s"] = time.perf_counter() - t0
    await asyncio.sleep(1.0)
    out["rss_kernels"] = proc.memory_info().rss
    ids = [k["id"] for k in kernels]
    source = {"kind": "parquet", "path": str(path), "time": "timestamp"}
    t0 = time.perf_counter()
    await _gather_limited([call("POST", "replay/api/sessions", {"kernel_id": k, "source": source, "speed": 1})
                           for k in ids], 8)
    out["sessions_s"] = time.perf_counter() - t0
    out["rss_sessions"] = proc.memory_info().rss

    clients = [_Client() for _ in ids]
    ws_base = server.url.replace("http://", "ws://")

    async def connect(client: _Client, kid: str) -> None:
        req = HTTPRequest(f"{ws_base}replay/api/sessions/{kid}/ws?ms_only=1",
                          headers={"Authorization": f"token {server.token}"})
        client.conn = await websocket_connect(req, max_message_size=64 * 1024 * 1024)
        client.task = asyncio.get_running_loop().create_task(client.read())

    await _gather_limited([connect(c, k) for c, k in zip(clients, ids)], 16)
    for c in clients:
        await c.conn.write_message(json.dumps({"type": "control", "id": 1, "action": "play"}))
    await asyncio.wait_for(asyncio.gather(*(c.acked.wait() for c in clients)), 120)
    await asyncio.sleep(warmup_s)

    me = psutil.Process()
    frames0, rows0 = sum(c.frames for c in clients), sum(c.rows for c in clients)
    proc.cpu_percent(None)
    me.cpu_percent(None)
    t0 = time.perf_counter()
    await asyncio.sleep(measure_s)
    dt = time.perf_counter() - t0
    out["server_cpu"] = proc.cpu_percent(None)
    out["client_cpu"] = me.cpu_percent(None)
    out["frames"] = sum(c.frames for c in clients) - frames0
    out["rows"] = sum(c.rows for c in clients) - rows0
    out["measure_s"] = dt
    out["rss_streaming"] = proc.memory_info().rss
    out["gaps"] = sum(c.gaps for c in clients)
    out["frames_merged"] = sum(s.get("frames_merged", 0) for s in await call("GET", "replay/api/sessions"))
    out["sessions"] = len(await call("GET", "replay/api/sessions"))
    for c in clients:
        c.conn.close()
    for c in clients:
        if c.task is not None:
            try:
                await asyncio.wait_for(c.task, 5)
            except (asyncio.TimeoutError, Exception):
                c.task.cancel()
    http.close()
    return out


def run(quick: bool = False, tiny: bool = False, sessions: int | None = None, **_: Any) -> list[Figure]:
    try:
        import psutil  # noqa: F401
        from jupyter_replay.server import _jupyter_server_extension_points  # noqa: F401
    except ImportError as exc:
        return [not_available(NAME, "concurrent sessions in one Jupyter server", str(exc))]
    n = sessions or (5 if tiny else 200)
    measure_s = 3.0 if tiny else (10.0 if quick else 30.0)
    rows = 400_000 if tiny else 2_000_000  # 2M rows: 2000 s of data at 1x, far beyond the run
    path = ensure_file(rows)
    data_bytes = rows * (8 + 4 * 8)
    with tempfile.TemporaryDirectory(prefix="jr-bench-sessions-") as tmp:
        server = JupyterServer(Path(tmp), path.parent, max_sessions=max(n, 1))
        try:
            out = asyncio.run(_drive(server, n, path, measure_s, warmup_s=2.0 if tiny else 5.0))
        except Exception as exc:
            raise RuntimeError(f"{exc}\nserver log:\n{server.log_tail()}") from exc
        finally:
            server.stop()
    expected = n * 1e9 / TICK_NS  # batches per second
    got = out["frames"] / out["measure_s"]
    grow = out["rss_streaming"] - out["rss_kernels"]
    per_session = grow / n
    return [
        Figure(NAME, f"{n} sessions x 10 batches/s: frames delivered vs due", got, expected, unit="frames/s",
               target=at_least(0.95, ">= 0.95"), baseline_name="N x 10 batches/s (the data's schedule)",
               note=f"{out['rows'] / out['measure_s']:,.0f} rows/s to {n} WebSocket clients over {out['measure_s']:.0f} s; "
                    f"gaps {out['gaps']}, frames merged {out['frames_merged']}; sessions listed {out['sessions']}"),
        Figure(NAME, f"server memory for {n} sessions vs {n} copies of the data", grow / 1e6, n * data_bytes / 1e6,
               unit="MB", target=at_most(0.1, "<= 0.1 (far below)"),
               baseline_name=f"{n} x the file's rows in memory ({data_bytes / 1e6:.0f} MB each)",
               note=f"RSS growth from {n} started kernels to {n} streaming sessions; one shared {path.name}"),
        info(NAME, "server memory per session", per_session / 1e6, "MB",
             note=f"server RSS {out['rss_start'] / 1e6:.0f} MB idle, {out['rss_kernels'] / 1e6:.0f} MB with {n} kernels, "
                  f"{out['rss_sessions'] / 1e6:.0f} MB with sessions created, {out['rss_streaming'] / 1e6:.0f} MB streaming"),
        info(NAME, "server CPU while streaming", out["server_cpu"], "% of a core",
             note=f"psutil over {out['measure_s']:.0f} s; the {n} clients (same machine) used {out['client_cpu']:.0f} %; "
                  f"kernels started in {out['kernels_s']:.1f} s, sessions created in {out['sessions_s']:.1f} s; "
                  "kernels are 'sleep infinity' processes (see module doc)"),
    ]
