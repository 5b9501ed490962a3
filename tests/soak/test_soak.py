"""Soak: many sessions with WebSocket clients on one real Jupyter server for minutes; memory and fds stay flat.

Run (excluded from the default run; see docs/testing.md)::

    SOAK_SECONDS=600 python -m pytest tests/soak -m soak -s -p no:cacheprovider

A real ``jupyter server`` subprocess (loopback, token auth) runs the replay extension with
``ReplayExtension.allow_kernelless_sessions`` (200 kernels would not fit this machine; sessions behave the
same, only the kernel life cycle is skipped). This process plays the clients: one WebSocket per session,
reading everything and checking every frame (``seq`` increasing, ``first_row`` contiguous between resets),
plus churn: controls over REST and WebSocket (pause/play, seek, speed, mode), clients dropping and resuming
with ``?since=``, sessions deleted and re-created. The server's resident memory and open file descriptors
are sampled every few seconds; after the warm-up (the first quarter) they must grow by less than 5%.

Knobs (environment): ``SOAK_SECONDS`` (600), ``SOAK_SESSIONS`` (200), ``SOAK_LIVE`` (live sessions among
them, 20), ``SOAK_SAMPLE_S`` (seconds between samples, 5). The result is written to
``artifacts/soak-result.json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from jupyter_replay import wire

pytestmark = pytest.mark.soak

SECONDS = float(os.environ.get("SOAK_SECONDS", "600"))
SESSIONS = int(os.environ.get("SOAK_SESSIONS", "200"))
LIVE = min(SESSIONS, int(os.environ.get("SOAK_LIVE", "20")))
SAMPLE_S = float(os.environ.get("SOAK_SAMPLE_S", "5"))
GROWTH_LIMIT = 0.05
SPEEDS = (0.25, 0.5, 1.0)  # sample data has ~20 rows/s of data time: ~5-20 frames/s per replay session
SYMBOLS = ("AAA", "BBB", "CCC", "DDD", "EEE")
BASE = "/soak/"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ClientStats:
    """What one session's WebSocket client saw (over all its connections)."""

    frames: int = 0
    rows: int = 0
    texts: int = 0
    connects: int = 0
    resumes: int = 0  # reconnects served from the resume log (no history)
    resyncs: int = 0  # reconnects or slow-client recoveries answered with reset + history
    frames_merged: int = 0
    errors: list[str] = field(default_factory=list)


class SoakClient:
    """One session's client: follows the WebSocket, checks continuity, can drop and resume."""

    def __init__(self, sid: str, url: str, headers: dict[str, str]) -> None:
        self.sid = sid
        self.url = url
        self.headers = headers
        self.stats = ClientStats()
        self.seq = -1
        self.instance: str | None = None
        self.next_row: int | None = None  # expected first_row of the next frame (None: unknown, after hello)
        self.ws: Any = None
        self.task: asyncio.Task[None] | None = None
        self.stopping = False
        self._resuming = False
        self._after_hello = False

    def error(self, text: str) -> None:
        if len(self.stats.errors) < 20:
            self.stats.errors.append(f"{self.sid}: {text}")

    async def connect(self, resume: bool) -> None:
        from websockets.asyncio.client import connect

        query = f"?since={self.seq}&instance={self.instance}" if resume and self.instance else ""
        self.ws = await connect(self.url + query, additional_headers=self.headers, max_size=2**26,
                                open_timeout=30, ping_interval=None)
        self.stats.connects += 1
        self.task = asyncio.get_running_loop().create_task(self._read(resume and bool(self.instance)))

    async def drop_and_resume(self) -> None:
        """Close the socket mid-stream and reconnect with ``?since=<last seq>&instance=<id>``."""
        await self.close()
        self.stopping = False
        await self.connect(resume=True)

    async def close(self) -> None:
        self.stopping = True
        if self.ws is not None:
            await self.ws.close()
        if self.task is not None:
            try:
                await asyncio.wait_for(self.task, 10)
            except asyncio.TimeoutError:
                self.task.cancel()
                self.error("reader did not stop")
            self.task = None

    async def _read(self, resuming: bool) -> None:
        from websockets.exceptions import ConnectionClosed

        self._resuming = resuming
        self._after_hello = False
        try:
            async for message in self.ws:
                if self._after_hello:  # the message right after a resuming hello tells how it was served
                    self._after_hello = False
                    resynced = isinstance(message, str) and '"reason":"resync"' in message
                    if not resynced:
                        self.stats.resumes += 1
                if isinstance(message, bytes):
                    self._frame(message)
                else:
                    self._text(json.loads(message))
        except ConnectionClosed as exc:
            if not self.stopping and not (exc.rcvd is not None and exc.rcvd.code == 1001):
                self.error(f"connection closed unexpectedly: {exc}")
        except Exception as exc:  # noqa: BLE001 - recorded, the test fails on it
            self.error(f"reader failed: {exc!r}")

    def _text(self, msg: dict[str, Any]) -> None:
        self.stats.texts += 1
        kind = msg["type"]
        if kind == "hello":
            self.instance = msg["instance"]
            if self._resuming:
                self._after_hello = True
            else:
                self.seq, self.next_row = msg["seq"], None
            return
        if kind == "merged":
            self.stats.frames_merged += msg["frames_merged"]
            return
        if kind in ("ack", "pong"):
            return
        if kind == "error":
            if msg.get("status") != 409:  # 409: e.g. pause while not playing, a legal refusal
                self.error(f"control error {msg}")
            return
        seq = msg["seq"]
        if kind == "reset":
            if seq < self.seq:
                self.error(f"reset seq {seq} after {self.seq}")
            if msg["reason"] == "resync":
                self.stats.resyncs += 1
            self.next_row = 0
        elif kind == "history":
            self.next_row = msg.get("first_row", 0)
        # state messages may be overtaken by coalesced rows (see docs/design.md): no order check
        self.seq = max(self.seq, seq)

    def _frame(self, data: bytes) -> None:
        header, cols = wire.decode_frame(data)
        self.stats.frames += 1
        rows = header["rows"]
        if header.get("history"):
            self.next_row = header["first_row"] + rows
            return
        first_seq = header.get("first_seq", header["seq"])
        if first_seq <= self.seq:
            self.error(f"frame seq {first_seq}..{header['seq']} not after {self.seq} (duplicate)")
        if self.next_row is not None and header["first_row"] != self.next_row:
            self.error(f"rows {header['first_row']}.. expected {self.next_row} (gap or duplicate)")
        if len(cols["timestamp"]) != rows:
            self.error("frame column length mismatch")
        self.next_row = header["first_row"] + rows
        self.seq = header["seq"]
        self.stats.rows += rows


