"""Real-browser end-to-end harness: a JupyterLab subprocess driven by Debian's headless Chromium.

Use from tests in ``tests/e2e`` (the fixtures ``lab``, ``browser``, ``page``, ``new_page`` come from
``conftest.py``; the helpers are imported from here)::

    from lab_harness import DATA_DIR, bokeh_source_length, open_notebook, run_all_cells, save_screenshot, wait_for

    @pytest.mark.e2e
    def test_x(lab, page):
        path = lab.add_notebook(DATA_DIR / "x.ipynb")      # copy into the lab root
        open_notebook(page, path)                            # fresh workspace, kernel idle
        run_all_cells(page)                                  # all cells ran, no errors
        page.locator(".widget-play button:has(i.fa-play)").click()
        wait_for(lambda: (bokeh_source_length(page, "ticks") or 0) > 0)
        save_screenshot(page, "x")                           # artifacts/e2e/x.png

Helpers
    open_notebook(page, path)         open ``path`` (relative to the lab root) in a fresh workspace,
                                      wait until its kernel is idle; returns the kernel id
    wait_notebook_ready(page, path)   the waiting part of open_notebook (after any page.goto)
    run_all_cells(page[, path])       run every cell, wait until all code cells have an execution count and
                                      the kernel is idle; AssertionError listing cell errors
    kernel_eval(page, code)           run code in the notebook's kernel (outside the cells); returns the
                                      text/plain result of the last expression, e.g. ``"500"``
    bokeh_source_length(page, name)   rows in the BokehJS ColumnDataSource(s) named ``name`` (summed over the
                                      Bokeh documents on the page; None if there is none);
                                      ``bokeh_source_lengths`` gives one number per document
    wait_for(fn, timeout=..)          poll a Python predicate until truthy
    save_screenshot(page, name)       ``artifacts/e2e/<name>.png``
    write_notebook(path, *cells)      a small Python 3 notebook, one code cell per string
    replay_widget(page[, i])          the i-th jupyter_replay widget as its JS registry sees it (transport,
                                      rowsReceived, sourceLength = rows in its BokehJS source, state, mode...)
    wait_replay_attached(page)        wait until the widget streams from its server session (transport "ws")
    replay_button(page, label)        a control button by aria-label ("Play", "Pause", "Stop", "Switch to live mode")
    page_api(page, method, path)      REST call from the page with its token and _xsrf (e.g. replay/api/sessions/<k>)
    animation_frames(page, n)         let n animation frames pass in the page
    LabServer.api(method, path)       the Jupyter REST API with the token (e.g. ``lab.api("GET", "api/kernels")``)

A server with other options (e.g. extension traitlets): ``server = start_lab(tmp, extra_args=[...])`` and
``stop_lab(server)`` in your own fixture.

Several notebooks at once: ``p1, p2 = new_page(), new_page()`` (separate browser contexts and workspaces,
hence separate kernels), ``open_notebook(p1, a)``, ``open_notebook(p2, b)``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = Path(__file__).resolve().parent / "data"
ARTIFACTS = REPO_ROOT / "artifacts" / "e2e"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TOKEN = "jupyter-replay-e2e-" + uuid.uuid4().hex  # known to the harness, random per run
STARTUP_TIMEOUT_S = 90.0
NOTEBOOK_TIMEOUT_MS = 120_000

# JupyterLab user settings for tests: no news/update pop-ups, render every cell (no virtual scrolling).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


# -- JupyterLab server ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LabServer:
    """A running JupyterLab subprocess."""

    url: str                      # http://127.0.0.1:<port>/ (trailing slash)
    token: str
    root_dir: Path                # notebooks must live under here
    proc: subprocess.Popen
    log_path: Path              # server output (stdout + stderr)

    def api(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
        """Call the Jupyter REST API (``path`` like ``api/kernels``); returns the decoded JSON or None."""
        return jupyter_api(self.url, self.token, method, path, body, timeout)

    def add_notebook(self, src: str | Path, name: str | None = None) -> str:
        """Copy notebook ``src`` into the root dir (as ``name``); returns its path relative to the root."""
        src = Path(src)
        name = name or src.name
        dest = self.root_dir / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        return name

    def shutdown_kernels(self) -> None:
        """Shut down every session and kernel (between tests: old kernels must not keep streaming)."""
        for s in self.api("GET", "api/sessions"):
            self.api("DELETE", f"api/sessions/{s['id']}", timeout=30)
        for k in self.api("GET", "api/kernels"):
            self.api("DELETE", f"api/kernels/{k['id']}", timeout=30)

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def start_lab(tmp: Path, extra_args: Sequence[str] = ()) -> LabServer:
    """Start JupyterLab with everything (root, workspaces, settings, config, runtime) under ``tmp``.

    Returns once ``/api/status`` answers; RuntimeError with the log tail when it does not.
    """
    root, work, settings, runtime, config = (tmp / d for d in ("root", "workspaces", "settings", "runtime", "config"))
    for d in (root, work, settings, runtime, config):
        d.mkdir(parents=True)
    for rel, value in LAB_SETTINGS.items():
        target = settings / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(value))
    port = free_port()
    env = dict(os.environ, BOKEH_RESOURCES="inline", JUPYTER_CONFIG_DIR=str(config),
               JUPYTER_RUNTIME_DIR=str(runtime), PYTHONUNBUFFERED="1")
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}",
        f"--LabApp.workspaces_dir={work}", f"--LabApp.user_settings_dir={settings}",
        "--ServerApp.allow_root=True",
        "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: run commands, find notebooks
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        *extra_args,
    ]
    log_path = tmp / "jupyterlab.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    lab = LabServer(url=f"http://127.0.0.1:{port}/", token=TOKEN, root_dir=root, proc=proc, log_path=log_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {proc.returncode}:\n{lab.log_tail()}")
        try:
            lab.api("GET", "api/status", timeout=2)
            return lab
        except OSError:
            if time.monotonic() > deadline:
                stop_lab(lab)
                raise RuntimeError(f"JupyterLab did not answer /api/status in {STARTUP_TIMEOUT_S}s:\n{lab.log_tail()}")
            time.sleep(0.2)


def jupyter_api(url: str, token: str, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
    """One token-authenticated JSON request to a Jupyter server at ``url``; the decoded JSON or None."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method,
                                 headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def stop_server(
    proc: subprocess.Popen, shutdown: Callable[[], Any], *, wait: float = 20.0, term_wait: float = 10.0,
    children_wait: float = 5.0,
) -> None:
    """Stop a Jupyter server process: ``shutdown()`` (a polite request), then SIGTERM, then SIGKILL;
    finally kill whatever its children (kernels) left behind."""
    import psutil

    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    if proc.poll() is None:
        try:
            shutdown()
        except OSError:
            pass
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=term_wait)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    for child in children:  # kernels started by the server
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(children, timeout=children_wait)


