"""The source protocols: ``ReplaySource``/``Cursor`` for recorded data, ``LiveSource`` for feeds."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator

import numpy as np

from ..batch import Chunk

__all__ = ["ReplaySource", "Cursor", "LiveSource"]


class Cursor(ABC):
    """A read position in a replay source; rows come out in time order."""

    #: Global index of the next row (rows consumed since the source start).
    position: int

    @abstractmethod
    def peek_ns(self) -> int | None:
        """Timestamp of the next row, or None at the end."""

    @abstractmethod
    def read_until(self, end_ns: int, limit: int) -> Chunk:
        """Rows with ``ts <= end_ns``, at most ``limit`` of them (possibly none)."""

    @abstractmethod
    def read(self, n: int) -> Chunk:
        """The next ``n`` rows (fewer at the end)."""

    def close(self) -> None:
        """Release what the cursor holds."""


class ReplaySource(ABC):
    """Recorded, time-ordered rows that can be opened at any timestamp."""

    columns: list[str]
    dtypes: dict[str, np.dtype]
    start_ns: int
    end_ns: int
    num_rows: int
    tz: str | None = None

    @abstractmethod
    def open(self, at_ns: int | None = None) -> Cursor:
        """A cursor at the first row with ``ts >= at_ns`` (the first row if None)."""

    def close(self) -> None:
        """Release files and caches."""

    def describe(self) -> dict:
        """JSON-safe summary (kind, rows, columns, time range)."""
        return {
            "kind": type(self).__name__,
            "num_rows": int(self.num_rows),
            "columns": list(self.columns),
            "start_ns": int(self.start_ns),
            "end_ns": int(self.end_ns),
            "tz": self.tz,
        }


class LiveSource(ABC):
    """A live feed: an async iterator of chunks stamped with wall-clock time."""

    columns: list[str]
    dtypes: dict[str, np.dtype]
    symbol: str

    @abstractmethod
    def batches(self) -> AsyncIterator[Chunk]:
        """Chunks as they arrive; ends when the feed is closed."""

    async def aclose(self) -> None:
        """Stop the feed and release its connection."""