class Server:
    """A ``jupyter server`` subprocess with the replay extension."""

    def __init__(self, tmp: Path) -> None:
        self.port = _free_port()
        self.token = uuid.uuid4().hex
        self.tmp = tmp
        config = {
            "ServerApp": {
                "jpserver_extensions": {"jupyter_replay.server": True},
                "ip": "127.0.0.1",
                "port": self.port,
                "port_retries": 0,
                "open_browser": False,
                "root_dir": str(tmp),
                "base_url": BASE,
                "allow_root": True,  # CI containers run as root
            },
            "IdentityProvider": {"token": self.token},
            "ReplayExtension": {
                "allow_kernelless_sessions": True,
                "max_sessions": SESSIONS + 16,
                # buffers and resume logs fill up during the warm-up (at ~5 frames/s for the slowest
                # sessions), so their filling is not mistaken for growth afterwards
                "buffer_rows": 2000,
                "resume_events": 256,
                "idle_timeout": 0,
            },
        }
        (tmp / "soak_config.json").write_text(json.dumps(config))
        env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp / "runtime"), JUPYTER_CONFIG_DIR=str(tmp / "config"),
                   PYTHONUNBUFFERED="1")
        self.log_path = tmp / "server.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", f"--config={tmp / 'soak_config.json'}"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=tmp,
        )
        self.ps = psutil.Process(self.proc.pid)
        self.http = f"http://127.0.0.1:{self.port}{BASE}"
        self.ws = f"ws://127.0.0.1:{self.port}{BASE}"
        self.headers = {"Authorization": f"token {self.token}"}

    def sample(self) -> tuple[int, int]:
        return self.ps.memory_info().rss, self.ps.num_fds()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Rest:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.http = AsyncHTTPClient(force_instance=True, max_clients=8)

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        req = HTTPRequest(self.server.http + path, method=method, headers=self.server.headers,
                          body=None if body is None else json.dumps(body), request_timeout=60,
                          allow_nonstandard_methods=True)
        try:
            resp = await self.http.fetch(req)
        except HTTPClientError as err:
            resp = err.response
            if resp is None:
                raise
        return resp.code, (json.loads(resp.body) if resp.body else None)


