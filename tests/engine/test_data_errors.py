"""Data errors name the frame/column and the fix; integer epoch time columns (``time_unit=``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jupyter_replay import DataError, DataFrameSource, InvalidValueError, MergedSource, as_source
from jupyter_replay.timeconv import guess_epoch_unit

EPOCH_S = np.array([1_600_000_000, 1_600_000_060, 1_600_000_120], dtype=np.int64)


def frame(t: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"t": t, "price": np.arange(len(t), dtype=float)})


def test_multiindex_time_level_suggests_reset_index() -> None:
    df = pd.DataFrame({"symbol": ["A", "B"], "date": pd.date_range("2020", periods=2), "price": [1.0, 2.0]})
    with pytest.raises(DataError, match=r"MultiIndex \['symbol', 'date'\].*reset_index\(\)"):
        as_source(df.set_index(["symbol", "date"]), time="date")


def test_records_list_says_make_a_frame() -> None:
    recs = [{"date": pd.Timestamp("2020-01-01") + pd.Timedelta(days=i), "price": i} for i in range(560)]
    with pytest.raises(DataError, match=r"list of 560 dicts .*pd\.DataFrame\(records\)"):
        as_source(recs, time="date")


def test_dict_of_columns_says_make_a_frame() -> None:
    with pytest.raises(DataError, match=r"dict of 2 columns.*pd\.DataFrame\(data\)"):
        as_source({"date": [1, 2], "price": [1.0, 2.0]}, time="date")


def test_too_many_sources_suggests_long_format() -> None:
    frames = [pd.DataFrame({"timestamp": pd.date_range("2020", periods=1), "x": [1.0]})] * 200
    with pytest.raises(InvalidValueError, match=r"at most 128 sources, got 200.*long-format"):
        MergedSource(frames)


def test_merged_source_passes_dropna_and_names_the_source() -> None:
    nat = pd.DataFrame({"date": pd.to_datetime(["2020-01-01", None]), "x": [1.0, 2.0]})
    with pytest.raises(DataError, match=r"source 'b': .*NaT.*dropna=True"):
        as_source({"a": nat.dropna(), "b": nat}, time="date")
    src = as_source({"a": nat.dropna(), "b": nat}, time="date", dropna=True)
    assert src.num_rows == 2
    with pytest.raises(InvalidValueError, match="unexpected options for a merged source"):
        as_source([nat], time="date", bogus=1)


@pytest.mark.parametrize(("unit", "factor"), [("s", 1), ("ms", 1_000), ("us", 1_000_000)])
def test_epoch_units_are_refused_without_time_unit_and_read_with_it(unit: str, factor: int) -> None:
    t = EPOCH_S * factor
    with pytest.raises(DataError, match=rf"time column 't'.*first months of 1970.*time_unit='{unit}'"):
        DataFrameSource(frame(t), time="t")
    src = DataFrameSource(frame(t), time="t", time_unit=unit)
    assert pd.Timestamp(src.start_ns) == pd.Timestamp("2020-09-13 12:26:40")
    assert list(np.diff(src.ts)) == [60 * 10**9] * 2


def test_time_unit_ns_keeps_the_values_as_they_are() -> None:
    src = DataFrameSource(frame(EPOCH_S), time="t", time_unit="ns")
    assert src.start_ns == int(EPOCH_S[0])


def test_small_and_real_ns_ints_are_not_refused() -> None:
    assert DataFrameSource(frame(np.arange(5, dtype=np.int64)), time="t").num_rows == 5
    assert DataFrameSource(frame(np.arange(3, dtype=np.int64) * 10**9), time="t").num_rows == 3
    real = pd.Timestamp("2024-01-02").value + np.arange(3, dtype=np.int64)
    assert DataFrameSource(frame(real), time="t").start_ns == int(real[0])
    assert guess_epoch_unit(np.arange(3) * 10**9) is None
    assert guess_epoch_unit(real) is None


def test_time_unit_overflow_and_bad_values_are_refused() -> None:
    with pytest.raises(DataError, match=r"outside the int64 nanosecond range as epoch s.*row 1"):
        DataFrameSource(frame(np.array([1, 10**11], dtype=np.int64)), time="t", time_unit="s")
    with pytest.raises(InvalidValueError, match=r"time_unit must be one of"):
        DataFrameSource(frame(EPOCH_S), time="t", time_unit="seconds")
    dates = pd.DataFrame({"t": pd.date_range("2020", periods=2), "x": [1.0, 2.0]})
    with pytest.raises(InvalidValueError, match=r"time_unit='s' is for integer epoch"):
        DataFrameSource(dates, time="t", time_unit="s")
