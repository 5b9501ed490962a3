"""Issue 18: the replay dashboard served by ``jupyter replay dashboard`` (Voilà) to three visitors at once.

The system this replaces kept one global controller: A's pause paused everyone, B's 10x sped up everyone,
C's LIVE switch fed A and B live rows, newcomers got the global state, leavers were never cleaned up.
Here three browser contexts (three visitors, so three Voilà kernels) act that out on one server started
by the test through the real command (``standalone``: plain Voilà, each widget runs the engine in its
visitor's kernel). A second, shorter test runs the ``--server`` mode (``jupyter server`` with Voilà as a
server extension): each visitor's widget attaches to its kernel's session in the replay server extension,
and a closed page takes its kernel and session with it (checked over the REST API).

Every check reads the page (the dashboard's ipywidgets, the widget registry, the BokehJS data source) or
the server's REST API; waits are on conditions with generous timeouts (a busy 2-core CI machine).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dashboard_harness import (
    MODES,
    Dashboard,
    page_kernel_id,
    snapshot,
    start_dashboard,
    status_text,
    stop_dashboard,
)
from lab_harness import animation_frames, jupyter_api, replay_button, replay_widget, save_screenshot, wait_for

pytestmark = pytest.mark.e2e

SOURCE = "replay_source"  # the widget's BokehJS ColumnDataSource (docs/design.md, Widgets)
DISCONNECT_TIMEOUT_S = 10  # the server's --disconnect-timeout: a crashed visitor's kernel is culled after this
PAGE_TIMEOUT_S = 150  # Voilà runs the notebook before it sends the page: slow on a busy machine
LEAVE_TIMEOUT_S = 45  # closed page -> kernel (and server session) gone


@pytest.fixture(scope="module", params=MODES)
def dashboard(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
              artifacts_dir: Path) -> Iterator[Dashboard]:
    dash = start_dashboard(request.param, tmp_path_factory.mktemp(f"dashboard-{request.param}"),
                           disconnect_timeout=DISCONNECT_TIMEOUT_S)
    try:
        yield dash
    finally:
        stop_dashboard(dash)
        (artifacts_dir / "e2e").mkdir(parents=True, exist_ok=True)
        (artifacts_dir / "e2e" / dash.log_path.name).write_bytes(dash.log_path.read_bytes())


@pytest.fixture
def visitor(browser: Any, dashboard: Dashboard) -> Iterator[Callable[[], Any]]:
    """Factory of visitors: each a page in its own browser context (own cookies, so own kernel)."""
    contexts = []

    def make() -> Any:
        ctx = browser.new_context(viewport={"width": 1300, "height": 1000})
        ctx.set_default_timeout(30_000)
        contexts.append(ctx)
        page = ctx.new_page()
        page.on("pageerror", lambda exc: print(f"[browser pageerror] {exc}"))
        page.goto(dashboard.url, wait_until="commit", timeout=PAGE_TIMEOUT_S * 1000)
        return page

    yield make
    for ctx in contexts:
        ctx.close()


# -- reading the page ------------------------------------------------------------------------------


def _ready(page: Any, dash: Dashboard) -> dict[str, Any]:
    """Wait until the dashboard is rendered and its Replay view streams (attached in server mode)."""
    page.wait_for_selector(".jr-dash-status .jr-dash-ok", timeout=PAGE_TIMEOUT_S * 1000)

    def ready() -> dict[str, Any] | None:
        w = replay_widget(page)
        if not w or w["sourceLength"] is None or not w["state"]:
            return None
        return w if dash.mode == "standalone" or w["transport"] == "ws" else None

    w = wait_for(ready, timeout=PAGE_TIMEOUT_S, message=f"the dashboard's replay did not start: {replay_widget(page)}")
    expected = "local" if dash.mode == "standalone" else "ws"
    assert w["transport"] == expected, f"{dash.mode}: the widget should run on the {expected} path, got {w}"
    return w


def _plotted(page: Any, column: str = "price") -> list[float]:
    """The ``column`` values in the page's one BokehJS source named ``replay_source``."""
    values = page.evaluate(
        """([name, column]) => {
          const out = [];
          for (const doc of (window.Bokeh && window.Bokeh.documents) || []) {
            const m = doc.get_model_by_name(name);
            if (!m || !m.data) continue;
            const col = m.data instanceof Map ? m.data.get(column) : m.data[column];
            out.push(col ? Array.from(col) : null);
          }
          return out;
        }""",
        [SOURCE, column],
    )
    assert len(values) == 1 and values[0] is not None, f"expected one {SOURCE!r} with {column!r}, got {len(values)}"
    return values[0]


