"""The long-format example (``date, symbol, price``) in JupyterLab gives the same result as headless.

An ``on_batch`` callback reads the text column ``symbol`` and counts rows per symbol. Headless (this test
process: the widget runs the engine locally) and in JupyterLab (the widget attached to its kernel's server
session, rows over the WebSocket) the counts, the buffer's columns and the callback error count must agree.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lab_harness import (
    LabServer,
    kernel_eval,
    open_notebook,
    replay_button,
    replay_widget,
    run_all_cells,
    save_screenshot,
    wait_for,
    wait_replay_attached,
    write_notebook,
)

pytestmark = pytest.mark.e2e

DATA = """\
import numpy as np, pandas as pd
import jupyter_replay as jr

dates = pd.date_range("2024-03-01 09:30", periods=200, freq="1s", tz="UTC")
symbols = ["AAPL", "MSFT", "NVDA"]
df = pd.DataFrame(
    [(d, s, 100.0 + 10 * k + i / 10) for i, d in enumerate(dates) for k, s in enumerate(symbols)
     if not (s == "NVDA" and i % 4 == 3)],
    columns=["date", "symbol", "price"],
)
"""
WIDGET = """\
r = jr.replay(df, time="date", y="price", speed="max")
rows_per_symbol = {}

@r.on_batch
def count(batch, clock):
    for s in batch.columns["symbol"]:
        rows_per_symbol[s] = rows_per_symbol.get(s, 0) + 1

r
"""
# After the replay finished: wait (condition, bounded) until the callback saw every row, then report.
RESULT = """\
import json, time
_t = time.monotonic()
while sum(rows_per_symbol.values()) < len(df) and r.status.get("callback_errors", 0) == 0 and time.monotonic() - _t < 30:
    time.sleep(0.05)
print(json.dumps({"counts": rows_per_symbol, "columns": list(r.buffer.columns), "rows": len(r.buffer),
                  "callback_errors": r.status.get("callback_errors"), "attached": r.attached, "state": r.state}))
"""


def headless() -> dict[str, Any]:
    """The same cells run in this process (no server: the widget runs the engine locally)."""
    ns: dict[str, Any] = {}
    exec(DATA, ns)
    exec(WIDGET.replace("\nr\n", "\n"), ns)
    r = ns["r"]
    try:
        r.play()
        assert r.wait(timeout=60) == "finished"
        exec(RESULT.replace("print(", "_out = ("), ns)
        return json.loads(ns["_out"])
    finally:
        r.close()


def test_long_format_callback_reads_the_text_column_like_headless(
    lab: LabServer, new_page: Callable[[], Any], artifacts_dir: Path, tmp_path: Path
) -> None:
    expected = headless()
    assert expected["attached"] == "" and expected["callback_errors"] == 0
    assert sum(expected["counts"].values()) == expected["rows"] == 550  # 200 dates x 3 symbols, 50 NVDA skipped

    nb = write_notebook(tmp_path / "long_format.ipynb", DATA, WIDGET)
    path = lab.add_notebook(nb, f"{tmp_path.name}_long_format.ipynb")
    page = new_page()
    kernel_id = open_notebook(page, path)
    run_all_cells(page)
    wait_replay_attached(page)
    replay_button(page, "Play").click()
    wait_for(lambda: replay_widget(page)["state"] == "finished", timeout=60,
             message=f"the replay did not finish in the browser: {replay_widget(page)}")
    got = json.loads(kernel_eval(page, RESULT))
    save_screenshot(page, "long_format_attached", artifacts_dir / "e2e")

    assert got["attached"] == kernel_id, "the widget was not attached to its server session"
    assert got["state"] == "finished"
    assert got["callback_errors"] == 0, f"the callback failed in JupyterLab: {got}"
    assert got["counts"] == expected["counts"]
    assert (got["columns"], got["rows"]) == (expected["columns"], expected["rows"])
    assert replay_widget(page)["sourceLength"] == expected["rows"]
    assert not replay_widget(page)["errors"]
