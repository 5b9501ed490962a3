"""ParquetSource: out-of-core reads, seeks through row-group statistics, the shared row-group cache,
validation of files."""

from __future__ import annotations

import os
import threading

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jupyter_replay.exceptions import DataError, InvalidValueError
from jupyter_replay.sources import DataFrameSource, MergedSource, ParquetSource
from jupyter_replay.sources import parquet as parquet_mod
from jupyter_replay.sources.parquet import (
    CACHE_BYTES_ENV,
    DEFAULT_CACHE_BYTES,
    clear_row_group_cache,
    row_group_cache_info,
    set_row_group_cache_bytes,
)
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


@pytest.fixture
def budget():
    """Set the shared cache's budget for one test (restored after it)."""
    before = row_group_cache_info()["max_bytes"]
    yield set_row_group_cache_bytes
    set_row_group_cache_bytes(before)


@pytest.fixture(params=["cached", "streamed"])
def mode(request, budget) -> str:
    """Row groups through the shared cache, or streamed per cursor (a budget of 0 caches nothing)."""
    if request.param == "streamed":
        budget(0)
    return request.param


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


def test_full_read_equals_dataframe(path, ref, mode):
    src = ParquetSource(path, batch_rows=32)
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
def test_open_reads_only_the_needed_row_group(path, df, ref, row, label, mode):
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


def test_open_on_duplicates_across_groups(path, df, ref, mode):
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


def test_read_until_limits_and_lazy_group_loading(path, df, ref, mode):
    src = ParquetSource(path, batch_rows=16)
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


def test_batch_rows_bounds_memory_of_streamed_groups(path, df, ref, budget):
    budget(0)  # nothing fits the cache: each cursor streams batches of batch_rows rows
    src = ParquetSource(path, batch_rows=16)
    cur = src.open(ts_of(df, 333))
    assert cur.position == 333 and cur.loaded_rows <= 16
    got = []
    while len(c := cur.read_until(src.end_ns, 50)):
        got.append(c)
        assert cur.loaded_rows <= 16 and len(cur.loaded_groups) <= 1
    assert_same(type(got[0]).concat(got), ref.open(ts_of(df, 333)).read(10_000))
    assert src.cache_hits == 0 and src.row_groups_decoded == src.row_groups_read == GROUPS - 3
    with pytest.raises(InvalidValueError):
        ParquetSource(path, batch_rows=0)


def test_cached_groups_are_held_whole_and_released_when_passed(path, df):
    src = ParquetSource(path, batch_rows=16)  # batch_rows only matters for streamed groups
    cur = src.open(ts_of(df, 333))
    assert cur.loaded_rows == GROUP and cur.loaded_groups == {3}
    cur.read(GROUP)
    assert cur.loaded_groups == {4} and cur.position == 433
    cur.close()
    assert cur.loaded_rows == 0 and cur.loaded_groups == set()


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


# -- the shared row-group cache -----------------------------------------------------------------------


def test_seek_reads_only_the_time_column(path, df, ref):
    clear_row_group_cache()
    src = ParquetSource(path)
    before = row_group_cache_info()
    cur = src.open(ts_of(df, 537))
    after = row_group_cache_info()
    assert cur.position == 537 and src.row_groups_decoded == 1
    assert after["misses"] - before["misses"] == 1 and after["entries"] == 1  # the time column of group 5
    assert after["bytes"] == GROUP * 8
    assert_same(cur.read(10), ref.open(ts_of(df, 537)).read(10))  # values decoded on the first read
    assert src.row_groups_decoded == 2 and row_group_cache_info()["entries"] == 2


def test_sources_on_one_file_share_decoded_arrays(tmp_path, path, df):
    clear_row_group_cache()
    link = tmp_path / "link.parquet"
    link.symlink_to(path)
    a, b = ParquetSource(path), ParquetSource(link)  # same file through a symlink
    at = ts_of(df, 420)
    ca, cb = a.open(at), b.open(at)
    x, y = ca.read(50), cb.read(50)
    assert np.array_equal(x.ts, y.ts) and np.shares_memory(x.ts, y.ts)
    for k in a.columns:
        assert np.shares_memory(x.columns[k], y.columns[k]), k
    assert (a.row_groups_decoded, a.cache_hits) == (2, 0)  # time column, then value columns
    assert (b.row_groups_decoded, b.cache_hits) == (0, 2)  # both served by the cache
    with pytest.raises(ValueError):  # consumers must copy, never write into the shared arrays
        x.columns["price"][0] = 0.0
    assert not x.ts.flags.writeable
    # another column selection shares the time column, not the values
    c = ParquetSource(path, columns=["size"])
    z = c.open(at).read(50)
    assert np.shares_memory(z.ts, x.ts) and not np.shares_memory(z.columns["size"], x.columns["size"])
    assert list(z.columns["size"]) == list(range(420, 470)) and (c.row_groups_decoded, c.cache_hits) == (1, 1)


