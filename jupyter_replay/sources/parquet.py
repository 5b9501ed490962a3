"""``ParquetSource``: out-of-core replay of a Parquet file sorted by time."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..batch import TIME_COLUMN, Chunk
from ..exceptions import DataError, InvalidValueError
from ..timeconv import to_ns
from .base import Cursor, ReplaySource
from .dataframe import check_count, end_bound

__all__ = ["ParquetSource", "ParquetCursor"]

_NS_PER_UNIT = {
    "s": 1_000_000_000,
    "ms": 1_000_000,
    "us": 1_000,
    "ns": 1,
    "milliseconds": 1_000_000,
    "microseconds": 1_000,
    "nanoseconds": 1,
    "TIMESTAMP_MILLIS": 1_000_000,
    "TIMESTAMP_MICROS": 1_000,
}


def _numpy_dtype(typ: pa.DataType, nullable: bool) -> np.dtype:
    """The numpy dtype a column of Arrow type ``typ`` is replayed as (see ``ParquetSource``)."""
    if pa.types.is_dictionary(typ):
        return _numpy_dtype(typ.value_type, nullable)
    if pa.types.is_integer(typ):
        return np.dtype(np.float64) if nullable else np.dtype(typ.to_pandas_dtype())
    if pa.types.is_floating(typ):
        return np.dtype(typ.to_pandas_dtype())
    if pa.types.is_boolean(typ):
        return np.dtype(object) if nullable else np.dtype(bool)
    if pa.types.is_timestamp(typ):
        return np.dtype("datetime64[ns]")
    if pa.types.is_duration(typ):
        return np.dtype("timedelta64[ns]")
    return np.dtype(object)


def _to_numpy(arr: pa.Array | pa.ChunkedArray, dtype: np.dtype) -> np.ndarray:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_timestamp(arr.type):
        arr = arr.cast(pa.timestamp("ns", arr.type.tz)).cast(pa.timestamp("ns"))
    elif pa.types.is_duration(arr.type):
        arr = arr.cast(pa.duration("ns"))
    out = arr.to_numpy(zero_copy_only=False)
    if out.dtype != dtype:
        out = out.astype(dtype)
    return out


class ParquetSource(ReplaySource):
    """Replay a Parquet file without loading it: row groups are read on demand.

    Args:
        path: the file. Missing, unreadable or corrupt files raise ``DataError`` naming the path.
        time: the time column: a timestamp of any unit (naive = UTC; tz-aware -> UTC, zone kept in
            ``tz``) or integers (ns since the epoch). None: the pandas index stored in the file.
        columns: value columns to read (default: all but the time column and pandas index columns).
        batch_rows: rows per Arrow batch read from a row group, which bounds memory when row
            groups are large.

    Only the metadata is read up front: row counts and min/max statistics of the time column per
    row group (files without those statistics cost one read of the time column). The file must be
    sorted by time: the row groups' time ranges must not overlap (checked up front) and each
    batch must be sorted (checked when read); otherwise ``DataError``.

    ``open(at_ns)`` binary-searches the row groups' max timestamps and only reads the group holding
    the first row ``>= at_ns``. A cursor holds one batch of one row group at a time
    (``ParquetCursor.loaded_groups``); ``row_groups_read`` counts row groups opened by cursors.

    Column dtypes: ints keep their dtype unless the statistics say (or cannot rule out) nulls,
    then float64 (NaN); bools with nulls become object; timestamps become naive UTC
    ``datetime64[ns]``; strings, dictionaries and other types become object arrays.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        time: str | None = TIME_COLUMN,
        columns: Sequence[str] | None = None,
        batch_rows: int = 65_536,
    ) -> None:
        if isinstance(batch_rows, bool) or not isinstance(batch_rows, (int, np.integer)) or batch_rows < 1:
            raise InvalidValueError(f"batch_rows must be an int >= 1, got {batch_rows!r}")
        self.path = Path(path)
        self.name = self.path.name.split(".")[0]
        self.batch_rows = int(batch_rows)
        #: Row groups opened by cursors (instrumentation: seeks read only what they need).
        self.row_groups_read = 0
        #: Row groups whose time column was read up front because statistics were missing.
        self.stat_reads = 0
        self._pf: pq.ParquetFile | None = None
        pf = self._file()
        try:
            self._load_metadata(pf, time, columns)
        except BaseException:
            self.close()
            raise

    def _load_metadata(self, pf: pq.ParquetFile, time: str | None, columns: Sequence[str] | None) -> None:
        try:
            md = pf.metadata
            schema = pf.schema_arrow
        except (pa.ArrowException, OSError) as exc:  # pragma: no cover - metadata is read on open
            raise DataError(f"{self.path}: cannot read Parquet metadata: {exc}") from None
        index_cols = [c for c in (schema.pandas_metadata or {}).get("index_columns", []) if isinstance(c, str)]
        if time is None:
            if not index_cols:
                raise DataError(
                    f"{self.path}: time=None but the file has no stored pandas index; columns: {schema.names}"
                )
            time = index_cols[0]
        if time not in schema.names:
            raise DataError(f"{self.path}: time column {time!r} not found; available columns: {schema.names}")
        ttype = schema.field(time).type
        if pa.types.is_timestamp(ttype):
            self.tz = ttype.tz
        elif pa.types.is_integer(ttype):
            self.tz = None
        else:
            raise DataError(
                f"{self.path}: time column {time!r} has type {ttype}; expected a timestamp or int64 nanoseconds"
            )
        self.time_column = time

        if columns is None:
            names = [c for c in schema.names if c != time and c not in index_cols]
        else:
            if isinstance(columns, str):
                columns = [columns]
            missing = [c for c in columns if c not in schema.names]
            if missing:
                raise DataError(f"{self.path}: columns not found: {missing}; available: {schema.names}")
            names = [c for c in dict.fromkeys(columns) if c != time]
        if TIME_COLUMN in names:
            raise DataError(
                f"{self.path}: value column {TIME_COLUMN!r} clashes with the replay time column name; "
                f"pass time={TIME_COLUMN!r} or leave it out with columns=..."
            )
        self._read_columns = [time, *names]

        leaf = {md.schema.column(k).path: k for k in range(md.num_columns)}
        if time not in leaf:
            raise DataError(f"{self.path}: time column {time!r} is not a flat column")
        tcol = leaf[time]
        groups, rows, mins, maxes = [], [], [], []
        for g in range(md.num_row_groups):
            rg = md.row_group(g)
            if rg.num_rows == 0:
                continue
            bounds = self._stat_bounds(md, g, tcol)
            if bounds is None:
                bounds = self._scan_bounds(g)
            groups.append(g)
            rows.append(rg.num_rows)
            mins.append(bounds[0])
            maxes.append(bounds[1])
        if not groups:
            raise DataError(f"{self.path}: the Parquet file has no rows")
        self._groups = np.array(groups, dtype=np.int64)
        self._mins = np.array(mins, dtype=np.int64)
        self._maxes = np.array(maxes, dtype=np.int64)
        for i in range(len(groups) - 1):
            if self._maxes[i] > self._mins[i + 1]:
                raise DataError(
                    f"{self.path}: not sorted by {time!r}: row group {groups[i]} ends after row group "
                    f"{groups[i + 1]} starts"
                )
        self._offsets = np.concatenate([[0], np.cumsum(rows)]).astype(np.int64)

        self.columns = names
        self.dtypes = {c: _numpy_dtype(schema.field(c).type, self._nullable(md, leaf.get(c))) for c in names}
        self.num_rows = int(self._offsets[-1])
        self.start_ns = int(self._mins[0])
        self.end_ns = int(self._maxes[-1])

    # -- file and metadata

    def _file(self) -> pq.ParquetFile:
        if self._pf is None:
            try:
                self._pf = pq.ParquetFile(self.path)
            except FileNotFoundError:
                raise DataError(f"{self.path}: no such Parquet file") from None
            except (pa.ArrowException, OSError) as exc:
                raise DataError(f"{self.path}: not a readable Parquet file: {exc}") from None
        return self._pf

    def _stat_bounds(self, md: pq.FileMetaData, g: int, col: int) -> tuple[int, int] | None:
        chunk = md.row_group(g).column(col)
        st = chunk.statistics
        if st is not None and st.has_null_count and st.null_count > 0:
            raise DataError(f"{self.path}: time column {self.time_column!r} has nulls in row group {g}")
        if st is None or not st.has_min_max or chunk.physical_type not in ("INT64", "INT32"):
            return None
        factor = 1
        desc = md.schema.column(col)
        logical = json.loads(desc.logical_type.to_json()) if desc.logical_type is not None else {}
        if logical.get("Type") == "Timestamp":
            factor = _NS_PER_UNIT[logical["timeUnit"]]
        elif desc.converted_type in ("TIMESTAMP_MILLIS", "TIMESTAMP_MICROS"):
            factor = _NS_PER_UNIT[desc.converted_type]
        elif logical.get("Type") not in (None, "None", "Int"):
            return None
        return int(st.min_raw) * factor, int(st.max_raw) * factor

    def _scan_bounds(self, g: int) -> tuple[int, int]:
        self.stat_reads += 1
        try:
            table = self._file().read_row_group(g, columns=[self.time_column])
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{self.path}: cannot read row group {g}: {exc}") from None
        ts = self._time_ns(table.column(0), g)
        self._check_sorted(ts, None, g)
        return int(ts[0]), int(ts[-1])

    @staticmethod
    def _nullable(md: pq.FileMetaData, col: int | None) -> bool:
        if col is None:
            return True
        for g in range(md.num_row_groups):
            st = md.row_group(g).column(col).statistics
            if st is None or not st.has_null_count or st.null_count > 0:
                return True
        return False

    # -- reading

    def _time_ns(self, arr: pa.Array | pa.ChunkedArray, g: int) -> np.ndarray:
        if arr.null_count:
            raise DataError(f"{self.path}: time column {self.time_column!r} has nulls in row group {g}")
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        try:
            if pa.types.is_timestamp(arr.type):
                arr = arr.cast(pa.timestamp("ns", arr.type.tz))
            arr = arr.cast(pa.int64())
        except pa.ArrowException as exc:
            raise DataError(f"{self.path}: time column {self.time_column!r} out of the ns range: {exc}") from None
        return arr.to_numpy(zero_copy_only=False)

    def _check_sorted(self, ts: np.ndarray, prev: int | None, g: int) -> None:
        if (prev is not None and ts.size and ts[0] < prev) or bool(np.any(ts[1:] < ts[:-1])):
            raise DataError(f"{self.path}: not sorted by {self.time_column!r} in row group {g}")

    def _batches(self, index: int) -> Iterator[Chunk]:
        """Chunks of ``batch_rows`` rows of the ``index``-th non-empty row group."""
        g = int(self._groups[index])
        self.row_groups_read += 1
        try:
            it = self._file().iter_batches(
                batch_size=self.batch_rows, row_groups=[g], columns=self._read_columns, use_pandas_metadata=False
            )
            for rb in it:
                ts = self._time_ns(rb.column(0), g)
                cols = {c: _to_numpy(rb.column(i + 1), self.dtypes[c]) for i, c in enumerate(self.columns)}
                yield Chunk(ts, cols)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{self.path}: cannot read row group {g}: {exc}") from None

    def open(self, at_ns: Any = None) -> "ParquetCursor":
        return ParquetCursor(self, None if at_ns is None else to_ns(at_ns))

    def close(self) -> None:
        if self._pf is not None:
            try:
                self._pf.close()
            finally:
                self._pf = None

    def describe(self) -> dict:
        d = super().describe()
        d["path"] = str(self.path)
        d["row_groups"] = int(self._groups.size)
        return d


