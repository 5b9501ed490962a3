"""Timestamps outside the int64 nanosecond range never wrap silently (issue 14).

int64 ns covers 1677-09-21 .. 2262-04-11; numpy/pandas/Arrow casts across units wrap or raise their
own errors. Every conversion into ns must either be exact or raise a typed, bounded error naming
the column, the value and the fix.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import jupyter_replay as jr
from jupyter_replay import Chunk, DataError, InvalidValueError, RollingBuffer, Session, TestTimer
from jupyter_replay.feeds.redis.layout import Schema
from jupyter_replay.feeds.websocket_json import _stamp
from jupyter_replay.sources import CSVSource, DataFrameSource, MergedSource, ParquetSource
from jupyter_replay.sources.dataframe import ArraySource
from jupyter_replay.sources.parquet import clear_row_group_cache, row_group_cache, set_row_group_cache_bytes
from jupyter_replay.sources.sample import sample_trades
from jupyter_replay.timeconv import NS_MAX, NS_MIN, int_time_to_ns, temporal_to_ns, to_duration_ns, to_ns
from jupyter_replay.wire import decode_frame, encode_columns

NAT = -(2**63)
FAR = "5138-11-16"  # stored as 2216-02-08 before the fix
YEAR_148108_S = (148108 - 1970) * 365 * 86_400  # seconds since 1970: about year 148108 (1970-01-01 before)


def arrow_series(values: list, typ: pa.DataType, name: str = "x") -> pd.Series:
    """A pyarrow-backed pandas column (built from Arrow: pandas itself refuses out-of-ns values)."""
    return pd.Series(pd.arrays.ArrowExtensionArray(pa.array(values, typ)), name=name)


def assert_names(exc: pytest.ExceptionInfo, *parts: str) -> None:
    msg = str(exc.value)
    for part in parts:
        assert part in msg, f"{part!r} not in {msg!r}"
    assert len(msg) < 600, "error messages stay bounded"


# -- scalars (control values) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [FAR, np.datetime64(FAR, "s"), np.datetime64(YEAR_148108_S, "s"), dt.datetime(9999, 1, 1),
     pd.Timestamp(FAR).as_unit("s"), "1600-01-01", 2**63, NAT, 10**400],
)
def test_to_ns_refuses_values_outside_the_ns_range(value) -> None:
    with pytest.raises(InvalidValueError) as exc:
        to_ns(value)
    assert len(str(exc.value)) < 300


def test_to_ns_keeps_the_exact_ends_of_the_range() -> None:
    assert to_ns("2262-04-11T23:47:16.854775807") == NS_MAX
    assert to_ns("1677-09-21T00:12:43.145224193") == NS_MIN
    assert to_ns(NS_MIN) == NS_MIN and to_ns(NS_MAX) == NS_MAX


@pytest.mark.parametrize("convert", [to_ns, to_duration_ns])
def test_huge_text_is_refused_at_once_with_a_bounded_message(convert) -> None:
    """pd.Timestamp("9" * 10**6) parses for minutes: a seek target must not stall the loop."""
    with pytest.raises(InvalidValueError, match="longer than") as exc:
        convert("9" * 1_000_000)
    assert len(str(exc.value)) < 300


def test_a_duration_is_not_a_timestamp() -> None:
    with pytest.raises(InvalidValueError, match="duration is not a timestamp"):
        to_ns(np.timedelta64(5, "s"))  # np.timedelta64 subclasses np.integer: it was read as 5 ns


def test_to_duration_ns_converts_numpy_units() -> None:
    assert to_duration_ns(np.timedelta64(5, "s")) == 5 * 10**9  # was 5 (taken as int ns)
    assert to_duration_ns(np.timedelta64(3, "D")) == 3 * 86_400 * 10**9
    assert to_duration_ns(dt.timedelta(days=100_000)) == 100_000 * 86_400 * 10**9


@pytest.mark.parametrize(
    "value",
    [np.timedelta64(10**17, "s"), dt.timedelta(days=999_999), np.timedelta64(1, "Y"), NAT, 2**63,
     np.timedelta64("NaT"), 1e30, "300000000 days"],
)
def test_to_duration_ns_refuses_values_outside_the_ns_range(value) -> None:
    with pytest.raises(InvalidValueError) as exc:
        to_duration_ns(value)
    assert len(str(exc.value)) < 300


# -- arrays: the one rule ----------------------------------------------------------------------------


# The first and last value of each unit inside 1677-09-21T00:12:43.145224193 .. 2262-04-11T23:47:16.854775807.
EDGES = {
    "Y": ("1678", "2262"),
    "M": ("1677-10", "2262-04"),
    "W": ("1677-09-23", "2262-04-10"),  # weeks start on Thursdays (1970-01-01)
    "D": ("1677-09-22", "2262-04-11"),
    "h": ("1677-09-21T01", "2262-04-11T23"),
    "m": ("1677-09-21T00:13", "2262-04-11T23:47"),
    "s": ("1677-09-21T00:12:44", "2262-04-11T23:47:16"),
    "10s": ("1677-09-21T00:12:50", "2262-04-11T23:47:10"),
    "ms": ("1677-09-21T00:12:43.146", "2262-04-11T23:47:16.854"),
    "us": ("1677-09-21T00:12:43.145225", "2262-04-11T23:47:16.854775"),
}


@pytest.mark.parametrize("unit", list(EDGES))
def test_temporal_to_ns_takes_the_ends_of_the_range_and_refuses_one_step_beyond(unit: str) -> None:
    dtype = np.dtype(f"datetime64[{unit}]")
    ends = np.array(EDGES[unit], dtype="datetime64[us]").astype(dtype)  # us -> coarser: exact, cannot wrap
    out = temporal_to_ns(np.append(ends, np.datetime64("NaT")), "column 'x'")
    assert out.dtype == np.dtype("datetime64[ns]")
    # compared as text: numpy's own ns -> us cast wraps at the low end of the range
    assert np.datetime_as_string(out[:2], unit="us").tolist() == np.datetime_as_string(ends, unit="us").tolist()
    assert np.isnat(out[2])
    first, last = ends.view(np.int64).tolist()
    for raw in (first - 1, last + 1):  # one unit beyond either end
        with pytest.raises(DataError) as exc:
            temporal_to_ns(np.array([0, raw], dtype=np.int64).view(dtype), "column 'x'")
        assert_names(exc, "column 'x'", "row 1", "2262-04-11")


def test_temporal_to_ns_handles_big_endian_and_durations() -> None:
    be = np.array([0, 10**9], dtype=">M8[s]")
    assert temporal_to_ns(be, "x").view(np.int64).tolist() == [0, 10**18]
    assert temporal_to_ns(np.array([-(10**9)], "m8[s]"), "x").view(np.int64).tolist() == [-(10**18)]
    with pytest.raises(DataError, match="row 0"):
        temporal_to_ns(np.array([10**17], "m8[s]"), "x")
    with pytest.raises(DataError, match="not a fixed duration"):
        temporal_to_ns(np.array([1], "m8[M]"), "x")


def test_int_time_to_ns_refuses_nat_sentinel_and_big_unsigned() -> None:
    assert int_time_to_ns(np.array([1, NS_MAX], dtype=np.uint64), "t").tolist() == [1, NS_MAX]
    with pytest.raises(DataError) as exc:
        int_time_to_ns(np.array([1, 2**63 + 5], dtype=np.uint64), "time column 't'")
    assert_names(exc, "time column 't'", "row 1", str(2**63 + 5))
    with pytest.raises(DataError) as exc:
        int_time_to_ns(np.array([1, 2, NAT]), "time column 't'")
    assert_names(exc, "row 2", "NaT")


# -- DataFrameSource: time column --------------------------------------------------------------------


def far_seconds() -> np.ndarray:
    return np.array(["2020-01-01", FAR], dtype="datetime64[s]")


@pytest.mark.parametrize(
    "time",
    [
        pytest.param(lambda: pd.Series(far_seconds()), id="datetime64[s]"),
        pytest.param(lambda: pd.Series(np.array([0, YEAR_148108_S * 1000], "datetime64[ms]")), id="year-148108-ms"),
        pytest.param(lambda: pd.Series(far_seconds()).dt.tz_localize("UTC").dt.tz_convert("Asia/Tokyo"), id="tz-aware"),
        pytest.param(lambda: arrow_series([0, YEAR_148108_S], pa.timestamp("s")), id="pyarrow-s"),
        pytest.param(lambda: arrow_series([0, YEAR_148108_S, None], pa.timestamp("s", "Asia/Tokyo")), id="pyarrow-tz"),
        pytest.param(lambda: pd.Series(np.array([1, 2**63 + 5], dtype=np.uint64)), id="uint64"),
        pytest.param(lambda: arrow_series([1, 2**63 + 5], pa.uint64()), id="pyarrow-uint64"),
        pytest.param(lambda: pd.Series(np.array([1, NAT])), id="int64-nat-sentinel"),
        pytest.param(lambda: pd.Series(pd.array([1, NAT, None], dtype="Int64")), id="Int64-nat-sentinel"),
        pytest.param(lambda: arrow_series([1, NAT], pa.int64()), id="pyarrow-int64-nat-sentinel"),
    ],
)
def test_dataframe_time_column_outside_the_range_is_a_data_error(time) -> None:
    df = pd.DataFrame({"when": time()})
    df["v"] = np.arange(len(df))
    with pytest.raises(DataError) as exc:
        DataFrameSource(df, time="when", dropna=True)
    assert_names(exc, "time column 'when'", "row 1")


def test_replay_raises_data_error_not_out_of_bounds() -> None:
    with pytest.raises(DataError) as exc:
        jr.replay(pd.DataFrame({"timestamp": far_seconds(), "x": [1, 2]}))
    assert_names(exc, "'timestamp'", FAR, "2262-04-11")


def test_dataframe_time_columns_in_range_convert_exactly() -> None:
    last_s = np.array(["1677-09-22", "2262-04-11T23:47:16"], dtype="datetime64[s]")
    src = DataFrameSource(pd.DataFrame({"timestamp": last_s, "x": [1, 2]}))
    assert src.ts.tolist() == [int(last_s[0].astype(np.int64)) * 10**9, 9_223_372_036 * 10**9]
    arrow = arrow_series([0, 9_223_372_036], pa.timestamp("s", "Asia/Tokyo"), name="timestamp")
    src = DataFrameSource(pd.DataFrame({"timestamp": arrow, "x": [1, 2]}))
    assert src.ts.tolist() == [0, 9_223_372_036 * 10**9] and src.tz == "Asia/Tokyo"
    ints = arrow_series([1, NS_MAX], pa.uint64(), name="timestamp")
    assert DataFrameSource(pd.DataFrame({"timestamp": ints, "x": [1, 2]})).ts.tolist() == [1, NS_MAX]


# -- DataFrameSource: value columns -------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(lambda: pd.Series(far_seconds()), id="datetime64[s]"),
        pytest.param(lambda: pd.Series(np.array([0, YEAR_148108_S * 1000], "datetime64[ms]")), id="year-148108-ms"),
        pytest.param(lambda: pd.Series(np.array([0, 10**17], "timedelta64[s]")), id="timedelta64[s]"),
        pytest.param(lambda: pd.Series(far_seconds()).dt.tz_localize("UTC"), id="tz-aware"),
        pytest.param(lambda: arrow_series([0, YEAR_148108_S], pa.timestamp("s", "UTC")), id="pyarrow-timestamp"),
        pytest.param(lambda: arrow_series([0, 10**17], pa.duration("s")), id="pyarrow-duration"),
    ],
)
def test_dataframe_value_column_outside_the_range_is_a_data_error(values) -> None:
    df = pd.DataFrame({"timestamp": np.arange(2, dtype=np.int64), "when": values()})
    with pytest.raises(DataError) as exc:
        DataFrameSource(df)
    assert_names(exc, "column 'when'", "row 1")


def test_dataframe_value_columns_in_range_become_exact_ns() -> None:
    df = pd.DataFrame({
        "timestamp": np.arange(2, dtype=np.int64),
        "d": np.array(["2200-01-01", "1700-01-01"], "datetime64[s]"),
        "td": np.array([1, -(10**9)], "timedelta64[s]"),
        "pa": arrow_series([10**9, None], pa.duration("s")),
        "tz": arrow_series([10**9, 0], pa.timestamp("s", "America/New_York")),
    })
    src = DataFrameSource(df)
    assert src.data["d"].dtype == np.dtype("datetime64[ns]")
    assert (src.data["d"] == np.array(["2200-01-01", "1700-01-01"], "datetime64[ns]")).all()
    assert src.data["td"].view(np.int64).tolist() == [10**9, -(10**18)]
    assert src.data["pa"].dtype == np.dtype("timedelta64[ns]")
    assert src.data["pa"][0].astype(np.int64) == 10**18 and np.isnat(src.data["pa"][1])
    assert src.data["tz"].view(np.int64).tolist() == [10**18, 0]  # naive UTC


def test_array_source_refuses_the_nat_sentinel() -> None:
    with pytest.raises(DataError, match="NaT"):
        ArraySource(np.array([NAT, 0]), {})


def test_array_source_converts_value_units_with_a_check() -> None:
    src = ArraySource(np.arange(2), {"x": np.array([0, 10**9], ">M8[s]")})
    assert src.dtypes["x"] == np.dtype("datetime64[ns]")
    assert src.data["x"].view(np.int64).tolist() == [0, 10**18]
    with pytest.raises(DataError, match="column 'x'"):
        ArraySource(np.arange(2), {"x": np.array([0, 10**17], "m8[s]")})


# -- CSV (through DataFrameSource) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [f"timestamp,x\n2020-01-01,1\n{FAR},2\n", f"timestamp,x\n5,1\n{NAT},2\n", f"timestamp,x\n5,1\n{2**63},2\n"],
    ids=["date-text", "nat-sentinel", "above-int64"],
)
def test_csv_time_outside_the_range_is_a_data_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(DataError) as exc:
        CSVSource(path)
    assert_names(exc, "t.csv", "'timestamp'", "row 1")


def test_csv_parsed_value_dates_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "v.csv"
    path.write_text(f"timestamp,when\n1,2020-01-01\n2,{FAR}\n")
    with pytest.raises(DataError) as exc:
        CSVSource(path, parse_dates=["when"])
    assert_names(exc, "column 'when'", FAR)


# -- Parquet -------------------------------------------------------------------------------------------


@pytest.fixture
def small_cache():
    """Row groups streamed in batches (cache too small), restored after."""
    before = row_group_cache().max_bytes
    set_row_group_cache_bytes(0)
    clear_row_group_cache()
    yield
    set_row_group_cache_bytes(before)


def write(tmp_path: Path, columns: dict, **kw) -> Path:
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table(columns), path, **kw)
    return path


@pytest.mark.parametrize(
    "time",
    [
        pytest.param(pa.array([0, YEAR_148108_S], pa.timestamp("s")), id="timestamp-s"),
        pytest.param(pa.array([0, YEAR_148108_S * 10**6], pa.timestamp("us", "UTC")), id="timestamp-us-tz"),
        pytest.param(pa.array([1, 2**63 + 5], pa.uint64()), id="uint64"),  # end_ns < start_ns before
        pytest.param(pa.array([NAT, 5], pa.int64()), id="int64-nat-sentinel"),
    ],
)
@pytest.mark.parametrize("statistics", [True, False])
def test_parquet_time_column_outside_the_range_is_a_data_error(tmp_path: Path, time, statistics: bool) -> None:
    path = write(tmp_path, {"timestamp": time, "x": [1, 2]}, write_statistics=statistics)
    with pytest.raises(DataError) as exc:
        ParquetSource(path)
    assert_names(exc, "t.parquet", "time column 'timestamp'", "row group 0", "row ")


def test_parquet_uint64_time_in_range_is_read_exactly(tmp_path: Path) -> None:
    path = write(tmp_path, {"timestamp": pa.array([1, NS_MAX], pa.uint64()), "x": [1, 2]})
    src = ParquetSource(path)
    assert (src.start_ns, src.end_ns) == (1, NS_MAX)
    assert src.open().read(5).ts.tolist() == [1, NS_MAX]


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(pa.array([0, 1, YEAR_148108_S], pa.timestamp("s")), id="timestamp-s"),
        pytest.param(pa.array([0, 1, YEAR_148108_S], pa.timestamp("s", "Asia/Tokyo")), id="timestamp-tz"),
        pytest.param(pa.array([0, None, 10**17], pa.duration("s")), id="duration-s"),
    ],
)
@pytest.mark.parametrize("streamed", [False, True])
def test_parquet_value_column_outside_the_range_is_a_data_error(
    tmp_path: Path, request: pytest.FixtureRequest, values, streamed: bool
) -> None:
    if streamed:
        request.getfixturevalue("small_cache")
    path = write(tmp_path, {"timestamp": pa.array([1, 2, 3], pa.int64()), "when": values})
    src = ParquetSource(path, batch_rows=2)
    with pytest.raises(DataError) as exc:
        src.open().read(3)
    assert_names(exc, "t.parquet", "column 'when'", "row 2")  # row within the group, also when streamed


def test_parquet_written_from_pyarrow_backed_pandas(tmp_path: Path) -> None:
    df = pd.DataFrame({
        "timestamp": arrow_series([0, YEAR_148108_S], pa.timestamp("s", "UTC"), name="timestamp"),
        "x": [1, 2],
    })
    path = tmp_path / "t.parquet"
    df.to_parquet(path)
    with pytest.raises(DataError, match="time column 'timestamp'"):
        ParquetSource(path)
    ok = pd.DataFrame({
        "timestamp": arrow_series([0, 9_223_372_036], pa.timestamp("s", "UTC"), name="timestamp"),
        "d": arrow_series([10**9, 2], pa.duration("s"), name="d"),
    })
    ok.to_parquet(path)
    chunk = ParquetSource(path).open().read(2)
    assert chunk.ts.tolist() == [0, 9_223_372_036 * 10**9]
    assert chunk.columns["d"].view(np.int64).tolist() == [10**18, 2 * 10**9]


def test_parquet_int96_is_not_wrapped(tmp_path: Path) -> None:
    """Arrow reads legacy INT96 timestamps as ns and wraps year 148108 to 2087; we read them as us."""
    path = write(
        tmp_path,
        {"timestamp": pa.array([1, 2], pa.int64()), "when": pa.array([0, YEAR_148108_S], pa.timestamp("s"))},
        use_deprecated_int96_timestamps=True,
    )
    assert pq.read_table(path).column("when").type == pa.timestamp("ns")  # the wrapping default
    with pytest.raises(DataError, match="column 'when'"):
        ParquetSource(path).open().read(2)
    ok = write(tmp_path, {"timestamp": pa.array([1, 2], pa.int64()),
                          "when": pa.array([0, 10**18 + 1000], pa.timestamp("ns"))},
               use_deprecated_int96_timestamps=True)
    assert ParquetSource(ok).open().read(2).columns["when"].view(np.int64).tolist() == [0, 10**18 + 1000]


# -- merged, buffer, wire, sample, seek ---------------------------------------------------------------


def test_merged_source_reports_the_bad_stream() -> None:
    good = pd.DataFrame({"timestamp": np.arange(2, dtype=np.int64), "x": [1.0, 2.0]})
    bad = pd.DataFrame({"timestamp": far_seconds(), "x": [1.0, 2.0]})
    with pytest.raises(DataError, match="time column 'timestamp'"):
        MergedSource({"a": good, "b": bad})


def test_merged_lazy_conform_checks_units(tmp_path: Path) -> None:
    path = write(tmp_path, {"timestamp": pa.array([1, 3], pa.int64()), "when": pa.array([5, 6], pa.timestamp("s"))})
    df = pd.DataFrame({"timestamp": np.array([2], dtype=np.int64), "when": np.array([7], "datetime64[s]")})
    merged = MergedSource({"file": ParquetSource(path), "mem": df})
    assert not merged.in_memory
    chunk = merged.open().read(3)
    assert chunk.columns["when"].view(np.int64).tolist() == [5 * 10**9, 7 * 10**9, 6 * 10**9]
    with pytest.raises(DataError, match="source 'file': column 'when'"):  # a source yielding another unit
        merged.conform(0, Chunk(np.arange(2), {"when": np.array([0, YEAR_148108_S], "M8[s]")}))
    with pytest.raises(DataError, match="source 'mem': timestamps"):
        merged.conform(1, Chunk(np.array([1, 2**63 + 5], np.uint64), {"when": np.array([0, 1], "M8[s]")}))


def test_buffer_converts_units_with_a_check() -> None:
    buf = RollingBuffer(4, {"when": "datetime64[ns]"})
    buf.append(Chunk(np.arange(2), {"when": np.array([0, 10**9], "M8[s]")}))
    assert buf.to_frame()["when"].astype("int64").tolist() == [0, 10**18]
    with pytest.raises(DataError, match="column 'when'"):
        buf.append(Chunk(np.arange(2), {"when": np.array([0, YEAR_148108_S], "M8[s]")}))


def test_wire_converts_units_with_a_check() -> None:
    frame = encode_columns({"type": "batch"}, np.arange(2), {"when": np.array([0, 10**9], "M8[s]")})
    _, cols = decode_frame(frame)
    assert cols["when"].tolist() == [0, 10**18]
    with pytest.raises(DataError, match="column 'when'"):
        encode_columns({"type": "batch"}, np.arange(2), {"when": np.array([0, 10**17], "m8[s]")})


def test_sample_data_does_not_run_past_2262() -> None:
    with pytest.raises(InvalidValueError, match="2262"):
        sample_trades(n=1000, start="2262-04-11T23:47")


async def test_seek_and_step_outside_the_range_are_invalid_values() -> None:
    s = Session(DataFrameSource(pd.DataFrame({"timestamp": np.arange(3, dtype=np.int64) * 10**9, "x": [1, 2, 3]})),
                timer=TestTimer())
    for target in (FAR, np.datetime64(YEAR_148108_S, "s"), NAT, 2**63, "9" * 10**6):
        with pytest.raises(InvalidValueError):
            s.seek(target)
    for duration in (np.timedelta64(10**17, "s"), NAT, "9" * 10**6):
        with pytest.raises(InvalidValueError):
            s.step(duration=duration)
    assert s.status()["position"] == 0  # nothing moved
    await s.aclose()


# -- live feeds -----------------------------------------------------------------------------------------


def test_redis_entry_times_are_range_checked() -> None:
    """Entry ids are ms (``ms * 1_000_000`` wrapped past 2262); time fields are int ns (-2**63 is NaT)."""
    schema = Schema({"price": np.dtype(np.float64)}, "ts", entry_columns=False)
    assert schema.decode([(b"1-0", {b"price": b"1"}), (b"2-0", {b"ts": b"7", b"price": b"2"})]).ts.tolist() == [
        1_000_000, 7]
    bad = {
        "id beyond 2262": [(b"9999999999999-0", {b"price": b"1"})],
        "NaT sentinel": [(b"1-0", {b"ts": str(NAT).encode(), b"price": b"1"})],
        "above int64": [(b"1-0", {b"ts": str(2**64).encode(), b"price": b"1"})],
    }
    for case, entries in bad.items():
        with pytest.raises(DataError) as exc:
            schema.decode(entries)
        assert len(str(exc.value)) < 600, case
    by_id = Schema({"price": np.dtype(np.float64)}, None, entry_columns=False)
    assert by_id.decode([(b"1700000000000-0", {b"price": b"1"})]).ts.tolist() == [1_700_000_000_000_000_000]
    with pytest.raises(DataError, match="entry id"):
        by_id.decode([(b"9999999999999-0", {b"price": b"1"})])


def test_websocket_json_times_outside_the_range_fall_back_like_unparsable_ones() -> None:
    ms = 1_000_000
    assert _stamp(1_700_000_000_000, ms, -1) == 1_700_000_000_000_000_000
    assert _stamp("1700000000000", ms, -1) == 1_700_000_000_000_000_000
    for value in (10**16, "1e300", 2**70, "9" * 5000, float("inf"), "soon"):
        assert _stamp(value, ms, -1) == -1, value  # the reception time, never a wrapped or huge int
    assert _stamp(NAT, 1, -1) == -1
