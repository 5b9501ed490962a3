"""Issue 17's browser scenario: a notebook replays a 10M-row DataFrame through the server path in JupyterLab.

The frame (~480 MB) is far above the upload limit (``max_body_bytes``, 256 MiB): it reaches the kernel's server
session through the hand-off file the server memory-maps. Checks read the page (widget registry, BokehJS
source), the server's REST API and the kernel; the server's anonymous memory does not grow by the data size.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lab_harness import (
    LabServer,
    bokeh_source_lengths,
    kernel_eval,
    open_notebook,
    page_api,
    replay_button,
    run_all_cells,
    save_screenshot,
    wait_for,
    wait_replay_attached,
    write_notebook,
)

pytestmark = pytest.mark.e2e

ROWS = 10_000_000
SOURCE = "replay_source"

CELL = f"""\
import numpy as np, pandas as pd
import jupyter_replay as jr
rng = np.random.default_rng(0)
n = {ROWS}
df = pd.DataFrame({{
    "timestamp": pd.date_range("2024-01-02 09:30", periods=n, freq="1ms", tz="UTC"),
    "price": 100 + np.cumsum(rng.standard_normal(n)) * 0.01,
    "bid": rng.normal(99, 1, n), "ask": rng.normal(101, 1, n),
    "size": rng.integers(1, 100, n),
}})
r = jr.replay(df, y="price", speed="max")
r"""


def rss_anon(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon")


def test_ten_million_rows_replay_through_the_server(
    lab: LabServer, new_page: Callable[[], Any], artifacts_dir: Path, tmp_path: Path
) -> None:
    server_pid = lab.proc.pid  # ``python -m jupyterlab``: the server itself (kernels are its children)
    before = rss_anon(server_pid)
    nb = lab.add_notebook(write_notebook(tmp_path / "big.ipynb", CELL), f"{tmp_path.name}_big.ipynb")
    page = new_page()
    try:
        kernel_id = open_notebook(page, nb)
        run_all_cells(page, timeout_ms=300_000)
        w = wait_replay_attached(page, timeout=300)
        assert w["sessionId"] == kernel_id
        resp = page_api(page, "GET", f"replay/api/sessions/{kernel_id}")
        assert resp["status"] == 200 and resp["data"]["num_rows"] == ROWS, resp
        assert kernel_eval(page, "r.session.handoff_used") == "True"
        grown = rss_anon(server_pid) - before
        assert grown < 480_000_000 / 4, f"the server's anonymous memory grew by {grown:,} bytes"

        replay_button(page, "Play").click(timeout=120_000)
        wait_for(lambda: (bokeh_source_lengths(page, SOURCE) or [0])[0] > 0, timeout=60,
                 message="no rows reached the BokehJS plot")
        wait_for(lambda: page_api(page, "GET", f"replay/api/sessions/{kernel_id}")["data"]["position"] > 100_000,
                 timeout=120, message="the server session is not replaying the 10M rows")
        # stop it if it is still going: on a quick machine the 10M rows are all released before this line
        # (then the button rightly says Play again and pause is refused as the replay is finished)
        resp = page_api(page, "POST", f"replay/api/sessions/{kernel_id}/actions/pause", {})
        if resp["status"] != 200:
            final = page_api(page, "GET", f"replay/api/sessions/{kernel_id}")["data"]
            assert resp["status"] == 409 and final["state"] == "finished" and final["position"] == ROWS, (resp, final)
    finally:
        save_screenshot(page, "large_attach", artifacts_dir)