def stop_lab(lab: LabServer) -> None:
    """Shut down kernels and the server; kill whatever is left of its process group."""

    def shutdown() -> None:
        lab.shutdown_kernels()
        lab.api("POST", "api/shutdown", timeout=10)

    stop_server(lab.proc, shutdown)


# -- helpers --------------------------------------------------------------------------------------

# JS: the NotebookPanel for a path (or the first notebook), through window.jupyterapp.
_JS_FIND_PANEL = """
  const findPanel = (path) => {
    const app = window.jupyterapp;
    if (!app) return null;
    for (const w of Array.from(app.shell.widgets('main'))) {
      if (w.context && w.content && w.sessionContext && (!path || w.context.path === path)) return w;
    }
    return null;
  };
"""


def _js(params: str, body: str) -> str:
    """An arrow function ``(params) => { findPanel; body }`` for page.evaluate / wait_for_function."""
    return f"({params}) => {{{_JS_FIND_PANEL}{body}}}"


def open_notebook(page: Any, path: str, *, workspace: str | None = None, token: str = TOKEN,
                  timeout_ms: int = NOTEBOOK_TIMEOUT_MS) -> str:
    """Open notebook ``path`` (relative to the lab root) in a fresh JupyterLab workspace on ``page``.

    Waits until the notebook is rendered and its kernel is idle; returns the kernel id. A fresh workspace
    (``/lab/workspaces/<unique>/tree/<path>?reset``) means no tabs from older pages are restored, so no
    stray kernels start.
    """
    workspace = workspace or f"e2e-{uuid.uuid4().hex[:12]}"
    page.goto(f"lab/workspaces/{workspace}/tree/{path}?reset&token={token}")
    return wait_notebook_ready(page, path, timeout_ms=timeout_ms)


def wait_notebook_ready(page: Any, path: str, *, timeout_ms: int = NOTEBOOK_TIMEOUT_MS) -> str:
    """Wait until notebook ``path`` is open on ``page`` (however it was opened), rendered, with an idle
    kernel; activates it and returns the kernel id. Needs ``--LabApp.expose_app_in_browser``."""
    page.wait_for_function(
        _js("path", """
          const p = findPanel(path);
          if (!p || !p.context.isReady || !p.sessionContext.isReady) return false;
          const k = p.sessionContext.session && p.sessionContext.session.kernel;
          return !!k && k.status === 'idle' && p.content.widgets.length > 0;
        """),
        arg=path, timeout=timeout_ms, polling=200,
    )
    page.evaluate(_js("path", "window.jupyterapp.shell.activateById(findPanel(path).id);"), path)
    return page.evaluate(_js("path", "return findPanel(path).sessionContext.session.kernel.id;"), path)