def test_cache_budget_is_respected(path, df, ref, budget):
    budget(20_000)  # about four row groups of this file (time + values entries)
    clear_row_group_cache()
    src = ParquetSource(path)
    ev0 = row_group_cache_info()["evictions"]
    got = []
    cur = src.open()
    while len(c := cur.read(64)):
        got.append(c)
        assert row_group_cache_info()["bytes"] <= 20_000
    assert_same(type(got[0]).concat(got), ref.open().read(ref.num_rows))
    info = row_group_cache_info()
    assert info["evictions"] - ev0 >= GROUPS and info["entries"] < 2 * GROUPS and info["max_bytes"] == 20_000
    decoded = src.row_groups_decoded
    src.open().read(5)  # group 0 was evicted: decoded again
    assert src.row_groups_decoded == decoded + 2
    budget(1_000)  # shrinking evicts at once
    assert row_group_cache_info()["bytes"] <= 1_000
    with pytest.raises(InvalidValueError):
        set_row_group_cache_bytes(-1)


def test_budget_from_environment(monkeypatch, caplog):
    monkeypatch.setenv(CACHE_BYTES_ENV, "64_000_000")
    assert parquet_mod._budget_from_env() == 64_000_000
    monkeypatch.setenv(CACHE_BYTES_ENV, "lots")
    assert parquet_mod._budget_from_env() == DEFAULT_CACHE_BYTES
    assert CACHE_BYTES_ENV in caplog.text
    monkeypatch.delenv(CACHE_BYTES_ENV)
    assert parquet_mod._budget_from_env() == DEFAULT_CACHE_BYTES


def test_rewritten_file_is_not_served_stale(tmp_path):
    p = tmp_path / "live.parquet"

    def write(offset: float, n: int) -> None:
        ts = pd.date_range("2024-01-02", periods=n, freq="s", tz="UTC")
        x = offset + np.arange(n, dtype=float)
        pd.DataFrame({"timestamp": ts, "x": x, "y": -x}).to_parquet(p, row_group_size=50)

    write(0.0, 200)
    old = ParquetSource(p)
    assert old.open().read(200).columns["x"][0] == 0.0  # every group cached
    untouched = ParquetSource(p, columns=["y"])  # built before the rewrite, its values not read yet
    mtime = p.stat().st_mtime_ns
    write(1000.0, 200)  # same shape: the size may be equal, so also move the mtime
    os.utime(p, ns=(mtime + 10**9, mtime + 10**9))
    new = ParquetSource(p)
    got = new.open().read(200)
    assert got.columns["x"][0] == 1000.0 and new.cache_hits == 0  # not the old file's arrays
    with pytest.raises(DataError, match="changed on disk"):
        untouched.open().read(10)  # its snapshot is gone and its values were never cached
    assert old.open().read(200).columns["x"][-1] == 199.0  # what it already shared stays consistent
    write(0.0, 300)  # bigger file: a new identity too
    assert ParquetSource(p).open(None).read(300).columns["x"][-1] == 299.0


def test_concurrent_sources_decode_each_group_once(path, ref):
    clear_row_group_cache()
    sources = [ParquetSource(path) for _ in range(4)]
    results: list = [None] * 4
    barrier = threading.Barrier(4)

    def run(i: int) -> None:
        barrier.wait()
        cur = sources[i].open()
        results[i] = type(ref.open().read(1)).concat([cur.read(7) for _ in range(200)])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    want = ref.open().read(ref.num_rows)
    for r in results:
        assert_same(r, want)
    assert sum(s.row_groups_decoded for s in sources) == 2 * GROUPS  # time + values, once per group
    assert sum(s.cache_hits for s in sources) == 3 * 2 * GROUPS


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
    with pytest.raises(DataError, match="'venue' has dtype"):
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
