"""Conversions between user-facing time values and the engine's int64 nanoseconds (UTC).

The one place for the nanosecond range rule: every conversion into int64 ns (scalars, numpy
datetime64/timedelta64 arrays of any unit, integer time columns, Arrow temporal arrays) goes through
here and is range-checked, because numpy and pandas casts wrap silently. int64 ns covers
1677-09-21 .. 2262-04-11 (durations: about +-292 years); ``-2**63`` is NaT's encoding, never a time.
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from .exceptions import DataError, InvalidValueError, brief

__all__ = [
    "to_ns",
    "to_duration_ns",
    "ns_to_timestamp",
    "ns_to_iso",
    "temporal_to_ns",
    "int_time_to_ns",
    "EPOCH_UNITS",
    "parse_time_unit",
    "epoch_to_ns",
    "guess_epoch_unit",
    "arrow_temporal_to_numpy",
    "NS_MIN",
    "NS_MAX",
    "NS_RANGE",
    "TimeLike",
    "DurationLike",
]

TimeLike = Any  # pd.Timestamp | datetime | np.datetime64 | str | int (ns)
DurationLike = Any  # pd.Timedelta | timedelta | np.timedelta64 | str | int (ns)

#: Smallest / largest valid int64 ns value (``-2**63`` is NaT's encoding).
NS_MIN = -(2**63) + 1
NS_MAX = 2**63 - 1
_NAT = np.iinfo(np.int64).min
#: The representable range, for messages.
NS_RANGE = "1677-09-21T00:12:43.145224193 .. 2262-04-11T23:47:16.854775807 UTC"
_DURATION_RANGE = "+-292 years (+-9223372036854775807 ns)"
#: Longest text parsed as a timestamp or duration: the parsers are superlinear (a 1 MB string of
#: digits takes minutes in ``pd.Timestamp``), and no real timestamp text is this long.
MAX_TEXT = 100

# ns per unit for fixed-length numpy units; calendar units (Y, M) are bounded separately.
_NS_PER = {"W": 604_800 * 10**9, "D": 86_400 * 10**9, "h": 3_600 * 10**9, "m": 60 * 10**9,
           "s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
# Valid raw values (units since 1970-01) of datetime64[Y] / [M]: 1678 .. 2262, 1677-10 .. 2262-04.
_CALENDAR_RANGE = {"Y": (1678 - 1970, 2262 - 1970), "M": ((1677 - 1970) * 12 + 9, (2262 - 1970) * 12 + 3)}


def _range_fix(kind: str) -> str:
    if kind == "m":
        return f"durations are int64 nanoseconds ({_DURATION_RANGE}); drop or correct those values"
    return f"timestamps are int64 nanoseconds ({NS_RANGE}); drop or correct those rows"


def _int64(value: Any, what: str) -> int:
    """``int(value)`` if it is a valid int64 ns value (not NaT's ``-2**63``), else ``InvalidValueError``."""
    n = int(value)
    if not NS_MIN <= n <= NS_MAX:
        raise InvalidValueError(
            f"{what} {brief(n)} is outside the int64 nanosecond range [-2**63 + 1, 2**63 - 1]"
            + (" (-2**63 encodes NaT)" if n == _NAT else "")
        )
    return n


def _check_text(value: Any, what: str) -> None:
    if isinstance(value, (str, bytes)) and len(value) > MAX_TEXT:
        raise InvalidValueError(f"{what} text is {len(value)} characters, longer than {MAX_TEXT}: {brief(value)}")


def to_ns(value: TimeLike) -> int:
    """Return ``value`` as int nanoseconds since the epoch (UTC); naive values are taken as UTC.

    Raises ``InvalidValueError`` (bounded message) for non-timestamps, NaT and values outside the ns range.
    """
    if isinstance(value, bool) or value is None:
        raise InvalidValueError(f"not a timestamp: {brief(value)}")
    if isinstance(value, (np.timedelta64, _dt.timedelta)):  # np.timedelta64 is an np.integer subclass
        raise InvalidValueError(f"a duration is not a timestamp: {brief(value)}")
    if isinstance(value, (int, np.integer)):
        return _int64(value, "timestamp")
    if isinstance(value, (float, np.floating)):
        raise InvalidValueError(
            f"a float is not a timestamp ({brief(value)}); pass int nanoseconds or use seek(fraction=...)"
        )
    _check_text(value, "timestamp")
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError) as exc:  # OutOfBoundsDatetime is a ValueError
        raise InvalidValueError(f"not a timestamp: {brief(value)} ({brief(str(exc), 120)})") from None
    if ts is pd.NaT or pd.isna(ts):
        raise InvalidValueError("timestamp is NaT")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC")
    try:
        return _int64(ts.as_unit("ns").value, "timestamp")
    except (ValueError, OverflowError):  # OutOfBoundsDatetime
        raise InvalidValueError(f"timestamp {brief(str(ts))} is outside {NS_RANGE}") from None


