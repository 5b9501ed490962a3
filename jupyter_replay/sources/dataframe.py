"""In-memory sources: ``ArraySource`` (int64 ns + numpy columns) and ``DataFrameSource`` (from pandas)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..batch import TIME_COLUMN, Chunk
from ..exceptions import DataError, InvalidValueError, brief
from ..timeconv import (
    arrow_temporal_to_numpy,
    epoch_to_ns,
    guess_epoch_unit,
    int_time_to_ns,
    parse_time_unit,
    temporal_to_ns,
    to_ns,
)
from .base import Cursor, ReplaySource

__all__ = [
    "ArraySource", "ArrayCursor", "DataFrameSource", "time_to_ns", "column_to_numpy", "check_count", "end_bound",
]

_I64 = np.iinfo(np.int64)


def time_order(ts: np.ndarray, column: object, sort: bool) -> np.ndarray | None:
    """The stable order that sorts ``ts`` (None when already sorted); unsorted with ``sort=False`` is a
    ``DataError`` naming the first row out of order (one rule for every input library)."""
    if ts.size < 2:
        return None
    down = ts[1:] < ts[:-1]
    if not down.any():
        return None
    if not sort:
        row = int(np.argmax(down)) + 1
        raise DataError(
            f"time column {brief(column)} is not sorted (row {row} is earlier than row {row - 1}); "
            "pass sort=True to sort it"
        )
    return np.argsort(ts, kind="stable")


def missing_times_error(column: object, count: int | None, first: int | None) -> DataError:
    """The one message for missing (NaT/null) times, whatever the input library: how many, where, the fix."""
    if count is None:
        return DataError(f"time column {brief(column)} is all NaT: no rows left to replay")
    return DataError(
        f"time column {brief(column)} has {count} NaT value(s) (first at row {first}); "
        "pass dropna=True to drop them"
    )


def end_bound(end_ns: Any) -> int:
    """``read_until``'s bound as an int64-range int (``math.inf`` and huge ints are clamped)."""
    if isinstance(end_ns, float) and not np.isfinite(end_ns):
        if np.isnan(end_ns):
            raise InvalidValueError("end_ns is NaN")
        return int(_I64.max) if end_ns > 0 else int(_I64.min)
    return max(int(_I64.min), min(int(end_ns), int(_I64.max)))


