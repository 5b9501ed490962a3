"""``RemoteSession``: the kernel as a client of its server-side replay session (the attached path).

The REST + WebSocket I/O adapter of ``client.SessionClient`` (``runner.ThreadedSession`` is the in-process
one): same API, same status keys, same ``on_batch`` error accounting. Controls are REST actions
(``POST {server_url}replay/api/sessions/{id}/actions/{action}``, arguments named as in
``controls.CONTROLS``); rows come from the session's WebSocket, read on the shared background asyncio
loop, and feed the mirrored buffer (``frame()``, the same columns and dtypes as the server session's
buffer, text and categorical columns included) and the ``on_batch`` callbacks. Every request carries
``Authorization: ReplayToken <token>``. The WebSocket reconnects by itself and resumes with
``?since=<seq>&instance=<id>``.

Callbacks run on this client's own worker (``SessionClient``), never on the reader: the background loop is
shared by every session of the kernel. What keeps "a control called from a callback takes effect before any
further row reaches that callback" is the pair of holds: the reader awaits the worker's room before it takes
the next binary frame (this session only), and while callbacks are registered the server releases the next
rows only after ``ack_frames`` for the previous ones, which is sent once their callbacks have run.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import numpy as np

from .. import controls, wire
from ..batch import Batch, MarkEvent, Mode, ResetEvent, StateEvent
from ..client import FLUSH_TIMEOUT, SessionClient
from ..clock import Clock
from ..controller import State
from ..exceptions import (
    IllegalTransitionError,
    InvalidValueError,
    ReplayError,
    SessionNotFoundError,
    brief,
)
from ..runner import BackgroundLoop
from ..sources.arrow import source_to_arrow_batch, source_to_arrow_stream
from ..sources.base import ReplaySource
from ..sources.handoff import can_hand_off, discard_handoff, write_handoff
from ..timeconv import to_ns

__all__ = ["RemoteSession"]

log = logging.getLogger(__name__)

_MAX_MESSAGE = 1 << 30
#: Keys of the server's REST model that are not session status (kept in ``RemoteSession.server``).
_SERVER_KEYS = ("kernel_id", "clients", "created", "instance", "owner", "shared")


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


def _json_args(action: str, args: dict[str, Any]) -> dict[str, Any]:
    """Arguments as JSON values (the server parses them with the same normalisers as the engine)."""
    out = dict(args)
    for key in ("timestamp", "time"):  # seek target, mark time
        ts = out.get(key)
        if ts is not None and not isinstance(ts, (int, str)):
            out[key] = to_ns(ts)
    for key in ("duration", "warmup"):
        if out.get(key) is not None:
            out[key] = controls.span_to_json(out[key])
    return out


def _policy_from(table: Any) -> controls.Policy | None:
    """The server's ``Policy`` from the control table it sends in ``hello`` (None if absent or odd)."""
    try:
        speed = table["speed"]
        return controls.Policy(
            max_speed=float(speed["max"]), allow_max_speed=bool(speed["allow_max"]),
            max_step_rows=int(table["max_step_rows"]),
        )
    except (TypeError, KeyError, ValueError):
        return None


class _RemoteClock(Clock):
    """Session time as seen from the last status/batch (extrapolated while playing)."""

    def __init__(self, remote: RemoteSession) -> None:
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


