"""Analyst plots in JupyterLab (issue 16): a long-format replay with ``by="symbol"`` draws one line per
symbol with a legend whose click hides that symbol's line, and an ``ohlc=`` replay of monthly bars draws
candles with a visible width (the automatic width follows the monthly row spacing, not a day).

Real JupyterLab + headless Chromium. The two widgets share a kernel, so one is attached to the kernel's
server session (rows over the WebSocket) and the other stays kernel-local (rows over the comm): the specs
are built in the kernel either way, and both paths are exercised.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lab_harness import (
    LabServer,
    open_notebook,
    replay_button,
    run_all_cells,
    save_screenshot,
    wait_for,
    write_notebook,
)

pytestmark = pytest.mark.e2e

DATA = """\
import numpy as np, pandas as pd
import jupyter_replay as jr

dates = pd.date_range("2000-01-01", periods=60, freq="MS")
symbols = ["MSFT", "AAPL", "IBM"]
long_df = pd.DataFrame(
    [(d, s, 20.0 * (k + 1) + np.sin(i / 5) * 5) for i, d in enumerate(dates) for k, s in enumerate(symbols)],
    columns=["date", "symbol", "price"],
)
o = 100 + np.cumsum(np.random.default_rng(3).normal(0, 2, 48))
bars = pd.DataFrame({"date": pd.date_range("2001-01-01", periods=48, freq="MS"), "open": o,
                     "high": o + 4, "low": o - 4, "close": o + np.where(np.arange(48) % 3, 2.0, -2.0),
                     "volume": np.arange(48) * 100 + 50})
"""
LINES = """\
r = jr.replay(long_df, time="date", y="price", by="symbol", speed="max", title="by symbol")
r
"""
CANDLES = """\
c = jr.replay(bars, time="date", ohlc=("open", "high", "low", "close"), speed="max", title="monthly bars")
c
"""

# Per widget: its series (rows in each source, its line renderer's visibility), legend labels, and for
# candles the bars source's rows and the candle bodies' widths on screen.
_PLOTS = """() => {
  const out = [];
  const reg = window.__jupyter_replay__;  // (not there until the widget bundle has loaded)
  for (const w of reg ? reg.widgets : []) {
    const doc = w.document;
    if (!doc) { out.push(null); continue; }
    const models = [...doc.all_models];
    const renderers = models.filter((m) => m && m.glyph && m.data_source);
    const series = (w.sources || []).map((s) => {
      const r = renderers.find((x) => x.data_source === s && x.glyph.constructor.__name__ === "Line");
      return { name: s.name, rows: s.get_length() ?? 0, visible: r ? r.visible : null };
    });
    const legend = models.find((m) => m && Array.isArray(m.items) && "click_policy" in m);
    const labels = legend ? legend.items.map((it) => {
      const l = it.label; return l && typeof l === "object" && "value" in l ? l.value : String(l);
    }) : [];
    let widths = [];
    if (w.bars) {
      const body = renderers.find((x) => x.data_source === w.bars && x.glyph.constructor.__name__ === "VBar");
      // a body's width on screen: its data width over the plot's visible time range, times the frame width
      const plot = models.find((m) => m && Array.isArray(m.renderers) && m.renderers.includes(body));
      const spec = body ? body.glyph.width : null;
      const ms = typeof spec === "number" ? spec : (spec && typeof spec.value === "number" ? spec.value : NaN);
      if (plot) widths = [ms / (plot.x_range.end - plot.x_range.start) * plot.inner_width, ms];
    }
    out.push({ transport: w.transport, state: (w.status || {}).state, series, labels,
               bars: w.bars ? (w.bars.get_length() ?? 0) : null, widths, errors: [...(w.errors || [])],
               received: [w.framesReceived, w.rowsReceived, w.rowsTotal, w.resets, w.streamCalls, w.windowRows] });
  }
  return out;
}"""


def _plots(page: Any) -> list[dict[str, Any] | None]:
    return page.evaluate(_PLOTS)


def _by_kind(page: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    lines = candles = None
    for p in _plots(page):
        if p and p["bars"] is None and len(p["series"]) == 3:
            lines = p
        elif p and p["bars"] is not None:
            candles = p
    return lines, candles


def test_by_symbol_lines_with_a_hiding_legend_and_monthly_candles(
    lab: LabServer, new_page: Callable[[], Any], artifacts_dir: Path, tmp_path: Path
) -> None:
    nb = write_notebook(tmp_path / "plot_groups.ipynb", DATA, LINES, CANDLES)
    path = lab.add_notebook(nb, f"{tmp_path.name}_plot_groups.ipynb")
    page = new_page()
    open_notebook(page, path)
    run_all_cells(page)
    def ready() -> bool:  # both embedded, one attached to the kernel's server session (one per kernel)
        found = _by_kind(page)
        return all(found) and all(p["state"] for p in found) and {p["transport"] for p in found} == {"ws", "local"}

    wait_for(ready, timeout=120, message=f"the plots were not embedded and attached: {_plots(page)}")
    for i in range(2):
        replay_button(page, "Play", i).click(timeout=60_000)

    def done() -> bool:
        lines, candles = _by_kind(page)
        return bool(lines and candles and lines["state"] == candles["state"] == "finished"
                    and all(s["rows"] > 0 for s in lines["series"]) and candles["bars"] == 48
                    and len(candles["widths"]) == 2)

    wait_for(done, timeout=120, message=f"the replays did not finish drawing: {_plots(page)}")
    lines, candles = _by_kind(page)
    save_screenshot(page, "plot_groups", artifacts_dir / "e2e")
    page.locator(".jr-root").nth(1).scroll_into_view_if_needed()
    save_screenshot(page, "plot_groups_candles", artifacts_dir / "e2e")
    assert {lines["transport"], candles["transport"]} == {"ws", "local"}  # both widget paths
    assert not lines["errors"] and not candles["errors"]

    # one line per symbol, each with its own rows (60 months each), a legend entry each
    assert lines["labels"] == ["AAPL", "IBM", "MSFT"]
    assert [s["rows"] for s in lines["series"]] == [60, 60, 60]
    assert [s["visible"] for s in lines["series"]] == [True, True, True]

    # clicking the legend's IBM entry hides IBM's line only
    page.locator(".jr-root").nth(0).locator(".bk-item", has_text="IBM").first.click(timeout=30_000)
    wait_for(lambda: [s["visible"] for s in _by_kind(page)[0]["series"]] == [True, False, True], timeout=30,
             message=f"the legend click did not hide IBM's line: {_by_kind(page)[0]}")

    # monthly candles: bodies 0.7 of a month wide (the median gap of the rows), several pixels on screen
    px, width_ms = candles["widths"]
    assert width_ms == pytest.approx(0.7 * 31 * 86_400_000), candles
    assert px > 2, f"candles are too thin to see: {px} px"