async def _wait_up(rest: Rest, server: Server, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert server.proc.poll() is None, "the server exited: " + server.log_path.read_text()[-3000:]
        try:
            code, _ = await rest.call("GET", "replay/api/sessions")
            if code == 200:
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, "the server did not start"
        await asyncio.sleep(0.25)


async def _create(rest: Rest, sid: str, index: int) -> None:
    body = {"kernel_id": sid, "source": {"kind": "sample", "n": 4000, "seed": index}, "loop": True,
            "speed": SPEEDS[index % len(SPEEDS)]}
    code, model = await rest.call("POST", "replay/api/sessions", body)
    assert code == 201, model
    if index < LIVE:
        code, model = await rest.call("POST", f"replay/api/sessions/{sid}/actions/mode",
                                      {"mode": "live", "symbol": SYMBOLS[index % len(SYMBOLS)]})
        assert code == 200, model
    else:
        code, model = await rest.call("POST", f"replay/api/sessions/{sid}/actions/play", {})
        assert code == 200, model


async def _churn(rest: Rest, clients: list[SoakClient], rng: random.Random, counts: dict[str, int]) -> None:
    """One random disturbance: a control (REST or WebSocket), a drop + resume, or delete + re-create."""
    index = rng.randrange(len(clients))
    client, sid = clients[index], clients[index].sid
    live = index < LIVE
    roll = rng.random()
    if roll < 0.45:
        if live:
            action, args = rng.choice([("pause", {}), ("play", {}), ("play", {})])
        else:
            action, args = rng.choice([("pause", {}), ("play", {}), ("seek", {"fraction": rng.random()}),
                                       ("speed", {"speed": rng.choice(SPEEDS)}), ("play", {})])
        if rng.random() < 0.5:
            code, model = await rest.call("POST", f"replay/api/sessions/{sid}/actions/{action}", args)
            if code not in (200, 409):
                client.error(f"REST {action} {args} -> {code} {model}")
        elif client.ws is not None:
            await client.ws.send(json.dumps({"type": "control", "id": counts["controls"], "action": action, **args}))
        counts["controls"] += 1
    elif roll < 0.9:
        await client.drop_and_resume()
        counts["resumes"] += 1
    else:
        await client.close()
        code, _ = await rest.call("DELETE", f"replay/api/sessions/{sid}")
        if code != 204:
            client.error(f"DELETE -> {code}")
        await _create(rest, sid, index)
        client.seq, client.instance, client.next_row = -1, None, None
        client.stopping = False
        await client.connect(resume=False)
        counts["recreated"] += 1


@pytest.mark.timeout(SECONDS + 900)
def test_soak(artifacts_dir: Path, tmp_path: Path) -> None:
    server = Server(tmp_path)
    try:
        result = asyncio.run(_soak(server))
    finally:
        server.stop()
    out = artifacts_dir / "soak-result.json"
    out.write_text(json.dumps(result, indent=2))
    print("\nSOAK RESULT", json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))
    assert not result["client_errors"], result["client_errors"][:10]
    assert result["rss_growth"] < GROWTH_LIMIT, result
    assert result["fds_growth"] < GROWTH_LIMIT, result
    assert result["sessions_at_end"] == SESSIONS
    assert result["rows"] > 0 and result["resumes_served"] > 0


async def _soak(server: Server) -> dict[str, Any]:
    rest = Rest(server)
    await _wait_up(rest, server)
    rng = random.Random(20240102)
    ids = [f"soak-{i:03d}" for i in range(SESSIONS)]
    clients = [SoakClient(sid, f"{server.ws}replay/api/sessions/{sid}/ws", server.headers) for sid in ids]
    for i, sid in enumerate(ids):
        await _create(rest, sid, i)
        await clients[i].connect(resume=False)
    counts = {"controls": 0, "resumes": 0, "recreated": 0}
    samples: list[tuple[float, int, int]] = []
    started = time.monotonic()
    next_sample = started
    cpu0 = server.ps.cpu_times()
    while (now := time.monotonic()) - started < SECONDS:
        assert server.proc.poll() is None, f"the server died; see {server.log_path}"
        if now >= next_sample:
            rss, fds = server.sample()
            samples.append((round(now - started, 1), rss, fds))
            next_sample += SAMPLE_S
        await _churn(rest, clients, rng, counts)
        await asyncio.sleep(rng.uniform(0.05, 0.25))
    cpu1 = server.ps.cpu_times()

    code, listing = await rest.call("GET", "replay/api/sessions")
    assert code == 200
    merged_server = sum(m["frames_merged"] for m in listing)
    rows_dropped_server = sum(m["rows_dropped"] for m in listing)
    for c in clients:
        await c.close()

    warm = [s for s in samples if s[0] >= SECONDS * 0.25]
    window = max(1, len(warm) // 10)
    base_rss = statistics.median(s[1] for s in warm[:window])
    end_rss = statistics.median(s[1] for s in warm[-window:])
    base_fds = statistics.median(s[2] for s in warm[:window])
    end_fds = statistics.median(s[2] for s in warm[-window:])
    stats = [c.stats for c in clients]
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "seconds": SECONDS,
        "sessions": SESSIONS,
        "live_sessions": LIVE,
        "sessions_at_end": len(listing),
        "server_cpu_s": round((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system), 1),
        "rss_mib_start": round(samples[0][1] / 2**20, 1),
        "rss_mib_after_warmup": round(base_rss / 2**20, 1),
        "rss_mib_end": round(end_rss / 2**20, 1),
        "rss_mib_max": round(max(s[1] for s in samples) / 2**20, 1),
        "rss_growth": round(end_rss / base_rss - 1, 4),
        "fds_after_warmup": base_fds,
        "fds_end": end_fds,
        "fds_growth": round(end_fds / base_fds - 1, 4),
        "frames": sum(s.frames for s in stats),
        "rows": sum(s.rows for s in stats),
        "connects": sum(s.connects for s in stats),
        "resumes_served": sum(s.resumes for s in stats),
        "resyncs": sum(s.resyncs for s in stats),
        "frames_merged_reported_to_clients": sum(s.frames_merged for s in stats),
        "frames_merged_server_total": merged_server,
        "rows_dropped_server_total": rows_dropped_server,
        "churn": counts,
        "client_errors": [e for s in stats for e in s.errors],
        "samples": samples,
    }
