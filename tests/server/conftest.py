"""Server extension tests: a real Jupyter server (pytest-jupyter) with ``jupyter_replay.server`` and real kernels.

pytest-jupyter's fixtures and hooks are imported here so they apply to ``tests/server`` only. Its server
lives on ``jp_asyncio_loop``; pytest-asyncio (``asyncio_mode = auto``) would run ``async def`` tests on
another loop, so tests are ``async def`` functions decorated with ``@on_server_loop`` (see server_helpers).
"""

from __future__ import annotations

from typing import Any

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F401,F403
from server_helpers import Api, RoleAuthorizer
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
