"""Reliability and security tests: a real Jupyter server (pytest-jupyter), real kernels, real sockets.

Like ``tests/server/conftest.py``: pytest-jupyter's fixtures are imported here so they apply to this
directory only, and ``async def`` server tests use ``@on_server_loop`` (from ``tests/server/server_helpers``).
Engine-only test modules here override pytest-jupyter's autouse ``jp_server_cleanup`` with a no-op.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "server"))

from pytest_jupyter.jupyter_server import *  # noqa: E402,F401,F403
from server_helpers import Api, RoleAuthorizer  # noqa: E402
from traitlets.config import Config  # noqa: E402


@pytest.fixture
def jp_server_config() -> Config:
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"jupyter_replay.server": True},
                "authorizer_class": RoleAuthorizer,
            },
            "ReplayExtension": {"buffer_rows": 20_000},
            # a kernel killed with SIGKILL is declared dead quickly (and not restarted unless a test says so)
            "KernelRestarter": {"restart_limit": 0, "time_to_dead": 0.2},
        }
    )


@pytest.fixture
def replay_ext(jp_serverapp: Any) -> Any:
    """The loaded ``ReplayExtension``."""
    return jp_serverapp.extension_manager.extension_points["jupyter_replay"].app


@pytest.fixture
def replay_manager(replay_ext: Any) -> Any:
    return replay_ext.manager


@pytest.fixture
def api(jp_fetch: Any, jp_ws_fetch: Any) -> Api:
    return Api(jp_fetch, jp_ws_fetch)
