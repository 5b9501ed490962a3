"""TableSource: Arrow-native inputs (pyarrow, Polars, DuckDB, PyCapsule streams) give what pandas gives."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from jupyter_replay.exceptions import DataError
from jupyter_replay.sources import DataFrameSource, MergedSource, TableSource, as_source
from jupyter_replay.timeconv import to_ns

T0 = to_ns("2024-01-02 09:30")
S = 1_000_000_000


def sample_frame(n: int = 50) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    ts = T0 + np.sort(rng.integers(0, 100, n)) * S
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(ts, utc=True).tz_convert("America/New_York"),
            "price": rng.normal(100, 1, n),
            "size": rng.integers(1, 100, n).astype(np.int64),
            "small": rng.integers(0, 9, n).astype(np.int16),
            "flag": rng.integers(0, 2, n).astype(bool),
            "symbol": rng.choice(["AAA", "BBB"], n),
            "when": pd.to_datetime(ts + S),
        }
    )


def same_source(a, b, tz: bool = True) -> None:
    assert a.columns == b.columns
    assert a.dtypes == b.dtypes
    assert (a.num_rows, a.start_ns, a.end_ns) == (b.num_rows, b.start_ns, b.end_ns)
    assert a.tz == b.tz or not tz
    np.testing.assert_array_equal(a.ts, b.ts)
    for c in a.columns:
        if a.dtypes[c] == np.dtype(object):
            assert list(pd.Series(a.data[c]).fillna("<NA>")) == list(pd.Series(b.data[c]).fillna("<NA>"))
        else:
            np.testing.assert_array_equal(a.data[c], b.data[c])


class CapsuleOnly:
    """Exposes nothing but the Arrow PyCapsule stream interface (like any third-party producer)."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def __arrow_c_stream__(self, requested_schema=None):
        return self._table.__arrow_c_stream__(requested_schema)


def inputs(df: pd.DataFrame) -> dict:
    table = pa.Table.from_pandas(df, preserve_index=False)
    pdf = pl.from_arrow(table)
    return {
        "pa.Table": table,
        "pa.RecordBatch": table.combine_chunks().to_batches()[0],
        "pa.RecordBatchReader": pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=7)),
        "polars.DataFrame": pdf,
        "polars.LazyFrame": pdf.lazy(),
        "duckdb": duckdb.from_arrow(table),
        "capsule": CapsuleOnly(table),
    }


@pytest.mark.parametrize("kind", list(inputs(sample_frame(3))))
def test_every_arrow_input_matches_pandas(kind):
    df = sample_frame()
    expected = DataFrameSource(df)
    src = as_source(inputs(df)[kind])
    assert isinstance(src, TableSource)
    # DuckDB hands TIMESTAMPTZ out in its session zone (UTC here), not the column's: same instants
    same_source(src, expected, tz=kind != "duckdb")
    # (its "Etc/UTC" is named "UTC", as pandas names it: one name for UTC whatever the input)
    assert src.tz == ("UTC" if kind == "duckdb" else "America/New_York")
    assert src.dtypes["symbol"] == np.dtype(object) and src.dtypes["when"] == np.dtype("datetime64[ns]")


def test_nulls_follow_the_pandas_rules():
    table = pa.table(
        {
            "timestamp": pa.array([T0, T0 + S, T0 + 2 * S], pa.timestamp("ns")),
            "i": pa.array([1, None, 3], pa.int64()),
            "b": pa.array([True, None, False]),
            "s": pa.array(["x", None, "z"]),
            "cat": pa.array(["u", "v", "u"]).dictionary_encode(),
        }
    )
    src = TableSource(table)
    ref = DataFrameSource(table.to_pandas())
    assert src.dtypes == ref.dtypes == {
        "i": np.dtype(np.float64), "b": np.dtype(object), "s": np.dtype(object), "cat": np.dtype(object),
    }
    assert np.isnan(src.data["i"][1]) and src.data["b"][1] is None and src.data["s"][1] is None
    assert list(src.data["cat"]) == ["u", "v", "u"]


def test_numeric_columns_and_ns_time_are_zero_copy():
    n = 1000
    ts = pa.array(T0 + np.arange(n) * S, pa.timestamp("ns"))
    table = pa.table({"timestamp": ts, "x": np.arange(n, dtype=np.float64)})
    src = TableSource(table)
    assert src.data["x"].ctypes.data == table.column("x").chunk(0).buffers()[1].address
    assert src.ts.ctypes.data == table.column("timestamp").chunk(0).buffers()[1].address
    assert not src.data["x"].flags.writeable


def test_polars_datetime_units_and_integer_time():
    ts_us = [1_700_000_000_000_000 + k for k in range(3)]
    frame = pl.DataFrame({"t": ts_us, "v": [1.0, 2.0, 3.0]}).with_columns(pl.col("t").cast(pl.Datetime("us", "UTC")))
    src = as_source(frame, time="t")
    assert src.ts.tolist() == [t * 1000 for t in ts_us] and src.tz == "UTC"
    ints = as_source(pl.DataFrame({"timestamp": [3, 1, 2], "v": [3, 1, 2]}))
    assert ints.ts.tolist() == [1, 2, 3] and ints.data["v"].tolist() == [1, 2, 3]


def test_errors_name_the_column_and_the_fix():
    with pytest.raises(DataError, match="time column 'nope' not found"):
        TableSource(pa.table({"timestamp": [1]}), time="nope")
    with pytest.raises(DataError, match="type double"):
        TableSource(pa.table({"timestamp": [1.5]}))
    with pytest.raises(DataError, match="empty"):
        TableSource(pa.table({"timestamp": pa.array([], pa.int64())}))
    nulls = pa.table({"timestamp": pa.array([1, None, 3], pa.int64()), "v": [1, 2, 3]})
    with pytest.raises(DataError, match=r"1 NaT value\(s\) \(first at row 1\); pass dropna=True"):
        TableSource(nulls)
    assert TableSource(nulls, dropna=True).data["v"].tolist() == [1, 3]
    unsorted = pa.table({"timestamp": [2, 1, 1], "v": [0, 1, 2]})
    with pytest.raises(DataError, match="not sorted"):
        TableSource(unsorted, sort=False)
    assert TableSource(unsorted).data["v"].tolist() == [1, 2, 0]  # stable
    far = pa.table({"timestamp": pa.array([np.datetime64("3000-01-01", "s")], pa.timestamp("s"))})
    with pytest.raises(DataError, match="outside the nanosecond range"):
        TableSource(far)


def test_pandas_index_metadata_and_merged_inputs():
    df = sample_frame(10).set_index("timestamp")
    table = pa.Table.from_pandas(df)
    src = TableSource(table, time=None)
    same_source(src, DataFrameSource(df, time=None))
    guessed = as_source(pl.from_arrow(table.select(["timestamp", "price"])).rename({"timestamp": "t"}))
    assert guessed.time_column == "t" and guessed.num_rows == 10
    with pytest.raises(DataError, match="cannot tell which column holds the time"):
        as_source(pa.table({"a": [1], "b": [2]}))
    items = {"arrow": table.select(["timestamp", "price"]), "polars": pl.from_arrow(table)}
    merged = as_source(items, time="timestamp")
    assert isinstance(merged, MergedSource) and merged.num_rows == 20
