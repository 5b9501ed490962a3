"""Data sources: recorded (``ReplaySource``) and live (``LiveSource``)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..batch import TIME_COLUMN
from ..exceptions import DataError, InvalidValueError, brief
from .base import Cursor, LiveSource, ReplaySource
from .csv import CSVSource
from .dataframe import ArrayCursor, ArraySource, DataFrameSource
from .dataset import DatasetCursor, DatasetSource
from .merged import MERGED_OPTIONS, STREAM_COLUMN, STREAM_ID_COLUMN, MergedSource
from .parquet import ParquetCursor, ParquetSource
from .sample import sample_quotes, sample_trades
from .storage import has_glob, is_url
from .synthetic import SyntheticFeed
from .table import TableSource, is_arrow_input

__all__ = [
    "Cursor",
    "LiveSource",
    "ReplaySource",
    "ArrayCursor",
    "ArraySource",
    "DataFrameSource",
    "MergedSource",
    "STREAM_COLUMN",
    "STREAM_ID_COLUMN",
    "CSVSource",
    "ParquetSource",
    "ParquetCursor",
    "DatasetSource",
    "DatasetCursor",
    "TableSource",
    "SyntheticFeed",
    "sample_trades",
    "sample_quotes",
    "as_source",
    "guess_time",
]

_PARQUET_SUFFIXES = (".parquet", ".pq")
_CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz", ".tsv")


def guess_time(df: pd.DataFrame) -> str | None:
    """The time column of ``df`` when none is named: ``timestamp``, else the DatetimeIndex (None), else the
    only datetime column; ``DataError`` (listing the columns) when it cannot tell."""
    if TIME_COLUMN in df.columns:
        return TIME_COLUMN
    if isinstance(df.index, pd.DatetimeIndex):
        return None
    dt_cols = [c for c in df.columns if pd.api.types.is_datetime64_any_dtype(df[c])]
    if len(dt_cols) == 1:
        return str(dt_cols[0])
    names = [str(c) for c in df.columns]
    shown = names if len(names) <= 20 else [*names[:20], f"... {len(names) - 20} more"]
    raise DataError(f"cannot tell which column holds the time: pass time=<column> (columns: {shown})")


def _check_collection(obj: Mapping[Any, Any] | Sequence[Any]) -> None:
    """Records and column dicts are not collections of sources: say how to make a frame of them."""
    items = list(obj.values()) if isinstance(obj, Mapping) else list(obj)
    if not items:
        return
    first = items[0]
    if isinstance(obj, Mapping) and isinstance(first, (list, tuple, np.ndarray, pd.Series)):
        raise DataError(
            f"a dict of {len(items)} columns is not a set of sources: make one frame first, "
            "jr.replay(pd.DataFrame(data), time=...)"
        )
    if not isinstance(obj, Mapping) and isinstance(first, Mapping):
        raise DataError(
            f"a list of {len(items)} dicts (records) is not a set of sources: make one frame first, "
            "jr.replay(pd.DataFrame(records), time=...)"
        )


def as_source(
    obj: Any, time: str | None = None, *, columns: Sequence[str] | None = None, format: str | None = None,
    **kwargs: Any,
) -> ReplaySource:
    """A ``ReplaySource`` for ``obj``: the one source factory (``replay(df)``, the server's JSON specs).

    - a ``ReplaySource``: returned as is (``time`` and the options ignored);
    - a DataFrame: ``DataFrameSource``; ``time=None`` finds the time column (``guess_time``: ``timestamp``,
      a DatetimeIndex or the only datetime column); a Series with a DatetimeIndex becomes a one-column
      frame (named after the series, else ``"value"``);
    - a path (str or ``os.PathLike``): ``format="parquet"``/``"csv"``, or by suffix: ``.parquet``/``.pq``
      -> ``ParquetSource``; ``.csv`` (optionally compressed) or ``.tsv`` -> ``CSVSource`` (``.tsv`` read
      with ``sep="\\t"``); ``time=None`` means ``timestamp``;
    - Arrow data (a pyarrow ``Table``/``RecordBatch``/``RecordBatchReader``, a Polars ``DataFrame``/
      ``LazyFrame``, a DuckDB relation, anything with ``__arrow_c_stream__``): ``TableSource``, no pandas
      round trip (``time=None`` guessed as for DataFrames);
    - a directory, glob or URL (``s3://``, ``gs://``, ``file://``...) of Parquet files: ``DatasetSource``
      (hive partitions, ``filter=``/``symbols=`` pruning, out of core; ``time=None`` means ``timestamp``);
    - a dict ``{name: item}`` or list/tuple of items: ``MergedSource`` (items as above; ``time=None`` is
      guessed from the first DataFrame).

    ``columns`` keeps only those value columns (not for merged sources); other options go to the source
    class. Anything else raises ``InvalidValueError``.
    """
    if isinstance(obj, ReplaySource):
        return obj
    if columns is not None:
        kwargs["columns"] = list(columns)
    if isinstance(obj, pd.DataFrame):
        return DataFrameSource(obj, time=time if time is not None else guess_time(obj), **kwargs)
    if isinstance(obj, pd.Series):
        if not isinstance(obj.index, pd.DatetimeIndex):
            raise InvalidValueError("a Series needs a DatetimeIndex to be replayed")
        name = str(obj.name) if obj.name is not None else "value"
        return DataFrameSource(obj.to_frame(name), time=None, **kwargs)
    if is_arrow_input(obj):  # pyarrow, Polars, DuckDB, Arrow PyCapsule streams: no pandas round trip
        return TableSource(obj, time=time, **kwargs)
    if isinstance(obj, (str, os.PathLike)):
        path = os.fspath(obj)
        lower = path.lower()
        tcol = time if time is not None else TIME_COLUMN
        if format in (None, "parquet") and (is_url(path) or has_glob(path) or os.path.isdir(path)):
            return DatasetSource(path, time=tcol, **kwargs)  # many files, or files on object storage
        if format not in (None, "parquet", "csv"):
            raise InvalidValueError(f"format must be 'parquet' or 'csv', got {brief(format)}")
        if format == "parquet" or (format is None and lower.endswith(_PARQUET_SUFFIXES)):
            return ParquetSource(path, time=tcol, **kwargs)
        if format == "csv" or (format is None and lower.endswith(_CSV_SUFFIXES)):
            if lower.endswith(".tsv"):
                kwargs.setdefault("sep", "\t")
            return CSVSource(path, time=tcol, **kwargs)
        raise InvalidValueError(
            f"cannot tell the format of {brief(path)}: use a .parquet/.pq or .csv file, "
            "or pass ParquetSource/CSVSource explicitly"
        )
    if isinstance(obj, (Mapping, list, tuple)):
        _check_collection(obj)
        unknown = sorted(set(kwargs) - set(MERGED_OPTIONS))
        if unknown:
            raise InvalidValueError(
                f"unexpected options for a merged source: {unknown} (allowed: {list(MERGED_OPTIONS)})"
            )
        if time is None and obj:
            first = next(iter(obj.values() if isinstance(obj, Mapping) else obj))
            time = guess_time(first) if isinstance(first, pd.DataFrame) else TIME_COLUMN
        return MergedSource(obj, time=time, **kwargs)
    raise InvalidValueError(
        f"cannot replay a {type(obj).__name__}: pass a DataFrame, a .parquet/.csv path, "
        "a dict or list of those, or a ReplaySource"
    )
