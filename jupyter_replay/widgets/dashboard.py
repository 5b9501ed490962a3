"""The market replay dashboard: ipywidgets composed around one ``Replay`` (served per visitor by Voilà).

Layout, top to bottom: a header row (REPLAY/LIVE switch, replay symbol picker, live symbol field), the
``Replay`` widget (its control bar and streaming price plot), a latest-snapshot panel (last price, OHLC
of the current bar, bid/ask when the data has quotes, position in the data, mode, state, speed) and a
status line for success and errors.

Everything here goes through the public ``Replay`` API (``play``/``pause``/``speed``/``mode``/``symbol``,
``status``, ``on_batch``), so the dashboard behaves the same on the kernel-local engine (standalone Voilà)
and on the server session (Voilà as a server extension of JupyterLab / JupyterHub). Each kernel runs its
own dashboard, hence each visitor has their own session: nothing here is shared between kernels.
"""

from __future__ import annotations

import html
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as W
import numpy as np
import pandas as pd

from ..exceptions import ReplayError
from ..timeconv import to_duration_ns
from .replay import Replay, replay

log = logging.getLogger(__name__)

#: The demo universe: symbol -> (seed, start price). Distinct price levels make every symbol's rows
#: recognisable in a plot (the browser test checks that a visitor's plot holds only their rows).
SAMPLE_SYMBOLS: dict[str, tuple[int, float]] = {"ACME": (11, 100.0), "GLOBEX": (12, 250.0), "INITECH": (13, 40.0)}

SNAPSHOT_INTERVAL_S = 0.25  # the snapshot panel redraws at most this often while rows stream


def sample_universe(n: int = 20_000) -> dict[str, pd.DataFrame]:
    """One deterministic trade tape per symbol of ``SAMPLE_SYMBOLS`` (``timestamp, price, size, side``)."""
    from .. import sources

    return {sym: sources.sample_trades(n=n, seed=seed, symbol=sym, start_price=price)
            for sym, (seed, price) in SAMPLE_SYMBOLS.items()}


class Snapshot:
    """The latest values of a stream: last row, OHLC of the current bar, bid/ask. Thread-safe.

    Fed by ``on_batch`` (a background thread) and cleared when the session's buffer is reset
    (mode switch, stop, seek), so it never mixes rows of two streams.
    """

    def __init__(self, bar_ns: int) -> None:
        self.bar_ns = bar_ns
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self.values: dict[str, Any] = {}
            self.bar: tuple[int, float, float, float, float] | None = None  # (start_ns, o, h, l, c)
            self.rows = 0

    def update(self, ts: np.ndarray, columns: Mapping[str, np.ndarray]) -> None:
        if not len(ts):
            return
        with self._lock:
            self.rows += len(ts)
            self.values = {name: col[-1].item() if hasattr(col[-1], "item") else col[-1]
                           for name, col in columns.items()}
            self.values["time_ns"] = int(ts[-1])
            price = columns.get("price")
            if price is None or not np.issubdtype(price.dtype, np.number):
                return
            start = int(ts[-1]) // self.bar_ns * self.bar_ns
            in_bar = price[ts >= start]
            o, h, lo = float(in_bar[0]), float(in_bar.max()), float(in_bar.min())
            if self.bar is not None and self.bar[0] == start:  # the bar began in an earlier batch
                o, h, lo = self.bar[1], max(h, self.bar[2]), min(lo, self.bar[3])
            self.bar = (start, o, h, lo, float(price[-1]))

    def html(self, status: Mapping[str, Any]) -> str:
        """The panel as a small HTML table (every value escaped)."""
        with self._lock:
            values, bar = dict(self.values), self.bar
        fmt = lambda v: "-" if v is None else (f"{v:,.2f}" if isinstance(v, float) else str(v))
        cells: list[tuple[str, str]] = [("last", fmt(values.get("price")))]
        if "bid" in values or "ask" in values:
            cells.append(("bid / ask", f"{fmt(values.get('bid'))} / {fmt(values.get('ask'))}"))
        if bar is not None:
            cells.append(("bar O H L C", " ".join(fmt(v) for v in bar[1:])))
        else:
            cells.append(("bar O H L C", "-"))
        mode = str(status.get("mode", "replay"))
        if mode == "replay" and status.get("num_rows"):
            where = f"{int(status.get('position') or 0):,} / {int(status['num_rows']):,}"
            if status.get("position_iso"):
                where += f" ({status['position_iso']})"
        else:
            where = f"{int(status.get('rows') or 0):,} rows"
        cells += [("position", where), ("mode", mode.upper() + (f" {status.get('symbol')}" if mode == "live" else "")),
                  ("state", str(status.get("state", ""))), ("speed", f"{status.get('speed', '')}x")]
        body = "".join(f"<tr><th>{html.escape(k)}</th><td data-key='{html.escape(k)}'>{html.escape(v)}</td></tr>"
                       for k, v in cells)
        return f"<table class='jr-dash-snapshot'>{body}</table>"


