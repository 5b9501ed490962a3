"""The quickstart notebook from ``notebooks/`` opens in JupyterLab, runs top to bottom and plays in the browser."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from lab_harness import (
    REPO_ROOT, LabServer, animation_frames, kernel_eval, open_notebook, page_api, replay_button, replay_widget,
    run_all_cells, save_screenshot, wait_for, wait_replay_attached,
)

pytestmark = pytest.mark.e2e

QUICKSTART = REPO_ROOT / "notebooks" / "01_quickstart.ipynb"


def _checked_outputs(nb: dict[str, Any]) -> list[str]:
    """Text outputs of the ``# NBVAL_CHECK_OUTPUT`` cells, in order."""
    out = []
    for cell in nb["cells"]:
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] != "code" or "NBVAL_CHECK_OUTPUT" not in src:
            continue
        text = []
        for o in cell.get("outputs", []):
            if o["output_type"] == "stream":
                text.append("".join(o["text"]) if isinstance(o["text"], list) else o["text"])
            elif o["output_type"] in ("execute_result", "display_data") and "text/plain" in o["data"]:
                plain = o["data"]["text/plain"]
                text.append("".join(plain) if isinstance(plain, list) else plain)
        out.append("".join(text))
    return out


# The x/y ranges of every Bokeh plot of widget 0 (finite start/end <=> the axes and grid are drawn) and
# whether its empty-plot anchor is shown.
_JS_PLOT_RANGES = """() => {
  const w = window.__jupyter_replay__.widgets[0];
  const doc = w && w.document;
  if (!doc) return null;
  const ranges = [];
  for (const m of doc.all_models) {
    if (m.x_range && m.y_range) ranges.push([m.x_range.start, m.x_range.end, m.y_range.start, m.y_range.end]);
  }
  const anchor = doc.get_model_by_name('replay_anchor');
  return {ranges, anchorVisible: anchor ? anchor.visible : null};
}"""


def _plot_ranges(page: Any) -> dict[str, Any] | None:
    return page.evaluate(_JS_PLOT_RANGES)


def _axes_drawn(info: dict[str, Any] | None) -> bool:
    return bool(info and info["ranges"]) and all(
        all(v is not None and v == v for v in r) and r[0] < r[1] and r[2] < r[3] for r in info["ranges"]
    )


def test_quickstart_runs_and_plays_in_the_browser(
    lab: LabServer, new_page: Callable[[], Any], artifacts_dir: Path, tmp_path: Path
) -> None:
    assert QUICKSTART.is_file(), f"missing {QUICKSTART}"
    path = lab.add_notebook(QUICKSTART, f"{tmp_path.name}_quickstart.ipynb")
    page = new_page()
    kernel_id = open_notebook(page, path)
    assert run_all_cells(page) >= 3
    w = wait_replay_attached(page)
    assert w["sessionId"] == kernel_id and w["count"] == 1

    # Run in JupyterLab (attached to the server session), the checked cells print what nbval recorded.
    live_nb = page.evaluate(
        "(path) => Array.from(window.jupyterapp.shell.widgets('main')).find(w => w.context && "
        "w.context.path === path).content.model.toJSON()", path)
    assert _checked_outputs(live_nb) == _checked_outputs(json.loads(QUICKSTART.read_text()))

    # The widget attached once the cells had run (its messages queue behind them): the server session holds
    # the notebook's data and speed ("max", set by a cell).
    session = page_api(page, "GET", f"replay/api/sessions/{kernel_id}")["data"]
    assert session["has_data"] and session["num_rows"] == 5_000 and session["speed"] == "max"
    assert session["mode"] == "replay" and session["clients"] >= 1
    # ... and exactly the state the cells left: played to the end, the rows since the seek still buffered.
    assert (session["state"], session["position"], session["buffer_rows"]) == ("finished", 5_000, 4_401)
    kernel_rows = int(kernel_eval(page, "len(r.buffer)"))
    assert kernel_rows == 4_401
    wait_for(lambda: replay_widget(page)["sourceLength"] == kernel_rows, timeout=15,
             message=f"the plot does not hold the kernel's {kernel_rows} rows: {replay_widget(page)}")
    assert replay_widget(page)["state"] == "finished"
    assert _axes_drawn(_plot_ranges(page)) and _plot_ranges(page)["anchorVisible"] is False
    animation_frames(page, 3)
    save_screenshot(page, "quickstart_attached", artifacts_dir / "e2e")

    # Stop rewinds: the empty plot keeps its axes and grid (the anchor spans the data until rows arrive).
    replay_button(page, "Stop").click()
    wait_for(lambda: replay_widget(page)["state"] == "stopped" and replay_widget(page)["sourceLength"] == 0,
             timeout=10, message="stop did not rewind and clear the plot")
    wait_for(lambda: _axes_drawn(_plot_ranges(page)) and _plot_ranges(page)["anchorVisible"], timeout=5,
             message=f"an empty plot without axes: {_plot_ranges(page)}")
    animation_frames(page, 3)
    save_screenshot(page, "quickstart_empty", artifacts_dir / "e2e")

    # At 10x, Play streams rows into BokehJS; Pause stops them; Stop rewinds and clears the plot.
    page.locator(".jr-root select[aria-label='Speed']").select_option("10")
    wait_for(lambda: replay_widget(page)["speed"] == 10, timeout=10, message="the speed was not applied")
    replay_button(page, "Play").click()
    first = wait_for(lambda: replay_widget(page)["sourceLength"], timeout=10, message="play: no rows arrived")
    wait_for(lambda: replay_widget(page)["sourceLength"] > first, timeout=10, message="play: rows stopped")
    replay_button(page, "Pause").click()
    wait_for(lambda: replay_widget(page)["state"] == "paused", timeout=5, message="pause was not confirmed")
    animation_frames(page, 2)
    stopped_at = replay_widget(page)["sourceLength"]
    animation_frames(page, 20)
    assert replay_widget(page)["sourceLength"] == stopped_at > first
    session = page_api(page, "GET", f"replay/api/sessions/{kernel_id}")["data"]
    assert session["state"] == "paused" and session["position"] == stopped_at < 5_000
    save_screenshot(page, "quickstart", artifacts_dir / "e2e")

    replay_button(page, "Stop").click()
    wait_for(lambda: replay_widget(page)["state"] == "stopped" and replay_widget(page)["sourceLength"] == 0,
             timeout=10, message="stop did not rewind and clear the plot")
    assert not replay_widget(page)["errors"]
