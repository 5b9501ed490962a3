"""Marks on the plot (issue 16): a mark an ``on_batch`` callback returns, and one from ``r.mark(...)``,
reach the plot's marks source (``replay_marks``) with the value plotted at their time; a seek or a stop
clears them.

Real JupyterLab + headless Chromium; the widget follows its server session (WebSocket). Row ``i`` is at
``T0_MS + 1000 * i`` with price ``100 + i / 10``, so a mark's x and resolved y say which row it is on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from lab_harness import (
    LabServer, kernel_eval, open_notebook, replay_button, replay_widget, run_all_cells, save_screenshot,
    wait_for, wait_replay_attached, write_notebook,
)

pytestmark = pytest.mark.e2e

T0_MS = 1_704_187_800_000  # 2024-01-02 09:30 UTC
N = 200
CELL = f"""import numpy as np, pandas as pd
import jupyter_replay
prices = pd.DataFrame({{
    "timestamp": pd.to_datetime({T0_MS} + np.arange({N}, dtype=np.int64) * 1000, unit="ms", utc=True),
    "price": 100 + np.arange({N}) / 10,
}})
r = jupyter_replay.replay(prices, time="timestamp", y="price")

@r.on_batch
def strategy(batch, clock):
    if batch.first_row == 0:  # the first batch after every reset: a buy on its last row
        return {{"side": "buy", "text": "entry"}}

r"""

_MARKS = """() => {
  const w = window.__jupyter_replay__.widgets[0];
  const src = w && w.marks;
  if (!src) return null;
  const d = src.data;
  const col = (k) => Array.from((d instanceof Map ? d.get(k) : d[k]) || []);
  return {x: col('x'), y: col('y'), glyph: col('glyph'), text: col('text')};
}"""


def _marks(page: Any) -> dict[str, list] | None:
    return page.evaluate(_MARKS)


def test_marks_from_a_callback_and_r_mark_reach_the_plot_and_clear_on_seek_and_stop(
    lab: LabServer, new_page: Callable[[], Any], tmp_path: Path
) -> None:
    path = lab.add_notebook(write_notebook(tmp_path / "marks.ipynb", CELL), f"{tmp_path.name}_marks.ipynb")
    page = new_page()
    open_notebook(page, path)
    run_all_cells(page)
    wait_replay_attached(page)
    assert _marks(page) is not None, "the plot has no marks source"

    for i in range(3):  # the Step button (one row each): the callback marks a buy on row 0
        replay_button(page, "Step one row").click()
        wait_for(lambda: (replay_widget(page) or {}).get("rowsReceived") == i + 1, timeout=60,
                 message=f"step {i + 1} did not reach the page: {replay_widget(page)}")
    kernel_eval(page, "r.mark(side='sell', text='exit', time=prices.timestamp[2])")  # y: the value at row 2
    marks = wait_for(lambda: (lambda m: m if m and len(m["x"]) == 2 else None)(_marks(page)), timeout=60,
                     message=f"two marks did not reach the plot: {_marks(page)}")
    assert marks["x"] == [T0_MS, T0_MS + 2000]
    assert marks["y"] == pytest.approx([100.0, 100.2])
    assert marks["glyph"] == ["▲", "▼"] and marks["text"] == ["entry", "exit"]
    assert kernel_eval(page, "len(r.marks)") == "2"
    save_screenshot(page, "marks")  # (artifacts/e2e: the triangles and labels as drawn)

    kernel_eval(page, "r.seek(row=100)")  # a reset: the marks go with the rows
    wait_for(lambda: (_marks(page) or {"x": [0]})["x"] == [], timeout=60,
             message=f"the marks stayed on the plot after a seek: {_marks(page)}")
    kernel_eval(page, "r.step(3)")  # rows 100-102: the first batch after the reset marks row 102
    marks = wait_for(lambda: (lambda m: m if m and len(m["x"]) == 1 else None)(_marks(page)), timeout=60,
                     message=f"the mark after the seek did not reach the plot: {_marks(page)}")
    assert marks["x"] == [T0_MS + 102_000] and marks["y"] == pytest.approx([110.2])

    kernel_eval(page, "r.stop()")
    wait_for(lambda: (_marks(page) or {"x": [0]})["x"] == [], timeout=60,
             message=f"the marks stayed on the plot after a stop: {_marks(page)}")
    assert kernel_eval(page, "len(r.marks)") == "0"
    assert not replay_widget(page)["errors"], replay_widget(page)["errors"]
