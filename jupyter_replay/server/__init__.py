"""Jupyter server extension: one replay session per kernel over REST and WebSocket.

Enabled by ``jupyter_server_config.d/jupyter_replay.json`` (module ``jupyter_replay.server``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["ReplayExtension", "_jupyter_server_extension_points"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """The extension app jupyter_server loads for module ``jupyter_replay.server``."""
    from .app import ReplayExtension

    return [{"module": "jupyter_replay.server", "app": ReplayExtension}]


def __getattr__(name: str) -> Any:
    if name == "ReplayExtension":
        from .app import ReplayExtension

        return ReplayExtension
    raise AttributeError(name)
