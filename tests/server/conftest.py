"""Server extension tests: a real Jupyter server (pytest-jupyter) with ``jupyter_replay.server`` and real kernels.

pytest-jupyter's fixtures and hooks are imported here so they apply to ``tests/server`` only. Its server
lives on ``jp_asyncio_loop``; pytest-asyncio (``asyncio_mode = auto``) would run ``async def`` tests on
another loop, so tests are ``async def`` functions decorated with ``@on_server_loop`` (see server_helpers).
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
            "ReplayExtension": {"buffer_rows": 50_000},
        }
    )
