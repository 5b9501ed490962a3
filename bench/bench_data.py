"""Data at scale (issue 17): partitioned datasets, Arrow-native inputs, attach without a copy.

- Seek in a 100-file hive-partitioned dataset (``date=.../symbol=...``, files overlapping in time):
  ``DatasetSource.open(at)`` (row-group statistics; the source is built once, reading 100 footers)
  against reading every file's time column (``pyarrow.dataset(...).to_table(columns=[time])``), what
  locating a timestamp costs without statistics. Median times.
- Building a source from a pyarrow Table and from a Polars DataFrame (``as_source``, no pandas)
  against today's route through pandas (``DataFrameSource(obj.to_pandas())``). Best of a few runs.
- Attach (``bench_attach``): see there.

Files go to ``bench/.cache/`` and are reused.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .common import CACHE_DIR, Figure, at_most, best_of, info, not_available, timed

__all__ = ["NAME", "run", "ensure_dataset"]

NAME = "data"
START_NS = 1_704_186_000_000_000_000
DAYS, SYMBOLS = 20, 5  # 100 files


def ensure_dataset(rows_per_file: int, directory: Path = CACHE_DIR) -> Path:
    """``DAYS x SYMBOLS`` files of ``rows_per_file`` rows (symbols of a day overlap in time)."""
    root = directory / f"dataset_{DAYS}x{SYMBOLS}_{rows_per_file}"
    done = root / "_COMPLETE"
    if done.exists():
        return root
    rng = np.random.default_rng(2)
    day_ns = 86_400 * 10**9
    for d in range(DAYS):
        for s in range(SYMBOLS):
            ts = START_NS + d * day_ns + np.sort(rng.integers(0, 8 * 3600 * 10**9, rows_per_file))
            table = pa.table({
                "timestamp": pa.array(ts, pa.timestamp("ns", tz="UTC")),
                "price": 100.0 + np.cumsum(rng.normal(0, 0.01, rows_per_file)),
                "size": rng.integers(1, 1000, rows_per_file),
            })
            out = root / f"date=2024-01-{d + 1:02d}" / f"symbol=S{s}"
            out.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, out / "part-0.parquet", row_group_size=50_000)
    done.touch()
    return root


def _dataset_seek(quick: bool, tiny: bool) -> list[Figure]:
    from jupyter_replay.sources import DatasetSource

    per_file = 2_000 if tiny else 100_000
    gen_s, root = timed(lambda: ensure_dataset(per_file))
    build_s, source = timed(lambda: DatasetSource(root))
    rows = source.num_rows
    n_seeks = 10 if quick or tiny else 30
    day_ns = 86_400 * 10**9  # targets inside the trading hours of spread days (where row groups overlap)
    days = np.linspace(0, DAYS - 1, n_seeks).astype(np.int64)
    offsets = np.linspace(0.05, 0.95, n_seeks) * 8 * 3600 * 10**9
    targets = (START_NS + days * day_ns + offsets.astype(np.int64)).astype(np.int64)
    seeks = []
    for at in targets.tolist():
        t0 = time.perf_counter()
        cursor = source.open(at)
        first = cursor.peek_ns()
        seeks.append(time.perf_counter() - t0)
        if first is not None and first < at:
            raise RuntimeError(f"open({at}) landed before it: {first}")
        cursor.close()
    seek_s = statistics.median(seeks)

    def read_all_times() -> int:
        table = ds.dataset(root, format="parquet", partitioning="hive").to_table(columns=["timestamp"])
        return table.num_rows

    reads = []
    for _ in range(3):
        dt, n = timed(read_all_times)
        if n != rows:
            raise RuntimeError("full read returned the wrong row count")
        reads.append(dt)
    read_s = statistics.median(reads)
    return [
        Figure(NAME, f"seek in a {len(source.parts)}-file partitioned dataset ({rows / 1e6:g}M rows) vs reading "
               "every file's time column", seek_s * 1e3, read_s * 1e3, unit="ms",
               target=at_most(1 / 10, "<= 1/10 (0.1)"), baseline_name="dataset.to_table(columns=[time])",
               note=f"median of {n_seeks} DatasetSource.open(at) (max {max(seeks) * 1e3:.1f} ms); full read "
                    "median of 3"),
        info(NAME, "DatasetSource build (100 footers + stats, one-off)", build_s * 1e3, "ms",
             note=f"dataset generated in {gen_s:.1f} s (cached in bench/.cache)"),
    ]


def _build_from_arrow(quick: bool, tiny: bool) -> list[Figure]:
    from jupyter_replay.sources import DataFrameSource, as_source

    rows = 100_000 if tiny else 5_000_000
    rng = np.random.default_rng(4)
    table = pa.table({
        "timestamp": pa.array(START_NS + np.arange(rows, dtype=np.int64) * 1_000_000, pa.timestamp("ns", tz="UTC")),
        **{f"c{i}": rng.normal(100, 1, rows) for i in range(4)},
        "size": rng.integers(1, 1000, rows),
    })
    repeat = 3 if quick or tiny else 5
    figures = []
    inputs: dict[str, Any] = {"pyarrow Table": table}
    try:
        import polars as pl

        inputs["Polars DataFrame"] = pl.from_arrow(table)
    except ImportError as exc:
        figures.append(not_available(NAME, "source from a Polars DataFrame vs via pandas", f"polars: {exc}"))
    for label, obj in inputs.items():
        ours = best_of(lambda obj=obj: as_source(obj), repeat)
        via_pandas = best_of(lambda obj=obj: DataFrameSource(obj.to_pandas()), repeat)
        figures.append(Figure(
            NAME, f"source from a {label} ({rows / 1e6:g}M rows x 6 cols) vs via pandas", ours * 1e3,
            via_pandas * 1e3, unit="ms", target=at_most(1 / 2, "<= 1/2 (0.5)"),
            baseline_name="DataFrameSource(obj.to_pandas())", note=f"best of {repeat}; as_source(obj) -> TableSource",
        ))
    return figures


def run(quick: bool = False, tiny: bool = False, **_: Any) -> list[Figure]:
    figures: list[Figure] = []
    for part in (_dataset_seek, _build_from_arrow):
        try:
            figures.extend(part(quick, tiny))
        except ImportError as exc:
            figures.append(not_available(NAME, part.__name__.strip("_").replace("_", " "), str(exc)))
    try:
        from .bench_attach import run as run_attach
    except ImportError:
        return figures
    figures.extend(run_attach(quick=quick, tiny=tiny))
    return figures