def check_count(n: Any, what: str = "n") -> int:
    """Validate a row count (int >= 0) for ``read``/``read_until``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise InvalidValueError(f"{what} must be an int >= 0, got {n!r}")
    return int(n)


def _readonly(a: np.ndarray) -> np.ndarray:
    """A read-only view of ``a``: chunks are views, consumers must not write into the source."""
    v = a.view()
    v.flags.writeable = False
    return v


def _ns_units(values: np.ndarray, name: Any) -> np.ndarray:
    """Datetime/timedelta columns in ``[ns]`` (range-checked); others as they are."""
    return temporal_to_ns(values, f"column {brief(str(name))}") if values.dtype.kind in "mM" else values


class ArrayCursor(Cursor):
    """Cursor over sorted in-memory arrays; every read is a numpy view (no copies)."""

    def __init__(self, ts: np.ndarray, columns: Mapping[str, np.ndarray], position: int = 0) -> None:
        self._ts = ts
        self._columns = dict(columns)
        self._n = int(ts.shape[0])
        self.position = int(position)

    def peek_ns(self) -> int | None:
        return int(self._ts[self.position]) if self.position < self._n else None

    def _take(self, stop: int) -> Chunk:
        start, self.position = self.position, stop
        return Chunk(self._ts[start:stop], {k: v[start:stop] for k, v in self._columns.items()})

    def read_until(self, end_ns: int, limit: int) -> Chunk:
        limit = check_count(limit, "limit")
        stop = min(self.position + limit, self._n)
        window = self._ts[self.position : stop]
        return self._take(self.position + int(np.searchsorted(window, end_bound(end_ns), side="right")))

    def read(self, n: int) -> Chunk:
        return self._take(min(self.position + check_count(n), self._n))

    def close(self) -> None:
        self._ts = self._ts[:0]
        self._columns = {k: v[:0] for k, v in self._columns.items()}
        self._n = self.position = 0


class ArraySource(ReplaySource):
    """A replay source over sorted int64 ns timestamps and same-length numpy columns.

    ``ts`` must be non-decreasing; arrays are kept as read-only views (not copied).
    """

    def __init__(self, ts: np.ndarray, columns: Mapping[str, np.ndarray], tz: str | None = None) -> None:
        ts = np.asarray(ts)
        if ts.dtype != np.int64 or ts.ndim != 1:
            raise DataError(f"timestamps must be a 1-d int64 ns array, got {ts.dtype} with {ts.ndim} dims")
        n = int(ts.shape[0])
        if n == 0:
            raise DataError("no rows to replay (empty data)")
        for name, col in columns.items():
            if len(col) != n:
                raise DataError(f"column {name!r} has {len(col)} rows, timestamps have {n}")
        if n > 1 and bool(np.any(ts[1:] < ts[:-1])):
            raise DataError("timestamps are not sorted")
        if ts[0] == _I64.min:  # sorted: NaT's encoding can only come first
            int_time_to_ns(ts[:1], "timestamps")  # raises the one out-of-range message
        self.ts: np.ndarray = _readonly(ts)
        self.data: dict[str, np.ndarray] = {str(k): _readonly(_ns_units(np.asarray(v), k)) for k, v in columns.items()}
        self.columns = list(self.data)
        self.dtypes = {k: v.dtype for k, v in self.data.items()}
        self.num_rows = n
        self.start_ns = int(ts[0])
        self.end_ns = int(ts[-1])
        self.tz = tz

    def open(self, at_ns: Any = None) -> ArrayCursor:
        pos = 0 if at_ns is None else int(np.searchsorted(self.ts, to_ns(at_ns), side="left"))
        return ArrayCursor(self.ts, self.data, pos)

    def to_frame(self, time_column: str = TIME_COLUMN) -> pd.DataFrame:
        """All rows as a DataFrame (time column tz-aware, in ``tz`` or UTC)."""
        index = pd.DatetimeIndex(self.ts.view("datetime64[ns]"), tz="UTC")
        if self.tz is not None:
            index = index.tz_convert(self.tz)
        frame = pd.DataFrame({time_column: index})
        for k, v in self.data.items():
            frame[k] = v
        return frame


# -- pandas conversions ------------------------------------------------------------------------


#: names of UTC itself (DuckDB and Arrow say "Etc/UTC" where pandas says "UTC"): one name on every input
_UTC_ALIASES = frozenset({"UTC", "Etc/UTC", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu", "Etc/UCT", "UCT"})


def _tz_name(tz: Any) -> str | None:
    if tz is None:
        return None
    name = str(tz)
    if name in _UTC_ALIASES:
        return "UTC"
    try:
        pd.Timestamp(0, tz="UTC").tz_convert(name)
    except (KeyError, ValueError, TypeError):  # an unnamed fixed offset: keep the ISO offset form pandas understands
        off = pd.Timestamp(0, tz="UTC").tz_convert(tz).strftime("%z")
        name = f"{off[:3]}:{off[3:]}"
    return name


def _is_arrow_temporal(dtype: Any) -> bool:
    return isinstance(dtype, pd.ArrowDtype) and (
        pa.types.is_timestamp(dtype.pyarrow_dtype) or pa.types.is_duration(dtype.pyarrow_dtype)
    )


def _temporal_in_unit(values: pd.Series | pd.Index) -> tuple[np.ndarray, Any]:
    """``(datetime64/timedelta64[unit], tz)`` of a tz-aware or pyarrow temporal column, in its own unit.

    Datetimes come as naive UTC, missing values as NaT. Converting to ns is left to ``temporal_to_ns``
    (range-checked): pandas casts may wrap or raise ``OutOfBoundsDatetime``, and pyarrow-backed
    columns may not even build a DatetimeIndex.
    """
    if _is_arrow_temporal(values.dtype):
        return arrow_temporal_to_numpy(pa.array(values)), getattr(values.dtype.pyarrow_dtype, "tz", None)
    idx = pd.DatetimeIndex(values)
    return np.asarray(idx.asi8).view(f"datetime64[{idx.unit}]"), idx.tz  # asi8 is UTC for tz-aware


def time_to_ns(
    values: pd.Series | pd.Index, name: str, time_unit: str | None = None
) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    """Convert a time column to ``(int64 ns UTC, NaT mask or None, tz name)``.

    Accepted: datetime64 of any unit (naive = UTC), tz-aware datetimes (converted to UTC, tz kept),
    pyarrow timestamps, and integers since the epoch in ``time_unit`` (``"s"``, ``"ms"``, ``"us"``,
    ``"ns"``; default ns). Integers that only make sense in another unit (``timeconv.guess_epoch_unit``:
    as ns they all fall in the first months of 1970) raise ``DataError`` unless ``time_unit`` is given.
    Anything else is a ``DataError``, and so is any value outside the int64 ns range (never wrapped;
    ``-2**63`` is NaT's encoding, not a time).
    """
    dtype = values.dtype
    what = f"time column {brief(name)}"
    unit = parse_time_unit(time_unit)
    is_int = pd.api.types.is_integer_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    if unit is not None and not is_int:
        raise InvalidValueError(
            f"time_unit={unit!r} is for integer epoch time columns; {what} has dtype {dtype} (drop time_unit)"
        )
    if pd.api.types.is_datetime64_any_dtype(dtype):
        arr, tz = _temporal_in_unit(values)
        ns = temporal_to_ns(arr, what).view(np.int64)
        mask = ns == np.iinfo(np.int64).min
        return ns, (mask if mask.any() else None), _tz_name(tz)
    if is_int:
        series = pd.Series(values)
        mask = np.asarray(series.isna())
        raw_dtype = getattr(dtype, "numpy_dtype", None)
        if raw_dtype is None:
            raw_dtype = dtype.pyarrow_dtype.to_pandas_dtype() if isinstance(dtype, pd.ArrowDtype) else dtype
        raw = series.to_numpy(dtype=raw_dtype, na_value=0) if mask.any() else series.to_numpy(dtype=raw_dtype)
        if unit is None:
            guess = guess_epoch_unit(raw[~mask] if mask.any() else raw)
            if guess is not None:
                first = int(raw[~mask][0] if mask.any() else raw[0])
                raise DataError(
                    f"{what} holds integers like {brief(first)}: as nanoseconds (the default) they all fall in "
                    f"the first months of 1970, as epoch {guess!r} they are dates from "
                    f"{pd.Timestamp(first, unit=guess).date()}; pass time_unit={guess!r} "
                    "(or time_unit='ns' if they really are nanoseconds)"
                )
            unit = "ns"
        return epoch_to_ns(raw, unit, what), (mask if mask.any() else None), None
    hint = "pd.to_datetime(...)"
    if pd.api.types.is_float_dtype(dtype):
        hint = "pd.to_datetime(..., unit='s') (or the right unit)"
    raise DataError(
        f"{what} has dtype {dtype}; expected datetime64 (naive = UTC, or tz-aware) "
        f"or integers since the epoch (time_unit='s'/'ms'/'us'/'ns'); convert it with {hint}"
    )


def column_to_numpy(series: pd.Series) -> np.ndarray:
    """A value column as numpy, zero copy where possible.

    Numeric/bool numpy columns are kept as they are; nullable ints/floats with missing values become
    float64 (NaN), nullable bools with missing values become object; datetimes (any unit, tz-aware,
    pyarrow) become naive UTC ``datetime64[ns]`` and durations ``timedelta64[ns]``, range-checked
    (``DataError`` naming the column, never a wrapped value); strings, categoricals and anything
    else become object arrays, in which a missing value is always ``None`` (not ``NaN``/``pd.NA``:
    what an Arrow round trip and the wire give, so every host shows the same values).
    """
    out = _column_to_numpy(series)
    if out.dtype == object:
        missing = pd.isna(out)
        if missing.any():
            out = out.copy()  # never write into the caller's frame
            out[missing] = None
    return out


def _column_to_numpy(series: pd.Series) -> np.ndarray:
    dtype = series.dtype
    what = f"column {brief(str(series.name))}"
    if isinstance(dtype, np.dtype):
        if dtype.kind in "biufc":
            return series.to_numpy()
        if dtype.kind in "mM":
            return temporal_to_ns(series.to_numpy(), what)
        return series.to_numpy(dtype=object)
    if _is_arrow_temporal(dtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        return temporal_to_ns(_temporal_in_unit(series)[0], what)
    has_na = bool(series.isna().any())
    if pd.api.types.is_bool_dtype(dtype):
        return series.to_numpy(dtype=object) if has_na else series.to_numpy(dtype=bool)
    if pd.api.types.is_numeric_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype):
        numpy_dtype = getattr(dtype, "numpy_dtype", None)
        if numpy_dtype is None:  # pyarrow-backed
            numpy_dtype = np.dtype(dtype.pyarrow_dtype.to_pandas_dtype())
        if has_na:
            return series.to_numpy(dtype=np.float64, na_value=np.nan)
        return series.to_numpy(dtype=numpy_dtype)
    return series.to_numpy(dtype=object)


class DataFrameSource(ArraySource):
    """Replay a pandas DataFrame.

    Args:
        df: the data.
        time: name of the time column, or None to use the DatetimeIndex. If ``time`` is not a column
            but the index is named ``time`` (or ``time`` is the default ``"timestamp"`` and the
            index is a DatetimeIndex), the index is used.
            The time column may be datetime64 of any unit (naive values are UTC), tz-aware
            (converted to UTC; the zone is kept in ``tz`` for display), a pyarrow timestamp, or
            integers taken as nanoseconds since the epoch. Strings and floats are rejected (convert
            them with ``pd.to_datetime`` first; ``CSVSource`` parses strings itself).
        columns: value columns to keep (default: all but the time column).
        sort: stably sort unsorted data by time (equal timestamps keep their input order);
            with ``sort=False`` unsorted data raises ``DataError``.
        dropna: drop rows whose time is NaT instead of raising ``DataError``.
        time_unit: unit of an integer epoch time column (``"s"``, ``"ms"``, ``"us"``, ``"ns"``); without
            it integers are ns, and integers that only make sense as s/ms/us raise ``DataError``.

    The frame is converted once to int64 ns and numpy columns (views of the frame where pandas
    allows it); cursor reads are numpy views. Numeric and bool columns keep their dtype;
    object/string/categorical columns are kept as object arrays (replayed and sent on the wire as
    dictionary codes; not plotted).
    """

    def __init__(
        self,
        df: pd.DataFrame,
        time: str | None = TIME_COLUMN,
        columns: Sequence[str] | None = None,
        sort: bool = True,
        dropna: bool = False,
        time_unit: str | None = None,
    ) -> None:
        if not isinstance(df, pd.DataFrame):
            raise InvalidValueError(f"DataFrameSource needs a pandas DataFrame, got {type(df).__name__}")
        if df.columns.has_duplicates:
            dup = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
            raise DataError(f"duplicate column names: {dup}")
        time_values, time_name, from_index = self._find_time(df, time)
        if len(df) == 0:
            raise DataError("the DataFrame is empty: no rows to replay")
        ts, mask, tz = time_to_ns(time_values, time_name, time_unit)

        names = [c for c in df.columns if from_index or c != time_name]
        if columns is not None:
            if isinstance(columns, str):
                columns = [columns]
            available = {str(c): c for c in names}
            missing = [c for c in columns if str(c) not in available]
            if missing:
                raise DataError(f"columns not found: {missing}; available: {list(available)}")
            names = [available[str(c)] for c in columns]
        data: dict[str, np.ndarray] = {}
        for c in names:
            key = str(c)
            if key in data:
                raise DataError(f"duplicate column name {key!r} after conversion to str")
            if key == TIME_COLUMN:
                raise DataError(
                    f"value column {key!r} clashes with the name of the replay time column; "
                    f"rename it or pass time={key!r}"
                )
            data[key] = column_to_numpy(df[c])

        if mask is not None:
            bad = np.flatnonzero(mask)
            if not dropna:
                raise missing_times_error(time_name, bad.size, int(bad[0]))
            keep = ~mask
            ts = ts[keep]
            data = {k: v[keep] for k, v in data.items()}
            if ts.size == 0:
                raise missing_times_error(time_name, None, None)

        order = time_order(ts, time_name, sort)
        if order is not None:
            ts = ts[order]
            data = {k: v[order] for k, v in data.items()}

        #: Name of the time column in the input (None: the index).
        self.time_column = None if from_index and time is None else time_name
        super().__init__(ts, data, tz=tz)

    @staticmethod
    def _find_time(df: pd.DataFrame, time: str | None) -> tuple[Any, str, bool]:
        if time is None:
            if not isinstance(df.index, pd.DatetimeIndex):
                raise DataError(
                    f"time=None needs a DatetimeIndex, the index is a {type(df.index).__name__}; "
                    f"pass time=<column> (columns: {[str(c) for c in df.columns]})"
                )
            return df.index, str(df.index.name or "index"), True
        if time in df.columns:
            return df[time], str(time), False
        if isinstance(df.index, pd.DatetimeIndex) and (df.index.name == time or time == TIME_COLUMN):
            return df.index, str(time), True
        if df.index.name == time:
            return df.index, str(time), True
        if isinstance(df.index, pd.MultiIndex) and time in df.index.names:
            levels = [str(n) for n in df.index.names]
            raise DataError(
                f"time column {time!r} is a level of the frame's MultiIndex {levels}; "
                "move the levels to columns first: jr.replay(df.reset_index(), time=...)"
            )
        raise DataError(
            f"time column {time!r} not found; available columns: {[str(c) for c in df.columns]}"
            + (f" (index: {df.index.name!r})" if df.index.name is not None else "")
        )
