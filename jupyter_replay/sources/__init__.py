"""Data sources: recorded (``ReplaySource``) and live (``LiveSource``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import pandas as pd

from ..batch import TIME_COLUMN
from ..exceptions import InvalidValueError
from .base import Cursor, LiveSource, ReplaySource
from .csv import CSVSource
from .dataframe import ArrayCursor, ArraySource, DataFrameSource
from .dataset import DatasetCursor, DatasetSource
from .merged import STREAM_COLUMN, STREAM_ID_COLUMN, MergedSource
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
]

_PARQUET_SUFFIXES = (".parquet", ".pq")
_CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz", ".tsv")


def as_source(obj: Any, time: str | None = TIME_COLUMN, **kwargs: Any) -> ReplaySource:
    """A ``ReplaySource`` for ``obj``.

    - a ``ReplaySource``: returned as is (``time`` and ``kwargs`` ignored);
    - a DataFrame: ``DataFrameSource(obj, time=time, **kwargs)``; a Series with a DatetimeIndex
      becomes a one-column frame (named after the series, else ``"value"``);
    - a path (str or ``os.PathLike``) ending in ``.parquet``/``.pq``: ``ParquetSource``; in ``.csv``
      (optionally compressed) or ``.tsv``: ``CSVSource`` (``.tsv`` read with ``sep="\\t"``);
    - Arrow data (a pyarrow ``Table``/``RecordBatch``/``RecordBatchReader``, a Polars
      ``DataFrame``/``LazyFrame``, a DuckDB relation, anything with ``__arrow_c_stream__``): ``TableSource``;
    - a directory, glob or URL (``s3://``, ``gs://``, ``file://``...) of Parquet files: ``DatasetSource``
      (hive partitions, ``filter=``/``symbols=`` pruning, out of core);
    - a dict ``{name: item}`` or list/tuple of items: ``MergedSource`` (items as above).

    Anything else raises ``InvalidValueError``.
    """
    if isinstance(obj, ReplaySource):
        return obj
    if isinstance(obj, pd.DataFrame):
        return DataFrameSource(obj, time=time, **kwargs)
    if isinstance(obj, pd.Series):
        if not isinstance(obj.index, pd.DatetimeIndex):
            raise InvalidValueError("a Series needs a DatetimeIndex to be replayed")
        name = str(obj.name) if obj.name is not None else "value"
        return DataFrameSource(obj.to_frame(name), time=None, **kwargs)
    if is_arrow_input(obj):  # pyarrow, Polars, DuckDB, Arrow PyCapsule streams: no pandas round trip
        return TableSource(obj, time=time, **kwargs)
    if isinstance(obj, (str, os.PathLike)):
        path = os.fspath(obj)
        if is_url(path) or has_glob(path) or os.path.isdir(path):  # files on object storage, many files
            return DatasetSource(path, time=time, **kwargs)
        lower = path.lower()
        if lower.endswith(_PARQUET_SUFFIXES):
            return ParquetSource(path, time=time, **kwargs)
        if lower.endswith(_CSV_SUFFIXES):
            if lower.endswith(".tsv"):
                kwargs.setdefault("sep", "\t")
            return CSVSource(path, time=time, **kwargs)
        raise InvalidValueError(
            f"cannot tell the format of {path!r}: use a .parquet/.pq or .csv file, "
            "or pass ParquetSource/CSVSource explicitly"
        )
    if isinstance(obj, (Mapping, list, tuple)):
        if kwargs:
            raise InvalidValueError(f"unexpected options for a merged source: {sorted(kwargs)}")
        return MergedSource(obj, time=time)
    raise InvalidValueError(
        f"cannot replay a {type(obj).__name__}: pass a DataFrame, a .parquet/.csv path, "
        "a dict or list of those, or a ReplaySource"
    )
