"""``ParquetSource``: out-of-core replay of a Parquet file sorted by time.

Decoded row groups live in one process-wide, byte-bounded LRU cache (``RowGroupCache``) shared by
every ``ParquetSource``: N sessions replaying the same file decode each row group once and their
cursors hold read-only views into the same arrays.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..batch import TIME_COLUMN, Chunk
from ..exceptions import DataError, InvalidValueError, brief
from ..timeconv import NS_MAX, NS_MIN, arrow_temporal_to_numpy, int_time_to_ns, temporal_to_ns, to_ns
from .base import Cursor, ReplaySource
from .dataframe import check_count, end_bound

__all__ = [
    "ParquetSource",
    "ParquetCursor",
    "RowGroupCache",
    "CACHE_BYTES_ENV",
    "DEFAULT_CACHE_BYTES",
    "row_group_cache",
    "set_row_group_cache_bytes",
    "row_group_cache_info",
    "clear_row_group_cache",
]

log = logging.getLogger(__name__)

#: Environment variable giving the cache budget in bytes (read at import).
CACHE_BYTES_ENV = "JUPYTER_REPLAY_PARQUET_CACHE_BYTES"
#: Default budget of the shared row-group cache.
DEFAULT_CACHE_BYTES = 512 * 2**20
#: One cache entry may take at most this fraction of the budget; larger row groups are streamed.
_ENTRY_FRACTION = 4
#: Unit legacy INT96 timestamps are read in: Arrow's default (ns) wraps dates outside 1677..2262
#: silently; microseconds cover any date (and are Spark's precision), then ``temporal_to_ns`` checks.
_INT96_UNIT = "us"

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


# -- the shared cache ---------------------------------------------------------------------------------


class RowGroupCache:
    """A thread-safe LRU of decoded row-group arrays, bounded by their size in bytes.

    Values are read-only numpy arrays (or dicts of them). ``get_or_load`` decodes a missing entry
    once even when several threads ask for it at the same time. An entry larger than the budget is
    returned but not kept. Evicted arrays stay alive as long as some cursor or chunk still holds a
    view of them; the cache only stops sharing them.
    """

    def __init__(self, max_bytes: int) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._loading: dict[Hashable, threading.Event] = {}
        self.max_bytes = _check_budget(max_bytes)
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    @property
    def entry_limit(self) -> int:
        """The largest entry worth caching (a fraction of the budget, so several groups fit)."""
        return self.max_bytes // _ENTRY_FRACTION

    def get_or_load(self, key: Hashable, load: Callable[[], tuple[Any, int]]) -> tuple[Any, bool]:
        """``(value, hit)``; on a miss ``load()`` returns ``(value, nbytes)`` and the value is cached."""
        while True:
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None:
                    self._entries.move_to_end(key)
                    self.hits += 1
                    return entry[0], True
                pending = self._loading.get(key)
                if pending is None:
                    pending = self._loading[key] = threading.Event()
                    break
            pending.wait()  # another thread decodes it; then look again (it may not have been kept)
        try:
            value, nbytes = load()
        except BaseException:
            with self._lock:
                del self._loading[key]
            pending.set()
            raise
        with self._lock:
            self.misses += 1
            del self._loading[key]
            if nbytes <= self.max_bytes:
                self._entries[key] = (value, int(nbytes))
                self.bytes += int(nbytes)
                self._evict()
        pending.set()
        return value, False

    def resize(self, max_bytes: int) -> None:
        """Change the budget, evicting least recently used entries to fit."""
        with self._lock:
            self.max_bytes = _check_budget(max_bytes)
            self._evict()

    def clear(self) -> None:
        """Drop every entry (arrays still viewed by cursors stay alive with them)."""
        with self._lock:
            self._entries.clear()
            self.bytes = 0

    def info(self) -> dict:
        """JSON-safe counters: budget, bytes held, entries, hits, misses, evictions."""
        with self._lock:
            return {
                "max_bytes": self.max_bytes,
                "bytes": self.bytes,
                "entries": len(self._entries),
                "hits": self.hits,
                "misses": self.misses,
                "evictions": self.evictions,
            }

    def _evict(self) -> None:
        while self.bytes > self.max_bytes and self._entries:
            _, (_, nbytes) = self._entries.popitem(last=False)
            self.bytes -= nbytes
            self.evictions += 1


def _check_budget(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise InvalidValueError(f"the Parquet row-group cache size must be an int >= 0 (bytes), got {n!r}")
    return int(n)


def _budget_from_env() -> int:
    raw = os.environ.get(CACHE_BYTES_ENV, "").strip()
    if not raw:
        return DEFAULT_CACHE_BYTES
    try:
        return _check_budget(int(raw.replace("_", "")))
    except (ValueError, InvalidValueError):
        log.warning("%s=%r is not a byte count >= 0; using %d", CACHE_BYTES_ENV, raw, DEFAULT_CACHE_BYTES)
        return DEFAULT_CACHE_BYTES


_CACHE = RowGroupCache(_budget_from_env())


def row_group_cache() -> RowGroupCache:
    """The process-wide cache every ``ParquetSource`` shares."""
    return _CACHE


def set_row_group_cache_bytes(n: int) -> None:
    """Set the shared cache's budget in bytes (0 disables sharing: every cursor streams its own batches)."""
    _CACHE.resize(n)


