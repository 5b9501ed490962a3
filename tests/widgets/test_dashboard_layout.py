"""The dashboard's Python side (``jupyter_replay.widgets.dashboard``) without a browser: the snapshot panel,
symbol and mode switching, errors on the status line, and the ``jupyter replay dashboard`` command line.

The three-visitor browser scenario on a real Voilà server is ``tests/e2e/test_dashboard.py``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from widget_helpers import wait_until

from jupyter_replay import cli, sources
from jupyter_replay.exceptions import ReplayError
from jupyter_replay.widgets.dashboard import Dashboard, Snapshot, sample_universe

SEC = 1_000_000_000


@pytest.fixture
def universe() -> dict[str, pd.DataFrame]:
    return {"AAA": sources.sample_trades(n=400, seed=1, symbol="AAA", start_price=10.0),
            "BBB": sources.sample_trades(n=300, seed=2, symbol="BBB", start_price=500.0)}


@pytest.fixture
def dash(universe: dict[str, pd.DataFrame]) -> Iterator[Dashboard]:
    d = Dashboard(universe, speed="max")
    yield d
    d.replay.close()


def test_snapshot_keeps_the_ohlc_of_the_current_bar_across_batches() -> None:
    snap = Snapshot(bar_ns=SEC)
    snap.update(np.array([0, SEC // 2]), {"price": np.array([5.0, 7.0])})
    snap.update(np.array([SEC - 1, SEC + 1, SEC + 2]), {"price": np.array([4.0, 9.0, 8.0])})
    assert snap.bar == (SEC, 9.0, 9.0, 8.0, 8.0)  # a new bar began in this batch: it starts there
    snap.update(np.array([SEC + 3]), {"price": np.array([12.0])})
    assert snap.bar == (SEC, 9.0, 12.0, 8.0, 12.0)  # the same bar, continued from the earlier batch
    assert snap.values["price"] == 12.0 and snap.rows == 6
    html = snap.html({"mode": "replay", "state": "playing", "speed": 1.0, "position": 6, "num_rows": 10})
    assert "12.00" in html and "6 / 10" in html and "REPLAY" in html
    snap.clear()
    assert snap.bar is None and snap.values == {} and "<td data-key='last'>-</td>" in snap.html({})


def test_snapshot_shows_bid_ask_when_the_data_has_quotes() -> None:
    snap = Snapshot(bar_ns=SEC)
    snap.update(np.array([1]), {"bid": np.array([99.5]), "ask": np.array([100.5])})
    assert "99.50 / 100.50" in snap.html({"mode": "replay"})


def test_the_panel_follows_the_replay_to_its_last_row(dash: Dashboard, universe: dict[str, pd.DataFrame]) -> None:
    dash.replay.play()
    assert dash.replay.wait(timeout=60) == "finished"
    last = universe["AAA"]["price"].iloc[-1]
    wait_until(lambda: f"{last:,.2f}" in dash.snapshot.value and "finished" in dash.snapshot.value, timeout=10,
               message=f"the panel did not catch up: {dash.snapshot.value}")
    assert "400 / 400" in dash.snapshot.value
    assert "REPLAY AAA: finished" in dash.status_line.value


def test_picking_a_symbol_starts_a_fresh_replay_of_its_rows(dash: Dashboard) -> None:
    first = dash.replay
    first.speed = 5
    first.play()
    first.wait(timeout=60)
    dash.symbol_picker.value = "BBB"
    assert dash.replay is not first
    with pytest.raises(ReplayError, match="closed"):
        first.play()  # the replaced Replay is closed, not left running in the kernel
    r = dash.replay
    assert r.status["num_rows"] == 300 and r.state == "stopped" and len(r.buffer) == 0
    assert r.speed == 5, "the visitor's speed carries over to the new symbol"
    assert "BBB loaded" in dash.status_line.value and "<td data-key='last'>-</td>" in dash.snapshot.value
    assert dash.select("ZZZ") is False
    assert "unknown symbol" in dash.status_line.value and dash.replay is r


def test_live_switch_and_errors_go_to_the_status_line(dash: Dashboard) -> None:
    dash.live_symbol.value = "<b>bad symbol</b>"
    assert "jr-dash-error" in dash.status_line.value
    assert "<b>" not in dash.status_line.value and "&lt;b&gt;" in dash.status_line.value, "messages are escaped"
    dash.mode_toggle.value = "live"
    assert dash.replay.mode == "replay" and dash.mode_toggle.value == "replay", "a failed switch shows the real mode"
    assert "jr-dash-error" in dash.status_line.value

    assert dash.set_mode("live", live_symbol="XYZ")
    assert dash.replay.mode == "live" and dash.replay.symbol == "XYZ" and dash.mode_toggle.value == "live"
    assert "switched to LIVE XYZ" in dash.status_line.value
    dash.replay.mode = "replay"  # from the Replay's own control bar: the dashboard's toggle follows
    assert dash.mode_toggle.value == "replay"


def test_two_dashboards_share_nothing(universe: dict[str, pd.DataFrame]) -> None:
    a, b = Dashboard(universe), Dashboard(universe)
    try:
        a.replay.speed = 10
        a.set_mode("live")
        assert b.replay.speed == 1 and b.replay.mode == "replay" and b.mode_toggle.value == "replay"
    finally:
        a.replay.close()
        b.replay.close()


def test_sample_universe_symbols_have_distinct_price_levels() -> None:
    u = sample_universe(n=200)
    ranges = sorted((df["price"].min(), df["price"].max()) for df in u.values())
    assert all(hi < lo for (_, hi), (lo, _) in pairwise(ranges)), "a visitor's rows must be recognisable"


# -- the command line --------------------------------------------------------------------------------


def test_dashboard_command_standalone_and_server(tmp_path: Path) -> None:
    nb = tmp_path / "dash.ipynb"
    cmd, url = cli.dashboard_command(nb, ip="127.0.0.1", port=8866, open_browser=False, server=False, token="t",
                                     disconnect_timeout=30)
    assert cmd[:4] == [sys.executable, "-m", "voila", str(nb)] and url == "http://127.0.0.1:8866/"
    assert f"--VoilaConfiguration.multi_kernel_manager_class={cli.CULLING_KERNEL_MANAGER}" in cmd
    assert "--DisconnectCullingKernelManager.disconnect_timeout=30" in cmd
    cmd, url = cli.dashboard_command(nb, ip="127.0.0.1", port=8866, open_browser=False, server=True, token="t",
                                     disconnect_timeout=30)
    assert cmd[:3] == [sys.executable, "-m", "jupyter_server"]
    assert url == "http://127.0.0.1:8866/voila/render/dash.ipynb?token=t"
    assert f"--ServerApp.kernel_manager_class={cli.CULLING_KERNEL_MANAGER}" in cmd
    assert f"--ServerApp.root_dir={tmp_path}" in cmd


def test_dashboard_cli_dry_run_and_missing_notebook(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli.main(["dashboard", "--dry-run", "--port", "8899"]) == 0
    out = capsys.readouterr().out
    assert "-m voila" in out and out.split()[3].endswith("dashboard.ipynb") and "--Voila.port=8899" in out
    assert cli.main(["dashboard", "--dry-run", "--notebook", str(tmp_path / "nope.ipynb")]) == 1
    assert "not found" in capsys.readouterr().err
