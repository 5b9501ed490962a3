"""The replay dashboard served by ``jupyter replay dashboard`` (Voilà), for e2e tests and the dashboard bench.

    dash = start_dashboard("standalone" | "server", tmp_dir, disconnect_timeout=10)
    dash.url                      # the page a visitor opens
    dash.kernel_exists(kernel_id) # GET api/kernels/<id>: False once shut down (both modes)
    dash.sessions()               # replay extension sessions (server mode)
    stop_dashboard(dash)

Page helpers: ``page_kernel_id(page)`` (the Voilà page's kernel), ``status_text(page)`` (the dashboard's status
line), ``snapshot(page)`` (the latest-snapshot panel as {label: text}).
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab_harness import REPO_ROOT, free_port, jupyter_api, stop_server, wait_for

MODES = ("standalone", "server")


@dataclass
class Dashboard:
    mode: str  # "standalone" | "server"
    url: str  # the page visitors open
    base: str  # http://127.0.0.1:<port>/
    token: str
    proc: subprocess.Popen
    log_path: Path

    def kernel_exists(self, kernel_id: str) -> bool:
        """``GET api/kernels/<id>``: 200 while the kernel runs, 404 once it is shut down."""
        try:
            jupyter_api(self.base, self.token, "GET", f"api/kernels/{kernel_id}")
            return True
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return False
            raise

    def sessions(self) -> set[str]:
        """Ids of the replay extension's sessions (server mode only)."""
        return {s["id"] for s in jupyter_api(self.base, self.token, "GET", "replay/api/sessions")}

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


def start_dashboard(mode: str, tmp: Path, disconnect_timeout: float = 60.0,
                    connect_timeout: float = 300.0) -> Dashboard:
    """Start the dashboard command in ``mode`` with its files under ``tmp``; returns once it answers."""
    port, token = free_port(), f"dash-{uuid.uuid4().hex}"
    cmd = [sys.executable, "-m", "jupyter_replay.cli", "dashboard", "--no-browser", "--port", str(port),
           "--disconnect-timeout", str(disconnect_timeout), "--connect-timeout", str(connect_timeout)]
    if mode == "server":
        cmd += ["--server", "--token", token]
    env = dict(os.environ, BOKEH_RESOURCES="inline", PYTHONUNBUFFERED="1",
               JUPYTER_RUNTIME_DIR=str(tmp / "runtime"), PYTHONPATH=os.pathsep.join(
                   p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p))
    log_path = tmp / f"dashboard-{mode}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    base = f"http://127.0.0.1:{port}/"
    url = base + ("voila/render/dashboard.ipynb?token=" + token if mode == "server" else "")
    dash = Dashboard(mode, url, base, token, proc, log_path)

    def up() -> bool:
        assert proc.poll() is None, f"the dashboard server exited:\n{dash.log_tail()}"
        try:
            urllib.request.urlopen(base + ("api/status?token=" + token if mode == "server" else "voila/static/"),
                                   timeout=2).close()
            return True
        except urllib.error.HTTPError:  # answering (e.g. 404 for the static folder itself)
            return True
        except OSError:
            return False

    wait_for(up, timeout=90, interval=0.3, message="the dashboard server did not start")
    return dash



def stop_dashboard(dash: Dashboard) -> None:
    """Stop the server and whatever kernels it left."""
    def shutdown() -> None:
        if dash.mode == "server":
            jupyter_api(dash.base, dash.token, "POST", "api/shutdown")
        else:
            dash.proc.terminate()
    stop_server(dash.proc, shutdown)


def page_kernel_id(page: Any) -> str:
    """The kernel Voilà started for this page (its page config)."""
    return page.evaluate("JSON.parse(document.getElementById('jupyter-config-data').textContent).kernelId")


def status_text(page: Any) -> str:
    """The dashboard's status line."""
    return page.locator(".jr-dash-status").inner_text()


def snapshot(page: Any) -> dict[str, str]:
    """The latest-snapshot panel: {"last", "bar O H L C", "position", "mode", "state", "speed"} -> text."""
    return page.evaluate("""() => Object.fromEntries(Array.from(document.querySelectorAll('.jr-dash-snapshot td'))
                                   .map(td => [td.dataset.key, td.textContent]))""")