def to_duration_ns(value: DurationLike) -> int:
    """Return a duration as int nanoseconds (``"5s"``, ``timedelta``, ``np.timedelta64``, ``pd.Timedelta`` or int ns).

    Raises ``InvalidValueError`` (bounded message) for non-durations, NaT and values beyond +-292 years.
    """
    if isinstance(value, bool) or value is None:
        raise InvalidValueError(f"not a duration: {brief(value)}")
    if isinstance(value, np.timedelta64):  # an np.integer subclass: must not be read as int ns
        if np.isnat(value):
            raise InvalidValueError("duration is NaT")
        arr = np.asarray([value])
        if _outside(arr, "duration", InvalidValueError).any():
            raise InvalidValueError(f"duration {brief(str(value))} is outside {_DURATION_RANGE}")
        return int(arr.astype("m8[ns]").view(np.int64)[0])
    if isinstance(value, (int, np.integer)):
        return _int64(value, "duration")
    if isinstance(value, (float, np.floating)) and not math.isfinite(value):
        raise InvalidValueError(f"not a finite duration: {brief(value)}")
    _check_text(value, "duration")
    try:
        td = pd.Timedelta(value)
    except (ValueError, TypeError, OverflowError) as exc:  # OutOfBoundsTimedelta is a ValueError
        raise InvalidValueError(f"not a duration: {brief(value)} ({brief(str(exc), 120)})") from None
    if td is pd.NaT or pd.isna(td):
        raise InvalidValueError("duration is NaT")
    try:
        return _int64(td.as_unit("ns").value, "duration")
    except (ValueError, OverflowError):  # OutOfBoundsTimedelta
        raise InvalidValueError(f"duration {brief(str(td))} is outside {_DURATION_RANGE}") from None


def ns_to_timestamp(ns: int, tz: str | _dt.tzinfo | None = None) -> pd.Timestamp:
    """Return a UTC (or ``tz``) ``pd.Timestamp`` for int nanoseconds."""
    ts = pd.Timestamp(int(ns), unit="ns", tz="UTC")
    return ts.tz_convert(tz) if tz is not None else ts


def ns_to_iso(ns: int | None) -> str | None:
    """ISO 8601 text of int nanoseconds (UTC), or None."""
    return None if ns is None else ns_to_timestamp(ns).isoformat()


# -- arrays -------------------------------------------------------------------------------------------


