"""RollingBuffer: bounded, ordered, columnar."""

from __future__ import annotations

import numpy as np
import pytest

from jupyter_replay import Chunk, RollingBuffer
from jupyter_replay.exceptions import DataError, InvalidValueError


def chunk(lo: int, hi: int) -> Chunk:
    idx = np.arange(lo, hi)
    return Chunk(idx.astype(np.int64) * 1_000, {"x": idx.astype(float), "tag": np.array([f"r{i}" for i in idx], dtype=object)})


def test_rollover_keeps_most_recent_rows_in_order() -> None:
    buf = RollingBuffer(10, {"x": np.float64, "tag": object})
    for lo in range(0, 23, 3):
        buf.append(chunk(lo, lo + 3))
    df = buf.to_frame()
    assert len(buf) == 10 and buf.total == 24 and buf.rolled_over == 14
    assert df["x"].tolist() == [float(i) for i in range(14, 24)]
    assert df["tag"].tolist()[-1] == "r23"
    assert str(df["timestamp"].dt.tz) == "UTC"
    assert buf.last_ns == 23_000


def test_chunk_larger_than_capacity_and_clear() -> None:
    buf = RollingBuffer(4, {"x": np.float64, "tag": object})
    buf.append(chunk(0, 2))
    buf.append(chunk(2, 12))
    assert buf.to_chunk().ts.tolist() == [8_000, 9_000, 10_000, 11_000]
    assert buf.rolled_over == 8
    buf.clear()
    assert len(buf) == 0 and buf.to_frame().empty and buf.last_ns is None
    buf.append(chunk(0, 1))
    assert buf.to_frame()["x"].tolist() == [0.0]


def test_missing_column_and_bad_capacity() -> None:
    buf = RollingBuffer(4, {"y": np.float64})
    with pytest.raises(DataError, match="lacks buffer columns \\['y'\\]"):
        buf.append(chunk(0, 1))
    with pytest.raises(InvalidValueError, match="capacity"):
        RollingBuffer(0)


def test_memory_is_preallocated_and_bounded() -> None:
    buf = RollingBuffer(1000, {"x": np.float64})
    before = buf.nbytes()
    for lo in range(0, 100_000, 1000):
        buf.append(Chunk(np.arange(lo, lo + 1000, dtype=np.int64), {"x": np.zeros(1000)}))
    assert buf.nbytes() == before == 16_000
