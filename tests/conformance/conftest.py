"""Conformance fixtures: ``host`` is parametrised over the hosts of ``hosts.py`` (module scope: one server and one
kernel per host for the whole module; every scenario loads a fresh session with ``host.load``).

The server is a real Jupyter server subprocess (the e2e harness's ``start_lab``, no browser), so the
attached host's kernel and the REST host talk to it over real HTTP/WebSocket while the test blocks.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "e2e"))  # lab_harness: start_lab / stop_lab

from hosts import (
    AttachedHost,
    EngineHost,
    LocalWidgetHost,
    RestHost,
    Server,
    ThreadedHost,
)

HOSTS = ("engine", "threaded", "widget_local", "attached", "rest")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from lab_harness import start_lab, stop_lab

    from jupyter_replay import controls

    # the server's limits set to the headless defaults: the suite compares implementations, not settings
    # (the server defaults to max_step_rows=100000, README "Configuration": a setting, not an implementation)
    lab = start_lab(tmp_path_factory.mktemp("conformance-server"),
                    extra_args=[f"--ReplayExtension.max_step_rows={controls.MAX_STEP_ROWS}"])
    try:
        yield Server(lab)
    finally:
        stop_lab(lab)


def _connection_file(server: Server, kernel_id: str) -> str:
    runtime = server.lab.root_dir.parent / "runtime"
    matches = list(runtime.rglob(f"kernel-{kernel_id}.json"))
    assert matches, f"no connection file for kernel {kernel_id} under {runtime}"
    return str(matches[0])


@pytest.fixture(scope="module", params=HOSTS)
def host(request: pytest.FixtureRequest) -> Iterator[Any]:
    name = request.param
    if name == "engine":
        h: Any = EngineHost()
    elif name == "threaded":
        h = ThreadedHost()
    elif name == "widget_local":
        h = LocalWidgetHost()
    else:
        server = request.getfixturevalue("server")
        kid = server.start_kernel()
        if name == "rest":
            h = RestHost(server, kid)
        else:
            import jupyter_replay

            h = AttachedHost(server, kid, _connection_file(server, kid), [str(HERE)])
            # the kernel must run the code under test (PYTHONPATH is inherited through the server)
            assert Path(h.package_file).parent == Path(jupyter_replay.__file__).parent, h.package_file
    try:
        yield h
    finally:
        h.close()


@pytest.fixture
def needs_callbacks(host: Any) -> None:
    """Callback scenarios: the REST host has no Python to run a callback in (the only skip)."""
    if not host.callbacks:
        pytest.skip(f"{host.name}: a raw REST/WebSocket client cannot run Python callbacks")
