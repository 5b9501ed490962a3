"""``RollingBuffer``: a bounded columnar ring buffer holding the most recent rows of a session."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from .batch import TIME_COLUMN, Chunk, _frame
from .exceptions import DataError, InvalidValueError, brief
from .timeconv import temporal_to_ns

__all__ = ["RollingBuffer"]


class RollingBuffer:
    """Keeps the last ``capacity`` rows in preallocated numpy arrays (O(rows appended) per append).

    Columns are fixed at construction (``dtypes``); a new schema means a new buffer.
    """

    def __init__(self, capacity: int, dtypes: Mapping[str, Any] | None = None, tz: Any = None) -> None:
        if int(capacity) < 1:
            raise InvalidValueError(f"buffer capacity must be >= 1 row, got {brief(capacity)}")
        self.capacity = int(capacity)
        self.dtypes: dict[str, np.dtype] = {k: np.dtype(v) for k, v in (dtypes or {}).items()}
        self.tz = tz
        self._ts = np.empty(self.capacity, np.int64)
        self._cols = {k: np.empty(self.capacity, dt) for k, dt in self.dtypes.items()}
        self._start = 0  # index of the oldest row
        self._len = 0
        self.total = 0  # rows ever appended since the last clear
        self.rolled_over = 0  # rows pushed out by newer ones

    def __len__(self) -> int:
        return self._len

    def clear(self) -> None:
        """Forget every row (arrays are kept for reuse)."""
        self._start = self._len = self.total = self.rolled_over = 0
        for col in self._cols.values():
            if col.dtype == object:
                col[:] = None  # drop references

    def append(self, chunk: Chunk) -> None:
        """Add rows at the end, dropping the oldest beyond ``capacity``."""
        n = len(chunk)
        if n == 0:
            return
        missing = set(self._cols) - set(chunk.columns)
        if missing:
            raise DataError(f"chunk lacks buffer columns {brief(sorted(missing))}: a new schema needs a new buffer")
        self.total += n
        if n >= self.capacity:
            self.rolled_over += self._len + n - self.capacity
            self._write(0, chunk, n - self.capacity, n)
            self._start, self._len = 0, self.capacity
            return
        end = (self._start + self._len) % self.capacity
        first = min(n, self.capacity - end)
        self._write(end, chunk, 0, first)
        if first < n:
            self._write(0, chunk, first, n)
        overflow = max(0, self._len + n - self.capacity)
        self.rolled_over += overflow
        self._len = min(self.capacity, self._len + n)
        self._start = (self._start + overflow) % self.capacity

    def _write(self, at: int, chunk: Chunk, lo: int, hi: int) -> None:
        k = hi - lo
        self._ts[at : at + k] = chunk.ts[lo:hi]
        for name, col in self._cols.items():
            values = chunk.columns[name][lo:hi]
            if col.dtype.kind in "mM" and values.dtype != col.dtype and values.dtype.kind == col.dtype.kind:
                values = temporal_to_ns(values, f"column {brief(name)}")  # numpy would wrap other units
            col[at : at + k] = values

    def _ordered(self, arr: np.ndarray) -> np.ndarray:
        end = self._start + self._len
        if end <= self.capacity:
            return arr[self._start : end].copy()
        return np.concatenate([arr[self._start :], arr[: end - self.capacity]])

    def to_chunk(self) -> Chunk:
        """The rows oldest first, as a copied ``Chunk``."""
        return Chunk(self._ordered(self._ts), {k: self._ordered(v) for k, v in self._cols.items()})

    def to_frame(self, time_column: str = TIME_COLUMN) -> pd.DataFrame:
        """The rows oldest first as a DataFrame with a tz-aware time column."""
        chunk = self.to_chunk()
        return _frame(chunk.ts, chunk.columns, time_column, self.tz)

    @property
    def last_ns(self) -> int | None:
        """Timestamp of the newest row."""
        if not self._len:
            return None
        return int(self._ts[(self._start + self._len - 1) % self.capacity])

    def nbytes(self) -> int:
        """Memory held by the preallocated arrays."""
        return int(self._ts.nbytes + sum(c.nbytes for c in self._cols.values()))
