"""The issue's acceptance check in a real JupyterLab + Chromium (marker ``e2e``).

Two notebooks, each with its own kernel, replay their own data at their own speed: pausing one leaves the
other playing, and the plot keeps receiving rows (and obeys pause) while its kernel runs another cell.
Uses the e2e harness from ``tests/e2e/lab_harness.py``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from lab_harness import (  # noqa: E402
    CHROMIUM, CHROMIUM_ARGS, LabServer, kernel_eval, open_notebook, run_all_cells, save_screenshot, start_lab,
    stop_lab, wait_for,
)

pytestmark = pytest.mark.e2e

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
# the widget's registry entry: transport, rows received, rows in its BokehJS source, state
REG = """() => {
  const w = (window.__jupyter_replay__ || {widgets: []}).widgets[0];
  if (!w) return null;
  return {t: w.transport, rows: w.rowsReceived, len: w.source ? w.source.get_length() : null,
          bars: w.bars ? w.bars.get_length() : null, state: w.status && w.status.state,
          speed: w.status && w.status.speed, errors: w.errors};
}"""
BUSY = """() => { window.jupyterapp.shell.currentWidget.sessionContext.session.kernel
                   .requestExecute({code: 'import time; time.sleep(6)'}); return true; }"""
KERNEL_STATUS = "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status"


def _notebook(path: Path, code: str) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook(metadata={"kernelspec": KERNELSPEC})
    nb.cells = [nbformat.v4.new_code_cell(code)]
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"needs {CHROMIUM}")
    pytest.importorskip("playwright.sync_api")
    server = start_lab(tmp_path_factory.mktemp("widgets-lab"))
    try:
        yield server
    finally:
        stop_lab(server)


@pytest.fixture(scope="module")
def browser(lab: LabServer) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _open(browser: Any, lab: LabServer, path: str) -> Any:
    ctx = browser.new_context(base_url=lab.url, viewport={"width": 1400, "height": 900})
    ctx.set_default_timeout(30_000)
    page = ctx.new_page()
    open_notebook(page, path)
    run_all_cells(page)
    wait_for(lambda: (r := page.evaluate(REG)) and r["t"] == "ws" and r["len"] is not None, timeout=60,
             message="the widget did not attach to the server session")
    return page


def test_two_notebooks_replay_independently_and_survive_a_busy_kernel(lab: LabServer, browser: Any) -> None:
    _notebook(lab.root_dir / "a.ipynb",
              "from jupyter_replay.widgets import replay\nfrom jupyter_replay.sources.sample import sample_trades\n"
              "r = replay(sample_trades(50000, seed=1), speed=20)\nr")
    _notebook(lab.root_dir / "b.ipynb",
              "from jupyter_replay.widgets import replay\nfrom jupyter_replay.sources.sample import sample_trades\n"
              "r = replay(sample_trades(50000, seed=2), speed=5, kind='ohlc')\nr")
    a, b = _open(browser, lab, "a.ipynb"), _open(browser, lab, "b.ipynb")
    try:
        a.locator(".jr-play").click()
        b.locator("button[aria-label='Play']").click()
        wait_for(lambda: a.evaluate(REG)["len"] > 50 and b.evaluate(REG)["len"] > 10, timeout=30)
        assert a.evaluate(REG)["speed"] == 20 and b.evaluate(REG)["speed"] == 5

        # pausing A leaves B playing
        a.locator(".jr-root").focus()
        a.keyboard.press("Space")  # keyboard shortcut for play/pause
        wait_for(lambda: a.evaluate(REG)["state"] == "paused", timeout=10)
        a1, b1 = a.evaluate(REG)["len"], b.evaluate(REG)["len"]
        time.sleep(1.0)
        a2, b2 = a.evaluate(REG)["len"], b.evaluate(REG)["len"]
        assert a1 == a2, "a paused plot kept growing"
        assert b2 > b1, "the other notebook stopped playing"
        assert b.evaluate(REG)["bars"] > 0  # OHLC candles built in the browser

        # B's kernel runs a long cell: rows keep coming over the extension's socket, and pause still works
        b.evaluate(BUSY)
        wait_for(lambda: b.evaluate(KERNEL_STATUS) == "busy", timeout=10)
        c1 = b.evaluate(REG)["len"]
        time.sleep(1.0)
        assert b.evaluate(REG)["len"] > c1, "no rows while the kernel was busy"
        b.locator("button[aria-label='Pause']").click()
        wait_for(lambda: b.evaluate(REG)["state"] == "paused", timeout=3)
        assert b.evaluate(KERNEL_STATUS) == "busy"  # the pause did not need the kernel
        d1 = b.evaluate(REG)["len"]
        time.sleep(0.5)
        assert b.evaluate(REG)["len"] == d1
        save_screenshot(b, "widgets_busy_kernel")

        # the kernel's mirror of A matches what A's plot received; no errors in either widget
        assert kernel_eval(a, "len(r.buffer)") == str(a.evaluate(REG)["rows"])
        assert kernel_eval(a, "r.status['state']") == "'paused'"
        assert not a.evaluate(REG)["errors"] and not b.evaluate(REG)["errors"]
    finally:
        a.context.close()
        b.context.close()
        lab.shutdown_kernels()
