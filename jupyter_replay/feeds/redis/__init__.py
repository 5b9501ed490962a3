"""Redis Streams feeds: the stream layout and publishing, live tail, catch-up then live, range replay.

Needs the optional ``redis`` package (``pip install jupyter-replay[redis]``) once a source connects.
"""

from __future__ import annotations

from .catchup import CatchUpSource, catch_up_then_live
from .layout import ENTRY_COLUMNS, SCHEMA_SUFFIX, apublish_chunk, parse_entry_id, publish_chunk, time_to_id
from .live import RedisStreamSource
from .replay import RedisStreamReplay

__all__ = [
    "RedisStreamSource",
    "RedisStreamReplay",
    "CatchUpSource",
    "catch_up_then_live",
    "publish_chunk",
    "apublish_chunk",
    "parse_entry_id",
    "time_to_id",
    "SCHEMA_SUFFIX",
    "ENTRY_COLUMNS",
]
