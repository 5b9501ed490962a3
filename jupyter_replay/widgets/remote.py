"""``RemoteSession``: the kernel as a client of its server-side replay session (the attached path).

Same synchronous API as ``runner.ThreadedSession`` (play/pause/stop/step/seek/set_speed/set_loop/set_mode/
control/status/frame/subscribe/on_batch/wait/close). Controls are REST actions
(``POST {server_url}replay/api/sessions/{id}/actions/{action}``); rows come from the session's WebSocket,
read by a client running on the shared background asyncio loop, and feed a local ``RollingBuffer``
(``frame()``) and the ``on_batch`` callbacks. Every request carries ``Authorization: ReplayToken <token>``.
The WebSocket reconnects by itself and resumes with ``?since=<seq>&instance=<id>``.

Object/string columns do not travel on the wire, so the mirrored buffer holds the numeric columns only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import deque
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd

from .. import wire
from ..batch import TIME_COLUMN, Batch, Chunk, Event, Mode, ResetEvent, StateEvent
from ..buffer import RollingBuffer
from ..clock import Clock
from ..controller import State
from ..exceptions import (
    IllegalTransitionError,
    InvalidValueError,
    ReplayError,
    SessionNotFoundError,
)
from ..runner import BackgroundLoop
from ..sources.base import ReplaySource
from ..timeconv import ns_to_iso

__all__ = ["RemoteSession", "source_to_arrow_stream"]

log = logging.getLogger(__name__)

_UPLOAD_ROWS = 65_536
_MAX_MESSAGE = 1 << 30


def _error_for(status: int, message: str) -> ReplayError:
    if status == 400:
        return InvalidValueError(message)
    if status == 404:
        return SessionNotFoundError(message)
    if status == 409:
        return IllegalTransitionError(message)
    err = ReplayError(f"HTTP {status}: {message}")
    err.http_status = status
    return err


def source_to_arrow_stream(source: ReplaySource, rows_per_batch: int = _UPLOAD_ROWS) -> Iterator[bytes]:
    """The source's rows as an Arrow IPC stream (``timestamp`` as ``timestamp[ns, UTC]``), in pieces.

    Columns Arrow cannot convert (mixed Python objects) are left out with a warning.
    """
    import pyarrow as pa

    cursor = source.open()
    sink = _Sink()
    writer = None
    schema: pa.Schema | None = None
    skip: set[str] = set()
    try:
        while True:
            chunk = cursor.read(rows_per_batch)
            if writer is not None and not len(chunk):
                break
            arrays = [pa.array(np.asarray(chunk.ts, np.int64), pa.int64()).cast(pa.timestamp("ns", tz="UTC"))]
            names = [TIME_COLUMN]
            for name, col in chunk.columns.items():
                if name in skip:
                    continue
                try:
                    arr = pa.array(col, from_pandas=True)
                except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
                    if writer is not None:
                        raise
                    log.warning("column %r cannot be uploaded to the replay server; left out", name)
                    skip.add(name)
                    continue
                arrays.append(arr)
                names.append(name)
            batch = pa.RecordBatch.from_arrays(arrays, names=names)
            if writer is None:
                schema = batch.schema
                writer = pa.ipc.new_stream(sink, schema)
            elif batch.schema != schema:
                batch = pa.RecordBatch.from_arrays(
                    [a.cast(f.type) for a, f in zip(batch.columns, schema)], schema=schema
                )
            writer.write_batch(batch)
            yield sink.take()
            if not len(chunk):
                break
        if writer is not None:
            writer.close()
            yield sink.take()
    finally:
        cursor.close()


class _Sink:
    """A write-only file object whose bytes are taken piecewise."""

    closed = False

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: Any) -> int:
        b = bytes(data)
        self._parts.append(b)
        return len(b)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        out, self._parts = b"".join(self._parts), []
        return out


class _RemoteClock(Clock):
    """Session time as seen from the last status/batch (extrapolated while playing)."""

    def __init__(self, remote: "RemoteSession") -> None:
        self._remote = remote

    @property
    def is_live(self) -> bool:  # type: ignore[override]
        return self._remote._status.get("mode") == "live"

    def now_ns(self) -> int:
        r = self._remote
        if self.is_live:
            return time.time_ns()
        st = r._status
        base = st.get("time_ns") or st.get("position_ns") or r._last_ts or 0
        speed = st.get("speed")
        if st.get("state") == "playing" and isinstance(speed, (int, float)):
            return int(base + (time.monotonic() - r._status_at) * 1e9 * float(speed))
        return int(base)


class RemoteSession:
    """A client of the server session ``session_id`` with the sync API of ``ThreadedSession``."""

    def __init__(
        self,
        server_url: str,
        session_id: str,
        token: str,
        *,
        buffer_rows: int = 100_000,
        tz: Any = None,
        runner: BackgroundLoop | None = None,
        timeout: float = 30.0,
    ) -> None:
        parsed = urllib.parse.urlsplit(server_url)
        if parsed.scheme not in ("http", "https"):
            raise InvalidValueError(f"server_url must be http(s)://, got {server_url!r}")
        self.server_url = server_url if server_url.endswith("/") else server_url + "/"
        self.id = session_id
        self._token = token
        self._timeout = timeout
        self.runner = runner or BackgroundLoop.default()
        self._buffer_rows = int(buffer_rows)
        self._tz = tz
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._buffer = RollingBuffer(self._buffer_rows, {}, tz=tz)
        self._status: dict[str, Any] = {}
        self._status_at = time.monotonic()
        self._status_seq = -1
        self._seq = 0  # last event seq seen on the socket
        self._instance: str | None = None
        self._last_ts: int | None = None
        self._recent: deque[tuple[int, int]] = deque(maxlen=4096)  # (seq, rows) of recent batches
        self._subscribers: list[Callable[[Event], None]] = []
        self._callbacks: list[Callable[[Batch, Clock], Any]] = []
        self.callback_errors = 0
        self.frames_merged = 0  # frames_merged messages: frames merged for this slow client
        self.connects = 0
        self.last_error: str | None = None
        self._clock = _RemoteClock(self)
        self._task: asyncio.Task[None] | None = None
        self._ws: Any = None
        self._closed = False
        self._hello = threading.Event()
        self._synced = threading.Event()  # the first history (buffer snapshot) has been applied

    # ------------------------------------------------------------------ HTTP
    def _url(self, path: str) -> str:
        return urllib.parse.urljoin(self.server_url, "replay/api/sessions/" + urllib.parse.quote(self.id) + path)

    def _request(self, method: str, path: str, body: Any = None, *, raw: Any = None,
                 content_type: str = "application/json") -> Any:
        headers = {"Authorization": f"ReplayToken {self._token}", "Accept": "application/json"}
        data = None
        if raw is not None:
            data = raw
            headers["Content-Type"] = content_type
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self._url(path), data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self._timeout) as resp:
                text = resp.read()
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read() or b"{}").get("message") or exc.reason
            except (ValueError, AttributeError):
                message = exc.reason
            raise _error_for(exc.code, str(message)) from None
        except urllib.error.URLError as exc:
            raise ReplayError(f"cannot reach the replay server at {self.server_url}: {exc.reason}") from None
        return json.loads(text) if text else None

    def _post_status(self, status: Any) -> dict[str, Any]:
        if isinstance(status, dict):
            self._set_status(status)
        return self.status()

    def upload(self, source: ReplaySource) -> dict[str, Any]:
        """Replace the server session's data with ``source`` (Arrow IPC stream, sent in pieces)."""
        return self._post_status(
            self._request("PUT", "/data", raw=source_to_arrow_stream(source),
                          content_type="application/vnd.apache.arrow.stream")
        )

    def apply_settings(self, status: dict[str, Any], symbol: str | None = None) -> None:
        """Carry a local session over exactly (its ``status()``, taken while not playing).

        Speed first; then, in REPLAY, the released rows: a local buffer of ``k`` rows ending at position
        ``p`` (rows ``p-k .. p-1`` since the last reset) is reproduced with ``seek(row=p-k)`` + ``step(n=k)``,
        so the server's buffer (and every plot fed from it) holds the same rows and the position is ``p``;
        the state follows (``finished`` when the step reaches the end with loop off, else ``paused``;
        ``stopped`` at row 0). Loop is set last when the local replay had finished (a step to the end with
        loop on would pause instead). In LIVE the server switches to the live feed of ``symbol`` (the live
        rows themselves cannot be carried) and a paused/stopped feed is paused/stopped there too.
        The caller resumes playing afterwards if the local session was playing.
        """
        if self._status.get("mode") == "live":  # a server session left in LIVE by an earlier client
            self.control("mode", {"mode": "replay"})
        if status.get("speed") is not None:
            self.control("speed", {"speed": status["speed"]})
        loop = bool(status.get("loop"))
        state = status.get("state")
        if status.get("mode") == "live":
            self.control("loop", {"loop": loop})
            self.control("mode", {"mode": "live", "symbol": symbol or status.get("symbol") or "DEMO"})
            if state == "paused":
                self.control("pause")
            elif state == "stopped":
                self.control("stop")
            return
        finished = state == "finished"
        self.control("loop", {"loop": loop and not finished})
        num_rows = int(status.get("num_rows") or 0)
        position = min(int(status.get("position") or 0), num_rows)
        rows = min(int(status.get("buffer_rows") or 0), position)
        if rows > 0:
            self.control("seek", {"row": position - rows})
            self.control("step", {"n": rows})
        elif 0 < position < num_rows:
            self.control("seek", {"row": position})
        if loop and finished:
            self.control("loop", {"loop": True})

    # ------------------------------------------------------------------ status and data
    def _set_status(self, status: dict[str, Any]) -> None:
        with self._cond:
            seq = int(status.get("seq") or 0)
            if seq < self._status_seq:
                return
            self._status_seq = seq
            self._status = dict(status)
            while self._recent and self._recent[0][0] <= seq:
                self._recent.popleft()
            self._status_at = time.monotonic()
            self._cond.notify_all()

    def status(self) -> dict[str, Any]:
        """The last status received (REST answer or WebSocket), moved on by the rows received since.

        The server sends a status on transitions only; ``position``, ``position_ns``, ``progress`` and
        ``buffer_rows`` are advanced by the rows of later batches. Client-side counters are added.
        """
        with self._lock:
            st = dict(self._status)
            extra = sum(rows for seq, rows in self._recent if seq > self._status_seq)
            if extra:
                pos = int(st.get("position") or 0) + extra
                st["position"] = pos
                cap = int(st.get("buffer_capacity") or self._buffer_rows)
                st["buffer_rows"] = min(cap, int(st.get("buffer_rows") or 0) + extra)
                if self._last_ts is not None:
                    st["position_ns"] = self._last_ts
                    st["position_iso"] = ns_to_iso(self._last_ts)
                if st.get("mode") != "live" and st.get("num_rows"):
                    st["progress"] = min(1.0, pos / int(st["num_rows"]))
            st["buffer_rows_local"] = len(self._buffer)
            st["client_callback_errors"] = self.callback_errors
            st["connected"] = self._ws is not None
            return st

    @property
    def state(self) -> State:
        return State(self._status.get("state", "stopped"))

    @property
    def clock(self) -> Clock:
        return self._clock

    def frame(self) -> pd.DataFrame:
        """The mirrored buffer (rows received since the last reset, up to ``buffer_rows``)."""
        with self._lock:
            return self._buffer.to_frame()

    # ------------------------------------------------------------------ controls
    def control(self, action: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._post_status(self._request("POST", f"/actions/{action}", args or {}))

    def play(self) -> None:
        self.control("play")

    def pause(self) -> None:
        self.control("pause")

    def stop(self) -> None:
        self.control("stop")

    def step(self, n: int | None = None, *, duration: Any = None) -> int:
        args: dict[str, Any] = {}
        if n is not None:
            args["n"] = n
        if duration is not None:
            args["duration"] = duration if isinstance(duration, (int, str)) else str(pd.Timedelta(duration))
        before = int(self._status.get("position") or 0)
        st = self.control("step", args)
        return int(st.get("position") or 0) - before

    def seek(self, target: Any = None, *, fraction: float | None = None) -> int:
        if fraction is not None:
            st = self.control("seek", {"fraction": float(fraction)})
        else:
            from ..timeconv import to_ns

            st = self.control("seek", {"timestamp": to_ns(target)})
        return int(st.get("position") or 0)

    def set_speed(self, value: Any) -> float:
        st = self.control("speed", {"speed": value})
        sp = st.get("speed")
        return float("inf") if sp == "max" else float(sp)

    def set_loop(self, flag: Any) -> None:
        self.control("loop", {"loop": flag})

    def set_mode(self, mode: Any, symbol: str | None = None) -> None:
        args: dict[str, Any] = {"mode": getattr(mode, "value", mode)}
        if symbol is not None:
            args["symbol"] = symbol
        self.control("mode", args)

    # ------------------------------------------------------------------ subscriptions
    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """``callback(event)`` on the background loop thread; returns an unsubscribe function."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def on_batch(self, fn: Callable[[Batch, Clock], Any]) -> Callable[[Batch, Clock], Any]:
        """Decorator: ``fn(batch, clock)`` for every batch received (errors are logged and counted)."""
        with self._lock:
            self._callbacks.append(fn)
        return fn

    def _publish(self, event: Event) -> None:
        for cb in list(self._subscribers):
            try:
                cb(event)
            except Exception:
                log.exception("remote session subscriber failed")

    def wait(self, states: tuple[State, ...] = (State.FINISHED, State.PAUSED, State.STOPPED),
             timeout: float = 60.0) -> State:
        """Block until the server reports one of ``states``; returns it."""
        wanted = {State(s) for s in states}
        deadline = time.monotonic() + timeout
        with self._cond:
            while State(self._status.get("state", "stopped")) not in wanted:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"session still {self._status.get('state')} after {timeout}s")
                self._cond.wait(min(left, 0.1))
            return State(self._status.get("state", "stopped"))

    # ------------------------------------------------------------------ WebSocket client
    def start(self, wait: float = 10.0) -> None:
        """Connect the WebSocket (in the background) and wait for its ``hello`` and the buffer snapshot
        (``history``) that follows it (up to ``wait`` s each): afterwards ``frame()`` mirrors the server."""
        self._task = self.runner.call(lambda: self.runner.loop.create_task(self._run()))
        if not self._hello.wait(wait):
            raise ReplayError(f"no hello from the replay server within {wait}s ({self.last_error or 'no answer'})")
        if not self._synced.wait(wait):
            raise ReplayError(f"no history from the replay server within {wait}s ({self.last_error or 'no answer'})")

    def _ws_url(self) -> str:
        url = self._url("/ws")
        parts = urllib.parse.urlsplit(url)
        query: dict[str, str] = {}
        if self._seq and self._instance:
            query = {"since": str(self._seq), "instance": self._instance}
        scheme = "wss" if parts.scheme == "https" else "ws"
        return urllib.parse.urlunsplit((scheme, parts.netloc, parts.path, urllib.parse.urlencode(query), ""))

    async def _run(self) -> None:
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        delay = 0.25
        while not self._closed:
            try:
                request = HTTPRequest(
                    self._ws_url(), headers={"Authorization": f"ReplayToken {self._token}"},
                    connect_timeout=self._timeout, request_timeout=self._timeout,
                )
                conn = await websocket_connect(request, max_message_size=_MAX_MESSAGE, ping_interval=20)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = f"WebSocket connect failed: {exc}"
                code = getattr(exc, "code", None)
                if code in (403, 404):  # the session is gone or the token is not valid any more
                    log.warning("replay session %s: %s", self.id, self.last_error)
                    delay = 5.0
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.25
            self._ws = conn
            self.connects += 1
            try:
                await self._read(conn)
            except asyncio.CancelledError:
                conn.close()
                raise
            except Exception:
                log.exception("replay session %s: WebSocket client failed", self.id)
            finally:
                self._ws = None
            if not self._closed:
                await asyncio.sleep(delay)

    async def _read(self, conn: Any) -> None:
        history_next = False
        while True:
            msg = await conn.read_message()
            if msg is None:
                return
            if isinstance(msg, bytes):
                self._on_frame(msg, history_next)
                history_next = False
                continue
            try:
                m = wire.loads(msg)
            except wire.WireError:
                continue
            kind = m["type"]
            if kind == "hello":
                self._instance = m.get("instance") or self._instance
                self._seq = max(self._seq, int(m.get("seq") or 0))
                if isinstance(m.get("session"), dict):
                    self._set_status(m["session"])
                self._hello.set()
                self._publish(StateEvent(int(m.get("seq") or 0), self.id, self.status()))
            elif kind == "history":
                with self._lock:
                    self._buffer.clear()
                history_next = int(m.get("rows") or 0) > 0
                self._seq = max(self._seq, int(m.get("seq") or 0))
                if not history_next:
                    self._synced.set()
            elif kind == "state":
                self._seq = max(self._seq, int(m.get("seq") or 0))
                if isinstance(m.get("status"), dict):
                    self._set_status(m["status"])
                self._publish(StateEvent(int(m.get("seq") or 0), self.id, self.status()))
            elif kind == "reset":
                seq = int(m.get("seq") or 0)
                self._seq = max(self._seq, seq)
                with self._lock:
                    self._buffer.clear()
                    self._last_ts = None
                    self._recent.clear()
                try:
                    mode = Mode(m.get("mode") or "replay")
                except ValueError:
                    mode = Mode.REPLAY
                self._publish(ResetEvent(seq, self.id, mode, str(m.get("reason") or "")))
            elif kind == "frames_merged":
                self.frames_merged += int(m.get("count") or 0)
            elif kind == "error":
                self.last_error = str(m.get("message"))
            elif kind == "ack" and isinstance(m.get("status"), dict):
                self._set_status(m["status"])

    def _on_frame(self, data: bytes, history: bool) -> None:
        try:
            header, cols = wire.decode_frame(data)
        except wire.WireError as exc:
            self.last_error = str(exc)
            return
        ts = cols.pop(wire.TIME_NS_COLUMN, None)
        ms = cols.pop(wire.TIME_MS_COLUMN, None)
        if ts is None:
            ts = np.round(np.asarray(ms, np.float64) * 1e6).astype(np.int64)
        ts = np.array(ts, np.int64)
        values = {k: np.array(v) for k, v in cols.items()}
        seq = int(header.get("seq") or 0)
        history = history or bool(header.get("history"))
        if not history and seq <= self._seq:
            return  # already seen (resume overlap)
        chunk = Chunk(ts, values)
        with self._lock:
            dtypes = {k: v.dtype for k, v in values.items()}
            if dtypes != self._buffer.dtypes:
                self._buffer = RollingBuffer(self._buffer_rows, dtypes, tz=self._tz)
            if history:
                self._buffer.clear()
            self._buffer.append(chunk)
            if len(ts):
                self._last_ts = int(ts[-1])
            if not history and seq > self._status_seq:
                self._recent.append((seq, len(ts)))
        self._seq = max(self._seq, seq)
        if history:
            self._synced.set()
            return
        try:
            mode = Mode(header.get("mode") or "replay")
        except ValueError:
            mode = Mode.REPLAY
        batch = Batch(seq, self.id, mode, ts, values, int(header.get("first_row") or 0))
        self._publish(batch)
        for fn in list(self._callbacks):
            try:
                fn(batch, self._clock)
            except Exception as exc:
                self.callback_errors += 1
                self.last_error = f"on_batch callback {getattr(fn, '__name__', fn)!r} failed: {exc!r}"
                log.exception("on_batch callback failed")

    # ------------------------------------------------------------------ life cycle
    def close(self) -> None:
        """Disconnect (the server session itself stays; it belongs to the kernel)."""
        if self._closed:
            return
        self._closed = True
        task = self._task

        def cancel() -> None:
            if self._ws is not None:
                try:
                    self._ws.close()
                except Exception:
                    pass
            if task is not None:
                task.cancel()

        try:
            self.runner.call(cancel, timeout=5)
        except Exception:
            pass
        with self._lock:
            self._subscribers.clear()
            self._callbacks.clear()