class ParquetCursor(Cursor):
    """A read position in a ``ParquetSource``; holds at most one batch of one row group."""

    def __init__(self, source: ParquetSource, at_ns: int | None) -> None:
        self._src = source
        self._n = int(source._groups.size)
        self._g = 0  # index (into the source's non-empty groups) of the current group
        self._it: Iterator[Chunk] | None = None
        self._batch: Chunk | None = None
        self._i = 0  # next row in the batch
        self._last: int | None = None  # last timestamp loaded, for the sortedness check
        #: Largest number of row groups held at once (instrumentation; never above 1).
        self.max_loaded_groups = 0
        self.position = 0
        if at_ns is None:
            return
        g = int(np.searchsorted(source._maxes, at_ns, side="left"))
        self._g = g
        if g >= self._n:
            self.position = source.num_rows
            return
        self.position = int(source._offsets[g])
        if at_ns <= source._mins[g]:
            return  # the group's first row: nothing to read yet
        while self._ensure_row():
            ts = self._batch.ts  # type: ignore[union-attr]
            k = int(np.searchsorted(ts[self._i :], at_ns, side="left"))
            if self._i + k < len(ts):
                self._i += k
                self.position += k
                return
            self.position += len(ts) - self._i
            self._i = len(ts)

    @property
    def loaded_groups(self) -> set[int]:
        """Row groups (file indexes) whose data this cursor holds now."""
        held = self._it is not None or self._batch is not None
        return {int(self._src._groups[self._g])} if held and self._g < self._n else set()

    @property
    def loaded_rows(self) -> int:
        """Rows of the batch held now."""
        return 0 if self._batch is None else len(self._batch)

    def _drop(self) -> None:
        self._batch = None
        self._i = 0

    def _ensure_row(self, end_ns: int | None = None) -> bool:
        """Load until a row is available; False at the end or if the next group starts after ``end_ns``."""
        while self._batch is None or self._i >= len(self._batch):
            if self._it is None:
                self._drop()
                if self._g >= self._n:
                    return False
                if end_ns is not None and self._src._mins[self._g] > end_ns:
                    return False
                self._it = self._src._batches(self._g)
                self.max_loaded_groups = max(self.max_loaded_groups, 1)
            batch = next(self._it, None)
            if batch is None:
                self._it = None
                self._g += 1
                self._drop()
                continue
            self._src._check_sorted(batch.ts, self._last, int(self._src._groups[self._g]))
            if len(batch):
                self._last = int(batch.ts[-1])
            self._batch, self._i = batch, 0
        return True

    def peek_ns(self) -> int | None:
        if self._batch is not None and self._i < len(self._batch):
            return int(self._batch.ts[self._i])
        if self._it is None:
            return int(self._src._mins[self._g]) if self._g < self._n else None
        return int(self._batch.ts[self._i]) if self._ensure_row() else None  # type: ignore[union-attr]

    def _read(self, end_ns: int | None, limit: int) -> Chunk:
        pieces: list[Chunk] = []
        remaining = limit
        while remaining > 0 and self._ensure_row(end_ns):
            batch = self._batch
            assert batch is not None
            stop = min(self._i + remaining, len(batch))
            k = stop - self._i
            if end_ns is not None:
                k = int(np.searchsorted(batch.ts[self._i : stop], end_ns, side="right"))
            if k == 0:
                break
            pieces.append(batch.slice(self._i, self._i + k))
            self._i += k
            remaining -= k
            self.position += k
            if self._i < stop:  # the next row is after end_ns
                break
        if not pieces:
            return Chunk.empty(self._src.dtypes)
        return Chunk.concat(pieces)

    def read_until(self, end_ns: int, limit: int) -> Chunk:
        return self._read(end_bound(end_ns), check_count(limit, "limit"))

    def read(self, n: int) -> Chunk:
        return self._read(None, check_count(n))

    def close(self) -> None:
        self._it = None
        self._drop()
        self._g = self._n