def _rows(page: Any) -> int:
    return int(replay_widget(page)["sourceLength"] or 0)


def _grows(page: Any, timeout: float = 30) -> None:
    start = _rows(page)
    wait_for(lambda: _rows(page) > start, timeout=timeout, message=f"the plot stopped growing at {start} rows")


def _only_own_rows(page: Any, expected: list[float], who: str) -> None:
    """The plot holds a prefix of this visitor's own data, row for row, and nothing else."""
    animation_frames(page, 2)
    got = _plotted(page)
    assert got, f"{who}: empty plot"
    assert got == pytest.approx(expected[: len(got)]), f"{who}: the plot holds rows that are not its own data"


def _pick(page: Any, symbol: str) -> None:
    page.locator(".jr-dashboard .widget-dropdown select").select_option(symbol)
    wait_for(lambda: f"{symbol} loaded" in status_text(page), timeout=30,
             message=f"picking {symbol}: {status_text(page)!r}")
    wait_for(lambda: (replay_widget(page) or {}).get("sourceLength") is not None, timeout=60)


# -- the scenario ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dashboard", ["standalone"], indirect=True)
def test_three_visitors_each_have_their_own_replay(dashboard: Dashboard, visitor: Callable[[], Any],
                                                   artifacts_dir: Path) -> None:
    from jupyter_replay.widgets.dashboard import sample_universe

    universe = {sym: df["price"].tolist() for sym, df in sample_universe().items()}
    a, b, c = visitor(), visitor(), visitor()  # the three pages load concurrently
    for page in (a, b, c):
        w = _ready(page, dashboard)
        assert w["state"] == "stopped" and w["rowsReceived"] == 0
    ka, kb, kc = (page_kernel_id(p) for p in (a, b, c))
    assert len({ka, kb, kc}) == 3, "every visitor has their own kernel"
    if dashboard.mode == "server":
        assert {ka, kb, kc} <= dashboard.sessions(), "every visitor's widget has a session in the extension"
        assert replay_widget(a)["sessionId"] == ka
    _pick(b, "GLOBEX")
    _pick(c, "INITECH")

    for page in (a, b, c):
        replay_button(page, "Play").click()
    for page in (a, b, c):
        wait_for(lambda page=page: _rows(page) > 0 and replay_widget(page)["state"] == "playing", timeout=30,
                 message=f"play: no rows reached the plot {replay_widget(page)}")

    # -- A pauses; B and C keep playing
    replay_button(a, "Pause").click()
    wait_for(lambda: replay_widget(a)["state"] == "paused" and "paused" in status_text(a), timeout=30,
             message=f"A's pause was not confirmed: {status_text(a)!r}")
    animation_frames(a, 2)
    paused_rows = _rows(a)
    _grows(b)
    _grows(c)
    assert replay_widget(b)["state"] == replay_widget(c)["state"] == "playing", "A's pause paused another visitor"
    assert _rows(a) == paused_rows, "A's plot kept growing after pause"
    assert snapshot(a)["state"] == "paused" and snapshot(b)["state"] == "playing"

    # -- B sets 10x; A and C keep 1x
    b.locator(".jr-root select[aria-label='Speed']").select_option("10")
    wait_for(lambda: replay_widget(b)["speed"] == 10 and "10.0x" in status_text(b), timeout=30,
             message=f"B's speed did not change: {replay_widget(b)} {status_text(b)!r}")
    assert replay_widget(a)["speed"] == 1 and replay_widget(c)["speed"] == 1, "B's speed changed another visitor"
    assert snapshot(a)["speed"] == "1.0x" and snapshot(c)["speed"] == "1.0x"

    # -- C switches to LIVE; A and B stay in REPLAY, their plots hold only their own rows
    resets_a, resets_b = replay_widget(a)["resets"], replay_widget(b)["resets"]
    c.locator(".jr-dashboard .widget-toggle-button", has_text="LIVE").click()
    wait_for(lambda: replay_widget(c)["mode"] == "live" and "LIVE" in snapshot(c)["mode"], timeout=30,
             message=f"C did not switch to LIVE: {replay_widget(c)} {status_text(c)!r}")
    if replay_widget(c)["state"] != "playing":
        replay_button(c, "Play").click()
    wait_for(lambda: _rows(c) > 0, timeout=30, message="LIVE: no rows reached C's plot")
    _grows(c)
    _grows(b)
    for page, who, sym, resets in ((a, "A", "ACME", resets_a), (b, "B", "GLOBEX", resets_b)):
        w = replay_widget(page)
        assert w["mode"] == "replay" and w["resets"] == resets, f"{who} saw C's mode switch: {w}"
        assert snapshot(page)["mode"] == "REPLAY"
        _only_own_rows(page, universe[sym], who)
    assert _rows(a) == paused_rows
    assert replay_widget(b)["state"] == "playing"
    live = _plotted(c)
    assert live != pytest.approx(universe["INITECH"][: len(live)]), "C's LIVE plot still shows replay rows"
    if dashboard.mode == "server":
        for kid, mode in ((ka, "replay"), (kb, "replay"), (kc, "live")):
            assert jupyter_api(dashboard.base, dashboard.token, "GET", f"replay/api/sessions/{kid}")["mode"] == mode
    e2e_dir = artifacts_dir / "e2e"
    for page, who in ((a, "A_paused"), (b, "B_10x"), (c, "C_live")):
        assert save_screenshot(page, f"dashboard_{dashboard.mode}_{who}", e2e_dir).stat().st_size > 10_000

    # -- A leaves (closes the tab): A's kernel and session are gone; B and C are untouched
    a.close(run_before_unload=True)
    wait_for(lambda: not dashboard.kernel_exists(ka), timeout=LEAVE_TIMEOUT_S,
             message=f"A's kernel outlived the page:\n{dashboard.log_tail()}")
    if dashboard.mode == "server":
        wait_for(lambda: ka not in dashboard.sessions(), timeout=LEAVE_TIMEOUT_S,
                 message="A's replay session outlived its kernel")
    assert dashboard.kernel_exists(kb) and dashboard.kernel_exists(kc)
    _grows(b)
    _grows(c)

    # -- a new visitor starts from the default state with an empty history
    d = visitor()
    w = _ready(d, dashboard)
    kd = page_kernel_id(d)
    assert kd not in (ka, kb, kc)
    assert (w["state"], w["mode"], w["speed"], w["rowsReceived"], w["sourceLength"]) == ("stopped", "replay", 1, 0, 0)
    snap = snapshot(d)
    assert (snap["last"], snap["mode"], snap["state"], snap["speed"]) == ("-", "REPLAY", "stopped", "1.0x")
    assert d.locator(".jr-dashboard .widget-dropdown select").input_value() == "ACME"

    # -- a visitor whose browser dies (no beforeunload) is culled once disconnected for the timeout
    d.context.close()
    wait_for(lambda: not dashboard.kernel_exists(kd), timeout=DISCONNECT_TIMEOUT_S + 45,
             message=f"the crashed visitor's kernel was not culled:\n{dashboard.log_tail()}")
    if dashboard.mode == "server":
        wait_for(lambda: kd not in dashboard.sessions(), timeout=30, message="culled kernel left its session")
        assert dashboard.sessions() == {kb, kc}
    assert dashboard.kernel_exists(kb) and dashboard.kernel_exists(kc)


