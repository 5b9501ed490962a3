"""Figure 4: seek to a timestamp in a 10M-row Parquet file vs a full read of its time column.

The file (``timestamp`` + 4 float64 columns, 100,000-row row groups, snappy) is generated once into
``bench/.cache/`` and reused. Ours: ``ParquetSource.open(at)`` for evenly spread targets (the source is
built once: that reads only the footer), median time. Baseline: ``pyarrow.parquet.read_table(path,
columns=["timestamp"])``, what locating a timestamp costs without row-group statistics, median time.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .common import CACHE_DIR, Figure, at_most, info, not_available, timed

__all__ = ["NAME", "run", "ensure_file"]

NAME = "parquet"
ROW_GROUP = 100_000
STEP_NS = 1_000_000  # 1 ms between rows
START_NS = 1_704_186_000_000_000_000


def ensure_file(rows: int, directory: Path = CACHE_DIR) -> Path:
    """The cached ``rows``-row file (written in pieces on first use, so memory stays small)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"ticks_{rows}.parquet"
    if path.exists():
        try:
            if pq.ParquetFile(path).metadata.num_rows == rows:
                return path
        except Exception:  # a half-written file from an interrupted run
            pass
    tmp = path.with_suffix(".tmp")
    rng = np.random.default_rng(1)
    schema = pa.schema([("timestamp", pa.timestamp("ns", tz="UTC"))] + [(f"c{i}", pa.float64()) for i in range(4)])
    with pq.ParquetWriter(tmp, schema, compression="snappy") as writer:
        for lo in range(0, rows, ROW_GROUP):
            n = min(ROW_GROUP, rows - lo)
            ts = START_NS + np.arange(lo, lo + n, dtype=np.int64) * STEP_NS
            cols = [pa.array(ts, pa.timestamp("ns", tz="UTC"))]
            cols += [pa.array(100.0 + np.cumsum(rng.normal(0, 0.01, n))) for _ in range(4)]
            writer.write_table(pa.Table.from_arrays(cols, schema=schema), row_group_size=ROW_GROUP)
    tmp.replace(path)
    return path


def run(quick: bool = False, tiny: bool = False, **_: Any) -> list[Figure]:
    try:
        from jupyter_replay.sources.parquet import ParquetSource
    except ImportError as exc:
        return [not_available(NAME, "seek in 10M-row Parquet vs full time-column read", f"ParquetSource: {exc}")]
    rows = 200_000 if tiny else 10_000_000  # quick keeps 10M: the ratio depends on the size
    gen_s, path = timed(lambda: ensure_file(rows))
    build_s, source = timed(lambda: ParquetSource(path, time="timestamp"))

    n_seeks = 10 if quick else 30
    targets = START_NS + (np.linspace(0.03, 0.97, n_seeks) * (rows - 1)).astype(np.int64) * STEP_NS + STEP_NS // 2
    seek_times = []
    for at in targets.tolist():
        t0 = time.perf_counter()
        cursor = source.open(at)
        first = cursor.peek_ns()
        seek_times.append(time.perf_counter() - t0)
        if first is None or first < at or first - at > STEP_NS:
            raise RuntimeError(f"open({at}) landed on {first}")
        cursor.close()
    seek_s = statistics.median(seek_times)

    reads = []
    for _ in range(3):
        dt, table = timed(lambda: pq.read_table(path, columns=["timestamp"]))
        if table.num_rows != rows:
            raise RuntimeError("full read returned the wrong row count")
        del table
        reads.append(dt)
    read_s = statistics.median(reads)
    source.close()

    size_mb = path.stat().st_size / 1e6
    return [
        Figure(NAME, f"seek in {rows / 1e6:g}M-row Parquet vs full time-column read", seek_s * 1e3, read_s * 1e3,
               unit="ms", target=at_most(1 / 50, "<= 1/50 (0.02)"), baseline_name="read_table(columns=[time])",
               note=f"median of {n_seeks} ParquetSource.open(at) (max {max(seek_times) * 1e3:.1f} ms); "
                    f"{size_mb:.0f} MB file, {ROW_GROUP:,}-row groups; full read median of 3"),
        info(NAME, "ParquetSource build (footer + stats, one-off)", build_s * 1e3, "ms",
             note=f"file generated in {gen_s:.1f} s (cached in bench/.cache)"),
    ]
