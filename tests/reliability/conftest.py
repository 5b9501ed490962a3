"""Reliability and security tests: a real Jupyter server (pytest-jupyter), real kernels, real sockets.

Like ``tests/server/conftest.py``: pytest-jupyter's fixtures are imported here so they apply to this
directory only, and ``async def`` server tests use ``@on_server_loop`` (from ``tests/server/server_helpers``).
Engine-only test modules here override pytest-jupyter's autouse ``jp_server_cleanup`` with a no-op.
"""

from __future__ import annotations

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F401,F403
from raw_ws import raw_ws  # noqa: F401 (fixture)
from server_helpers import RoleAuthorizer, api, replay_ext, replay_manager  # noqa: F401 (fixtures)
from traitlets.config import Config


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
