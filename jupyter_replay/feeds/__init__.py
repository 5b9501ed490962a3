"""Live feeds on real infrastructure: Redis Streams, WebSocket JSON, fan-out hub, Parquet recorder.

Names are imported lazily so ``jupyter_replay.feeds`` works without the optional ``redis`` and
``websockets`` packages (``pip install jupyter-replay[feeds]``) until a feed that needs them is used.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "FeedHub",
    "HubSubscription",
    "redis_factory",
    "ws_factory",
    "ParquetRecorder",
    "RedisStreamSource",
    "RedisStreamReplay",
    "CatchUpSource",
    "catch_up_then_live",
    "publish_chunk",
    "apublish_chunk",
    "WebSocketJSONSource",
]

_WHERE = {
    "FeedHub": "hub",
    "HubSubscription": "hub",
    "redis_factory": "hub",
    "ws_factory": "hub",
    "ParquetRecorder": "recorder",
    "RedisStreamSource": "redis",
    "RedisStreamReplay": "redis",
    "CatchUpSource": "redis",
    "catch_up_then_live": "redis",
    "publish_chunk": "redis",
    "apublish_chunk": "redis",
    "WebSocketJSONSource": "websocket_json",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return sorted(__all__)