def run_all_cells(page: Any, path: str | None = None, *, timeout_ms: int = NOTEBOOK_TIMEOUT_MS) -> int:
    """Run every cell of the notebook ``path`` (default: the one open on ``page``); returns the code cell count.

    Uses the ``notebook:run-all-cells`` command (its promise resolves when all cells have run), then
    waits until every code cell has an execution count and the kernel is idle. Raises AssertionError
    with the error outputs when a cell failed.
    """
    page.evaluate(_js("path", "window.jupyterapp.shell.activateById(findPanel(path).id);"), path)
    ok = page.evaluate(
        """async (timeout) => {
          const run = window.jupyterapp.commands.execute('notebook:run-all-cells');
          const timer = new Promise((_, reject) => setTimeout(() => reject(new Error('run-all timed out')), timeout));
          return await Promise.race([run, timer]);
        }""",
        timeout_ms,
    )
    report = page.evaluate(
        _js("path", """
          const p = findPanel(path);
          const cells = Array.from(p.content.model.cells).filter(c => c.type === 'code');
          const errors = [];
          for (const c of cells) {
            for (const o of c.toJSON().outputs || []) {
              if (o.output_type === 'error') errors.push(`${o.ename}: ${o.evalue}`);
            }
          }
          return {count: cells.length, errors};
        """),
        path,
    )
    assert not report["errors"], f"cells raised: {report['errors']}"
    assert ok is not False, "notebook:run-all-cells reported a failure"
    page.wait_for_function(
        _js("path", """
          const p = findPanel(path);
          const k = p.sessionContext.session && p.sessionContext.session.kernel;
          if (!k || k.status !== 'idle') return false;
          const cells = Array.from(p.content.model.cells).filter(c => c.type === 'code');
          return cells.every(c => c.executionCount !== null && c.executionCount !== undefined);
        """),
        arg=path, timeout=timeout_ms, polling=200,
    )
    return report["count"]


def kernel_eval(page: Any, code: str, path: str | None = None, *, timeout_ms: int = 60_000) -> str | None:
    """Run ``code`` in the kernel of notebook ``path`` (default: the one on ``page``), outside the cells.

    Returns the ``text/plain`` of the result of the last expression (like a cell's ``Out``), else the
    printed text, else None. Raises AssertionError when the code raised.
    """
    out = page.evaluate(
        _js("[path, code, timeout]", """
          const k = findPanel(path).sessionContext.session.kernel;
          const fut = k.requestExecute({code, silent: false, store_history: false});
          const out = {text: '', result: null, error: null};
          fut.onIOPub = (msg) => {
            const t = msg.header.msg_type, c = msg.content;
            if (t === 'stream') out.text += c.text;
            else if (t === 'execute_result') out.result = c.data['text/plain'];
            else if (t === 'error') out.error = `${c.ename}: ${c.evalue}`;
          };
          const timer = new Promise((_, reject) => setTimeout(() => reject(new Error('kernel_eval timed out')), timeout));
          return Promise.race([fut.done.then(() => out), timer]);
        """),
        [path, code, timeout_ms],
    )
    assert out["error"] is None, f"{code!r} raised {out['error']}"
    return out["result"] if out["result"] is not None else (out["text"] or None)


def bokeh_source_lengths(page: Any, name: str) -> list[int]:
    """Row count of every BokehJS data source named ``name``, one per Bokeh document on ``page``."""
    return page.evaluate(
        """(name) => {
          const B = window.Bokeh;
          if (!B || !B.documents) return [];
          const out = [];
          for (const doc of B.documents) {
            const m = doc.get_model_by_name(name);
            if (!m || !m.data) continue;
            if (typeof m.get_length === 'function') { out.push(m.get_length() ?? 0); continue; }
            const cols = m.data instanceof Map ? Array.from(m.data.values()) : Object.values(m.data);
            out.push(cols.length ? cols[0].length : 0);
          }
          return out;
        }""",
        name,
    )


