"""Conversions between user-facing time values and the engine's int64 nanoseconds (UTC)."""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

import numpy as np
import pandas as pd

from .exceptions import InvalidValueError

__all__ = ["to_ns", "to_duration_ns", "ns_to_timestamp", "ns_to_iso", "TimeLike", "DurationLike"]

TimeLike = Any  # pd.Timestamp | datetime | np.datetime64 | str | int (ns)
DurationLike = Any  # pd.Timedelta | timedelta | np.timedelta64 | str | int (ns)


def _int64(value: Any, what: str) -> int:
    """``int(value)`` if it fits int64 nanoseconds, else ``InvalidValueError``."""
    n = int(value)
    if not -(2**63) <= n < 2**63:
        raise InvalidValueError(f"{what} {n} is outside the int64 nanosecond range")
    return n


def to_ns(value: TimeLike) -> int:
    """Return ``value`` as int nanoseconds since the epoch (UTC); naive values are taken as UTC."""
    if isinstance(value, bool) or value is None:
        raise InvalidValueError(f"not a timestamp: {value!r}")
    if isinstance(value, (int, np.integer)):
        return _int64(value, "timestamp")
    if isinstance(value, (float, np.floating)):
        raise InvalidValueError(
            f"a float is not a timestamp ({value!r}); pass int nanoseconds or use seek(fraction=...)"
        )
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidValueError(f"not a timestamp: {value!r} ({exc})") from None
    if ts is pd.NaT or pd.isna(ts):
        raise InvalidValueError("timestamp is NaT")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC")
    return int(ts.as_unit("ns").value)


def to_duration_ns(value: DurationLike) -> int:
    """Return a duration as int nanoseconds (``"5s"``, ``timedelta``, ``pd.Timedelta`` or int ns)."""
    if isinstance(value, bool) or value is None:
        raise InvalidValueError(f"not a duration: {value!r}")
    if isinstance(value, (int, np.integer)):
        return _int64(value, "duration")
    if isinstance(value, (float, np.floating)) and not math.isfinite(value):
        raise InvalidValueError(f"not a finite duration: {value!r}")
    try:
        td = pd.Timedelta(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidValueError(f"not a duration: {value!r} ({exc})") from None
    if td is pd.NaT or pd.isna(td):
        raise InvalidValueError("duration is NaT")
    return int(td.value)


def ns_to_timestamp(ns: int, tz: str | _dt.tzinfo | None = None) -> pd.Timestamp:
    """Return a UTC (or ``tz``) ``pd.Timestamp`` for int nanoseconds."""
    ts = pd.Timestamp(int(ns), unit="ns", tz="UTC")
    return ts.tz_convert(tz) if tz is not None else ts


def ns_to_iso(ns: int | None) -> str | None:
    """ISO 8601 text of int nanoseconds (UTC), or None."""
    return None if ns is None else ns_to_timestamp(ns).isoformat()
