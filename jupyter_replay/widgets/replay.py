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

import functools
import hashlib
import logging
import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import pandas as pd
import traitlets
from traitlets import Dict, TraitError, Unicode, observe, validate

from .. import controls, wire
from ..batch import Batch
from ..controls import State
from ..exceptions import InvalidValueError, ReplayError, brief
from ..runner import ThreadedSession
from ..sources import ReplaySource, as_source
from . import attach, plots
from .comm import FRAME_RATE, CommSender

__all__ = ["Replay", "replay", "InvalidTraitValue", "FRAME_RATE"]

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
MODES = ("replay", "live")
_LIVE_FALLBACK_DTYPES = {"price": np.dtype(np.float64), "size": np.dtype(np.int64), "side": np.dtype(np.int8)}


@functools.cache
def bundle_bytes() -> bytes:
    """The widget bundle (static/replay.js) the loader asks for."""
    return (STATIC / "replay.js").read_bytes()


@functools.cache
def bundle_id() -> str:
    return hashlib.sha256(bundle_bytes()).hexdigest()[:16]


class InvalidTraitValue(TraitError, InvalidValueError):
    """A bad value for a ``Replay`` trait (both a ``TraitError`` and an ``InvalidValueError``)."""


# ----------------------------------------------------------------------------------- helpers