@pytest.mark.parametrize("dashboard", ["server"], indirect=True)
def test_server_mode_each_visitor_drives_their_own_server_session(dashboard: Dashboard,
                                                                  visitor: Callable[[], Any]) -> None:
    """Voilà as a server extension: the widgets attach to per-kernel sessions of the replay extension."""
    a, b = visitor(), visitor()
    for page in (a, b):
        _ready(page, dashboard)  # transport "ws": attached to the server session
    ka, kb = page_kernel_id(a), page_kernel_id(b)
    assert ka != kb and dashboard.sessions() == {ka, kb}
    assert replay_widget(a)["sessionId"] == ka and replay_widget(b)["sessionId"] == kb

    replay_button(a, "Play").click()
    wait_for(lambda: _rows(a) > 0, timeout=30, message="play: no rows reached A's plot")
    _grows(a)
    session = lambda kid: jupyter_api(dashboard.base, dashboard.token, "GET", f"replay/api/sessions/{kid}")
    sa, sb = session(ka), session(kb)
    assert sa["state"] == "playing" and sa["buffer_rows"] > 0
    assert sb["state"] == "stopped" and sb["buffer_rows"] == 0 and _rows(b) == 0, "A's play reached B"

    a.close(run_before_unload=True)  # Voilà's beforeunload shutdown (needs the _xsrf cookie our hook sets)
    wait_for(lambda: not dashboard.kernel_exists(ka) and ka not in dashboard.sessions(), timeout=LEAVE_TIMEOUT_S,
             message=f"A's kernel or session outlived the page:\n{dashboard.log_tail()}")
    assert dashboard.sessions() == {kb} and dashboard.kernel_exists(kb)
