"""``Replay``: the notebook widget (controls + BokehJS plot) that is also the Python API of one replay.

``r = jupyter_replay.replay(df, time="ts")``; displaying ``r`` shows the control bar and the plot.
``r.play()``, ``r.pause()``, ``r.seek(...)``, ``r.speed = 10``, ``r.mode = "live"``, ``r.buffer``,
``@r.on_batch`` drive the same session the browser controls drive (docs/design.md, "Widgets").

Who is authoritative:

- **local** (no server extension reachable: nbval, nbclient, VS Code, scripts, or before the browser
  attached): a kernel-local ``ThreadedSession``. Browser controls arrive as custom comm messages; rows
  go to the browser as binary comm messages, coalesced to at most ``FRAME_RATE`` per second.
- **attached**: the browser created the kernel's server session and sent ``attach``; the kernel
  uploaded its data and settings and became a client of that session (``RemoteSession``). Rows reach the
  browser over the extension's WebSocket, not iopub; Python controls go to the server over REST.
  Only one ``Replay`` per kernel can attach (the server has one session per kernel); the others stay local.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
import weakref
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import anywidget
import numpy as np
import pandas as pd
import traitlets
from traitlets import Bool, Dict, TraitError, Unicode, observe, validate

from .. import wire
from ..batch import TIME_COLUMN, Batch, ResetEvent, StateEvent
from ..controller import MAX_SPEED, MIN_SPEED, State, parse_speed
from ..exceptions import DataError, InvalidValueError, ReplayError
from ..runner import ThreadedSession
from ..session import check_symbol
from ..sources.base import ReplaySource
from . import plots

__all__ = ["Replay", "replay", "make_source", "InvalidTraitValue", "FRAME_RATE"]

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
#: Most binary frame messages per second sent to the browser on the local path.
FRAME_RATE = 30.0
#: Most ``status`` refreshes per second while rows flow (state changes are sent at once).
STATUS_RATE = 4.0
MODES = ("replay", "live")
_LIVE_FALLBACK_DTYPES = {"price": np.dtype(np.float64), "size": np.dtype(np.int64), "side": np.dtype(np.int8)}

# server session id -> the Replay attached to it (the server keeps one session per kernel)
_CLAIMS: "weakref.WeakValueDictionary[str, Replay]" = weakref.WeakValueDictionary()
_CLAIMS_LOCK = threading.Lock()
_BOKEHJS: bytes | None = None


class InvalidTraitValue(TraitError, InvalidValueError):
    """A bad value for a ``Replay`` trait (both a ``TraitError`` and an ``InvalidValueError``)."""


# ----------------------------------------------------------------------------------- helpers


def kernel_id() -> str:
    """The id of the kernel this code runs in ("" outside a Jupyter kernel)."""
    try:
        from ipykernel.connect import get_connection_file

        name = os.path.basename(get_connection_file())
    except Exception:  # not in a kernel
        return ""
    m = re.match(r"kernel-(.+)\.json$", name)
    return m.group(1) if m else ""


def bokehjs_code() -> bytes:
    """BokehJS (core bundle) from the installed bokeh package: inline, never a CDN."""
    global _BOKEHJS
    if _BOKEHJS is None:
        from bokeh.util.paths import bokehjs_path

        _BOKEHJS = (Path(bokehjs_path()) / "js" / "bokeh.min.js").read_bytes()
    return _BOKEHJS


def _guess_time(df: pd.DataFrame) -> str | None:
    if TIME_COLUMN in df.columns:
        return TIME_COLUMN
    if isinstance(df.index, pd.DatetimeIndex):
        return None
    dt_cols = [c for c in df.columns if pd.api.types.is_datetime64_any_dtype(df[c])]
    if len(dt_cols) == 1:
        return str(dt_cols[0])
    raise DataError(
        "cannot tell which column holds the time: pass time=<column> "
        f"(columns: {[str(c) for c in df.columns]})"
    )


def make_source(data: Any, time: str | None = None, columns: Sequence[str] | None = None) -> ReplaySource:
    """A ``ReplaySource`` for ``data``: a source, a DataFrame, a ``.parquet``/``.csv`` path, or a dict/list
    of DataFrames (merged by time). ``time=None`` finds the time column (``timestamp``, a DatetimeIndex or
    the only datetime column)."""
    if isinstance(data, ReplaySource):
        return data
    if isinstance(data, pd.DataFrame):
        from ..sources.dataframe import DataFrameSource

        return DataFrameSource(data, time=time if time is not None else _guess_time(data), columns=columns)
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        suffix = path.suffix.lower()
        tcol = time if time is not None else TIME_COLUMN
        if suffix in (".parquet", ".pq"):
            from ..sources.parquet import ParquetSource

            return ParquetSource(path, time=tcol, columns=columns)
        if suffix in (".csv", ".gz", ".txt"):
            from ..sources.csv import CSVSource

            return CSVSource(path, time=tcol, columns=columns)
        raise DataError(f"cannot replay {str(path)!r}: expected a .parquet or .csv file")
    if isinstance(data, Mapping) or (isinstance(data, (list, tuple)) and data):
        from ..sources.merged import MergedSource

        items = data.values() if isinstance(data, Mapping) else data
        first = next(iter(items))
        tcol = time if time is not None else (_guess_time(first) if isinstance(first, pd.DataFrame) else TIME_COLUMN)
        return MergedSource(data, time=tcol)
    raise DataError(f"cannot replay a {type(data).__name__}: pass a DataFrame, a path or a ReplaySource")


def check_speed(value: Any) -> float | str:
    """``"max"`` or a float in [MIN_SPEED, MAX_SPEED]; ``InvalidTraitValue`` otherwise.

    Stricter than the engine's ``parse_speed``: the only text accepted is ``"max"`` (no ``"10x"``,
    ``"inf"``), and infinity must be spelled ``"max"``.
    """
    if isinstance(value, str) and value.strip().lower() == "max":
        return "max"
    try:
        speed = None if isinstance(value, str) else parse_speed(value)
    except InvalidValueError as exc:
        raise InvalidTraitValue(str(exc)) from None
    if speed is None or math.isinf(speed):
        raise InvalidTraitValue(f"speed must be a number in [{MIN_SPEED:g}, {MAX_SPEED:g}] or 'max', got {value!r}")
    return speed


def _live_dtypes(factory: Callable[[str], Any] | None, symbol: str) -> dict[str, np.dtype]:
    if factory is None:
        from ..sources.synthetic import SyntheticFeed

        factory = SyntheticFeed
    dtypes = getattr(factory, "dtypes", None)
    if not isinstance(dtypes, Mapping):
        try:
            dtypes = factory(symbol).dtypes
        except Exception:  # the feed may not be constructible here; price/size is the usual shape
            dtypes = None
    return dict(dtypes) if isinstance(dtypes, Mapping) else dict(_LIVE_FALLBACK_DTYPES)


class Speed(traitlets.TraitType):
    """Trait: a float in [MIN_SPEED, MAX_SPEED] or ``"max"`` (None, bools, NaN, inf and other text refused)."""

    default_value = 1.0
    allow_none = False
    info_text = f"a number in [{MIN_SPEED:g}, {MAX_SPEED:g}] or 'max'"

    def validate(self, obj: Any, value: Any) -> float | str:
        return check_speed(value)

    def _validate(self, obj: Any, value: Any) -> Any:
        value = self.validate(obj, value)  # None included: never skipped
        if obj._cross_validation_lock is False:
            value = self._cross_validate(obj, value)
        return value


# ----------------------------------------------------------------------------- frame sender


class _Sender(threading.Thread):
    """Takes session events (from the engine's thread) and sends them to the browser and the traits.

    Batches in between are merged, so at most ``FRAME_RATE`` frame messages go out per second; resets
    and history keep their order relative to the rows.
    """

    def __init__(self, widget: "Replay") -> None:
        super().__init__(name="jupyter-replay-sender", daemon=True)
        self._widget = weakref.ref(widget)
        self._items: deque[Any] = deque()
        self._cond = threading.Condition()
        self._stopped = False
        self._last_send = 0.0
        self._last_status = 0.0
        self.frames_sent = 0

    def push(self, item: Any) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def run(self) -> None:
        dirty_status = False
        while True:
            with self._cond:
                if not self._items and not self._stopped:
                    self._cond.wait(1.0 / STATUS_RATE if dirty_status else None)
                if self._stopped:
                    return
            # coalesce: wait until one frame interval passed since the last send
            wait = self._last_send + 1.0 / FRAME_RATE - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            with self._cond:
                items = list(self._items)
                self._items.clear()
            widget = self._widget()
            if widget is None:
                return
            try:
                dirty_status = self._process(widget, items, dirty_status)
            except Exception:  # never let the sender die: the browser would freeze
                log.exception("jupyter_replay widget sender failed")
            del widget

    def _process(self, widget: "Replay", items: list[Any], dirty_status: bool) -> bool:
        run: list[Batch] = []
        urgent = False

        def flush() -> None:
            if run:
                if widget._frames_to_browser():
                    widget._send_frame(wire.encode_batches(run, ms_only=True))
                    self.frames_sent += 1
                run.clear()

        for item in items:
            if isinstance(item, Batch):
                if run and (
                    item.mode != run[-1].mode
                    or item.first_row != run[-1].last_row
                    or list(item.columns) != list(run[-1].columns)
                ):
                    flush()
                run.append(item)
                dirty_status = True
            elif isinstance(item, ResetEvent):
                flush()
                if widget._frames_to_browser():
                    widget._send_custom({"type": "reset", "seq": item.seq, "mode": item.mode.value, "reason": item.reason})
                urgent = True
            elif isinstance(item, StateEvent):
                urgent = True
            elif isinstance(item, tuple) and item and item[0] == "history":
                flush()
                widget._send_history(*item[1:])
        flush()
        if items:
            self._last_send = time.monotonic()
        now = time.monotonic()
        if urgent or (dirty_status and now - self._last_status >= 1.0 / STATUS_RATE):
            widget._refresh_status()
            self._last_status = now
            return False
        return dirty_status


# ------------------------------------------------------------------------------------ widget


class Replay(anywidget.AnyWidget):
    """Controls + streaming Bokeh plot of one replay session, and its Python API.

    Traits (synced with the browser): ``status`` (read-only), ``speed``, ``loop``, ``mode``, ``symbol``,
    ``kernel_id`` (read-only), ``plot`` (read-only), ``attached`` (read-only). Setting ``speed``/``loop``/
    ``mode``/``symbol`` acts on the authoritative session; bad values raise ``TraitError``
    (``InvalidTraitValue``, also an ``InvalidValueError``) and change nothing.
    """

    _esm = STATIC / "replay.js"
    _css = STATIC / "replay.css"

    status = Dict(read_only=True, help="Session status (state, mode, position, buffer_rows, ...); read-only.").tag(
        sync=True
    )
    speed = Speed(1.0, help=f"Replay speed: a number in [{MIN_SPEED:g}, {MAX_SPEED:g}] or 'max'.").tag(sync=True)
    loop = Bool(False, help="Restart from the beginning at the end of the data.").tag(sync=True)
    mode = Unicode("replay", help="'replay' (recorded data) or 'live' (live feed of `symbol`).").tag(sync=True)
    symbol = Unicode("DEMO", help="Instrument of the live feed.").tag(sync=True)
    kernel_id = Unicode("", read_only=True, help="Id of the kernel owning this widget ('' outside a kernel).").tag(
        sync=True
    )
    plot = Dict(read_only=True, help="Plot specs per mode: {'replay': spec, 'live': spec} (Bokeh json_item).").tag(
        sync=True
    )
    attached = Unicode("", read_only=True, help="Id of the server session this widget is a client of ('' = local).").tag(
        sync=True
    )

    _FROM_FRONTEND_IGNORED = frozenset({"status", "kernel_id", "plot", "attached"})

    def __init__(
        self,
        data: Any = None,
        time: str | None = None,
        *,
        columns: Sequence[str] | None = None,
        kind: str = "line",
        y: str | Sequence[str] | None = None,
        volume: str | None = None,
        bar: Any = None,
        title: str = "",
        height: int = 300,
        speed: float | str = 1,
        loop: bool = False,
        buffer_rows: int = 100_000,
        symbol: str = "DEMO",
        live_factory: Callable[[str], Any] | None = None,
        timer: Any = None,
        **kwargs: Any,
    ) -> None:
        speed_v = check_speed(speed)
        if not isinstance(loop, bool):
            raise InvalidTraitValue(f"loop must be True or False, got {loop!r}")
        sym = self._check_symbol(symbol)
        if kind not in plots.KINDS:
            raise InvalidValueError(f"kind must be one of {plots.KINDS}, got {kind!r}")
        if isinstance(buffer_rows, bool) or not isinstance(buffer_rows, int) or buffer_rows < 1:
            raise InvalidValueError(f"buffer_rows must be an int >= 1, got {buffer_rows!r}")
        source = make_source(data, time, columns) if data is not None else None
        self._tls = threading.local()
        self._lock = threading.RLock()
        self._callbacks: list[Callable[..., Any]] = []
        self._status_seq = -1
        self._closed = True  # until the session and the sender exist
        self._has_view = False  # set by the first message of a rendered view (no view: no frames sent)
        self._source = source
        self._buffer_rows = buffer_rows
        self._remote: Any = None
        self._local: ThreadedSession | None = None
        spec_kwargs = dict(y=y, volume=volume, rollover=buffer_rows, title=title, height=height)
        bar_ms = None
        if bar is not None:
            from ..timeconv import to_duration_ns

            bar_ms = to_duration_ns(bar) / 1e6
        specs = {}
        if source is not None:
            values = getattr(source, "data", None)  # in-memory sources: the empty plot spans their values
            specs["replay"] = plots.plot_spec(
                kind, source.dtypes, bar_ms=bar_ms, span_ns=int(source.end_ns - source.start_ns),
                time_ns=(int(source.start_ns), int(source.end_ns)),
                values=values if isinstance(values, Mapping) else None, **spec_kwargs,
            )
        live_dtypes = _live_dtypes(live_factory, sym)
        live_y = y if (y is not None and all(c in live_dtypes for c in ([y] if isinstance(y, str) else y))) else None
        live_kwargs = dict(spec_kwargs, y=live_y, volume=volume if volume in live_dtypes else None)
        specs["live"] = plots.plot_spec(kind, live_dtypes, bar_ms=bar_ms or 1_000, **live_kwargs)
        if "replay" not in specs:
            specs["replay"] = specs["live"]
        session_kwargs: dict[str, Any] = dict(buffer_rows=buffer_rows, speed=speed_v, loop=loop, symbol=sym)
        if live_factory is not None:
            session_kwargs["live_factory"] = live_factory
        if timer is not None:
            session_kwargs["timer"] = timer
        self._local = ThreadedSession(source, **session_kwargs)
        self._session: Any = self._local
        self._sender = _Sender(self)
        try:
            self._unsubscribe = self._session.subscribe(self._sender.push)
            with self._syncing():
                self.set_trait("kernel_id", kernel_id())
                self.set_trait("plot", specs)
                super().__init__(speed=speed_v, loop=loop, symbol=sym, mode="replay", **kwargs)
        except BaseException:
            self._local.close()
            raise
        self._closed = False
        self.on_msg(self._on_frontend_msg)
        self._sender.start()
        self._refresh_status()

    # ------------------------------------------------------------------ sync helpers
    class _SyncCtx:
        def __init__(self, widget: "Replay") -> None:
            self.widget = widget

        def __enter__(self) -> None:
            self.widget._lock.acquire()
            self.prev = getattr(self.widget._tls, "syncing", False)
            self.widget._tls.syncing = True

        def __exit__(self, *exc: Any) -> None:
            self.widget._tls.syncing = self.prev
            self.widget._lock.release()

    def _syncing(self) -> "Replay._SyncCtx":
        return Replay._SyncCtx(self)

    @property
    def _is_syncing(self) -> bool:
        return getattr(self._tls, "syncing", False)

    def _refresh_status(self, status: dict[str, Any] | None = None) -> None:
        """Copy the authoritative session's status into the traits (mirrors speed/loop/mode/symbol)."""
        if self._closed:
            return
        if status is None:
            try:
                status = self._session.status()
            except Exception:  # closing, or the server went away
                return
        with self._syncing():
            seq = int(status.get("seq") or 0)
            if seq < self._status_seq:
                return  # an older snapshot raced a newer one
            self._status_seq = seq
            self.set_trait("status", dict(status))
            if "speed" in status and status["speed"] is not None and status["speed"] != self.speed:
                self.speed = status["speed"]
            if "loop" in status and bool(status["loop"]) != self.loop:
                self.loop = bool(status["loop"])
            if status.get("mode") in MODES and status["mode"] != self.mode:
                self.mode = status["mode"]
            if status.get("mode") == "live" and status.get("symbol") and status["symbol"] != self.symbol:
                self.symbol = status["symbol"]

    def set_state(self, sync_data: dict[str, Any]) -> None:
        """State from the browser: read-only traits are ignored (controls come as messages)."""
        sync_data = {k: v for k, v in sync_data.items() if k not in self._FROM_FRONTEND_IGNORED}
        if sync_data:
            super().set_state(sync_data)

    # ------------------------------------------------------------------ validation (-> the session)
    @staticmethod
    def _check_symbol(value: Any) -> str:
        try:
            return check_symbol(value)
        except InvalidValueError as exc:
            raise InvalidTraitValue(str(exc)) from None

    @validate("speed")
    def _validate_speed(self, proposal: Any) -> float | str:
        value = proposal["value"]
        if not self._is_syncing:
            with self._lock:
                self._session.set_speed(value)
        return value

    @validate("loop")
    def _validate_loop(self, proposal: Any) -> bool:
        value = proposal["value"]
        if not self._is_syncing:
            with self._lock:
                self._session.set_loop(bool(value))
        return bool(value)

    @validate("mode")
    def _validate_mode(self, proposal: Any) -> str:
        value = proposal["value"]
        mode = value.strip().lower() if isinstance(value, str) else getattr(value, "value", value)
        if mode not in MODES:
            raise InvalidTraitValue(f"mode must be 'replay' or 'live', got {value!r}")
        if not self._is_syncing:
            with self._lock:
                self._session.set_mode(mode, self.symbol)
        return mode

    @validate("symbol")
    def _validate_symbol(self, proposal: Any) -> str:
        value = self._check_symbol(proposal["value"])
        if not self._is_syncing and self.mode == "live" and value != self.symbol:
            with self._lock:
                self._session.set_mode("live", value)
        return value

    @observe("speed", "loop", "mode", "symbol")
    def _after_python_change(self, change: Any) -> None:
        if not self._is_syncing:
            self._refresh_status()

    # ------------------------------------------------------------------ Python API
    @property
    def session(self) -> Any:
        """The authoritative session: a ``ThreadedSession`` (local) or a ``RemoteSession`` (attached)."""
        return self._session

    @property
    def buffer(self) -> pd.DataFrame:
        """The most recent rows (up to ``buffer_rows``) as a DataFrame with a ``timestamp`` column."""
        return self._session.frame()

    @property
    def clock(self) -> Any:
        """The session's clock (data time in replay, wall time in live)."""
        return self._session.clock

    @property
    def state(self) -> str:
        """``stopped``, ``playing``, ``paused`` or ``finished``."""
        return str(self._control_status().get("state", "stopped"))

    def _control_status(self) -> dict[str, Any]:
        return self._session.status()

    def _act(self, fn: Callable[[], Any]) -> Any:
        self._check_open()
        with self._lock:
            result = fn()
        self._refresh_status()
        return result

    def play(self) -> None:
        """Start or resume (LIVE: resume the feed)."""
        self._act(self._session.play)

    def pause(self) -> None:
        """Pause where it is."""
        self._act(self._session.pause)

    def stop(self) -> None:
        """Stop and rewind to the start (clears the buffer and the plot)."""
        self._act(self._session.stop)

    def step(self, n: int | None = 1, duration: Any = None) -> int:
        """Release the next ``n`` rows (or the rows within ``duration`` of data time) while not playing."""
        return self._act(lambda: self._session.step(None if duration is not None else n, duration=duration))

    def seek(self, target: Any = None, *, fraction: float | None = None) -> int:
        """Jump to a timestamp (anything ``pd.Timestamp`` takes, or int ns) or to a ``fraction`` in [0, 1].

        A float ``target`` is taken as a fraction. The buffer and plot are cleared.
        """
        if isinstance(target, float) and fraction is None:
            target, fraction = None, target
        return self._act(lambda: self._session.seek(target, fraction=fraction))

    def on_batch(self, fn: Callable[[Batch, Any], Any]) -> Callable[[Batch, Any], Any]:
        """Decorator: ``fn(batch, clock)`` runs (on a background thread) for every batch, in both modes.

        Exceptions are logged and counted in ``status["callback_errors"]``; they never stop the replay.
        """
        self._callbacks.append(fn)
        self._session.on_batch(fn)
        return fn

    def wait(self, states: Iterable[str] = ("finished", "paused", "stopped"), timeout: float = 60.0) -> str:
        """Block until the state is one of ``states``; returns it (``TimeoutError`` after ``timeout`` s)."""
        want = {State(s) if not isinstance(s, State) else s for s in states}
        result = self._session.wait(tuple(want), timeout=timeout)
        self._refresh_status()
        return result.value if isinstance(result, State) else str(result)

    def close(self) -> None:
        """Stop the session (local engine or server client) and close the widget."""
        if getattr(self, "_closed", True):  # closed, or __init__ failed before the session existed
            if getattr(self, "comm", None) is not None:
                super().close()
            return
        self._closed = True
        self._sender.stop()
        try:
            self._unsubscribe()
        except Exception:
            pass
        for sess in (self._remote, self._local):
            if sess is not None:
                try:
                    sess.close()
                except Exception:
                    log.debug("closing session failed", exc_info=True)
        with _CLAIMS_LOCK:
            for key, w in list(_CLAIMS.items()):
                if w is self:
                    del _CLAIMS[key]
        super().close()

    def _check_open(self) -> None:
        if self._closed:
            raise ReplayError("this Replay is closed")

    # ------------------------------------------------------------------ browser messages
    def _frames_to_browser(self) -> bool:
        """Rows go over the comm only on the local path, and only once a view exists (a view renders,
        then asks for the buffer: rows before that are in its history). Scripts, nbval and nbclient
        runs, which render nothing, send no frames at all."""
        return self._has_view and not self._closed and not self.attached

    def _send_custom(self, content: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        if self._closed or self.comm is None:
            return
        self.send(content, buffers=buffers)

    def _send_frame(self, frame: bytes) -> None:
        self._send_custom({"type": "frame"}, [frame])

    def _send_history(self, chunk: Any, seq: int, mode: str) -> None:
        if not self._frames_to_browser():
            return
        msg = {"type": "history", "rows": len(chunk), "seq": int(seq), "mode": mode}
        if len(chunk):
            frame = wire.encode_columns(
                {"type": "batch", "seq": int(seq), "first_row": 0, "mode": mode, "history": True},
                chunk.ts, chunk.columns, ms_only=True,
            )
            self._send_custom(msg, [frame])
        else:
            self._send_custom(msg)

    def _request_history(self) -> None:
        """Queue the buffer snapshot behind the rows already queued (consistent with the seq order)."""
        local = self._local
        if local is None or self._session is not local:
            return
        sess = local.session

        def snap() -> None:
            self._sender.push(("history", sess.buffer.to_chunk(), sess.seq, sess.mode.value))

        local.runner.call(snap)

    def _on_frontend_msg(self, _widget: Any, content: Any, buffers: list[Any]) -> None:
        if not isinstance(content, dict):
            return
        self._has_view = True
        kind = content.get("type")
        try:
            if kind == "control":
                args = {k: v for k, v in content.items() if k not in ("type", "action", "id")}
                self._control(str(content.get("action")), args)
            elif kind == "need_bokeh":
                self._send_custom({"type": "bokehjs"}, [bokehjs_code()])
            elif kind == "history":
                self._request_history()
            elif kind == "attach":
                self._attach(content)
        except ReplayError as exc:
            self._send_custom({"type": "error", "status": exc.http_status, "message": str(exc)})
        except TraitError as exc:
            self._send_custom({"type": "error", "status": 400, "message": str(exc)})
        except Exception as exc:  # report instead of dying silently in the kernel log
            log.exception("jupyter_replay widget message %r failed", kind)
            self._send_custom({"type": "error", "status": 500, "message": f"{type(exc).__name__}: {exc}"})

    def _control(self, action: str, args: dict[str, Any]) -> None:
        """A control from the browser (local path): same actions/arguments as REST and WebSocket."""
        if action == "speed" and "speed" in args:
            args = dict(args, speed=check_speed(args["speed"]))
        self._act(lambda: self._session.control(action, args))

    # ------------------------------------------------------------------ attach to the server session
    def _attach(self, msg: dict[str, Any]) -> None:
        session_id = str(msg.get("session") or "")
        token = str(msg.get("client_token") or "")
        server_url = str(msg.get("server_url") or "")
        if not (session_id and token and server_url):
            raise InvalidValueError("attach needs session, client_token and server_url")
        if self.attached == session_id:
            self._send_custom({"type": "attach_result", "ok": True, "session": session_id})
            return
        with _CLAIMS_LOCK:
            owner = _CLAIMS.get(session_id)
            if owner is not None and owner is not self and not owner._closed:
                self._send_custom({"type": "attach_result", "ok": False, "session": session_id,
                            "message": "another Replay of this kernel uses the server session"})
                return
            _CLAIMS[session_id] = self
        try:
            self._attach_to(session_id, token, server_url)
        except Exception:
            with _CLAIMS_LOCK:
                if _CLAIMS.get(session_id) is self:
                    del _CLAIMS[session_id]
            raise
        self._send_custom({"type": "attach_result", "ok": True, "session": session_id})

    def _attach_to(self, session_id: str, token: str, server_url: str) -> None:
        from .remote import RemoteSession

        local = self._local
        assert local is not None
        was_playing = local.state is State.PLAYING
        with self._lock:
            if was_playing:
                local.pause()
            st = local.status()
            remote = RemoteSession(
                server_url, session_id, token, buffer_rows=self._buffer_rows,
                tz=getattr(self._source, "tz", None),
            )
            try:
                if self._source is not None:
                    remote.upload(self._source)
                remote.apply_settings(st, symbol=self.symbol)
                for fn in self._callbacks:
                    remote.on_batch(fn)
                remote.start()
            except Exception:
                remote.close()
                if was_playing:
                    local.play()
                raise
            # from here on the server session is authoritative
            self._unsubscribe()
            self._remote = remote
            self._session = remote
            self._status_seq = -1
            self._unsubscribe = remote.subscribe(self._sender.push)
            with self._syncing():
                self.set_trait("attached", session_id)
            if was_playing:
                remote.play()
        self._local = None
        try:
            local.close()
        except Exception:
            log.debug("closing the local session failed", exc_info=True)
        self._refresh_status()


def replay(
    data: Any,
    time: str | None = None,
    *,
    columns: Sequence[str] | None = None,
    kind: str = "line",
    y: str | Sequence[str] | None = None,
    speed: float | str = 1,
    loop: bool = False,
    buffer_rows: int = 100_000,
    symbol: str = "DEMO",
    **kwargs: Any,
) -> Replay:
    """Replay ``data`` (DataFrame, ``.parquet``/``.csv`` path, dict/list of frames, or a ``ReplaySource``).

    ``time`` names the time column (default: ``timestamp``, a DatetimeIndex, or the only datetime column);
    ``kind`` is ``"line"`` (``y`` columns vs time) or ``"ohlc"`` (candles of ``y`` with a volume panel,
    ``volume=``, bar width ``bar=`` e.g. ``"5s"``). Display the result for controls and a plot.
    """
    return Replay(
        data, time, columns=columns, kind=kind, y=y, speed=speed, loop=loop,
        buffer_rows=buffer_rows, symbol=symbol, **kwargs,
    )
