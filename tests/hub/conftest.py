"""JupyterHub end-to-end fixtures: one real hub (subprocess) per module, with alice's and bob's servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hub_harness import HubProcess, find_chp


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, require_binary: Callable[..., str]) -> Iterator[HubProcess]:
    """A running JupyterHub with users alice and bob, an API token each, and both servers started."""
    try:
        import jupyterhub  # noqa: F401
    except ImportError:
        pytest.fail("jupyterhub is missing: it is in the test extra (./dev setup)")
    chp = require_binary("configurable-http-proxy", "run ./dev setup (npm install)", path=find_chp())
    tmp: Path = tmp_path_factory.mktemp("hub")
    proc = HubProcess(tmp, chp)
    try:
        proc.start()
        for user in ("alice", "bob"):
            proc.issue_token(user)
        proc.start_servers("alice", "bob")
        yield proc
    except BaseException:
        print(proc.log_tail(120))
        raise
    finally:
        proc.stop()
