"""The harness itself, proven on the baseline notebook (ipywidgets.Play driving a Bokeh stream).

``data/play_bokeh.ipynb`` is a copy of ``../shared/baseline/play_bokeh.ipynb``: what analysts do today
without jupyter_replay. Its ColumnDataSource is named ``ticks``.
"""

from __future__ import annotations

import pytest

from lab_harness import (
    DATA_DIR, bokeh_source_length, kernel_eval, open_notebook, run_all_cells, save_screenshot, wait_for,
)

pytestmark = pytest.mark.e2e


def test_baseline_play_streams_rows_and_pause_stops_them(lab, page):
    path = lab.add_notebook(DATA_DIR / "play_bokeh.ipynb")
    kernel_id = open_notebook(page, path)
    assert kernel_id in {k["id"] for k in lab.api("GET", "api/kernels")}

    assert run_all_cells(page) == 3
    # The plot is rendered by BokehJS and its source starts empty.
    wait_for(lambda: bokeh_source_length(page, "ticks") is not None, message="no BokehJS source named 'ticks'")
    assert bokeh_source_length(page, "ticks") == 0

    # ipywidgets 8 Play: one play/pause toggle (its icon says which), stop, repeat.
    page.locator(".widget-play button:has(i.fa-play)").click()
    first = wait_for(lambda: bokeh_source_length(page, "ticks"), message="play: no rows arrived in BokehJS")
    wait_for(lambda: bokeh_source_length(page, "ticks") > first, message="play: rows stopped growing")

    page.locator(".widget-play button:has(i.fa-pause)").click()
    page.locator(".widget-play button:has(i.fa-play)").wait_for()
    # Updates already in flight may still land: wait until two reads half a second apart agree.
    def settled():
        before = bokeh_source_length(page, "ticks")
        page.wait_for_timeout(500)
        return before if bokeh_source_length(page, "ticks") == before else None
    stopped_at = wait_for(settled, timeout=20, message="pause: rows kept arriving")
    page.wait_for_timeout(1000)
    assert bokeh_source_length(page, "ticks") == stopped_at
    assert stopped_at % 100 == 0 and stopped_at > 0   # whole ticks of ROWS_PER_TICK rows, none torn
    # The kernel's own count (its status label) matches what reached BokehJS: nothing lost on the way.
    label = page.locator("div.widget-label", has_text=" / 200,000").inner_text()
    assert label == f"row {stopped_at:,} / 200,000"
    assert kernel_eval(page, "cursor") == str(stopped_at)
    assert kernel_eval(page, "sum(n for _, _, n in sent_log)") == str(stopped_at)

    shot = save_screenshot(page, "baseline_play_bokeh")
    assert shot.stat().st_size > 10_000


def test_run_all_cells_reports_cell_errors(lab, page, tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 41"),
        nbformat.v4.new_code_cell("raise ValueError('boom from the notebook')"),
        nbformat.v4.new_code_cell("x = 0"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "broken.ipynb")
    path = lab.add_notebook(tmp_path / "broken.ipynb")
    open_notebook(page, path)
    with pytest.raises(AssertionError, match="ValueError: boom from the notebook"):
        run_all_cells(page)
    assert kernel_eval(page, "x") == "41"   # execution stopped at the failing cell
    with pytest.raises(AssertionError, match="ZeroDivisionError"):
        kernel_eval(page, "1 / 0")