def bokeh_source_length(page: Any, name: str) -> int | None:
    """Rows in the BokehJS data source(s) named ``name`` on ``page`` (summed), None if no such source."""
    lengths = bokeh_source_lengths(page, name)
    return sum(lengths) if lengths else None


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1, message: str = "") -> Any:
    """Poll ``predicate`` until it returns a truthy value (returned); AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(message or f"condition not met within {timeout}s (last value {value!r})")
        time.sleep(interval)


def save_screenshot(page: Any, name: str, directory: Path | None = None) -> Path:
    """Screenshot ``page`` into ``<directory or artifacts/e2e>/<name>.png``; returns the path."""
    folder = directory if directory is not None else ARTIFACTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


def write_notebook(path: Path, *cells: str) -> Path:
    """Write a small Python 3 notebook with one code cell per string."""
    import nbformat

    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell(code) for code in cells]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


# -- the jupyter_replay widget in the page -------------------------------------------------------

# window.__jupyter_replay__.widgets[i] (kept by widgets/static/replay.js), as plain JSON.
_JS_REPLAY_WIDGET = """(i) => {
  const reg = window.__jupyter_replay__;
  const w = reg && reg.widgets[i];
  if (!w) return null;
  const st = w.status || {};
  return {
    sessionId: w.sessionId, transport: w.transport, rowsReceived: w.rowsReceived, resets: w.resets,
    streamCalls: w.streamCalls, sourceLength: w.source ? (w.source.get_length() ?? 0) : null,
    sourceName: w.source ? w.source.name : null, bars: w.bars ? (w.bars.get_length() ?? 0) : null,
    state: st.state ?? null, mode: st.mode ?? null, speed: st.speed ?? null, errors: [...(w.errors || [])],
    count: reg.widgets.length, bokeh: !!(window.Bokeh && window.Bokeh.embed), bokehRequested: !!reg.bokehRequested,
    plotText: w.el && w.el.querySelector('.jr-plot') ? w.el.querySelector('.jr-plot').textContent.slice(0, 80) : null,
  };
}"""


def replay_widget(page: Any, index: int = 0) -> dict[str, Any] | None:
    """The ``index``-th jupyter_replay widget view on ``page`` as the JS registry sees it, or None.

    Keys: sessionId, transport ("local"|"ws"), rowsReceived (rows since the last reset), resets,
    streamCalls, sourceLength (rows in its BokehJS ColumnDataSource), sourceName, bars, state, mode,
    speed, errors, count (views on the page), bokeh (BokehJS loaded), bokehRequested, plotText.
    """
    return page.evaluate(_JS_REPLAY_WIDGET, index)


def wait_replay_attached(page: Any, index: int = 0, timeout: float = 60.0) -> dict[str, Any]:
    """Wait until widget ``index`` streams from its server session (transport "ws", plot embedded)."""
    def attached() -> dict[str, Any] | None:
        w = replay_widget(page, index)
        return w if w and w["transport"] == "ws" and w["sourceLength"] is not None and w["state"] else None
    return wait_for(attached, timeout=timeout,
                    message=f"the replay widget did not attach to its server session: {replay_widget(page, index)}")


def replay_button(page: Any, label: str, index: int = 0) -> Any:
    """Locator of the control button with aria-label ``label`` in widget view ``index``."""
    return page.locator(".jr-root").nth(index).locator(f"button[aria-label='{label}']")


def page_api(page: Any, method: str, path: str, body: Any = None) -> dict[str, Any]:
    """Call the Jupyter REST API (``path`` like ``replay/api/sessions``) from ``page`` with the page's token.

    Uses the page config (``baseUrl``, ``token``) and the ``_xsrf`` cookie like the widget does; returns
    ``{"status": int, "data": decoded JSON or None}``.
    """
    return page.evaluate(
        """async ([method, path, body]) => {
          const cfg = JSON.parse(document.getElementById('jupyter-config-data').textContent);
          const headers = {'Content-Type': 'application/json'};
          if (cfg.token) headers.Authorization = 'token ' + cfg.token;
          const m = document.cookie.match('\\b_xsrf=([^;]*)\\b');
          if (m) headers['X-XSRFToken'] = decodeURIComponent(m[1]);
          const url = new URL(path, new URL(cfg.baseUrl || '/', window.location.href));
          const resp = await fetch(url, {method, headers, credentials: 'same-origin',
                                         body: body === null ? undefined : JSON.stringify(body)});
          let data = null;
          try { data = await resp.json(); } catch (e) { data = null; }
          return {status: resp.status, data};
        }""",
        [method, path, body],
    )


def animation_frames(page: Any, n: int) -> None:
    """Let ``n`` animation frames pass in ``page``."""
    page.evaluate(
        """(n) => new Promise((resolve) => {
          let left = n;
          const tick = () => (--left <= 0 ? resolve(true) : requestAnimationFrame(tick));
          requestAnimationFrame(tick);
        })""",
        n,
    )
