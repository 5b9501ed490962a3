"""The README's demo command (``jupyter replay demo --no-browser``), run for real and opened in Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from jupyter_replay import cli, sources
from lab_harness import (
    DATA_DIR, LabServer, free_port, open_notebook, run_all_cells, save_screenshot, stop_lab, wait_for,
)

URL_RE = re.compile(r"(http://127\.0\.0\.1:(\d+)(/lab[^?\s]*)\?token=(\S+))")


def _example_notebooks(tmp_path: Path) -> Path:
    """The bundled example notebooks; until they exist, a stand-in quickstart (the baseline notebook)."""
    found = cli.notebooks_dir()
    if found is not None:
        return found
    stand_in = tmp_path / "notebooks"
    stand_in.mkdir()
    shutil.copyfile(DATA_DIR / "play_bokeh.ipynb", stand_in / "01_quickstart.ipynb")
    shutil.copyfile(DATA_DIR / "play_bokeh.ipynb", stand_in / "02_other.ipynb")
    return stand_in


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[LabServer, str, str, Path]]:
    """Run the demo command; yields (server, url printed, notebook opened, notebooks source)."""
    demo_dir = tmp_path / "demo"
    notebooks = _example_notebooks(tmp_path)
    (tmp_path / "ws").mkdir()
    cmd = [sys.executable, "-m", "jupyter_replay.cli", "demo", "--no-browser", "--dir", str(demo_dir),
           "--port", str(free_port()), "--notebooks", str(notebooks), "--",
           f"--LabApp.workspaces_dir={tmp_path / 'ws'}", "--LabApp.expose_app_in_browser=True"]
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"))
    log_path = tmp_path / "demo.log"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    lines: list[str] = []

    def pump() -> None:  # keep reading so the server never blocks on a full pipe
        with open(log_path, "w") as log:
            for line in proc.stdout:
                lines.append(line)
                log.write(line)
                log.flush()

    threading.Thread(target=pump, daemon=True).start()
    server = None
    try:
        match = wait_for(lambda: next((URL_RE.search(ln) for ln in lines if URL_RE.search(ln)), None)
                         or (proc.poll() is not None and pytest.fail("demo exited:\n" + "".join(lines))),
                         timeout=60, message="the demo printed no URL")
        url, port, lab_path, token = match.groups()
        server = LabServer(url=f"http://127.0.0.1:{port}/", token=token, root_dir=demo_dir, proc=proc,
                           log_path=log_path)

        def answers() -> bool:
            try:
                server.api("GET", "api/status", timeout=2)
                return True
            except OSError:
                return False

        wait_for(answers, timeout=90, message="the demo server did not answer:\n" + "".join(lines[-30:]))
        yield server, url, lab_path.removeprefix("/lab/tree/"), notebooks
    finally:
        if server is not None:
            stop_lab(server)
        else:
            proc.kill()
            proc.wait()


@pytest.mark.e2e
def test_demo_prepares_folder_and_serves_quickstart(demo, browser):
    server, url, notebook, notebooks = demo
    expected = cli.quickstart_name([p.name for p in notebooks.glob("*.ipynb")])
    assert notebook == expected and "quickstart" in notebook
    # every example notebook was copied, and the sample data sets were written
    assert sorted(p.name for p in server.root_dir.glob("*.ipynb")) == sorted(p.name for p in notebooks.glob("*.ipynb"))
    for name in ("sample_trades", "sample_quotes"):
        if hasattr(sources, name):
            assert (server.root_dir / "data" / f"{name}.parquet").stat().st_size > 0
    # the printed URL works (token included), and the server's default URL is the quickstart
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
    assert server.api("GET", f"api/contents/{notebook}?content=0")["type"] == "notebook"
    # the jupyter_replay server extension is enabled
    assert server.api("GET", "replay/api/sessions") is not None

    ctx = browser.new_context(base_url=server.url, viewport={"width": 1400, "height": 1000})
    try:
        page = ctx.new_page()
        open_notebook(page, notebook, token=server.token)
        assert run_all_cells(page) > 0
        save_screenshot(page, "demo_quickstart")
    finally:
        ctx.close()


def test_demo_keeps_edited_notebooks_unless_reset(tmp_path):
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


def test_cli_help_and_version(capsys):
    assert cli.main(["version"]) == 0
    assert capsys.readouterr().out.strip() == cli._version()
    with pytest.raises(SystemExit) as exc:
        cli.main(["demo", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--no-browser", "--port", "--ip", "--dir"):
        assert flag in out
    assert cli.main([]) == 2
