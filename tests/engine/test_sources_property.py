"""Property: any sequence of reads returns every row exactly once, in order, within its limits."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jupyter_replay.batch import Chunk
from jupyter_replay.sources import DataFrameSource, MergedSource, ParquetSource, ReplaySource

from test_sources import WrappedSource

T0 = 1_704_187_800_000_000_000

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def sorted_frames(draw, max_rows: int = 120) -> pd.DataFrame:
    n = draw(st.integers(1, max_rows))
    gaps = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))  # many duplicate timestamps
    ts = T0 + np.cumsum(np.array(gaps, dtype=np.int64))
    return pd.DataFrame(
        {"timestamp": ts.view("datetime64[ns]"), "row": np.arange(n, dtype=np.int64), "x": np.arange(n) * 0.5}
    )


ops_strategy = st.lists(
    st.one_of(
        st.tuples(st.just("until"), st.integers(-2, 400), st.integers(0, 40)),
        st.tuples(st.just("read"), st.integers(0, 40), st.just(0)),
        st.tuples(st.just("peek"), st.just(0), st.just(0)),
    ),
    max_size=25,
)


def check_reads(src: ReplaySource, ts: np.ndarray, cols: dict[str, np.ndarray], at_off: int | None, ops) -> None:
    """Run ``ops`` on a cursor of ``src`` and compare everything read with the expected rows."""
    at = None if at_off is None else T0 + at_off
    start = 0 if at is None else int(np.searchsorted(ts, at, side="left"))
    cur = src.open(at)
    assert cur.position == start
    chunks: list[Chunk] = []
    pos = start
    for op, a, b in ops:
        if op == "peek":
            assert cur.peek_ns() == (int(ts[pos]) if pos < len(ts) else None)
            continue
        if op == "until":
            end = T0 + a
            c = cur.read_until(end, b)
            assert len(c) <= b and np.all(c.ts <= end)
            if len(c) < b:  # stopped early: the next row is after end (or there is none)
                nxt = cur.peek_ns()
                assert nxt is None or nxt > end
        else:
            c = cur.read(a)
            assert len(c) == min(a, len(ts) - pos)
        assert list(c.columns) == list(src.columns)
        pos += len(c)
        assert cur.position == pos
        chunks.append(c)
    chunks.append(cur.read(len(ts) + 1))
    assert cur.peek_ns() is None and cur.position == len(ts)
    got = Chunk.concat(chunks)
    assert np.array_equal(got.ts, ts[start:])
    for k, v in cols.items():
        if v.dtype == object:
            assert list(got.columns[k]) == list(v[start:]), k
        else:
            assert np.array_equal(got.columns[k], v[start:]), k


@SETTINGS
@given(df=sorted_frames(), at_off=st.none() | st.integers(-2, 400), ops=ops_strategy)
def test_dataframe_source_reads(df, at_off, ops):
    src = DataFrameSource(df)
    check_reads(src, df["timestamp"].to_numpy().view(np.int64), {"row": df["row"].to_numpy()}, at_off, ops)


@SETTINGS
@given(
    df=sorted_frames(),
    group=st.integers(1, 40),
    batch_rows=st.integers(1, 25),
    at_off=st.none() | st.integers(-2, 400),
    ops=ops_strategy,
)
def test_parquet_source_reads(df, group, batch_rows, at_off, ops):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.parquet"
        df.to_parquet(path, row_group_size=group, index=False)
        src = ParquetSource(path, batch_rows=batch_rows)
        try:
            check_reads(src, df["timestamp"].to_numpy().view(np.int64), {"row": df["row"].to_numpy()}, at_off, ops)
        finally:
            src.close()


@SETTINGS
@given(a=sorted_frames(60), b=sorted_frames(60), at_off=st.none() | st.integers(-2, 200), ops=ops_strategy)
def test_merged_source_reads(a, b, at_off, ops):
    # oracle: sort (ts, stream index, row) with Python, independently of the implementation
    rows = [
        (int(t), s, int(r))
        for s, f in enumerate((a, b))
        for t, r in zip(f["timestamp"].to_numpy().view(np.int64), f["row"])
    ]
    rows.sort()
    ts = np.array([r[0] for r in rows], dtype=np.int64)
    cols = {
        "stream_id": np.array([r[1] for r in rows], dtype=np.int8),
        "row": np.array([r[2] for r in rows], dtype=np.int64),
        "stream": np.array(["a", "b"], dtype=object)[[r[1] for r in rows]],
    }
    b_only = b.rename(columns={"x": "y"})
    eager = MergedSource({"a": a, "b": b_only})
    lazy = MergedSource({"a": WrappedSource(DataFrameSource(a)), "b": b_only})
    assert eager.in_memory and not lazy.in_memory
    for src in (eager, lazy):
        check_reads(src, ts, cols, at_off, ops)
