"""Fixtures of the real-browser e2e tests; the machinery and helpers live in ``lab_harness.py``.

    lab        (session)  LabServer: JupyterLab on 127.0.0.1, known token, tmp root dir; torn down with its kernels
    browser    (module)   Playwright Chromium from /usr/bin/chromium (never a Playwright browser download)
    new_page   (function) factory of fresh pages, each in its own browser context with base_url = the lab;
                          afterwards the contexts are closed, every kernel of the lab is shut down and the
                          test fails if a kernel or a replay session is left over
    page       (function) one such page

Module scope for ``browser``: Playwright's sync API keeps its event loop registered as the thread's running
loop while it is open, so it must be closed before the asyncio tests of other directories run (``tests/e2e``
is not a package, so "package" scope would mean the whole session).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from lab_harness import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, LabServer, start_lab, stop_lab, wait_for


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """A real JupyterLab on 127.0.0.1 for the whole session; its log goes to ``artifacts/e2e/``."""
    server = start_lab(tmp_path_factory.mktemp("jupyterlab"))
    try:
        yield server
    finally:
        stop_lab(server)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(server.log_path, ARTIFACTS / "jupyterlab.log")


# -- browser ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(require_binary: Callable[..., str]) -> Iterator[Any]:
    """Headless Debian Chromium through Playwright's sync API (closed at the end of each test module).

    A missing Chromium fails the test under ``./dev test`` and CI, and skips it elsewhere (``require_binary``).
    """
    chromium = require_binary("chromium", "install Debian's chromium; `./dev setup` does", path=CHROMIUM)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is missing: it is in the test extra (./dev setup)", pytrace=False)

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def new_page(browser: Any, lab: LabServer) -> Iterator[Callable[[], Any]]:
    """Factory of fresh pages, each in its own browser context; everything is closed afterwards."""
    contexts = []

    def make(width: int = 1400, height: int = 1000) -> Any:
        ctx = browser.new_context(base_url=lab.url, viewport={"width": width, "height": height})
        ctx.set_default_timeout(30_000)
        contexts.append(ctx)
        page = ctx.new_page()
        page.on("pageerror", lambda exc: print(f"[browser pageerror] {exc}"))
        return page

    yield make
    for ctx in contexts:
        ctx.close()
    lab.shutdown_kernels()
    # isolation for the next test: no kernel keeps running, and the extension dropped their sessions
    assert lab.api("GET", "api/kernels") == [], "kernels left running after shutdown"
    wait_for(lambda: lab.api("GET", "replay/api/sessions") == [], timeout=15,
             message="replay sessions outlived their kernels")


@pytest.fixture
def page(new_page: Callable[[], Any]) -> Any:
    """One fresh page (see ``new_page``)."""
    return new_page()


