"""``CSVSource``: a CSV file read with pandas, then replayed like a DataFrame."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..batch import TIME_COLUMN
from ..exceptions import DataError
from .dataframe import DataFrameSource

__all__ = ["CSVSource", "parse_time_column"]


def parse_time_column(series: pd.Series, where: str = "") -> pd.Series:
    """Parse a text time column: ISO or other pandas-inferable formats; mixed UTC offsets go to UTC.

    Integer columns are returned as they are (nanoseconds since the epoch).
    """
    if pd.api.types.is_datetime64_any_dtype(series.dtype) or pd.api.types.is_integer_dtype(series.dtype):
        return series
    fast = _parse_naive_iso(series)
    if fast is not None:
        return fast
    try:
        return pd.to_datetime(series)
    except (ValueError, TypeError) as exc:
        first = exc
    try:  # e.g. rows with different UTC offsets
        return pd.to_datetime(series, utc=True)
    except (ValueError, TypeError, OverflowError):
        raise DataError(f"{where}cannot parse time column {series.name!r} as timestamps: {first}") from None


def _parse_naive_iso(series: pd.Series) -> pd.Series | None:
    """Naive ISO-8601 text parsed by Arrow (8x faster than pandas, and without the GIL, so a server building
    a big CSV source off the loop does not stall other sessions' pacing); None -> let pandas decide (zones,
    other formats, missing values, values outside the ns range, which Arrow refuses rather than wraps)."""
    if not (series.dtype == object or pd.api.types.is_string_dtype(series.dtype)):
        return None
    try:
        text = pa.array(series, type=pa.string(), from_pandas=True)
        if text.null_count:
            return None
        parsed = pc.cast(text, pa.timestamp("ns"))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    return pd.Series(parsed.to_numpy(zero_copy_only=False), index=series.index, name=series.name)


class CSVSource(DataFrameSource):
    """Replay a CSV file (read fully with ``pandas.read_csv``).

    ``time`` names the time column (None: the first column). Text timestamps are parsed with
    ``pd.to_datetime`` (naive = UTC; explicit offsets keep their zone, mixed offsets become UTC);
    integer timestamps are nanoseconds since the epoch. Other keywords go to ``pandas.read_csv``.
    A missing, unreadable or malformed file raises ``DataError`` naming the path.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        time: str | None = TIME_COLUMN,
        columns: Sequence[str] | None = None,
        sort: bool = True,
        dropna: bool = False,
        **read_csv_kwargs: Any,
    ) -> None:
        self.path = Path(path)
        self.name = self.path.name.split(".")[0]
        try:
            df = pd.read_csv(self.path, **read_csv_kwargs)
        except pd.errors.EmptyDataError:
            raise DataError(f"{self.path}: the CSV file is empty") from None
        except (OSError, UnicodeDecodeError, pd.errors.ParserError, ValueError) as exc:
            raise DataError(f"{self.path}: cannot read CSV file: {exc}") from None
        if len(df.columns) == 0:
            raise DataError(f"{self.path}: the CSV file has no columns")
        if time is None:
            time = str(df.columns[0])
        if time not in df.columns:
            available = [str(c) for c in df.columns]
            raise DataError(f"{self.path}: time column {time!r} not found; available columns: {available}")
        if len(df) == 0:
            raise DataError(f"{self.path}: the CSV file has no rows")
        df[time] = parse_time_column(df[time], where=f"{self.path}: ")
        try:
            super().__init__(df, time=time, columns=columns, sort=sort, dropna=dropna)
        except DataError as exc:
            raise DataError(f"{self.path}: {exc}") from None

    def describe(self) -> dict:
        d = super().describe()
        d["path"] = str(self.path)
        return d
