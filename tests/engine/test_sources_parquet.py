"""ParquetSource: out-of-core reads, seeks through row-group statistics, validation of files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jupyter_replay.exceptions import DataError, InvalidValueError
from jupyter_replay.sources import DataFrameSource, MergedSource, ParquetSource
from jupyter_replay.timeconv import to_ns

T0 = to_ns("2024-01-02 09:30")
MS = 1_000_000
GROUP = 100
GROUPS = 10


def make_frame(n: int = GROUP * GROUPS) -> pd.DataFrame:
    """Rows 1 ms apart, with duplicate timestamps straddling the first group boundaries."""
    ts = T0 + np.arange(n, dtype=np.int64) * MS
    ts[GROUP - 2 : GROUP + 3] = ts[GROUP]  # rows 98..102 share one timestamp across groups 0 and 1
    ts[GROUP - 2 :] = np.maximum.accumulate(ts[GROUP - 2 :])
    idx = pd.DatetimeIndex(ts.view("datetime64[ns]"), tz="UTC").tz_convert("America/New_York").as_unit("us")
    return pd.DataFrame(
        {
            "timestamp": idx,
            "price": np.round(100 + np.cumsum(np.sin(np.arange(n))), 2),
            "size": np.arange(n, dtype=np.int64),
            "side": np.where(np.arange(n) % 3, 1, -1).astype(np.int8),
            "venue": np.array(["X", "Y", "Z", "W"])[np.arange(n) % 4],
            "maybe": pd.array([None if i % 7 == 0 else i for i in range(n)], dtype="Int64"),
        }
    )


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return make_frame()


@pytest.fixture(scope="module")
def path(tmp_path_factory, df):
    p = tmp_path_factory.mktemp("pq") / "trades.parquet"
    df.to_parquet(p, row_group_size=GROUP, index=False)
    assert pq.ParquetFile(p).metadata.num_row_groups == GROUPS
    return p


@pytest.fixture(scope="module")
def ref(df) -> DataFrameSource:
    return DataFrameSource(df)


def ts_of(df, i: int) -> int:
    return int(df["timestamp"].iloc[i].value)


def assert_same(chunk, ref_chunk):
    assert np.array_equal(chunk.ts, ref_chunk.ts)
    assert list(chunk.columns) == list(ref_chunk.columns)
    for k in chunk.columns:
        assert chunk.columns[k].dtype == ref_chunk.columns[k].dtype, k
        if chunk.columns[k].dtype == object:
            assert list(chunk.columns[k]) == list(ref_chunk.columns[k])
        else:
            assert np.array_equal(chunk.columns[k], ref_chunk.columns[k], equal_nan=True), k


def test_metadata_only_at_construction(path, df, ref):
    src = ParquetSource(path)
    assert src.row_groups_read == 0 and src.stat_reads == 0  # statistics only
    assert (src.num_rows, src.start_ns, src.end_ns) == (len(df), ref.start_ns, ref.end_ns)
    assert src.tz == "America/New_York" and src.name == "trades"
    assert src.columns == ["price", "size", "side", "venue", "maybe"]
    assert src.dtypes == ref.dtypes  # incl. Int64 with nulls -> float64, strings -> object
    d = src.describe()
    assert d["path"] == str(path) and d["row_groups"] == GROUPS and d["kind"] == "ParquetSource"


def test_full_read_equals_dataframe(path, ref):
    src = ParquetSource(path)
    cur = src.open()
    got = []
    while len(c := cur.read(37)):
        got.append(c)
        assert len(cur.loaded_groups) <= 1
    assert_same(type(got[0]).concat(got), ref.open().read(ref.num_rows))
    assert src.row_groups_read == GROUPS  # each group read once
    assert cur.max_loaded_groups == 1 and cur.peek_ns() is None and cur.position == ref.num_rows


@pytest.mark.parametrize(
    "row, label",
    [(0, "start"), (GROUP * 5 + 37, "middle"), (GROUP * 7, "group start"), (GROUP * GROUPS - 1, "last row")],
)
def test_open_reads_only_the_needed_row_group(path, df, ref, row, label):
    src = ParquetSource(path)
    at = ts_of(df, row)
    cur = src.open(at)
    assert cur.position == row, label
    assert cur.peek_ns() == at
    chunk = cur.read(3)
    assert_same(chunk, ref.open(at).read(3))
    assert src.row_groups_read == 1
    # the group stays loaded, unless the read ran to the end of the file
    assert cur.loaded_groups == ({row // GROUP} if row + 3 < len(df) else set())


def test_open_on_duplicates_across_groups(path, df, ref):
    src = ParquetSource(path)
    at = ts_of(df, GROUP)  # rows 98..102 share this timestamp
    cur = src.open(at)
    assert cur.position == GROUP - 2 and ref.open(at).position == GROUP - 2
    assert cur.loaded_groups == {0} and src.row_groups_read == 1
    assert_same(cur.read_until(at, 100), ref.open(at).read_until(at, 100))  # crosses into group 1
    assert cur.position == GROUP + 3 and src.row_groups_read == 2


def test_open_before_start_and_past_end(path, df):
    src = ParquetSource(path)
    cur = src.open(T0 - 10**12)
    assert cur.position == 0 and cur.peek_ns() == src.start_ns
    assert src.row_groups_read == 0  # the first row's time comes from the statistics
    cur = src.open(src.end_ns + 1)
    assert cur.position == src.num_rows and cur.peek_ns() is None
    assert len(cur.read(10)) == 0 and len(cur.read_until(src.end_ns + 10**12, 10)) == 0
    assert src.row_groups_read == 0
    between = ts_of(df, 250) + MS // 2  # not a row timestamp
    assert src.open(between).position == 251 and src.open("2024-01-02 09:30:00.250").position == 250


def test_read_until_limits_and_lazy_group_loading(path, df, ref):
    src = ParquetSource(path)
    cur, want = src.open(), ref.open()
    end = ts_of(df, 150)
    for limit in (10, 1000):
        assert_same(cur.read_until(end, limit), want.read_until(end, limit))
    assert cur.position == 151 and src.row_groups_read == 2
    # the next group starts after end: nothing to read, and it is not loaded
    cur.read_until(ts_of(df, 199), 1000)
    assert len(cur.read_until(ts_of(df, 199), 1000)) == 0 and cur.position == 200
    assert src.row_groups_read == 2
    assert cur.peek_ns() == ts_of(df, 200) and src.row_groups_read == 2
    assert len(cur.read_until(ts_of(df, 200), 0)) == 0
    with pytest.raises(InvalidValueError):
        cur.read(-1)


def test_batch_rows_bounds_memory(path, df, ref):
    src = ParquetSource(path, batch_rows=16)
    cur = src.open(ts_of(df, 333))
    assert cur.position == 333 and cur.loaded_rows <= 16
    got = []
    while len(c := cur.read_until(src.end_ns, 50)):
        got.append(c)
        assert cur.loaded_rows <= 16 and len(cur.loaded_groups) <= 1
    assert_same(type(got[0]).concat(got), ref.open(ts_of(df, 333)).read(10_000))
    with pytest.raises(InvalidValueError):
        ParquetSource(path, batch_rows=0)


def test_columns_selection(path, ref):
    src = ParquetSource(path, columns=["size", "venue"])
    assert src.columns == ["size", "venue"] and src.dtypes == {"size": np.int64, "venue": object}
    c = src.open().read(5)
    assert list(c.columns) == ["size", "venue"] and list(c.columns["size"]) == [0, 1, 2, 3, 4]
    with pytest.raises(DataError, match=r"columns not found: \['nope'\]"):
        ParquetSource(path, columns=["nope"])


def test_close_and_reopen(path):
    src = ParquetSource(path)
    cur = src.open()
    cur.read(5)
    src.close()
    assert len(src.open(src.start_ns).read(5)) == 5  # the file is reopened on demand
    cur.close()
    assert cur.peek_ns() is None
    src.close()


def test_other_time_types(tmp_path, df):
    # int64 ns time column, ms timestamps, naive timestamps, pandas DatetimeIndex (time=None)
    ns = df["timestamp"].astype("int64").to_numpy() * 1000  # us -> ns
    cases = {
        "int": pd.DataFrame({"t": ns, "x": np.arange(len(ns))}),
        "ms": pd.DataFrame({"t": pd.DatetimeIndex(ns.view("datetime64[ns]")).as_unit("ms"), "x": np.arange(len(ns))}),
    }
    for name, frame in cases.items():
        p = tmp_path / f"{name}.parquet"
        frame.to_parquet(p, row_group_size=64)
        src = ParquetSource(p, time="t")
        want = DataFrameSource(frame, time="t")
        assert src.tz is None and src.start_ns == want.start_ns and src.end_ns == want.end_ns, name
        at = int(want.ts[500])
        assert src.open(at).position == want.open(at).position
        assert np.array_equal(src.open(at).read(100).ts, want.open(at).read(100).ts)
    p = tmp_path / "index.parquet"
    df.set_index("timestamp").to_parquet(p, row_group_size=GROUP)
    src = ParquetSource(p, time=None)
    assert src.time_column == "timestamp" and src.columns == ["price", "size", "side", "venue", "maybe"]
    assert src.num_rows == len(df)


def test_files_without_statistics_are_scanned_once(tmp_path, df, ref):
    p = tmp_path / "nostats.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), p, row_group_size=GROUP, write_statistics=False)
    src = ParquetSource(p)
    assert src.stat_reads == GROUPS and src.dtypes["size"] == np.float64  # nulls cannot be ruled out
    at = ts_of(df, 555)
    assert src.open(at).position == 555 and src.row_groups_read == 1  # the group holding row 555
    assert np.array_equal(src.open(at).read(100).ts, ref.open(at).read(100).ts)


# -- bad files ----------------------------------------------------------------------------------------


def test_corrupt_and_missing_files(tmp_path):
    bad = tmp_path / "garbage.parquet"
    bad.write_bytes(b"this is not parquet at all" * 100)
    with pytest.raises(DataError, match="garbage.parquet"):
        ParquetSource(bad)
    with pytest.raises(DataError, match="nope.parquet"):
        ParquetSource(tmp_path / "nope.parquet")
    with pytest.raises(DataError, match="not a readable"):
        ParquetSource(tmp_path)  # a directory


def test_truncated_file(tmp_path, path):
    data = path.read_bytes()
    p = tmp_path / "truncated.parquet"
    p.write_bytes(data[: len(data) // 2] + data[-8:])  # footer magic kept, body cut
    with pytest.raises(DataError, match="truncated.parquet"):
        src = ParquetSource(p)
        src.open().read(10_000)


def test_corrupt_row_group_data_raises_data_error(tmp_path, path):
    data = bytearray(path.read_bytes())
    src = ParquetSource(path)
    p = tmp_path / "scrambled.parquet"
    data[4 : len(data) // 3] = bytes(len(data) // 3 - 4)  # zero the first data pages, keep the footer
    p.write_bytes(bytes(data))
    src = ParquetSource(p)  # metadata is intact
    with pytest.raises(DataError, match="scrambled.parquet"):
        src.open().read(src.num_rows)


def test_unsorted_row_groups(tmp_path, df):
    p = tmp_path / "unsorted.parquet"
    swapped = pd.concat([df.iloc[GROUP : 2 * GROUP], df.iloc[:GROUP]])
    swapped.to_parquet(p, row_group_size=GROUP, index=False)
    with pytest.raises(DataError, match=r"unsorted.parquet: not sorted by 'timestamp': row group 0"):
        ParquetSource(p)


def test_unsorted_inside_a_row_group(tmp_path, df):
    p = tmp_path / "inner.parquet"
    order = np.arange(2 * GROUP)
    order[GROUP + 10 : GROUP + 20] = order[GROUP + 10 : GROUP + 20][::-1]
    shuffled = df.iloc[order]
    shuffled.to_parquet(p, row_group_size=GROUP, index=False)
    src = ParquetSource(p)  # group ranges do not overlap: caught when the group is read
    assert len(src.open().read(GROUP)) == GROUP
    with pytest.raises(DataError, match="inner.parquet: not sorted by 'timestamp' in row group 1"):
        src.open().read(2 * GROUP)


def test_bad_time_columns(tmp_path, path, df):
    with pytest.raises(DataError, match=r"'ts' not found; available columns: \['timestamp', 'price'"):
        ParquetSource(path, time="ts")
    with pytest.raises(DataError, match="'venue' has type"):
        ParquetSource(path, time="venue")
    with pytest.raises(DataError, match="no stored pandas index"):
        ParquetSource(path, time=None)
    p = tmp_path / "nat.parquet"
    nat = df.iloc[:10].copy()
    nat.loc[3, "timestamp"] = pd.NaT
    nat.to_parquet(p)
    with pytest.raises(DataError, match="nulls"):
        ParquetSource(p)
    p = tmp_path / "empty.parquet"
    df.iloc[:0].to_parquet(p)
    with pytest.raises(DataError, match="no rows"):
        ParquetSource(p)


# -- merged with a Parquet source (lazy merge) -----------------------------------------------------


def test_merged_with_parquet_matches_in_memory(path, df):
    quotes = pd.DataFrame(
        {"timestamp": df["timestamp"].iloc[::3].reset_index(drop=True), "bid": np.arange(len(df[::3]), dtype=float)}
    )
    lazy = MergedSource({"trades": ParquetSource(path, batch_rows=32), "quotes": quotes})
    eager = MergedSource({"trades": df, "quotes": quotes})
    assert not lazy.in_memory and eager.in_memory
    assert lazy.dtypes == eager.dtypes and lazy.tz == "America/New_York"
    for at in (None, ts_of(df, 99), ts_of(df, 640)):
        lc, ec = lazy.open(at), eager.open(at)
        assert lc.position == ec.position
        end = ts_of(df, 700)
        while len(c := lc.read_until(end, 41)):
            assert_same(c, ec.read_until(end, 41))
        assert len(ec.read_until(end, 41)) == 0
        while len(c := lc.read(29)):
            assert_same(c, ec.read(29))
        assert ec.peek_ns() is None and lc.position == eager.num_rows
    # ties: a trade and a quote at the same time -> trades first (given first)
    rows = eager.open(ts_of(df, 3)).read(2)
    assert rows.ts[0] == rows.ts[1] and list(rows.columns["stream"]) == ["trades", "quotes"]