def _raw_bounds(dtype: np.dtype) -> tuple[int, int] | None:
    """Inclusive bounds of the raw int64 values of ``dtype`` that fit in ns (None: every value fits)."""
    unit, count = np.datetime_data(dtype)
    if unit in _CALENDAR_RANGE:
        lo, hi = _CALENDAR_RANGE[unit]
        return -(-lo // count), hi // count
    if unit in ("ps", "fs", "as", "generic"):
        return None  # finer than ns (values shrink) or unit-less (only NaT)
    factor = _NS_PER[unit] * count
    return -(NS_MAX // factor), NS_MAX // factor


def temporal_to_ns(
    values: np.ndarray, what: str, *, first_row: int = 0, error: type[Exception] = DataError
) -> np.ndarray:
    """A datetime64/timedelta64 array of any unit as ``[ns]`` of the same kind (NaT kept).

    Every non-NaT value is range-checked first (``astype`` across units wraps silently); the first
    value outside the ns range raises ``error`` naming ``what``, the row (``first_row`` + index) and
    the value.
    """
    values = np.asarray(values)
    kind = values.dtype.kind
    if kind not in "mM":
        raise TypeError(f"not a datetime64/timedelta64 array: {values.dtype}")
    if not values.dtype.isnative:
        values = values.astype(values.dtype.newbyteorder("="))
    target = np.dtype(f"{kind}8[ns]")
    if values.dtype == target:
        return values
    bad = _outside(values, what, error)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise error(
            f"{what} has {rows.size} value(s) outside the nanosecond range, first at row {first_row + int(rows[0])}: "
            f"{brief(str(values[rows[0]]))} ({values.dtype}); {_range_fix(kind)}"
        )
    return values.astype(target)


def _outside(values: np.ndarray, what: str, error: type[Exception]) -> np.ndarray:
    """Mask of the non-NaT values of a datetime64/timedelta64 array that do not fit in ns."""
    unit, _ = np.datetime_data(values.dtype)
    if values.dtype.kind == "m" and unit in _CALENDAR_RANGE:
        raise error(f"{what} has dtype {values.dtype}: years/months are not a fixed duration; convert to days first")
    bounds = _raw_bounds(values.dtype)
    if bounds is None:
        return np.zeros(values.shape, dtype=bool)
    raw = values.view(np.int64)
    return (raw != _NAT) & ((raw < bounds[0]) | (raw > bounds[1]))


def int_time_to_ns(values: np.ndarray, what: str, *, first_row: int = 0) -> np.ndarray:
    """Integer time values (ns since the epoch, any int dtype) as int64, checked.

    Unsigned values above ``2**63 - 1`` and ``-2**63`` (NaT's encoding) raise ``DataError``; nothing wraps.
    """
    values = np.asarray(values)
    if values.dtype.kind not in "iu":
        raise TypeError(f"not an integer array: {values.dtype}")
    if values.dtype.kind == "u" and values.dtype.itemsize == 8:
        bad = values > np.uint64(NS_MAX)
    elif values.dtype.itemsize == 8:
        bad = values == _NAT
    else:
        return values.astype(np.int64)  # narrower ints always fit
    if bad.any():
        rows = np.flatnonzero(bad)
        note = " (-2**63 is NaT's encoding, not a time)" if values.dtype.kind == "i" else ""
        raise DataError(
            f"{what} has {rows.size} integer value(s) outside the int64 nanosecond range{note}, first at row "
            f"{first_row + int(rows[0])}: {brief(int(values[rows[0]]))}; integers are ns since 1970 in "
            "[-2**63 + 1, 2**63 - 1]: drop or correct those rows (or pd.to_datetime(..., unit=...) if they are not ns)"
        )
    return values.astype(np.int64, copy=False)


def arrow_temporal_to_numpy(arr: Any) -> np.ndarray:
    """An Arrow timestamp/duration (Chunked)Array as numpy datetime64/timedelta64 in its OWN unit.

    Timestamps come as naive UTC, nulls as NaT; pass the result to ``temporal_to_ns``. (Arrow's cast
    to ns is checked but raises ``ArrowInvalid`` without naming the column or row.)
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if pa.types.is_timestamp(arr.type) and arr.type.tz is not None:
        arr = arr.cast(pa.timestamp(arr.type.unit))  # same unit: only drops the zone (values are UTC)
    return arr.to_numpy(zero_copy_only=False)


# -- integer epochs in other units ----------------------------------------------------------------------

#: ns per unit of an integer epoch time column (``time_unit=``).
EPOCH_UNITS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
# The rule of ``guess_epoch_unit``: taken as ns, values in [1e8, 1e16) all fall between 0.1 s after
# the epoch and 1970-04-27, which no recorded market data does; taken as s/ms/us the same values are
# dates in [1973-03-03, 2100-01-01). Small ints (0, 1, 2, ... ns, as tests and toy data use) and real
# ns timestamps (>= 1e17 for anything after 1973) are never in that band, so they are never refused.
_SUSPECT_NS = (10**8, 10**16)
_PLAUSIBLE_NS = (10**17, 4_102_444_800 * 10**9)  # 1973-03-03 .. 2100-01-01


def parse_time_unit(value: Any) -> str | None:
    """``time_unit=`` for integer epoch time columns: None, ``"s"``, ``"ms"``, ``"us"`` or ``"ns"``."""
    if value is None:
        return None
    if not isinstance(value, str) or value not in EPOCH_UNITS:
        raise InvalidValueError(f"time_unit must be one of {list(EPOCH_UNITS)} (or None), got {brief(value)}")
    return value


def guess_epoch_unit(values: np.ndarray) -> str | None:
    """The unit (``"s"``, ``"ms"``, ``"us"``) integer time values were almost certainly written in when
    read as ns they would all fall in the first months of 1970 (see ``_SUSPECT_NS``); None otherwise."""
    values = np.asarray(values)
    if values.size == 0 or values.dtype.kind not in "iu":
        return None
    lo, hi = int(values.min()), int(values.max())
    if not (_SUSPECT_NS[0] <= lo and hi < _SUSPECT_NS[1]):
        return None
    for unit in ("s", "ms", "us"):
        f = EPOCH_UNITS[unit]
        if _PLAUSIBLE_NS[0] <= lo * f and hi * f < _PLAUSIBLE_NS[1]:
            return unit
    return None


def epoch_to_ns(values: np.ndarray, unit: str, what: str) -> np.ndarray:
    """Integer epoch values in ``unit`` as int64 ns, range-checked (``DataError`` naming ``what``; never wraps)."""
    factor = EPOCH_UNITS[parse_time_unit(unit) or "ns"]
    values = np.asarray(values)
    if factor == 1:
        return int_time_to_ns(values, what)
    limit = NS_MAX // factor
    wide = values.astype(np.int64) if values.dtype.kind == "i" or values.dtype.itemsize < 8 else values
    bad = (wide > limit) | (wide < -limit) if wide.dtype.kind == "i" else wide > np.uint64(limit)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{what} has {int(bad.sum())} value(s) outside the int64 nanosecond range as epoch {unit}, first at "
            f"row {row}: {brief(int(values[row]))}; check time_unit={unit!r} or drop those rows"
        )
    return wide.astype(np.int64) * factor
