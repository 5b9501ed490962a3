"""The README's demo command run for real: ``jupyter replay demo --no-browser`` (and ``./dev demo --no-browser``).

The command is started as a subprocess; the test reads the URL it prints, fetches it, opens it in Chromium,
checks that the quickstart notebook loads and its replay widget renders and streams from the server
extension, then stops the server with Ctrl-C (SIGINT) and checks that it and its kernels exit.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from jupyter_replay import cli
from lab_harness import (
    DATA_DIR, REPO_ROOT, free_port, replay_widget, run_all_cells, save_screenshot, wait_for,
    wait_notebook_ready, wait_replay_attached,
)

URL_RE = re.compile(r"(http://127\.0\.0\.1:(\d+)(/lab[^?\s]*)\?token=(\S+))")
NOTEBOOKS = REPO_ROOT / "notebooks"


@dataclass
class Demo:
    """A running demo command."""

    proc: subprocess.Popen
    directory: Path
    url: str = ""
    base: str = ""             # http://127.0.0.1:<port>/
    notebook: str = ""         # the notebook in the printed URL (relative to the demo folder)
    token: str = ""
    lines: list[str] = field(default_factory=list)

    def output(self, n: int = 40) -> str:
        return "".join(self.lines[-n:])

    def api(self, path: str) -> Any:
        import json

        req = urllib.request.Request(self.base + path, headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())


def _start_demo(cmd: Sequence[str], tmp_path: Path, env: dict[str, str] | None = None) -> Demo:
    """Start ``cmd`` (a demo command); returns once it printed its URL and the server answers."""
    demo_dir = tmp_path / "demo"
    env = dict(os.environ if env is None else env, JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(list(cmd), env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, stdin=subprocess.DEVNULL, start_new_session=True)
    demo = Demo(proc=proc, directory=demo_dir)

    def pump() -> None:  # keep reading so the server never blocks on a full pipe
        with open(tmp_path / "demo.log", "w") as log:
            for line in proc.stdout:
                demo.lines.append(line)
                log.write(line)
                log.flush()

    threading.Thread(target=pump, daemon=True).start()

    def printed_url() -> re.Match | None:
        for line in list(demo.lines):
            if m := URL_RE.search(line):
                return m
        if proc.poll() is not None:
            pytest.fail(f"the demo exited with {proc.returncode}:\n{demo.output()}")
        return None

    try:
        m = wait_for(printed_url, timeout=120, interval=0.2, message="the demo printed no URL")
        demo.url, port, lab_path, demo.token = m.groups()
        demo.base = f"http://127.0.0.1:{port}/"
        demo.notebook = lab_path.removeprefix("/lab/tree/")

        def answers() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"the demo exited with {proc.returncode}:\n{demo.output()}")
            try:
                demo.api("api/status")
                return True
            except OSError:
                return False

        wait_for(answers, timeout=90, interval=0.2, message="the demo server did not answer")
    except BaseException:
        _kill(demo)
        raise
    return demo


def _kill(demo: Demo) -> None:
    try:
        os.killpg(demo.proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    demo.proc.wait(timeout=10)


def _stop_with_ctrl_c(demo: Demo) -> None:
    """Ctrl-C as a user would (stdin is not a terminal: no confirmation); the server and its kernels exit."""
    children = psutil.Process(demo.proc.pid).children(recursive=True)
    demo.proc.send_signal(signal.SIGINT)
    try:
        rc = demo.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        _kill(demo)
        pytest.fail(f"the demo did not stop on Ctrl-C:\n{demo.output()}")
    _, alive = psutil.wait_procs(children, timeout=15)
    for p in alive:
        p.kill()
    assert rc == 0, f"the demo exited with {rc}:\n{demo.output()}"
    assert not alive, f"processes outlived the demo server: {alive}"


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    """``jupyter replay demo --no-browser`` in a temporary folder, on a free port."""
    lab_args = [f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}", "--LabApp.expose_app_in_browser=True",
                "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    cmd = [sys.executable, "-m", "jupyter", "replay", "demo", "--no-browser", "--dir", str(tmp_path / "demo"),
           "--port", str(free_port()), "--", *lab_args]
    d = _start_demo(cmd, tmp_path)
    try:
        yield d
    finally:
        if d.proc.poll() is None:
            _kill(d)


@pytest.mark.e2e
def test_demo_serves_the_quickstart_and_the_widget_renders(demo: Demo, browser: Any, artifacts_dir: Path) -> None:
    # the folder holds every example notebook and the embedded sample data; the URL names the quickstart
    bundled = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert bundled and sorted(p.name for p in demo.directory.glob("*.ipynb")) == bundled
    assert demo.notebook == cli.quickstart_name(bundled) and "quickstart" in demo.notebook
    for name in ("sample_trades", "sample_quotes"):
        assert (demo.directory / "data" / f"{name}.parquet").stat().st_size > 0
    assert "Open JupyterLab at:" in demo.output()

    # the printed URL (token included) serves JupyterLab; the server extension is enabled
    with urllib.request.urlopen(demo.url, timeout=10) as resp:
        assert resp.status == 200 and b"jupyter-config-data" in resp.read()
    assert demo.api(f"api/contents/{demo.notebook}?content=0")["type"] == "notebook"
    assert demo.api("replay/api/sessions") == []

    # Chromium on exactly the printed URL: the quickstart opens, runs, and its widget renders and attaches
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = ctx.new_page()
        page.goto(demo.url)
        kernel_id = wait_notebook_ready(page, demo.notebook)
        assert run_all_cells(page) >= 3
        w = wait_replay_attached(page)
        assert w["sessionId"] == kernel_id and w["sourceName"] == "replay_source" and not w["errors"]
        assert page.locator(".jr-root button[aria-label='Play']").is_visible()
        assert page.locator(".jr-root .jr-plot canvas").count() > 0  # BokehJS drew the plot
        assert [s["id"] for s in demo.api("replay/api/sessions")] == [kernel_id]
        save_screenshot(page, "demo_quickstart", artifacts_dir / "e2e")
    finally:
        ctx.close()
    _stop_with_ctrl_c(demo)


def _dev_uses_this_python() -> bool:
    """``./dev`` would reuse this interpreter's editable install of this checkout."""
    import jupyter_replay

    return (os.access(REPO_ROOT / "dev", os.X_OK)
            and Path(jupyter_replay.__file__).resolve().is_relative_to(REPO_ROOT)
            and not (REPO_ROOT / ".venv").exists() and not os.environ.get("VIRTUAL_ENV"))