def row_group_cache_info() -> dict:
    """Counters of the shared cache (see ``RowGroupCache.info``)."""
    return _CACHE.info()


def clear_row_group_cache() -> None:
    """Empty the shared cache."""
    _CACHE.clear()


# -- conversions --------------------------------------------------------------------------------------


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


def _to_numpy(arr: pa.Array | pa.ChunkedArray, dtype: np.dtype, what: str, first_row: int = 0) -> np.ndarray:
    """A value column as numpy ``dtype``; timestamps/durations range-checked into ns (``DataError``)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.chunk(0) if arr.num_chunks == 1 else arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_timestamp(arr.type) or pa.types.is_duration(arr.type):
        return temporal_to_ns(arrow_temporal_to_numpy(arr), what, first_row=first_row)
    out = arr.to_numpy(zero_copy_only=False)
    if out.dtype != dtype:
        out = out.astype(dtype)
    return out


def _readonly(a: np.ndarray) -> np.ndarray:
    if a.flags.writeable:
        a.flags.writeable = False
    return a


# -- the source ---------------------------------------------------------------------------------------


class ParquetSource(ReplaySource):
    """Replay a Parquet file without loading it: row groups are read on demand and shared.

    Args:
        path: the file. Missing, unreadable or corrupt files raise ``DataError`` naming the path.
        time: the time column: a timestamp of any unit (naive = UTC; tz-aware -> UTC, zone kept in
            ``tz``) or integers (ns since the epoch). None: the pandas index stored in the file.
        columns: value columns to read (default: all but the time column and pandas index columns).
        batch_rows: rows per Arrow batch for row groups too large for the shared cache (see below),
            which bounds a cursor's memory then.

    Only the metadata is read up front: row counts and min/max statistics of the time column per
    row group (files without those statistics cost one read of the time column). The file must be
    sorted by time: the row groups' time ranges must not overlap (checked up front) and each
    row group must be sorted (checked when read); otherwise ``DataError``.

    Decoded row groups go to the process-wide ``RowGroupCache`` (``set_row_group_cache_bytes``,
    env ``JUPYTER_REPLAY_PARQUET_CACHE_BYTES``, default 512 MiB), keyed by the file's identity (real
    path, size, mtime, inode), the row group and the columns: every source on the same file shares
    them, and cursors hold read-only views. The time column and the value columns are separate
    entries: ``open(at_ns)`` binary-searches the row groups' max timestamps, then reads only the
    time column of the group holding the first row ``>= at_ns``; value columns are decoded on the
    first read. A row group whose decoded columns exceed a quarter of the budget is not cached:
    cursors stream it in batches of ``batch_rows`` rows (decoding all columns, also to seek).

    The file is a snapshot: if it changes on disk (size, mtime or inode) after the source was
    built, reading a row group not yet cached raises ``DataError``; build a new source.

    Instrumentation: ``row_groups_read`` counts row groups loaded by this source's cursors (from
    the cache or the file), ``row_groups_decoded`` the reads from the file (cache misses, streamed
    groups), ``cache_hits`` the entries served by the cache.

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
        #: Row groups loaded by cursors, from the cache or the file (seeks load only what they need).
        self.row_groups_read = 0
        #: Row-group reads from the file (time or value columns; cache misses and streamed groups).
        self.row_groups_decoded = 0
        #: Row-group entries served by the shared cache.
        self.cache_hits = 0
        #: Row groups whose time column was read up front because statistics were missing.
        self.stat_reads = 0
        self._pf: pq.ParquetFile | None = None
        self._identity: tuple | None = None  # (real path, size, mtime_ns, inode, device)
        pf = self._file()
        try:
            self._identity = self._stat()
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
                f"{self.path}: time column {time!r} has dtype {ttype}; expected a timestamp or int64 nanoseconds"
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

        leaf = {md.schema.column(k).path: k for k in range(md.num_columns)}
        if time not in leaf:
            raise DataError(f"{self.path}: time column {time!r} is not a flat column")
        tcol = leaf[time]
        self.columns = names
        self.dtypes = {c: _numpy_dtype(schema.field(c).type, self._nullable(md, leaf.get(c))) for c in names}
        row_bytes = sum(self.dtypes[c].itemsize for c in names)
        text_cols = [leaf[c] for c in names if self.dtypes[c] == np.dtype(object) and c in leaf]

        groups, rows, mins, maxes, values_bytes = [], [], [], [], []
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
            # decoded size of the value columns: fixed-width data plus, for object columns, the text
            values_bytes.append(rg.num_rows * row_bytes + sum(rg.column(k).total_uncompressed_size for k in text_cols))
        if not groups:
            raise DataError(f"{self.path}: the Parquet file has no rows")
        self._groups = np.array(groups, dtype=np.int64)
        self._rows = np.array(rows, dtype=np.int64)
        self._mins = np.array(mins, dtype=np.int64)
        self._maxes = np.array(maxes, dtype=np.int64)
        self._values_bytes = np.array(values_bytes, dtype=np.int64)
        for i in range(len(groups) - 1):
            if self._maxes[i] > self._mins[i + 1]:
                raise DataError(
                    f"{self.path}: not sorted by {time!r}: row group {groups[i]} ends after row group "
                    f"{groups[i + 1]} starts"
                )
        self._offsets = np.concatenate([[0], np.cumsum(rows)]).astype(np.int64)
        self._time_key = ("time", time)
        self._values_key = ("values", *names)

        self.num_rows = int(self._offsets[-1])
        self.start_ns = int(self._mins[0])
        self.end_ns = int(self._maxes[-1])

    # -- file and metadata

    def _file(self) -> pq.ParquetFile:
        if self._pf is None:
            try:  # once built, reopen the file the cache keys name (not where a symlink now points)
                self._pf = pq.ParquetFile(
                    self.path if self._identity is None else self._identity[0],
                    coerce_int96_timestamp_unit=_INT96_UNIT,
                )
            except FileNotFoundError:
                raise DataError(f"{self.path}: no such Parquet file") from None
            except (pa.ArrowException, OSError) as exc:
                raise DataError(f"{self.path}: not a readable Parquet file: {exc}") from None
        return self._pf

    def _stat(self, real: str | None = None) -> tuple:
        """The file's identity for the cache: real path, size, mtime, inode, device."""
        try:
            real = real or os.path.realpath(self.path)
            st = os.stat(real)
        except OSError as exc:
            raise DataError(f"{self.path}: cannot stat the Parquet file: {exc}") from None
        return (real, st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)

    def _check_unchanged(self) -> None:
        assert self._identity is not None
        if self._stat(self._identity[0]) != self._identity:
            raise DataError(
                f"{self.path}: the file changed on disk since this source was opened; open it again"
            )

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
        elif logical.get("Type") not in (None, "None", "Int") or logical.get("isSigned") is False:
            return None  # unsigned: raw statistics are the signed physical values
        lo, hi = int(st.min_raw) * factor, int(st.max_raw) * factor
        if not (NS_MIN <= lo and hi <= NS_MAX):
            return None  # out of the ns range: reading the column reports the row and value
        return lo, hi

    def _scan_bounds(self, g: int) -> tuple[int, int]:
        self.stat_reads += 1
        try:
            table = self._file().read_row_group(g, columns=[self.time_column], use_threads=False)
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

    def _time_ns(self, arr: pa.Array | pa.ChunkedArray, g: int, first_row: int = 0) -> np.ndarray:
        """The time column of (part of) row group ``g`` as int64 ns, range-checked (never wrapped)."""
        if arr.null_count:
            raise DataError(f"{self.path}: time column {self.time_column!r} has nulls in row group {g}")
        what = f"{self.path}: time column {brief(self.time_column)} (row group {g})"
        if pa.types.is_timestamp(arr.type):
            return temporal_to_ns(arrow_temporal_to_numpy(arr), what, first_row=first_row).view(np.int64)
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.chunk(0) if arr.num_chunks == 1 else arr.combine_chunks()
        return int_time_to_ns(arr.to_numpy(zero_copy_only=False), what, first_row=first_row)

    def _check_sorted(self, ts: np.ndarray, prev: int | None, g: int) -> None:
        if (prev is not None and ts.size and ts[0] < prev) or bool(np.any(ts[1:] < ts[:-1])):
            raise DataError(f"{self.path}: not sorted by {self.time_column!r} in row group {g}")

    def _cached(self, index: int) -> bool:
        """Whether the ``index``-th non-empty row group goes through the shared cache (else streamed)."""
        limit = _CACHE.entry_limit
        return int(self._rows[index]) * 8 <= limit and int(self._values_bytes[index]) <= limit

    def _read_group(self, g: int, columns: list[str]) -> pa.Table:
        self._check_unchanged()
        self.row_groups_decoded += 1
        try:
            return self._file().read_row_group(g, columns=columns, use_threads=False)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{self.path}: cannot read row group {g}: {exc}") from None

    def _shared(self, g: int, what: tuple, load: Callable[[], tuple[Any, int]]) -> Any:
        value, hit = _CACHE.get_or_load((self._identity, g, what), load)
        self.cache_hits += hit
        return value

    def _group_ts(self, index: int) -> np.ndarray:
        """The time column (int64 ns, read-only, validated sorted) of the ``index``-th row group."""
        g = int(self._groups[index])

        def load() -> tuple[np.ndarray, int]:
            table = self._read_group(g, [self.time_column])
            ts = self._time_ns(table.column(0), g)
            self._check_sorted(ts, None, g)
            return _readonly(ts), ts.nbytes

        return self._shared(g, self._time_key, load)

    def _group_values(self, index: int) -> dict[str, np.ndarray]:
        """The value columns (read-only) of the ``index``-th row group."""
        if not self.columns:
            return {}
        g = int(self._groups[index])

        def load() -> tuple[dict[str, np.ndarray], int]:
            table = self._read_group(g, self.columns)
            out, nbytes = {}, 0
            for c in self.columns:
                col = table.column(c)
                out[c] = _readonly(_to_numpy(col, self.dtypes[c], f"{self.path}: column {brief(c)} (row group {g})"))
                nbytes += out[c].nbytes + (col.nbytes if out[c].dtype == object else 0)
            return out, nbytes

        return self._shared(g, self._values_key, load)

    def _stream(self, index: int) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
        """Batches of ``batch_rows`` rows (all columns) of a row group too large for the cache."""
        g = int(self._groups[index])
        self._check_unchanged()
        self.row_groups_decoded += 1
        try:
            it = self._file().iter_batches(
                batch_size=self.batch_rows,
                row_groups=[g],
                columns=[self.time_column, *self.columns],
                use_threads=False,
                use_pandas_metadata=False,
            )
            first = 0  # row of the batch within the group, for error messages
            for rb in it:
                ts = self._time_ns(rb.column(self.time_column), g, first)
                yield ts, {
                    c: _to_numpy(rb.column(c), self.dtypes[c], f"{self.path}: column {brief(c)} (row group {g})", first)
                    for c in self.columns
                }
                first += rb.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{self.path}: cannot read row group {g}: {exc}") from None

    def open(self, at_ns: Any = None) -> ParquetCursor:
        return ParquetCursor(self, None if at_ns is None else to_ns(at_ns))

    def close(self) -> None:
        """Close the file handle (reopened on demand); cached row groups stay shared."""
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
    """A read position in a ``ParquetSource``.

    Holds views of at most one row group: the whole group's shared arrays (time column from the
    seek, value columns from the first read), or one batch of a streamed group; released when
    the cursor moves past the group.
    """

    def __init__(self, source: ParquetSource, at_ns: int | None) -> None:
        self._src = source
        self._n = int(source._groups.size)
        self._g = 0  # index (into the source's non-empty groups) of the current group
        self._ts: np.ndarray | None = None  # time values held: the whole group, or a streamed batch
        self._vals: dict[str, np.ndarray] | None = None  # value columns of the same rows (lazy)
        self._it: Iterator[tuple[np.ndarray, dict[str, np.ndarray]]] | None = None  # streamed group
        self._i = 0  # next row in ``_ts``
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
        while self._ensure_row():  # cached groups: the time column only, one pass
            ts = self._ts
            assert ts is not None
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
        held = self._it is not None or self._ts is not None
        return {int(self._src._groups[self._g])} if held and self._g < self._n else set()

    @property
    def loaded_rows(self) -> int:
        """Rows held now (a whole shared group, or one batch of a streamed group)."""
        return 0 if self._ts is None else len(self._ts)

    def _release(self) -> None:
        self._ts = self._vals = self._it = None
        self._i = 0

    def _load_group(self) -> None:
        src = self._src
        src.row_groups_read += 1
        self.max_loaded_groups = max(self.max_loaded_groups, 1)
        if not src._cached(self._g):
            self._it = src._stream(self._g)
            return
        ts = src._group_ts(self._g)
        if self._last is not None and ts[0] < self._last:
            raise DataError(f"{src.path}: not sorted by {src.time_column!r} in row group {src._groups[self._g]}")
        self._last = int(ts[-1])
        self._ts, self._vals, self._i = ts, None, 0

    def _ensure_row(self, end_ns: int | None = None) -> bool:
        """Load until a row is available; False at the end or if the next group starts after ``end_ns``."""
        src = self._src
        while self._ts is None or self._i >= len(self._ts):
            if self._it is not None:
                nxt = next(self._it, None)
                if nxt is not None:
                    ts, vals = nxt
                    src._check_sorted(ts, self._last, int(src._groups[self._g]))
                    if len(ts):
                        self._last = int(ts[-1])
                    self._ts, self._vals, self._i = ts, vals, 0
                    continue
            if self._it is not None or self._ts is not None:  # the group is used up: move on
                self._release()
                self._g += 1
            if self._g >= self._n:
                return False
            if end_ns is not None and src._mins[self._g] > end_ns:
                return False
            self._load_group()
        return True

    def peek_ns(self) -> int | None:
        if self._ts is not None and self._i < len(self._ts):
            return int(self._ts[self._i])
        if self._ts is None and self._it is None:
            return int(self._src._mins[self._g]) if self._g < self._n else None
        return int(self._ts[self._i]) if self._ensure_row() else None  # type: ignore[index]

    def _read(self, end_ns: int | None, limit: int) -> Chunk:
        pieces: list[Chunk] = []
        remaining = limit
        while remaining > 0 and self._ensure_row(end_ns):
            ts = self._ts
            assert ts is not None
            stop = min(self._i + remaining, len(ts))
            k = stop - self._i
            if end_ns is not None:
                k = int(np.searchsorted(ts[self._i : stop], end_ns, side="right"))
            if k == 0:
                break
            if self._vals is None:
                self._vals = self._src._group_values(self._g)
            lo, hi = self._i, self._i + k
            pieces.append(Chunk(ts[lo:hi], {c: v[lo:hi] for c, v in self._vals.items()}))
            self._i = hi
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
        self._release()
        self._g = self._n
