"""Pause stops the picture (issue 15): after a Pause click no row newer than the position the session
paused at reaches the BokehJS data source, and the rows up to it do.

Real JupyterLab + headless Chromium; the widget follows its server session (WebSocket). Rows are 10 ms
apart from a known start, so row ``i`` has the timestamp ``T0_MS + 10 * i`` and the newest row in the data
source says how far the picture went. Every change of the source is logged in the page from before the
click, so a row that lands after the click and is later replaced cannot hide.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from lab_harness import (
    LabServer, open_notebook, page_api, replay_button, replay_widget, run_all_cells, wait_for,
    wait_replay_attached, write_notebook,
)

pytestmark = pytest.mark.e2e

T0_MS = 1_704_187_800_000  # 2024-01-02 09:30 UTC
STEP_MS = 10
CELL = f"""import numpy as np, pandas as pd
import jupyter_replay
N = 400_000
ticks = pd.DataFrame({{
    "timestamp": pd.to_datetime({T0_MS} + np.arange(N, dtype=np.int64) * {STEP_MS}, unit="ms", utc=True),
    "price": 100 + np.cumsum(np.random.default_rng(7).normal(0, 0.01, N)),
}})
r = jupyter_replay.replay(ticks, time="timestamp", y="price", speed=20)
r"""

# Log every change of widget 0's data source: [time, newest timestamp, length].
_INSTRUMENT = """() => {
  const w = window.__jupyter_replay__.widgets[0];
  const src = w.source;
  const newest = () => {
    const d = src.data;
    const t = d instanceof Map ? d.get('timestamp') : d.timestamp;
    let m = null;
    if (t) for (let i = 0; i < t.length; i++) if (m === null || t[i] > m) m = t[i];
    return m;
  };
  window.__pauseLog = [];
  window.__pauseNewest = newest;
  src.change.connect(() => window.__pauseLog.push([performance.now(), newest(), src.get_length()]));
  return true;
}"""

_CLICK_PAUSE = """() => {
  const b = document.querySelector(".jr-root .jr-play[aria-label='Pause']");
  if (!b) return null;
  const w = window.__jupyter_replay__.widgets[0];
  const received = w.newestMs;  // the newest row the page had received when the user clicked
  const t = performance.now();
  b.click();
  return {t, received};
}"""

_AFTER = """(t) => ({
  changes: window.__pauseLog.filter(([ts]) => ts >= t),
  newest: window.__pauseNewest(),
  settledAt: window.__jupyter_replay__.widgets[0].settledAt,
})"""


def _newest(page: Any) -> float | None:
    return page.evaluate("() => window.__pauseNewest()")


def test_no_row_beyond_the_pause_point_reaches_the_plot(
    lab: LabServer, new_page: Callable[[], Any], tmp_path: Path
) -> None:
    path = lab.add_notebook(write_notebook(tmp_path / "pause.ipynb", CELL), f"{tmp_path.name}_pause.ipynb")
    page = new_page()
    open_notebook(page, path)
    run_all_cells(page)
    w = wait_replay_attached(page)
    sid = w["sessionId"]
    assert page.evaluate(_INSTRUMENT)

    for round_ in range(3):
        replay_button(page, "Play").click()
        wait_for(lambda: replay_widget(page)["state"] == "playing", timeout=30, message="play did not start")
        start = _newest(page) or 0
        # rows flow into the plot (at 20x: 2,000 rows/s)
        wait_for(lambda: (_newest(page) or 0) > start + 200 * STEP_MS, timeout=30,
                 message=f"round {round_}: no rows reached the plot")
        click = page.evaluate(_CLICK_PAUSE)
        assert click is not None, "no Pause button while playing"
        t_click = click["t"]
        status = wait_for(
            lambda: (lambda r: r["data"] if r["status"] == 200 and r["data"]["state"] == "paused"
                     else None)(page_api(page, "GET", f"replay/api/sessions/{sid}")),
            timeout=30, message="the session did not pause")
        position = int(status["position"])
        last_ms = T0_MS + STEP_MS * (position - 1)  # the last row released before the pause
        # the widget has seen the paused state; then let late frames (if any) arrive and be drawn
        wait_for(lambda: replay_widget(page)["state"] == "paused", timeout=30, message="the widget did not pause")
        page.wait_for_timeout(1500)
        after = page.evaluate(_AFTER, t_click)
        # (timestamps are float ms: rows are 10 ms apart, half a step tells them apart)
        beyond = [c for c in after["changes"] if c[1] is not None and c[1] > last_ms + STEP_MS / 2]
        assert not beyond, (f"round {round_}: rows beyond the pause point (position {position}, "
                            f"{last_ms}) reached the plot after the click: {beyond[:5]}")
        # until the session's answer, the picture showed nothing received after the click
        assert after["settledAt"] is not None and after["settledAt"] >= t_click
        early = [c for c in after["changes"] if c[0] < after["settledAt"] and c[1] is not None
                 and c[1] > click["received"] + STEP_MS / 2]
        assert not early, f"round {round_}: rows received after the click were drawn before the pause settled: {early[:5]}"
        # rows up to the pause point are shown
        assert abs(after["newest"] - last_ms) < STEP_MS / 2, (round_, position, after["newest"], last_ms)
        # and it stays so (nothing arrives while paused)
        page.wait_for_timeout(500)
        assert _newest(page) == after["newest"]
