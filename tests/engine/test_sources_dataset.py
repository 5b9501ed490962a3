"""DatasetSource: hive-partitioned Parquet directories and globs as one time-ordered, seekable stream."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from data_helpers import write_dataset

from jupyter_replay.exceptions import DataError, InvalidValueError
from jupyter_replay.sources import DatasetSource, ParquetSource, as_source
from jupyter_replay.sources.parquet import clear_row_group_cache, row_group_cache_info


def drain(cursor, sizes=(1, 7, 50, 3)) -> pd.DataFrame:
    chunks, k = [], 0
    while len(c := cursor.read(sizes[k % len(sizes)])):
        chunks.append(c)
        k += 1
    ts = np.concatenate([c.ts for c in chunks])
    cols = {name: np.concatenate([c.columns[name] for c in chunks]) for name in chunks[0].columns}
    return pd.DataFrame({"ts": ts, **cols})


@pytest.fixture
def dataset(tmp_path):
    clear_row_group_cache()
    expected = write_dataset(tmp_path / "data")
    return tmp_path / "data", expected


def test_one_time_ordered_stream_across_overlapping_files(dataset):
    root, expected = dataset
    src = as_source(root)
    assert isinstance(src, DatasetSource)
    assert len(src.parts) == 6 and src.num_rows == len(expected) == 360
    assert src.columns == ["price", "size", "date", "symbol"]
    assert src.dtypes == {"price": np.float64, "size": np.int64, "date": object, "symbol": object}
    assert src.tz == "UTC"
    assert (src.start_ns, src.end_ns) == (int(expected.timestamp.iloc[0].value), int(expected.timestamp.iloc[-1].value))
    got = drain(src.open())
    np.testing.assert_array_equal(got.ts, expected.timestamp.astype("int64"))
    for c in ("price", "size", "symbol", "date"):
        np.testing.assert_array_equal(got[c].to_numpy(), expected[c].to_numpy())


def test_seek_uses_statistics_and_counts_rows_exactly(dataset):
    root, expected = dataset
    ts = expected.timestamp.astype("int64").to_numpy()
    src = DatasetSource(root)
    for at in [ts[0] - 1, ts[0], ts[97], ts[97] + 1, ts[200] - 5, ts[-1], ts[-1] + 1]:
        before = src.row_groups_read
        cur = src.open(int(at))
        assert cur.position == int(np.searchsorted(ts, at, side="left"))
        # only row groups whose statistics span ``at`` were touched (at most one per file of that day)
        assert src.row_groups_read - before <= 3
        assert cur.peek_ns() == (int(ts[cur.position]) if cur.position < len(ts) else None)
        rest = drain(cur)["ts"].to_numpy() if cur.position < len(ts) else np.empty(0, np.int64)
        np.testing.assert_array_equal(rest, ts[int(np.searchsorted(ts, at)) :])


def test_read_until_is_inclusive_and_limited(dataset):
    root, expected = dataset
    ts = expected.timestamp.astype("int64").to_numpy()
    cur = DatasetSource(root).open()
    got = cur.read_until(int(ts[150]), 100)
    np.testing.assert_array_equal(got.ts, ts[:100])
    got = cur.read_until(int(ts[150]), 1000)
    np.testing.assert_array_equal(got.ts, ts[100:151])
    assert cur.position == 151 and cur.read_until(int(ts[150]), 10).ts.size == 0
    assert len(cur.read_until(float("inf"), 10_000)) == len(ts) - 151


def test_symbols_and_partition_filters_prune_files(dataset):
    root, expected = dataset
    src = DatasetSource(root, symbols=["BBB"])
    assert len(src.parts) == 2 and src.num_rows == 120
    assert set(drain(src.open())["symbol"]) == {"BBB"}
    day2 = DatasetSource(root, filter=pc.field("date") == "2024-01-03", symbols="CCC")
    assert len(day2.parts) == 1
    want = expected[(expected.symbol == "CCC") & (expected.date == "2024-01-03")]
    np.testing.assert_array_equal(drain(day2.open())["price"], want.price)
    with pytest.raises(InvalidValueError, match="partition fields only"):
        DatasetSource(root, filter=pc.field("price") > 100)
    with pytest.raises(DataError, match="match the filter"):
        DatasetSource(root, symbols=["ZZZ"])
    with pytest.raises(InvalidValueError, match="partition field"):
        DatasetSource(root, symbols=["A"], symbol_column="ticker")


def test_glob_and_columns(dataset, tmp_path):
    root, _ = dataset
    src = as_source(str(root / "date=2024-01-02" / "*" / "*.parquet"), columns=["price", "symbol"])
    assert isinstance(src, DatasetSource) and len(src.parts) == 3
    assert src.columns == ["price", "symbol"]
    inside = as_source(str(root / "date=2024-01-03" / "*" / "*.parquet"))  # partition fields above the glob too
    assert set(drain(inside.open())["date"]) == {"2024-01-03"}
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no Parquet files"):
        DatasetSource(tmp_path / "empty")
    with pytest.raises(DataError, match="time column 'nope' not found"):
        DatasetSource(root, time="nope")
    with pytest.raises(DataError, match="columns not found"):
        DatasetSource(root, columns=["nope"])


def test_files_share_the_row_group_cache_with_parquet_sources(dataset):
    root, _ = dataset
    a = DatasetSource(root)
    drain(a.open())
    decoded = a.row_groups_decoded
    assert decoded > 0
    b = DatasetSource(root)
    hits = row_group_cache_info()["hits"]
    drain(b.open())
    assert b.row_groups_decoded == 0 and row_group_cache_info()["hits"] > hits
    one = ParquetSource(root / "date=2024-01-02" / "symbol=AAA" / "part-0.parquet")
    drain(one.open())
    assert one.row_groups_decoded == 0  # the dataset's reads of that file are its cache entries


def test_ties_across_files_follow_group_start_then_path(tmp_path):
    for name, ts in (("b", [5, 10]), ("a", [3, 10]), ("c", [10, 10])):
        pq.write_table(pa.table({"timestamp": pa.array(ts, pa.int64()), "f": [name] * 2}), tmp_path / f"{name}.parquet")
    got = drain(DatasetSource(tmp_path, partitioning=None).open(), sizes=(2,))
    assert got.ts.tolist() == [3, 5, 10, 10, 10, 10]
    assert got.f.tolist() == ["a", "b", "a", "b", "c", "c"]


def test_cursor_holds_one_group_per_overlapping_file(tmp_path):
    write_dataset(tmp_path / "d", days=3, rows=200, row_group_size=20)
    src = DatasetSource(tmp_path / "d")
    cur = src.open()
    peak = 0
    while len(cur.read(37)):
        peak = max(peak, cur.loaded_groups)
    assert 1 <= peak <= 3  # three symbols overlap within a day; days never overlap
