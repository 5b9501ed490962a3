"""In-memory sources: DataFrameSource, MergedSource, CSVSource, as_source, sample data, SyntheticFeed."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from jupyter_replay.exceptions import DataError, InvalidValueError
from jupyter_replay.sources import (
    ArraySource,
    CSVSource,
    DataFrameSource,
    MergedSource,
    ParquetSource,
    ReplaySource,
    SyntheticFeed,
    as_source,
    sample_quotes,
    sample_trades,
)
from jupyter_replay.timeconv import to_ns

T0 = to_ns("2024-01-02 09:30")
S = 1_000_000_000


def frame(ts_s, **cols) -> pd.DataFrame:
    """A frame whose ``timestamp`` column is T0 + ts_s seconds (naive datetime64[ns])."""
    ts = (T0 + np.asarray(ts_s, dtype=np.int64) * S).view("datetime64[ns]")
    return pd.DataFrame({"timestamp": ts, **cols})


class WrappedSource(ReplaySource):
    """A source that is not in memory as far as MergedSource can tell (forces the lazy merge)."""

    def __init__(self, inner: ReplaySource) -> None:
        self.inner = inner
        self.columns, self.dtypes = inner.columns, inner.dtypes
        self.start_ns, self.end_ns, self.num_rows, self.tz = inner.start_ns, inner.end_ns, inner.num_rows, inner.tz

    def open(self, at_ns=None):
        return self.inner.open(at_ns)


def drain(cursor, step: int = 7):
    chunks = []
    while len(c := cursor.read(step)):
        chunks.append(c)
    return chunks


# -- DataFrameSource: basics and cursors ------------------------------------------------------------


@pytest.fixture
def dup_df() -> pd.DataFrame:
    # 8 rows, duplicates at t=2 (3 rows) and t=5 (2 rows)
    return frame([0, 1, 2, 2, 2, 3, 5, 5], price=np.arange(8, dtype=np.float64), size=np.arange(8) * 10)


def test_dataframe_source_metadata(dup_df):
    src = DataFrameSource(dup_df)
    assert src.columns == ["price", "size"]
    assert src.dtypes == {"price": np.dtype(np.float64), "size": np.dtype(np.int64)}
    assert (src.num_rows, src.start_ns, src.end_ns, src.tz) == (8, T0, T0 + 5 * S, None)
    assert src.describe() == {
        "kind": "DataFrameSource", "num_rows": 8, "columns": ["price", "size"],
        "start_ns": T0, "end_ns": T0 + 5 * S, "tz": None,
    }


def test_cursor_reads_are_zero_copy_readonly_views():
    df = frame(np.arange(100), price=np.linspace(1, 2, 100))
    src = DataFrameSource(df)
    chunk = src.open().read(10)
    assert np.shares_memory(chunk.columns["price"], df["price"].to_numpy())
    assert not chunk.columns["price"].flags.writeable and not chunk.ts.flags.writeable
    with pytest.raises(ValueError):
        chunk.columns["price"][0] = 5.0


@pytest.mark.parametrize(
    "at, position",
    [
        (None, 0),
        (T0 - 10 * S, 0),  # before the start
        (T0, 0),  # exactly the start
        (T0 + 2 * S, 2),  # first of three duplicates
        (T0 + 2 * S + 1, 5),  # between rows
        (T0 + 4 * S, 6),  # middle, between rows
        (T0 + 5 * S, 6),  # the end timestamp: first of its duplicates
        (T0 + 5 * S + 1, 8),  # past the end
        ("2024-01-02 09:30:03", 5),  # any timestamp-like
    ],
)
def test_open_positions(dup_df, at, position):
    cur = DataFrameSource(dup_df).open(at)
    assert cur.position == position
    if position < 8:
        assert cur.peek_ns() == T0 + int(dup_df["timestamp"].iloc[position].value - T0)
        assert cur.read(1).columns["price"][0] == position
    else:
        assert cur.peek_ns() is None
        assert len(cur.read(5)) == 0 and len(cur.read_until(T0 + 100 * S, 5)) == 0


def test_read_until_inclusive_and_limited(dup_df):
    cur = DataFrameSource(dup_df).open()
    c = cur.read_until(T0 + 2 * S, 10)  # end inclusive: all three duplicates
    assert list(c.columns["price"]) == [0, 1, 2, 3, 4] and cur.position == 5
    assert len(cur.read_until(T0 + 2 * S, 10)) == 0  # nothing more at that time
    c = cur.read_until(T0 + 10 * S, 2)  # limited
    assert list(c.columns["size"]) == [50, 60] and cur.position == 7
    assert len(cur.read_until(T0 + 10 * S, 0)) == 0 and cur.position == 7
    c = cur.read(100)  # fewer at the end
    assert list(c.columns["price"]) == [7] and cur.peek_ns() is None and cur.position == 8
    assert c.ts.dtype == np.int64
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(InvalidValueError):
            cur.read(bad)
        with pytest.raises(InvalidValueError):
            cur.read_until(T0, bad)


def test_read_until_unbounded_end(dup_df, tmp_path):
    dup_df.to_parquet(tmp_path / "d.parquet", row_group_size=3)
    wrapped = MergedSource({"a": WrappedSource(DataFrameSource(dup_df))})
    for src in (DataFrameSource(dup_df), ParquetSource(tmp_path / "d.parquet"), wrapped):
        cur = src.open()
        assert len(cur.read_until(float("-inf"), 10)) == 0
        assert len(cur.read_until(2**80, 3)) == 3  # beyond int64: clamped
        assert len(cur.read_until(float("inf"), 10)) == 5 and cur.peek_ns() is None
        with pytest.raises(InvalidValueError):
            cur.read_until(float("nan"), 1)


def test_empty_reads_keep_dtypes(dup_df):
    cur = DataFrameSource(dup_df).open()
    c = cur.read_until(T0 - 1, 10)
    assert len(c) == 0 and c.ts.dtype == np.int64
    assert {k: v.dtype for k, v in c.columns.items()} == {"price": np.float64, "size": np.int64}


def test_independent_cursors(dup_df):
    src = DataFrameSource(dup_df)
    a, b = src.open(), src.open(T0 + 3 * S)
    assert len(a.read(3)) == 3 and b.position == 5
    a.close()
    assert b.read(1).columns["price"][0] == 5


# -- DataFrameSource: time column handling -----------------------------------------------------------


def test_missing_time_column_lists_available(dup_df):
    with pytest.raises(DataError, match=r"'ts' not found.*\['timestamp', 'price', 'size'\]"):
        DataFrameSource(dup_df, time="ts")


@pytest.mark.parametrize(
    "values, match",
    [
        (["2024-01-02 09:30"] * 3, "pd.to_datetime"),
        ([1.5, 2.5, 3.5], "unit='s'"),
        ([True, False, True], "dtype bool"),
    ],
)
def test_non_datetime_time_column(values, match):
    with pytest.raises(DataError, match=match):
        DataFrameSource(pd.DataFrame({"t": values, "x": [1, 2, 3]}), time="t")


def test_integer_time_is_ns():
    src = DataFrameSource(pd.DataFrame({"t": [T0, T0 + 5, T0 + 9], "x": [1, 2, 3]}), time="t")
    assert list(src.ts) == [T0, T0 + 5, T0 + 9] and src.tz is None


def test_nullable_integer_time_with_na():
    df = pd.DataFrame({"t": pd.array([T0, None, T0 + 9], dtype="Int64"), "x": [1, 2, 3]})
    with pytest.raises(DataError, match="NaT"):
        DataFrameSource(df, time="t")
    assert list(DataFrameSource(df, time="t", dropna=True).data["x"]) == [1, 3]


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_any_datetime_unit_becomes_ns(unit):
    idx = pd.DatetimeIndex(["2024-01-02 09:30:00", "2024-01-02 09:30:01"]).as_unit(unit)
    src = DataFrameSource(pd.DataFrame({"timestamp": idx, "x": [1.0, 2.0]}))
    assert list(src.ts) == [T0, T0 + S]


def test_tz_aware_converted_to_utc_and_tz_kept():
    idx = pd.date_range("2024-01-02 04:30", periods=3, freq="s", tz="America/New_York")  # 09:30 UTC
    src = DataFrameSource(pd.DataFrame({"timestamp": idx, "x": [1, 2, 3]}))
    assert src.tz == "America/New_York"
    assert list(src.ts) == [T0, T0 + S, T0 + 2 * S]
    out = src.to_frame()
    assert str(out["timestamp"].dt.tz) == "America/New_York"
    assert (out["timestamp"] == idx).all()


def test_fixed_offset_tz_is_a_usable_name():
    idx = pd.DatetimeIndex(["2024-01-02 10:30"]).tz_localize(pd.Timestamp("2024-01-02T10:30+01:00").tz)
    src = DataFrameSource(pd.DataFrame({"timestamp": idx, "x": [1]}))
    assert src.ts[0] == T0
    assert pd.Timestamp(T0, tz="UTC").tz_convert(src.tz).hour == 10


def test_pyarrow_timestamp_column():
    arr = pd.array([T0 // 1000, T0 // 1000 + 1], dtype=pd.ArrowDtype(pa.timestamp("us", tz="Europe/Paris")))
    src = DataFrameSource(pd.DataFrame({"timestamp": arr, "x": [1, 2]}))
    assert list(src.ts) == [T0, T0 + 1000] and src.tz == "Europe/Paris"


def test_datetime_index():
    df = frame([0, 1, 2], x=[1, 2, 3]).set_index("timestamp")
    for src in (DataFrameSource(df, time=None), DataFrameSource(df)):  # default "timestamp" finds the index
        assert list(src.ts) == [T0, T0 + S, T0 + 2 * S] and src.columns == ["x"]
    other = df.rename_axis("when")
    assert DataFrameSource(other, time="when").num_rows == 3
    with pytest.raises(DataError, match="DatetimeIndex"):
        DataFrameSource(df.reset_index(), time=None)


def test_nat_raises_or_is_dropped():
    df = frame([0, 1, 2], x=[1, 2, 3])
    df.loc[1, "timestamp"] = pd.NaT
    with pytest.raises(DataError, match=r"1 NaT value\(s\) \(first at row 1\).*dropna=True"):
        DataFrameSource(df)
    src = DataFrameSource(df, dropna=True)
    assert list(src.data["x"]) == [1, 3] and src.num_rows == 2
    df["timestamp"] = pd.NaT
    with pytest.raises(DataError, match="all NaT"):
        DataFrameSource(df, dropna=True)


def test_unsorted_is_sorted_stably_or_rejected():
    df = frame([3, 1, 2, 1, 0], x=[0, 1, 2, 3, 4])
    src = DataFrameSource(df)
    assert list(src.data["x"]) == [4, 1, 3, 2, 0]  # ties (t=1) keep input order
    assert list(src.ts) == sorted(src.ts)
    with pytest.raises(DataError, match=r"not sorted \(row 1 is earlier than row 0\).*sort=True"):
        DataFrameSource(df, sort=False)


def test_duplicates_kept_in_input_order():
    df = frame([1, 1, 1, 1], x=[9, 7, 8, 6])
    assert list(DataFrameSource(df, sort=False).data["x"]) == [9, 7, 8, 6]
    assert list(DataFrameSource(df).data["x"]) == [9, 7, 8, 6]


def test_empty_frame():
    with pytest.raises(DataError, match="empty"):
        DataFrameSource(frame([], x=np.array([], dtype=float)))


def test_not_a_dataframe():
    with pytest.raises(InvalidValueError, match="DataFrame"):
        DataFrameSource({"timestamp": [1]})  # type: ignore[arg-type]


def test_column_kinds():
    df = frame(
        [0, 1, 2],
        f=[1.0, 2.0, 3.0],
        i8=np.array([1, 2, 3], dtype=np.int8),
        b=[True, False, True],
        s=["a", "b", "c"],
        cat=pd.Categorical(["x", "y", "x"]),
        n_na=pd.array([1, None, 3], dtype="Int64"),
        n_ok=pd.array([1, 2, 3], dtype="Int64"),
        b_na=pd.array([True, None, False], dtype="boolean"),
        when=pd.date_range("2024", periods=3, tz="Asia/Tokyo"),
        arrow_f=pd.array([1.0, None, 3.0], dtype=pd.ArrowDtype(pa.float64())),
    )
    d = DataFrameSource(df).dtypes
    assert d == {
        "f": np.float64, "i8": np.int8, "b": np.bool_, "s": object, "cat": object, "n_na": np.float64,
        "n_ok": np.int64, "b_na": object, "when": np.dtype("datetime64[ns]"), "arrow_f": np.float64,
    }
    data = DataFrameSource(df).data
    assert list(data["s"]) == ["a", "b", "c"] and list(data["cat"]) == ["x", "y", "x"]
    assert np.isnan(data["n_na"][1]) and np.isnan(data["arrow_f"][1])
    assert data["when"][0] == np.datetime64("2023-12-31T15:00")  # Tokyo midnight in UTC


def test_columns_selection_and_errors(dup_df):
    assert DataFrameSource(dup_df, columns=["size"]).columns == ["size"]
    assert DataFrameSource(dup_df, columns="price").columns == ["price"]
    with pytest.raises(DataError, match=r"columns not found: \['nope'\]; available: \['price', 'size'\]"):
        DataFrameSource(dup_df, columns=["nope"])


def test_column_named_timestamp_clashes():
    df = frame([0, 1], x=[1, 2]).rename(columns={"timestamp": "t"})
    df["timestamp"] = [5, 6]
    with pytest.raises(DataError, match="clashes"):
        DataFrameSource(df, time="t")


def test_duplicate_column_names():
    df = pd.concat([frame([0, 1], x=[1, 2]), pd.DataFrame({"x": [3, 4]})], axis=1)
    with pytest.raises(DataError, match="duplicate column"):
        DataFrameSource(df)


def test_data_error_is_a_value_error_with_http_400():
    with pytest.raises(ValueError) as info:
        DataFrameSource(frame([0], x=[1]), time="missing")
    assert info.value.http_status == 400


# -- MergedSource -----------------------------------------------------------------------------------


@pytest.fixture
def pair():
    a = frame([0, 1, 1, 3], price=[1.0, 2.0, 3.0, 4.0], size=[10, 20, 30, 40], note=["a0", "a1", "a2", "a3"])
    b = frame([1, 1, 2, 3], bid=[0.5, 0.6, 0.7, 0.8], size=[1, 2, 3, 4])
    return a, b


def _rows(src):
    c = src.open().read(src.num_rows)
    return list(zip((c.ts - T0) // S, c.columns["stream"], c.columns["size"]))


def test_merged_tie_break_source_then_row_order(pair):
    a, b = pair
    m = MergedSource({"A": a, "B": b})
    assert _rows(m) == [
        (0, "A", 10), (1, "A", 20), (1, "A", 30), (1, "B", 1), (1, "B", 2), (2, "B", 3), (3, "A", 40), (3, "B", 4)
    ]
    m2 = MergedSource({"B": b, "A": a})  # the other order puts B first on ties
    assert _rows(m2)[1:5] == [(1, "B", 1), (1, "B", 2), (1, "A", 20), (1, "A", 30)]


def test_merged_columns_union_and_fill(pair):
    a, b = pair
    m = MergedSource([a, b])
    assert m.stream_names == ["0", "1"]
    assert m.columns == ["stream", "stream_id", "price", "size", "note", "bid"]
    assert m.dtypes["stream_id"] == np.int8 and m.dtypes["stream"] == object
    assert m.dtypes["size"] == np.int64  # in every source: stays int
    assert m.dtypes["price"] == np.float64 and m.dtypes["bid"] == np.float64 and m.dtypes["note"] == object
    c = m.open().read(8)
    assert list(c.columns["stream_id"]) == [0, 0, 0, 1, 1, 1, 0, 1]
    assert np.isnan(c.columns["price"][3]) and c.columns["note"][3] is None and c.columns["note"][0] == "a0"
    assert np.isnan(c.columns["bid"][0]) and c.columns["bid"][3] == 0.5
    assert (m.num_rows, m.start_ns, m.end_ns) == (8, T0, T0 + 3 * S) and m.in_memory
    assert m.describe()["streams"] == ["0", "1"]


def test_merged_int_upcast_when_missing():
    a = frame([0, 1], n=np.array([1, 2], dtype=np.int32), flag=[True, False])
    b = frame([0, 2], other=[1.0, 2.0])
    m = MergedSource({"a": a, "b": b})
    assert m.dtypes["n"] == np.float64 and m.dtypes["flag"] == np.float64
    assert list(m.data["n"][:1]) == [1.0] and np.isnan(m.data["n"][1])


def test_merged_open_at(pair):
    a, b = pair
    m = MergedSource({"A": a, "B": b})
    for at, pos in [(None, 0), (T0 + S, 1), (T0 + 2 * S, 5), (T0 + 3 * S, 6), (T0 + 9 * S, 8)]:
        assert m.open(at).position == pos


def test_merged_lazy_equals_in_memory(pair):
    a, b = pair
    eager = MergedSource({"A": a, "B": b})
    lazy = MergedSource({"A": WrappedSource(DataFrameSource(a)), "B": b})
    assert not lazy.in_memory and lazy.dtypes == eager.dtypes
    for at in (None, T0 + S, T0 + 2 * S, T0 + 9 * S):
        c_lazy, c_eager = lazy.open(at), eager.open(at)
        assert c_lazy.position == c_eager.position and c_lazy.peek_ns() == c_eager.peek_ns()
        got = c_lazy.read_until(T0 + S, 2), c_lazy.read_until(T0 + S, 5), c_lazy.read(3), c_lazy.read(10)
        want = c_eager.read_until(T0 + S, 2), c_eager.read_until(T0 + S, 5), c_eager.read(3), c_eager.read(10)
        for g, w in zip(got, want):
            assert np.array_equal(g.ts, w.ts)
            assert list(g.columns["stream"]) == list(w.columns["stream"])
            assert np.array_equal(g.columns["price"], w.columns["price"], equal_nan=True)
        assert c_lazy.position == c_eager.position and c_lazy.peek_ns() is None
    with pytest.raises(AttributeError):
        lazy.ts  # noqa: B018


def test_merged_bad_inputs(pair):
    a, _ = pair
    with pytest.raises(InvalidValueError, match="at least one"):
        MergedSource({})
    with pytest.raises(InvalidValueError, match="dict"):
        MergedSource(a)  # type: ignore[arg-type]
    with pytest.raises(DataError, match="'stream'"):
        MergedSource({"x": a.assign(stream=1)})
    with pytest.raises(InvalidValueError, match="nested"):
        MergedSource({"x": [a]})
    with pytest.raises(DataError, match="not found"):
        MergedSource({"x": a}, time="nope")
    with pytest.raises(InvalidValueError, match="at most 128"):
        MergedSource([a] * 129)


def test_merged_tz():
    ny = frame([0, 1], x=[1, 2])
    ny["timestamp"] = ny["timestamp"].dt.tz_localize("UTC").dt.tz_convert("America/New_York")
    assert MergedSource([ny, ny]).tz == "America/New_York"
    assert MergedSource([ny, frame([0], x=[1])]).tz == "UTC"
    assert MergedSource([frame([0], x=[1])]).tz is None


# -- CSVSource --------------------------------------------------------------------------------------


def test_csv_roundtrip_of_sample(tmp_path):
    df = sample_trades(n=500)
    path = tmp_path / "trades.csv"
    df.to_csv(path, index=False)
    src = CSVSource(path)
    want = DataFrameSource(df)
    assert src.tz == "UTC" and src.columns == ["price", "size", "side"] and src.name == "trades"
    assert np.array_equal(src.ts, want.ts)
    for k in src.columns:
        assert np.array_equal(src.data[k], want.data[k])
    assert src.describe()["path"] == str(path)


def test_csv_time_formats(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("when;x\n2024-01-02 09:30:01;1\n2024-01-02 09:30:00;2\n")
    src = CSVSource(p, time="when", sep=";")  # read_csv kwargs; unsorted -> sorted
    assert list(src.ts) == [T0, T0 + S] and list(src.data["x"]) == [2, 1] and src.tz is None
    assert CSVSource(p, time=None, sep=";").num_rows == 2  # first column
    p.write_text("t,x\n2024-01-02T10:30:00+01:00,1\n2024-01-02T09:30:01+00:00,2\n")
    src = CSVSource(p, time="t")  # mixed offsets -> UTC
    assert list(src.ts) == [T0, T0 + S] and src.tz == "UTC"
    p.write_text(f"t,x\n{T0},1\n{T0 + 1},2\n")
    assert list(CSVSource(p, time="t").ts) == [T0, T0 + 1]


def test_csv_errors(tmp_path):
    missing = tmp_path / "missing.csv"
    with pytest.raises(DataError, match="missing.csv"):
        CSVSource(missing)
    p = tmp_path / "bad.csv"
    p.write_text("")
    with pytest.raises(DataError, match="bad.csv.*empty"):
        CSVSource(p)
    p.write_text("timestamp,x\n")
    with pytest.raises(DataError, match="no rows"):
        CSVSource(p)
    p.write_text("timestamp,x\nnot a time,1\n")
    with pytest.raises(DataError, match="bad.csv: cannot parse time column 'timestamp'"):
        CSVSource(p)
    p.write_text("timestamp,x\n2024-01-02,1\n,2\n")
    with pytest.raises(DataError, match="bad.csv: .*NaT"):
        CSVSource(p)
    assert CSVSource(p, dropna=True).num_rows == 1
    p.write_text("a,x\n2024-01-02,1\n")
    with pytest.raises(DataError, match=r"bad.csv: time column 'timestamp' not found.*\['a', 'x'\]"):
        CSVSource(p)


# -- as_source ---------------------------------------------------------------------------------------


def test_as_source_dispatch(tmp_path, pair):
    a, b = pair
    assert isinstance(as_source(a), DataFrameSource)
    src = DataFrameSource(a)
    assert as_source(src) is src
    a.to_parquet(tmp_path / "a.parquet")
    a.to_parquet(tmp_path / "a.PQ")
    a.to_csv(tmp_path / "a.csv", index=False)
    a.to_csv(tmp_path / "a.tsv", index=False, sep="\t")
    assert isinstance(as_source(str(tmp_path / "a.parquet")), ParquetSource)
    assert isinstance(as_source(tmp_path / "a.PQ"), ParquetSource)
    assert isinstance(as_source(tmp_path / "a.csv"), CSVSource)
    assert as_source(tmp_path / "a.tsv").num_rows == 4
    m = as_source({"a": a, "f": tmp_path / "a.csv"})
    assert isinstance(m, MergedSource) and m.num_rows == 8 and m.stream_names == ["a", "f"]
    assert isinstance(as_source([a, b]), MergedSource)
    s = as_source(pd.Series([1.0, 2.0], index=pd.DatetimeIndex([T0, T0 + S]), name="v"))
    assert s.columns == ["v"] and s.num_rows == 2
    assert isinstance(as_source(a, sort=False), ArraySource)


@pytest.mark.parametrize("obj", [42, None, "data.txt", np.arange(3), pd.Series([1, 2])])
def test_as_source_rejects(obj):
    with pytest.raises(InvalidValueError):
        as_source(obj)


# -- sample data -------------------------------------------------------------------------------------


def test_sample_trades_deterministic_and_well_formed():
    a, b = sample_trades(n=2000), sample_trades(n=2000)
    pd.testing.assert_frame_equal(a, b)
    assert len(sample_trades()) == 20_000
    assert not a.equals(sample_trades(n=2000, seed=8)) and not a.equals(sample_trades(n=2000, symbol="XYZ"))
    assert list(a.columns) == ["timestamp", "price", "size", "side"]
    assert str(a["timestamp"].dt.tz) == "UTC" and a["timestamp"].is_monotonic_increasing
    assert a["timestamp"].iloc[0] == pd.Timestamp("2024-01-02 09:30", tz="UTC")
    assert a.dtypes["price"] == np.float64 and a.dtypes["size"] == np.int64 and a.dtypes["side"] == np.int8
    assert set(a["side"]) == {-1, 1} and (a["size"] > 0).all() and (a["price"] > 0).all()
    assert DataFrameSource(a).num_rows == 2000


def test_sample_quotes_deterministic_and_well_formed():
    q = sample_quotes(n=3000, start="2024-03-01", freq_ms=10)
    pd.testing.assert_frame_equal(q, sample_quotes(n=3000, start="2024-03-01", freq_ms=10))
    assert list(q.columns) == ["timestamp", "bid", "ask", "bid_size", "ask_size"]
    assert (q["bid"] < q["ask"]).all() and q["timestamp"].is_monotonic_increasing
    assert q["timestamp"].iloc[0] == pd.Timestamp("2024-03-01", tz="UTC")
    for bad in ({"n": 0}, {"freq_ms": 0}, {"start_price": -1}):
        with pytest.raises(InvalidValueError):
            sample_quotes(**bad)


# -- SyntheticFeed ------------------------------------------------------------------------------------


async def _take(feed: SyntheticFeed, n: int):
    out = []
    async for chunk in feed.batches():
        out.append(chunk)
        if len(out) == n:
            break
    return out


async def test_synthetic_feed_chunks():
    feed = SyntheticFeed(symbol="ABC", rate_hz=100, rows_per_batch=4, seed=1)
    before = time.time_ns()
    chunks = await _take(feed, 5)
    after = time.time_ns()
    assert feed.symbol == "ABC" and feed.columns == ["price", "size", "side"]
    ts = np.concatenate([c.ts for c in chunks])
    assert len(ts) == 20 and ts.dtype == np.int64 and np.all(np.diff(ts) >= 0)
    assert before - 10**9 < ts[0] and ts[-1] <= after
    for c in chunks:
        assert {k: v.dtype for k, v in c.columns.items()} == feed.dtypes
        assert set(np.unique(c.columns["side"])) <= {-1, 1}
    # paced: 5 chunks at 100 Hz cannot arrive in less than ~4 intervals
    assert after - before >= 35_000_000
    await feed.aclose()


async def test_synthetic_feed_deterministic_for_a_seed():
    a = np.concatenate([c.columns["price"] for c in await _take(SyntheticFeed(rate_hz=1000, seed=5), 6)])
    b = np.concatenate(
        [c.columns["price"] for c in await _take(SyntheticFeed(rate_hz=1000, rows_per_batch=3, seed=5), 2)]
    )
    assert np.array_equal(a, b)  # same values however they are batched
    c = np.concatenate([c.columns["price"] for c in await _take(SyntheticFeed(rate_hz=1000, seed=6), 6)])
    assert not np.array_equal(a, c)
    assert abs(a[0] - 100.0) < 1.0


async def test_synthetic_feed_aclose_ends_pending_iteration():
    feed = SyntheticFeed(rate_hz=0.5, seed=1)  # next chunk due in 2 s
    got = []

    async def consume():
        async for chunk in feed.batches():
            got.append(chunk)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    await feed.aclose()
    await asyncio.wait_for(task, 1.0)  # ends well before the next chunk was due
    assert got == [] and feed.closed
    assert [c async for c in feed.batches()] == []


async def test_synthetic_feed_max_batches():
    feed = SyntheticFeed(rate_hz=1000, max_batches=3, seed=2)
    assert len([c async for c in feed.batches()]) == 3 and feed.batches_sent == 3


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rate_hz": 0}, {"rate_hz": float("inf")}, {"rate_hz": "fast"}, {"rows_per_batch": 0},
        {"rows_per_batch": 1.5}, {"symbol": ""}, {"start_price": 0}, {"max_batches": -1},
    ],
)
def test_synthetic_feed_validation(kwargs):
    with pytest.raises(InvalidValueError):
        SyntheticFeed(**kwargs)