def _trait_error(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``parse`` raising ``InvalidTraitValue`` (a ``TraitError`` and an ``InvalidValueError``) instead."""

    def checked(value: Any) -> Any:
        try:
            return parse(value)
        except InvalidValueError as exc:
            raise InvalidTraitValue(str(exc)) from None

    return checked


#: The traits' value rules: the control table's normalisers, as for REST, WebSocket and the engine.
check_speed = _trait_error(lambda v: controls.speed_to_json(controls.parse_speed(v)))
check_loop = _trait_error(controls.parse_loop)
check_mode = _trait_error(lambda v: controls.parse_mode(v).value)
check_symbol = _trait_error(controls.check_symbol)
#: Speeds a session reports are taken as they are (a server may allow more than the local default).
_reported_speed = _trait_error(
    lambda v: controls.speed_to_json(controls.parse_speed(v, controls.Policy(max_speed=math.inf)))
)


def _live_dtypes(factory: Callable[[str], Any] | None, symbol: str) -> dict[str, np.dtype]:
    if factory is None:
        from ..sources.synthetic import SyntheticFeed

        factory = SyntheticFeed
    dtypes = getattr(factory, "dtypes", None)
    if not isinstance(dtypes, Mapping):
        try:
            dtypes = factory(symbol).dtypes
        except Exception:  # noqa: BLE001 - the feed may not be constructible here; price/size is the usual shape
            dtypes = None
    found: Mapping[str, Any] = dtypes if isinstance(dtypes, Mapping) else _LIVE_FALLBACK_DTYPES
    return {str(k): np.dtype(v) for k, v in found.items()}


def _live_spec_kwargs(
    spec_kwargs: Mapping[str, Any], live_dtypes: Mapping[str, Any], replay_spec: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The replay plot's options that the live feed's columns can honour (the others fall back to the
    defaults); with ``by=`` the live plot keeps the replay's groups, so each keeps its colour across modes."""
    def present(names: Any) -> bool:
        return names is not None and all(c in live_dtypes for c in ([names] if isinstance(names, str) else names))

    out = dict(spec_kwargs)
    out["y"] = spec_kwargs["y"] if present(spec_kwargs["y"]) else None
    out["volume"] = spec_kwargs["volume"] if present(spec_kwargs["volume"]) else None
    out["ohlc"] = spec_kwargs["ohlc"] if present(spec_kwargs["ohlc"]) else None
    by = spec_kwargs["by"]
    if replay_spec is None:  # no data: the live plot is the only one, by= and groups= apply as given
        return out
    groups = replay_spec.get("groups") or spec_kwargs["groups"]
    live_by = by is not None and by in live_dtypes and groups is not None
    out["by"], out["groups"] = (by, groups) if live_by else (None, None)
    return out


def _live_title(factory: Callable[[str], Any] | None) -> str:
    """The LIVE plot's title: says which feed it is (not the replayed data's title), and that the
    default feed is synthetic (a random walk, not the market)."""
    if factory is None:
        return "LIVE: synthetic feed (random walk; pass live_factory= for a real feed)"
    name = getattr(factory, "__name__", None) or type(factory).__name__
    return f"LIVE: {str(name)[:60]}"


def _check_kwargs(cls: type[traitlets.HasTraits], kwargs: Mapping[str, Any]) -> None:
    """Keyword arguments beyond the signature may only be widget traits (e.g. ``layout``): anything else
    is a ``TypeError`` naming it, never silently swallowed by traitlets."""
    unknown = sorted(k for k in kwargs if k not in cls.class_trait_names() or k.startswith("_"))
    if unknown:
        raise TypeError(
            f"replay() got unexpected keyword argument(s) {', '.join(brief(k, 40) for k in unknown[:10])}"
            + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
            + "; see help(jupyter_replay.replay) for the options"
        )


def _source_options(data: Any, *, dropna: bool, sort: bool, time_unit: str | None) -> dict[str, Any]:
    """The data options given (defaults are left out, so sources that do not take them are not bothered)."""
    opts: dict[str, Any] = {}
    if dropna:
        opts["dropna"] = True
    if not sort:
        opts["sort"] = False
    if time_unit is not None:
        opts["time_unit"] = time_unit
    if opts and isinstance(data, ReplaySource):
        raise InvalidValueError(
            f"{sorted(opts)} apply when the data is converted; pass them to the source you built instead"
        )
    return opts


class _Control(traitlets.TraitType):
    """A trait checked by one of the control table's normalisers (None is never skipped)."""

    allow_none = False

    def __init__(self, default_value: Any, check: Callable[[Any], Any], info_text: str, **kwargs: Any) -> None:
        self._check = check
        self.info_text = info_text
        super().__init__(default_value, **kwargs)

    def validate(self, obj: Any, value: Any) -> Any:
        if self._check is check_speed and getattr(obj, "_is_syncing", False):
            return _reported_speed(value)
        return self._check(value)

    def _validate(self, obj: Any, value: Any) -> Any:
        value = self.validate(obj, value)  # None included: never skipped
        if obj._cross_validation_lock is False:
            value = self._cross_validate(obj, value)
        return value


# ------------------------------------------------------------------------------------ widget


class Replay(anywidget.AnyWidget):
    """Controls + streaming Bokeh plot of one replay session, and its Python API.

    Traits (synced with the browser): ``status`` (read-only), ``speed``, ``loop``, ``mode``, ``symbol``,
    ``kernel_id`` (read-only), ``plot`` (read-only), ``attached`` (read-only). Setting ``speed``/``loop``/
    ``mode``/``symbol`` acts on the authoritative session; bad values raise ``TraitError``
    (``InvalidTraitValue``, also an ``InvalidValueError``) and change nothing.
    """

    #: The per-model ESM is a small loader (js/loader/loader.js); it asks the kernel for the bundle
    #: (static/replay.js) once per page, so saved notebooks do not hold the bundle once per widget.
    _esm = STATIC / "loader.js"
    _css = STATIC / "replay.css"
    bundle = Unicode("", read_only=True, help="Version (sha256 prefix) of the widget bundle the loader fetches.").tag(
        sync=True
    )

    status = Dict(read_only=True, help="Session status (state, mode, position, buffer_rows, ...); read-only.").tag(
        sync=True
    )
    speed = _Control(
        1.0, check_speed, f"a number in [{controls.MIN_SPEED:g}, {controls.MAX_SPEED:g}] (e.g. 10 or '10x') or 'max'",
        help="Replay speed (controls.parse_speed): a number or 'Nx' text, or 'max'.",
    ).tag(sync=True)
    loop = _Control(False, check_loop, "True or False",
                    help="Restart from the beginning at the end of the data.").tag(sync=True)
    mode = _Control("replay", check_mode, "'replay' or 'live'",
                    help="'replay' (recorded data) or 'live' (live feed of `symbol`).").tag(sync=True)
    symbol = _Control("DEMO", check_symbol, "a symbol (controls.check_symbol)",
                      help="Instrument of the live feed.").tag(sync=True)
    kernel_id = Unicode("", read_only=True, help="Id of the kernel owning this widget ('' outside a kernel).").tag(
        sync=True
    )
    plot = Dict(read_only=True, help="Plot specs per mode: {'replay': spec, 'live': spec} (Bokeh json_item).").tag(
        sync=True
    )
    attached = Unicode(
        "", read_only=True, help="Id of the server session this widget is a client of ('' = local)."
    ).tag(sync=True)

    _FROM_FRONTEND_IGNORED = frozenset({"status", "kernel_id", "plot", "attached", "bundle"})

    def __init__(
        self,
        data: Any = None,
        time: str | None = None,
        *,
        columns: Sequence[str] | None = None,
        kind: str | None = None,
        y: str | Sequence[str] | None = None,
        volume: str | None = None,
        bar: Any = None,
        by: str | None = None,
        groups: Sequence[Any] | None = None,
        ohlc: Sequence[str] | None = None,
        title: str = "",
        height: int = 300,
        speed: float | str = 1,
        loop: bool = False,
        buffer_rows: int = 100_000,
        symbol: str = "DEMO",
        live_factory: Callable[[str], Any] | None = None,
        timer: Any = None,
        dropna: bool = False,
        sort: bool = True,
        time_unit: str | None = None,
        rate: float | str | None = None,
        **kwargs: Any,
    ) -> None:
        _check_kwargs(type(self), kwargs)
        speed_v = check_speed(speed)
        loop = check_loop(loop)
        sym = check_symbol(symbol)
        if kind is None:
            kind = "ohlc" if ohlc is not None else "line"
        if kind not in plots.KINDS:
            raise InvalidValueError(f"kind must be one of {plots.KINDS}, got {brief(kind)}")
        if isinstance(buffer_rows, bool) or not isinstance(buffer_rows, int) or buffer_rows < 1:
            raise InvalidValueError(f"buffer_rows must be an int >= 1, got {buffer_rows!r}")
        source_options = _source_options(data, dropna=dropna, sort=sort, time_unit=time_unit)
        source = as_source(data, time, columns=columns, **source_options) if data is not None else None
        self._tls = threading.local()
        self._lock = threading.RLock()
        self._callbacks: list[Callable[..., Any]] = []
        self._reset_callbacks: list[Callable[..., Any]] = []
        self._status_seq = -1
        self._closed = True  # until the session and the sender exist
        self._has_view = False  # set by the first message of a rendered view (no view: no frames sent)
        self._source = source
        self._buffer_rows = buffer_rows
        self._remote: Any = None
        self._local: ThreadedSession | None = None
        spec_kwargs: dict[str, Any] = {
            "y": y, "volume": volume, "ohlc": ohlc, "by": by, "groups": groups, "rollover": buffer_rows,
            "title": title, "height": height,
        }
        bar_ms = None
        if bar is not None:
            from ..timeconv import to_duration_ns

            bar_ms = to_duration_ns(bar) / 1e6
        specs = {}
        if source is not None:
            values = getattr(source, "data", None)  # in-memory sources: the empty plot spans their values
            times = getattr(source, "ts", None)  # ... and their row spacing sets bar widths
            specs["replay"] = plots.plot_spec(
                kind, source.dtypes, bar_ms=bar_ms, span_ns=int(source.end_ns - source.start_ns),
                time_ns=(int(source.start_ns), int(source.end_ns)),
                values=values if isinstance(values, Mapping) else None,
                times_ns=times if isinstance(times, np.ndarray) else None, **spec_kwargs,
            )
        live_dtypes = _live_dtypes(live_factory, sym)
        live_kwargs = dict(_live_spec_kwargs(spec_kwargs, live_dtypes, specs.get("replay")),
                           title=_live_title(live_factory))
        specs["live"] = plots.plot_spec(kind, live_dtypes, bar_ms=bar_ms or 1_000, **live_kwargs)
        if "replay" not in specs:
            specs["replay"] = specs["live"]
        session_kwargs: dict[str, Any] = {
            "buffer_rows": buffer_rows, "speed": speed_v, "loop": loop, "symbol": sym,
            "rate": controls.parse_rate(rate),
        }
        if live_factory is not None:
            session_kwargs["live_factory"] = live_factory
        if timer is not None:
            session_kwargs["timer"] = timer
        self._local = ThreadedSession(source, **session_kwargs)
        self._session: Any = self._local
        self._sender = CommSender(self)
        self._local.on_callback_error(self._sender.push_error)
        try:
            self._unsubscribe = self._session.subscribe(self._sender.push)
            with self._syncing():
                self.set_trait("kernel_id", attach.kernel_id())
                self.set_trait("bundle", bundle_id())
                self.set_trait("plot", specs)
                super().__init__(speed=speed_v, loop=loop, symbol=sym, mode="replay", **kwargs)
        except BaseException:
            self._local.close()
            raise
        self._closed = False
        self.on_msg(self._on_frontend_msg)
        self._sender.start()
        self._refresh_status()

    # ------------------------------------------------------------------ deferred comm
    # A widget model (its comm, its synced state: plot specs, status) exists only once the widget is shown:
    # a Replay built in a loop or a script and never displayed puts nothing into the saved notebook.
    _shown = False

    def open(self) -> None:
        """Open the comm only once the widget is displayed (``_repr_mimebundle_``) or put in a container."""
        if self._shown:
            super().open()

    def _show(self) -> None:
        if not self._shown:
            self._shown = True
            super().open()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        self._show()
        return super()._repr_mimebundle_(**kwargs)

    @property
    def model_id(self) -> str:
        """The comm id (opening the comm: a container referencing this widget displays it)."""
        self._show()
        return super().model_id

    # ------------------------------------------------------------------ sync helpers
    class _SyncCtx:
        def __init__(self, widget: Replay) -> None:
            self.widget = widget

        def __enter__(self) -> None:
            self.widget._lock.acquire()
            self.prev = getattr(self.widget._tls, "syncing", False)
            self.widget._tls.syncing = True

        def __exit__(self, *exc: Any) -> None:
            self.widget._tls.syncing = self.prev
            self.widget._lock.release()

    def _syncing(self) -> Replay._SyncCtx:
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
            except Exception:  # noqa: BLE001 - closing, or the server went away
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
                self._session.set_loop(value)
        return value

    @validate("mode")
    def _validate_mode(self, proposal: Any) -> str:
        mode = proposal["value"]  # already normalised by the trait
        if not self._is_syncing:
            with self._lock:
                self._session.set_mode(mode, self.symbol)
        return mode

    @validate("symbol")
    def _validate_symbol(self, proposal: Any) -> str:
        value = proposal["value"]
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
        """Run a control, then mirror the status. Not under ``_lock``: ``step``/``seek`` wait for this
        replay's callbacks, and a callback may call a control (or set a trait) of this ``Replay``."""
        self._check_open()
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

    def seek(
        self, target: Any = None, *, fraction: float | None = None, row: int | None = None, warmup: Any = None,
    ) -> int:
        """Jump to a timestamp (anything ``pd.Timestamp`` takes, or int ns), a ``fraction`` in [0, 1] or a
        ``row``; returns the new position. A float ``target`` is taken as a fraction. The buffer and plot
        are cleared, then ``warmup`` (rows, or a span of data time such as ``"30D"``/``"3M"``) before the
        cut is put back: it is drawn and reaches ``on_batch`` callbacks as batches with ``warmup=True``."""
        if isinstance(target, float) and fraction is None:
            target, fraction = None, target
        return self._act(lambda: self._session.seek(target, fraction=fraction, row=row, warmup=warmup))

    @property
    def rate(self) -> float | None:
        """Rows (bars) per second when pacing by rows, None when pacing by data time (``speed``).

        ``r.rate = 5`` replays five rows a second whatever their spacing (monthly bars included);
        ``r.rate = None`` or setting ``r.speed`` goes back to data-time pacing."""
        return self._control_status().get("rate")

    @rate.setter
    def rate(self, value: Any) -> None:
        self._act(lambda: self._session.set_rate(value))

    def on_batch(self, fn: Callable[[Batch, Any], Any]) -> Callable[[Batch, Any], Any]:
        """Decorator: ``fn(batch, clock)`` runs (on a background thread) for every batch, in both modes.

        A failing callback never stops the replay: its first failure is logged with the traceback (logger
        ``jupyter_replay.client``; with logging not configured it appears as stderr output) and shown in the
        widget's status line; every failure is counted in ``status["callback_errors"]`` on every host.
        """
        self._callbacks.append(fn)
        self._session.on_batch(fn)
        return fn

    def mark(self, time: Any = None, y: Any = None, text: Any = None, side: Any = None) -> None:
        """Put a marker on the plot: ``side="buy"`` (green triangle below the line) / ``"sell"`` (red,
        above) and/or a ``text`` label (at most 200 characters), at ``time`` (default: the last released
        row) and ``y`` (default: the plotted value there). Cleared on every reset (stop, seek, mode).
        An ``on_batch`` callback may also return marks: a dict of these arguments, a list or a DataFrame."""
        self._act(lambda: self._session.mark(time, y, text, side))

    @property
    def marks(self) -> pd.DataFrame:
        """The plot's marks since the last reset (``time``, ``y``, ``text``, ``side``)."""
        return self._session.marks

    def on_reset(self, fn: Callable[[str, int | None], Any]) -> Callable[[str, int | None], Any]:
        """Decorator: ``fn(reason, position)`` after every reset (stop, seek, mode switch, loop, restart).

        ``position`` is the source row where the replay resumes (0 on a restart, the old position after
        LIVE -> REPLAY); every batch's ``position`` is the source row of its first row, so a callback can
        tell a resume from a restart. Runs where ``on_batch`` callbacks run, in order with them.
        """
        self._reset_callbacks.append(fn)
        self._session.on_reset(fn)
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
        except Exception:  # noqa: BLE001 - closing: best effort
            pass
        for sess in (self._remote, self._local):
            if sess is not None:
                try:
                    sess.close()
                except Exception:
                    log.debug("closing session failed", exc_info=True)
        attach.release(self)
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

    def _request_history(self) -> None:
        """Queue the buffer snapshot behind the rows already queued (consistent with the seq order)."""
        local = self._local
        if local is None or self._session is not local:
            return
        sess = local.session

        def snap() -> None:
            self._sender.push_history(sess.buffer.to_chunk(), sess.seq, sess.mode.value, list(sess.marks))

        local.runner.call(snap)

    def _on_frontend_msg(self, _widget: Any, content: Any, buffers: list[Any]) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        if kind == "need_esm":  # the loader, before any view exists: no rows yet
            self._send_custom({"type": "esm"}, [bundle_bytes()])
            return
        self._has_view = True
        try:
            if kind == "control":
                args = {k: v for k, v in content.items() if k not in ("type", "action", "id")}
                self.control(str(content.get("action")), args, wait=False)
            elif kind == "need_bokeh":
                self._send_custom({"type": "bokehjs"}, [attach.bokehjs_code()])
            elif kind == "history":
                self._request_history()
            elif kind == "attach":
                self._attach(content)
        except ReplayError as exc:
            self._send_custom(wire.error_message(exc.http_status, str(exc)))
        except TraitError as exc:
            self._send_custom(wire.error_message(400, str(exc)))
        except Exception as exc:  # report instead of dying silently in the kernel log
            log.exception("jupyter_replay widget message %r failed", kind)
            self._send_custom(wire.error_message(500, f"{type(exc).__name__}: {exc}"[:300]))

    def control(self, action: str, args: dict[str, Any] | None = None, *, wait: bool = True) -> dict[str, Any]:
        """Any action of the control table (``controls.CONTROLS``) by name, with the argument names REST and
        WebSocket take (the browser's buttons come through here on the kernel-local path, ``wait=False``:
        the kernel's shell thread is not held while the callbacks of a step or seek run); returns status."""
        return self._act(lambda: self._session.control(action, args, wait=wait))

    # ------------------------------------------------------------------ attach to the server session
    def _attach(self, msg: dict[str, Any]) -> None:
        request = attach.AttachRequest(msg)
        session_id = request.session_id
        if self.attached == session_id:
            self._send_custom({"type": "attach_result", "ok": True, "session": session_id})
            return
        if not attach.claim(session_id, self):
            self._send_custom({"type": "attach_result", "ok": False, "session": session_id,
                               "message": "another Replay of this kernel uses the server session"})
            return
        try:
            self._switch_to_server(request)
        except Exception:
            attach.release(self, session_id)
            raise
        self._send_custom({"type": "attach_result", "ok": True, "session": session_id})

    def _switch_to_server(self, request: attach.AttachRequest) -> None:
        local = self._local
        assert local is not None
        with self._lock:
            remote, was_playing = attach.connect(
                local, request, source=self._source, buffer_rows=self._buffer_rows, symbol=self.symbol,
                callbacks=self._callbacks, reset_callbacks=self._reset_callbacks,
            )
            # from here on the server session is authoritative
            self._unsubscribe()
            self._remote = remote
            self._session = remote
            self._status_seq = -1
            self._unsubscribe = remote.subscribe(self._sender.push)
            remote.on_callback_error(self._sender.push_error)
            with self._syncing():
                self.set_trait("attached", request.session_id)
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
    kind: str | None = None,
    y: str | Sequence[str] | None = None,
    by: str | None = None,
    groups: Sequence[Any] | None = None,
    ohlc: Sequence[str] | None = None,
    speed: float | str = 1,
    loop: bool = False,
    buffer_rows: int = 100_000,
    symbol: str = "DEMO",
    **kwargs: Any,
) -> Replay:
    """Replay ``data`` (DataFrame, ``.parquet``/``.csv`` path, dict/list of frames, or a ``ReplaySource``).

    ``time`` names the time column (default: ``timestamp``, a DatetimeIndex, or the only datetime column);
    ``dropna=True`` drops rows whose time is missing, ``sort=False`` refuses unsorted data,
    ``time_unit="s"|"ms"|"us"|"ns"`` reads an integer time column as epoch seconds/... (default ns).
    Unknown keyword arguments raise ``TypeError``.
    ``kind`` is ``"line"`` (``y`` columns vs time) or ``"ohlc"`` (candles with a volume panel, ``volume=``):
    ``ohlc=("open", "high", "low", "close")`` draws each row as a bar (implies ``kind="ohlc"``; candle width
    0.7 of the rows' typical spacing: daily, weekly, monthly data), else one price column ``y`` is bucketed
    into bars of ``bar=`` (e.g. ``"5s"``; default: ~120 bars, at least the row spacing); ``kind="ohlc"``
    with several ``y`` columns is an error pointing to ``ohlc=``.
    ``by="symbol"`` (long format ``date, symbol, price``) draws one series per group with a legend
    (click hides a series) and fixed colours (groups sorted); ``groups=[...]`` names the groups to draw
    (required when the data is not in memory; at most 32); rows of other groups are not drawn. A series
    skips its NaN rows (merged frames: a stream's columns are NaN on the other stream's rows).
    ``speed`` paces by data time
    (0.1x .. 1000x, one range on every host); ``rate=`` paces by rows per second instead (sparse data:
    monthly bars are ~45 minutes apart at 1000x, ``rate=12`` shows a year a second).
    ``live_factory=`` (a ``LiveSource`` class or ``symbol -> LiveSource``) is the feed LIVE plays; without
    it LIVE is a synthetic random walk (README, "LIVE needs a feed").
    Display the result for controls and a plot.
    """
    return Replay(
        data, time, columns=columns, kind=kind, y=y, by=by, groups=groups, ohlc=ohlc, speed=speed, loop=loop,
        buffer_rows=buffer_rows, symbol=symbol, **kwargs,
    )