@pytest.mark.e2e
def test_dev_demo_prints_the_url_and_serves_the_quickstart(require_binary: Any, tmp_path: Path) -> None:
    # ./dev's set-up step must find every system tool (and install nothing): missing ones follow the one rule
    for tool in ("redis-server", "npm"):
        require_binary(tool, "run ./dev setup")
    local_chp = REPO_ROOT / "node_modules" / ".bin" / "configurable-http-proxy"
    require_binary("configurable-http-proxy", "run ./dev setup (npm ci)", path=str(local_chp))
    if not local_chp.exists():
        pytest.skip("./dev would install configurable-http-proxy into this checkout (npm ci)")
    if not _dev_uses_this_python():
        pytest.skip("./dev would use another interpreter than the one running the tests")
    env = dict(os.environ, PYTHON=sys.executable)
    cmd = [str(REPO_ROOT / "dev"), "demo", "--no-browser", "--dir", str(tmp_path / "demo"),
           "--port", str(free_port()), "--", f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}"]
    d = _start_demo(cmd, tmp_path, env)
    try:
        assert "quickstart" in d.notebook and (d.directory / d.notebook).is_file()
        with urllib.request.urlopen(d.url, timeout=10) as resp:
            assert resp.status == 200
        assert d.api(f"api/contents/{d.notebook}?content=0")["type"] == "notebook"
        assert d.api("replay/api/sessions") == []  # the extension is enabled
        _stop_with_ctrl_c(d)
    finally:
        if d.proc.poll() is None:
            _kill(d)


def test_demo_keeps_edited_notebooks_unless_reset(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    shutil.copyfile(DATA_DIR / "play_bokeh.ipynb", src / "quickstart.ipynb")
    target = tmp_path / "demo"
    written, opened = cli.prepare_demo(target, notebooks=src)
    assert opened == "quickstart.ipynb" and target / "quickstart.ipynb" in written
    (target / "quickstart.ipynb").write_text("{}")            # the user edits it
    written, _ = cli.prepare_demo(target, notebooks=src)
    assert (target / "quickstart.ipynb").read_text() == "{}" and target / "quickstart.ipynb" not in written
    cli.prepare_demo(target, notebooks=src, reset=True)
    assert (target / "quickstart.ipynb").read_bytes() == (src / "quickstart.ipynb").read_bytes()


def test_demo_uses_the_bundled_notebooks_and_dry_run_prints_the_command(tmp_path: Path, capsys) -> None:
    assert cli.notebooks_dir() == NOTEBOOKS
    assert cli.main(["demo", "--dir", str(tmp_path / "d"), "--port", str(free_port()), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "jupyterlab" in out and "--LabApp.default_url=/lab/tree/01_quickstart.ipynb" in out
    assert (tmp_path / "d" / "data" / "sample_trades.parquet").is_file()


def test_cli_help_and_version(capsys) -> None:
    assert cli.main(["version"]) == 0
    assert capsys.readouterr().out.strip() == cli._version()
    with pytest.raises(SystemExit) as exc:
        cli.main(["demo", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--no-browser", "--port", "--ip", "--dir"):
        assert flag in out
    assert cli.main([]) == 2
