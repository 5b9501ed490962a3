"""Issue 5's browser scenario: two notebooks, each with its own kernel and server session, in one JupyterLab.

Play in the first only -> only the first BokehJS plot receives rows; the second switches to LIVE -> the first
plot's rows and its server session's buffer are untouched; pause the first -> its rows stop. Every check reads
the page itself (the BokehJS ColumnDataSource and the widget registry) or the server's REST API from the page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from lab_harness import (
    LabServer, animation_frames, bokeh_source_lengths, open_notebook, page_api, replay_button, replay_widget,
    run_all_cells, save_screenshot, wait_for, wait_replay_attached, write_notebook,
)

pytestmark = pytest.mark.e2e

SOURCE = "replay_source"  # the widget's ColumnDataSource name (docs/design.md, Widgets)


def _replay_cell(seed: int, speed: int) -> str:
    return ("import jupyter_replay as jr\n"
            f"df = jr.sources.sample_trades(n=20_000, seed={seed})\n"
            f"r = jr.replay(df, time='timestamp', y='price', speed={speed})\n"
            "r")


def _session(page: Any, kernel_id: str) -> dict[str, Any]:
    """``GET replay/api/sessions/{kernel_id}`` from the page, with the page's token."""
    resp = page_api(page, "GET", f"replay/api/sessions/{kernel_id}")
    assert resp["status"] == 200, resp
    return resp["data"]


def _bokeh_rows(page: Any) -> int:
    """Rows in the page's one BokehJS ColumnDataSource named ``replay_source``."""
    lengths = bokeh_source_lengths(page, SOURCE)
    assert len(lengths) == 1, f"expected one BokehJS document with {SOURCE!r}, found {lengths}"
    return lengths[0]


def _open_and_run(new_page: Callable[[], Any], path: str) -> tuple[Any, str]:
    page = new_page()
    kernel_id = open_notebook(page, path)
    run_all_cells(page)
    w = wait_replay_attached(page)
    assert w["sessionId"] == kernel_id and w["count"] == 1
    return page, kernel_id


def test_play_live_and_pause_affect_only_their_own_notebook(
    lab: LabServer, new_page: Callable[[], Any], artifacts_dir: Path, tmp_path: Path
) -> None:
    name = tmp_path.name  # unique per test run: no stale notebook or workspace
    first_nb = lab.add_notebook(write_notebook(tmp_path / "first.ipynb", _replay_cell(1, 10)), f"{name}_first.ipynb")
    second_nb = lab.add_notebook(write_notebook(tmp_path / "second.ipynb", _replay_cell(2, 10)),
                                 f"{name}_second.ipynb")
    first, k1 = _open_and_run(new_page, first_nb)
    second, k2 = _open_and_run(new_page, second_nb)
    assert k1 != k2, "each notebook has its own kernel"
    assert {k["id"] for k in lab.api("GET", "api/kernels")} == {k1, k2}, "a stray kernel was started"
    assert {s["id"] for s in lab.api("GET", "replay/api/sessions")} == {k1, k2}
    assert _bokeh_rows(first) == 0 and _bokeh_rows(second) == 0

    # -- play in the first notebook only (the real button): only the first plot receives rows
    replay_button(first, "Play").click()
    wait_for(lambda: _bokeh_rows(first) > 0, timeout=15, message="play: no rows reached the first BokehJS plot")
    rows = _bokeh_rows(first)
    wait_for(lambda: _bokeh_rows(first) > rows, timeout=15, message="play: the first plot stopped growing")
    animation_frames(second, 10)
    assert _bokeh_rows(second) == 0, "the second plot received rows although only the first was played"
    w2 = replay_widget(second)
    assert w2["rowsReceived"] == 0 and w2["state"] == "stopped"
    s1, s2 = _session(first, k1), _session(second, k2)
    assert s1["state"] == "playing" and s1["buffer_rows"] > 0
    assert s2["state"] == "stopped" and s2["buffer_rows"] == 0 and s2["rows"] == 0

    # -- the second notebook switches to LIVE (its toggle): the first keeps its rows, client and server side
    first_resets = replay_widget(first)["resets"]
    before_rows = _bokeh_rows(first)
    before_buffer = _session(first, k1)["buffer_rows"]
    replay_button(second, "Switch to live mode").click()
    wait_for(lambda: replay_widget(second)["mode"] == "live", timeout=10, message="the second did not go LIVE")
    wait_for(lambda: _bokeh_rows(second) > 0, timeout=15, message="LIVE: no rows reached the second plot")
    s2 = _session(second, k2)
    assert s2["mode"] == "live" and s2["symbol"]
    after_rows = _bokeh_rows(first)
    s1 = _session(first, k1)
    assert after_rows >= before_rows > 0, f"the first plot was cleared ({before_rows} -> {after_rows} rows)"
    assert replay_widget(first)["resets"] == first_resets, "the first widget saw a reset"
    assert s1["mode"] == "replay" and s1["state"] == "playing"
    assert s1["buffer_rows"] >= before_buffer > 0, "the first session's server buffer was cleared"

    # -- pause the first: once the paused state arrived, no further rows, neither received nor plotted
    replay_button(first, "Pause").click()
    wait_for(lambda: replay_widget(first)["state"] == "paused", timeout=5, message="pause was not confirmed")
    animation_frames(first, 2)  # rows received before the pause are plotted in the next frame
    paused = replay_widget(first)
    paused_rows = _bokeh_rows(first)
    assert paused_rows == paused["rowsReceived"] > 0  # every received row is in the plot
    live_rows = _bokeh_rows(second)
    animation_frames(first, 30)
    first.wait_for_timeout(300)
    assert _bokeh_rows(first) == paused_rows, "rows kept arriving after pause"
    assert replay_widget(first)["rowsReceived"] == paused["rowsReceived"]
    s1 = _session(first, k1)
    assert s1["state"] == "paused" and s1["rows"] == paused_rows and s1["buffer_rows"] == paused_rows
    # ... and the second notebook is still LIVE and streaming
    wait_for(lambda: _bokeh_rows(second) > live_rows, timeout=10, message="pausing the first stopped the second")
    assert _session(second, k2)["mode"] == "live"
    assert not replay_widget(first)["errors"] and not replay_widget(second)["errors"]

    e2e_dir = artifacts_dir / "e2e"
    for page, label in ((first, "first_paused"), (second, "second_live")):
        shot = save_screenshot(page, f"two_notebooks_{label}", e2e_dir)
        assert shot.stat().st_size > 10_000
