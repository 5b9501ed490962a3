"""Issue 4's acceptance check in a real JupyterLab + Chromium (moved here from ``tests/widgets/test_browser.py``).

Two notebooks, each with its own kernel, replay their own data at their own speed: pausing one (keyboard
shortcut) leaves the other playing, and the plot keeps receiving rows (and obeys pause) while its kernel runs
another cell.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from lab_harness import (
    LabServer, animation_frames, kernel_eval, open_notebook, replay_button, replay_widget, run_all_cells,
    save_screenshot, wait_for, wait_replay_attached, write_notebook,
)

pytestmark = pytest.mark.e2e

BUSY = """() => { window.jupyterapp.shell.currentWidget.sessionContext.session.kernel
                   .requestExecute({code: 'import time; time.sleep(6)'}); return true; }"""
KERNEL_STATUS = "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status"


def _cell(seed: int, speed: int, kind: str = "line") -> str:
    return ("from jupyter_replay.widgets import replay\nfrom jupyter_replay.sources.sample import sample_trades\n"
            f"r = replay(sample_trades(50000, seed={seed}), speed={speed}, kind={kind!r})\nr")


def _rows(page: Any) -> int:
    return replay_widget(page)["sourceLength"]


def test_two_notebooks_replay_independently_and_survive_a_busy_kernel(
    lab: LabServer, new_page: Callable[[], Any], artifacts_dir: Path, tmp_path: Path
) -> None:
    pages = []
    for label, code in (("a", _cell(1, 20)), ("b", _cell(2, 5, "ohlc"))):
        path = lab.add_notebook(write_notebook(tmp_path / f"{label}.ipynb", code), f"{tmp_path.name}_{label}.ipynb")
        page = new_page()
        open_notebook(page, path)
        run_all_cells(page)
        wait_replay_attached(page)
        pages.append(page)
    a, b = pages

    a.locator(".jr-play").click()
    replay_button(b, "Play").click()
    wait_for(lambda: _rows(a) > 50 and _rows(b) > 10, timeout=30, message="play: rows did not arrive")
    assert replay_widget(a)["speed"] == 20 and replay_widget(b)["speed"] == 5

    # pausing A (keyboard shortcut) leaves B playing
    a.locator(".jr-root").focus()
    a.keyboard.press("Space")
    wait_for(lambda: replay_widget(a)["state"] == "paused", timeout=10, message="space did not pause")
    animation_frames(a, 2)
    a1, b1 = _rows(a), _rows(b)
    a.wait_for_timeout(1000)
    assert _rows(a) == a1, "a paused plot kept growing"
    assert _rows(b) > b1, "the other notebook stopped playing"
    assert replay_widget(b)["bars"] > 0  # OHLC candles built in the browser

    # B's kernel runs a long cell: rows keep coming over the extension's socket, and pause still works
    b.evaluate(BUSY)
    wait_for(lambda: b.evaluate(KERNEL_STATUS) == "busy", timeout=10, message="the kernel did not get busy")
    c1 = _rows(b)
    wait_for(lambda: _rows(b) > c1, timeout=3, message="no rows while the kernel was busy")
    replay_button(b, "Pause").click()
    wait_for(lambda: replay_widget(b)["state"] == "paused", timeout=3, message="pause needed the busy kernel")
    assert b.evaluate(KERNEL_STATUS) == "busy"  # the pause did not need the kernel
    animation_frames(b, 2)
    d1 = _rows(b)
    b.wait_for_timeout(500)
    assert _rows(b) == d1
    save_screenshot(b, "widgets_busy_kernel", artifacts_dir / "e2e")

    # the kernel's mirror of A matches what A's plot received; no errors in either widget
    assert kernel_eval(a, "len(r.buffer)") == str(replay_widget(a)["rowsReceived"])
    assert kernel_eval(a, "r.status['state']") == "'paused'"
    assert not replay_widget(a)["errors"] and not replay_widget(b)["errors"]