class RemoteSession(SessionClient):
    """A client of the server session ``session_id`` with the API of ``ThreadedSession``."""

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
            raise InvalidValueError(f"server_url must be http(s)://, got {brief(server_url)}")
        super().__init__(buffer_rows=buffer_rows, tz=tz)
        self.server_url = server_url if server_url.endswith("/") else server_url + "/"
        self.id = session_id
        self._token = token
        self._timeout = timeout
        self.runner = runner or BackgroundLoop.default()
        #: server-side facts of the REST model (clients, kernel_id, ...), apart from the session status
        self.server: dict[str, Any] = {}
        self._seq = 0  # last event seq seen on the socket
        self._instance: str | None = None
        self.connects = 0
        self.last_error: str | None = None
        #: True once ``upload`` handed the data over as a mapped file (same host) instead of an HTTP body.
        self.handoff_used = False
        self._clock = _RemoteClock(self)
        self._task: asyncio.Task[None] | None = None
        self._ws: Any = None
        #: the server session's limits, from the control table in ``hello`` (None until connected)
        self.policy: controls.Policy | None = None
        self._hello = threading.Event()
        self._synced = threading.Event()  # the first history (buffer snapshot) has been applied
        #: the reader waits for room on the callback worker before its next binary frame
        self._parked = False
        self._control_seq = 0  # seq of the last control's reply: ``flush`` waits for the socket to reach it

    # ------------------------------------------------------------------ SessionClient I/O
    def _control(self, action: str, args: dict[str, Any]) -> dict[str, Any]:
        if self.policy is not None:  # the server's own check, here first: same refusal and message, no I/O
            controls.normalise_args(action, args, self.policy)
        status = self._post_status(self._request("POST", f"/actions/{action}", _json_args(action, args)))
        seq = int(status.get("seq") or 0)
        with self._cond:
            self._control_seq = max(self._control_seq, seq)
        self._catch_up(seq)
        return status

    def _catch_up(self, seq: int, timeout: float = 10.0) -> None:
        """Wait until the socket has delivered the session's events up to ``seq`` (a control's reply), so
        ``frame()`` has what the control released, as headless. Not from the socket's thread or the
        callback worker (a callback calling a control: the events follow once it returns), and not while
        the reader waits for a running callback (a control returns at once, as headless; ``flush`` waits)."""
        if self.runner.in_loop_thread or self._worker.in_worker_thread or self._ws is None:
            return
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._seq < seq and self._ws is not None and not self._closed and not self._parked:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(min(left, 0.05))

    def flush(self, timeout: float | None = FLUSH_TIMEOUT) -> bool:
        """``SessionClient.flush`` once the socket has delivered the events of the last control: rows a
        ``step`` released may still wait behind a running callback, and their callbacks are waited for too."""
        if self._worker.in_worker_thread:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._cond:
                caught_up = self._seq >= self._control_seq or self._ws is None or self._closed
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._worker.flush(left):
                return False
            if caught_up:  # every callback of the events up to the control's seq was queued before: all ran
                return True
            with self._cond:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(0.05 if left is None else min(left, 0.05))

    def _advance(self, seq: int) -> None:
        """The reader has handled the event ``seq`` (its callbacks are queued): wake ``_catch_up``/``flush``."""
        with self._cond:
            if seq > self._seq:
                self._seq = seq
            self._cond.notify_all()

    def _read_status(self) -> dict[str, Any]:
        return self._cached_status()

    @property
    def state(self) -> State:
        return State(self._status.get("state", "stopped"))

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def connected(self) -> bool:
        """Whether the WebSocket is open now."""
        return self._ws is not None

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
            data = wire.dumps(body).encode()
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

    def _post_status(self, model: Any) -> dict[str, Any]:
        if not isinstance(model, dict):
            return self.status()
        status = {k: v for k, v in model.items() if k not in _SERVER_KEYS}
        self.server.update({k: model[k] for k in _SERVER_KEYS if k in model})
        self._set_status(status)
        return status

    def refresh(self) -> dict[str, Any]:
        """Fetch the status over REST (the WebSocket keeps it current otherwise)."""
        self._post_status(self._request("GET", ""))
        return self.status()


    def upload(self, source: ReplaySource) -> dict[str, Any]:
        """Replace the server session's data with ``source``.

        On the server's host (the usual case: same machine, container or single-user server) an in-memory
        source is handed over as an Arrow IPC file the server memory-maps: no HTTP body, no second copy
        (``sources.handoff``). Otherwise (a remote kernel, an out-of-core source, an older server) the rows
        go as an Arrow IPC stream, sent in pieces.
        """
        status = self._hand_off(source)
        if status is not None:
            return self._post_status(status)
        return self._post_status(
            self._request("PUT", "/data", raw=source_to_arrow_stream(source),
                          content_type="application/vnd.apache.arrow.stream")
        )

    def _hand_off(self, source: ReplaySource) -> dict[str, Any] | None:
        """The server's model after mapping ``source`` from a hand-off file; None when it cannot see one."""
        try:
            where = self._request("GET", "/data/handoff")
        except ReplayError:  # a server without hand-off: upload
            return None
        if not isinstance(where, dict) or not can_hand_off(where.get("dir"), where.get("server_id")):
            return None  # another host or user: upload
        batch = source_to_arrow_batch(source)
        if batch is None:  # not in memory: stream it
            return None
        self.handoff_used = True
        name = write_handoff(batch, where["dir"])
        del batch
        try:
            return self._request("POST", "/data/handoff", {"name": name})
        finally:
            discard_handoff(where["dir"], name)  # the server unlinks it once mapped; this covers failures

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
        if status.get("rate") is not None:
            self.control("rate", {"rate": status["rate"]})
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

    # ------------------------------------------------------------------ callbacks hold the server's pacing
    def _callbacks_changed(self) -> None:
        """As headless, the session waits for this kernel's callbacks: while any is registered the server
        releases the next rows only after the callbacks of the previous ones returned (``hold``)."""
        self.runner.loop.call_soon_threadsafe(self._send_hold)

    def _send_hold(self) -> None:
        """On the socket's thread: tell the server whether to wait for our callbacks."""
        conn = self._ws
        if conn is not None:
            conn.write_message(wire.dumps({"type": "hold", "on": len(self._callbacks) > 0}))

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
            except Exception as exc:  # noqa: BLE001 - any connect failure: retry with backoff
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
        decoder = wire.FrameDecoder()  # one per connection: the server's encoder is per connection too
        history_next = False
        while True:
            msg = await conn.read_message()
            if msg is None:
                return
            if isinstance(msg, bytes):
                if self._worker.full():
                    await self._wait_for_callbacks()
                self._on_frame(decoder, msg, history_next)
                history_next = False
                continue
            try:
                m = wire.loads(msg)
            except wire.WireError:
                continue
            kind = m["type"]
            seq = int(m.get("seq") or 0)
            if kind == "hello":
                self._instance = m.get("instance") or self._instance
                self.policy = _policy_from(m.get("controls")) or self.policy
                self._seq = max(self._seq, seq)
                if isinstance(m.get("session"), dict):
                    self._post_status(m["session"])
                self._hello.set()
                if len(self._callbacks):
                    self._send_hold()
                self._on_event(StateEvent(seq, self.id, self._cached_status()))
            elif kind == "history":
                history_next = True
                self._seq = max(self._seq, seq)
            elif kind == "state":
                status = self._post_status(m["status"]) if isinstance(m.get("status"), dict) else {}
                self._on_event(StateEvent(seq, self.id, status))
                self._advance(seq)
            elif kind == "reset":
                try:
                    mode = Mode(m.get("mode") or "replay")
                except ValueError:
                    mode = Mode.REPLAY
                columns = tuple((str(c[0]), str(c[1])) for c in m.get("columns") or () if len(c) == 2)
                pos = m.get("position")
                position = int(pos) if isinstance(pos, int) and not isinstance(pos, bool) else None
                self._on_event(ResetEvent(seq, self.id, mode, str(m.get("reason") or ""), columns, position))
                self._advance(seq)
            elif kind == "marks":
                self._on_marks(m, seq)
                self._advance(seq)
            elif kind == "error":
                self.last_error = str(m.get("message"))[:300]
            elif kind == "ack" and isinstance(m.get("status"), dict):
                self._post_status(m["status"])

    def _on_marks(self, m: dict[str, Any], seq: int) -> None:
        """A ``marks`` message: the session's current marks (``history``) or a new one (rows may overtake a
        mark on the server's queue, so an older seq is not a duplicate)."""
        items = [x for x in m.get("marks") or () if isinstance(x, dict) and isinstance(x.get("time_ns"), int)]
        if m.get("history") is True:
            self._replace_marks(items)
            return
        self._seq = max(self._seq, seq)
        for x in items:
            y = x.get("y")
            self._on_event(MarkEvent(
                seq, self.id, int(x["time_ns"]), float(y) if isinstance(y, (int, float)) else None,
                x.get("text") if isinstance(x.get("text"), str) else None,
                x.get("side") if isinstance(x.get("side"), str) else None,
            ))

    def _on_frame(self, decoder: wire.FrameDecoder, data: bytes, history: bool) -> None:
        try:
            header, cols = decoder.decode(data)
        except wire.WireError as exc:
            self.last_error = str(exc)[:300]
            return
        ts = cols.pop(wire.TIME_NS_COLUMN, None)
        ms = cols.pop(wire.TIME_MS_COLUMN, None)
        if ts is None:
            ts = np.round(np.asarray(ms, np.float64) * 1e6).astype(np.int64)
        ts = np.array(ts, np.int64)
        values = {k: np.array(v) for k, v in cols.items()}  # own the memory (frames are views of the message)
        seq = int(header.get("seq") or 0)
        history = history or bool(header.get("history"))
        try:
            mode = Mode(header.get("mode") or "replay")
        except ValueError:
            mode = Mode.REPLAY
        pos = header.get("position")
        batch = Batch(
            seq, self.id, mode, ts, values, int(header.get("first_row") or 0),
            int(pos) if isinstance(pos, int) and not isinstance(pos, bool) else None, header.get("warmup") is True,
        )
        if history:
            self._replace_mirror(batch)
            self._advance(seq)
            self._synced.set()
            return
        if seq <= self._seq:
            return  # already seen (resume overlap)
        self._on_event(batch)
        self._run_callbacks(batch, self._clock)
        if len(self._callbacks):  # once they ran, the server may release the next rows (its hold)
            self._dispatch(self._acknowledge, seq)
        self._advance(seq)

    async def _wait_for_callbacks(self) -> None:
        """Back-pressure on this session only: the next frame waits until the worker has room."""
        with self._cond:
            self._parked = True
            self._cond.notify_all()
        try:
            await self._callback_room()
        finally:
            with self._cond:
                self._parked = False

    def _acknowledge(self, seq: int) -> None:
        """On the worker, after the callbacks of batch ``seq``: ``ack_frames`` (on the socket's thread)."""
        try:
            self.runner.loop.call_soon_threadsafe(self._send_ack, seq)
        except RuntimeError:  # the loop is gone (interpreter shutdown)
            pass

    def _send_ack(self, seq: int) -> None:
        conn = self._ws
        if conn is not None:
            try:
                conn.write_message(wire.dumps({"type": "ack_frames", "seq": seq}))
            except Exception:  # noqa: BLE001 - the socket closed meanwhile: the server stops waiting on it
                pass

    # ------------------------------------------------------------------ life cycle
    def close(self) -> None:
        """Disconnect (the server session itself stays; it belongs to the kernel)."""
        if self._closed:
            return
        self._closed = True
        self._close_callbacks()
        task = self._task

        def cancel() -> None:
            if self._ws is not None:
                try:
                    self._ws.close()
                except Exception:  # noqa: BLE001 - closing: best effort
                    pass
            if task is not None:
                task.cancel()

        try:
            self.runner.call(cancel, timeout=5)
        except Exception:  # noqa: BLE001 - closing: best effort
            pass
        with self._lock:
            self._subscribers.clear()
            self._callbacks.clear()