class Dashboard:
    """The dashboard of one visitor (one kernel): a symbol universe, one ``Replay`` at a time.

    ``data``: symbol -> DataFrame with a time column (default: ``sample_universe()``). Picking another
    replay symbol starts a fresh replay of that symbol's rows (empty history); the live symbol is the
    ``Replay.symbol`` of the live feed. Display the dashboard (or ``dashboard.widget``) to show it.
    """

    def __init__(self, data: Mapping[str, pd.DataFrame] | None = None, *, time: str = "timestamp",
                 symbol: str | None = None, live_symbol: str = "DEMO", bar: Any = "1s",
                 replay_factory: Callable[..., Replay] = replay, **replay_kwargs: Any) -> None:
        self.data = dict(data) if data is not None else sample_universe()
        if not self.data:
            raise ReplayError("the dashboard needs at least one symbol's data")
        self.time = time
        self._replay_factory = replay_factory
        self._replay_kwargs = dict(replay_kwargs)
        self._replay_kwargs.setdefault("y", "price")
        self._snapshot = Snapshot(to_duration_ns(bar))
        self._render_timer: threading.Timer | None = None
        self._render_lock = threading.Lock()
        self._last_mode = "replay"
        self._last_shown: tuple[Any, ...] | None = None

        symbols = list(self.data)
        self.mode_toggle = W.ToggleButtons(options=[("REPLAY", "replay"), ("LIVE", "live")], value="replay",
                                           description="Mode", style={"button_width": "80px"})
        self.symbol_picker = W.Dropdown(options=symbols, value=symbol or symbols[0], description="Replay")
        self.live_symbol = W.Text(value=live_symbol, description="Live symbol", continuous_update=False)
        self.snapshot = W.HTML(layout=W.Layout(min_height="90px"))
        self.status_line = W.HTML(layout=W.Layout(min_height="1.6em"))
        self.status_line.add_class("jr-dash-status")
        self.body = W.Box()
        header = W.HBox([self.mode_toggle, self.symbol_picker, self.live_symbol], layout=W.Layout(flex_flow="row wrap"))
        self.widget = W.VBox([W.HTML("<h3 style='margin:4px 0'>Market replay</h3>"), header, self.body,
                              self.snapshot, self.status_line])
        self.widget.add_class("jr-dashboard")

        self.replay: Replay
        self._new_replay(self.symbol_picker.value)
        self.mode_toggle.observe(self._on_mode_toggle, "value")
        self.symbol_picker.observe(self._on_symbol_pick, "value")
        self.live_symbol.observe(self._on_live_symbol, "value")
        self.report(f"ready: {self.symbol_picker.value} loaded, press play")

    # -- display ------------------------------------------------------------------------------------
    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    # -- status line ----------------------------------------------------------------------------------
    def report(self, message: str, error: bool = False) -> None:
        """Show ``message`` in the status line (red with ``error``); also the text tests wait on."""
        color = "#b00020" if error else "#1b5e20"
        kind = "error" if error else "ok"
        self.status_line.value = (f"<span class='jr-dash-{kind}' style='color:{color}'>"
                                  f"{'error: ' if error else ''}{html.escape(message)}</span>")

    def _guard(self, what: str, fn: Callable[[], Any]) -> bool:
        """Run a user action; errors (typed, from the session) go to the status line, never raise."""
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - a widget callback must not raise: report and keep the dashboard alive
            self.report(f"{what} failed: {exc}", error=True)
            return False
        return True

    # -- the Replay ----------------------------------------------------------------------------------
    def _new_replay(self, symbol: str) -> Replay:
        r = self._replay_factory(self.data[symbol], time=self.time, title=symbol, **self._replay_kwargs)
        # callbacks of a replaced Replay (still closing) must not reach the panel: bind them to ``r``
        r.on_batch(lambda batch, clock: self._on_batch(batch) if r is self.replay else None)
        r.observe(lambda change: self._on_status(change) if r is self.replay else None, "status")
        r.observe(lambda change: self._on_replay_mode(change) if r is self.replay else None, "mode")
        self._snapshot.clear()
        self._last_shown = self._shown(r.status)
        self.replay = r
        self.body.children = (r,)
        self._schedule_render(now=True)
        return r

    def _on_batch(self, batch: Any) -> None:
        self._snapshot.update(batch.ts, batch.columns)
        self._schedule_render()

    def _on_status(self, change: Any) -> None:
        status = change["new"] or {}
        mode = status.get("mode", "replay")
        if mode != self._last_mode or not status.get("buffer_rows"):
            self._snapshot.clear()  # a reset: the buffer now holds another stream (or nothing)
        self._last_mode = mode
        if status.get("error"):
            self.report(str(status["error"]), error=True)
        else:
            shown = self._shown(status)
            if shown != self._last_shown:
                what = f"LIVE {status.get('symbol')}" if mode == "live" else f"REPLAY {self.symbol_picker.value}"
                self.report(f"{what}: {status.get('state')} at {status.get('speed')}x")
            self._last_shown = shown
        self._schedule_render(now=True)

    @staticmethod
    def _shown(status: Mapping[str, Any]) -> tuple[Any, ...]:
        """What the status line reports a change of."""
        return (status.get("state"), status.get("speed"), status.get("mode"), status.get("symbol"))

    def _on_replay_mode(self, change: Any) -> None:
        if self.mode_toggle.value != change["new"]:  # switched from the Replay's own control bar
            self.mode_toggle.value = change["new"]

    def _schedule_render(self, now: bool = False) -> None:
        """Redraw the snapshot panel now, or at most every ``SNAPSHOT_INTERVAL_S`` (trailing edge)."""
        if now:
            self._render()
            return
        with self._render_lock:
            if self._render_timer is not None:
                return
            self._render_timer = threading.Timer(SNAPSHOT_INTERVAL_S, self._render)
            self._render_timer.daemon = True
            self._render_timer.start()

    def _render(self) -> None:
        with self._render_lock:
            self._render_timer = None
        try:
            self.snapshot.value = self._snapshot.html(self.replay.status)
        except Exception:  # closing
            log.debug("snapshot render failed", exc_info=True)

    # -- user actions ---------------------------------------------------------------------------------
    def _on_mode_toggle(self, change: Any) -> None:
        self.set_mode(change["new"])

    def set_mode(self, mode: str, live_symbol: str | None = None) -> bool:
        """Switch this visitor's session to ``mode`` ('replay' | 'live'); clears only its own buffer."""
        r = self.replay
        if live_symbol is not None and live_symbol != self.live_symbol.value:
            self.live_symbol.value = live_symbol  # (observer: symbol, if LIVE)
        if r.mode == mode:
            return True

        def switch() -> None:
            if mode == "live":
                r.symbol = self.live_symbol.value.strip()
            r.mode = mode

        ok = self._guard(f"switching to {mode.upper()}", switch)
        if ok:
            what = f"LIVE {r.symbol}" if mode == "live" else f"REPLAY {self.symbol_picker.value}"
            self.report(f"switched to {what}; press play" if r.state != "playing" else f"switched to {what}")
        elif self.mode_toggle.value != r.mode:
            self.mode_toggle.value = r.mode  # the switch did not happen: show the real mode
        return ok

    def _on_live_symbol(self, change: Any) -> None:
        value = str(change["new"]).strip()
        if self._guard("setting the live symbol", lambda: setattr(self.replay, "symbol", value)):
            self.report(f"live symbol {value}" + (" (now streaming)" if self.replay.mode == "live" else ""))

    def _on_symbol_pick(self, change: Any) -> None:
        self.select(change["new"])

    def select(self, symbol: str) -> bool:
        """Replay ``symbol``'s rows: a fresh Replay (stopped, empty history) replaces the current one."""
        if symbol not in self.data:
            self.report(f"unknown symbol {symbol!r}; pick one of {', '.join(self.data)}", error=True)
            return False
        old = self.replay
        keep = {"speed": old.speed, "loop": old.loop}

        def swap() -> None:
            self._new_replay(symbol)
            self.replay.speed, self.replay.loop = keep["speed"], keep["loop"]
            old.close()

        ok = self._guard(f"loading {symbol}", swap)
        if ok:
            if self.mode_toggle.value != "replay":
                self.mode_toggle.value = "replay"
            if self.symbol_picker.value != symbol:
                self.symbol_picker.value = symbol
            self.report(f"{symbol} loaded, press play")
        return ok

    def close(self) -> None:
        """Stop the replay and close every widget."""
        self.replay.close()
        self.widget.close()


def dashboard(data: Mapping[str, pd.DataFrame] | None = None, **kwargs: Any) -> Dashboard:
    """The market replay dashboard (see ``Dashboard``); display the result."""
    return Dashboard(data, **kwargs)
