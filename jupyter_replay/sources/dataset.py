"""``DatasetSource``: a directory, glob or URL of Parquet files replayed as one time-ordered stream.

Files may be hive-partitioned (``date=2024-01-02/symbol=AAPL/part-0.parquet``): partition fields
become columns, and ``filter=``/``symbols=`` on them prune whole files before anything is read.
Each file is a ``ParquetSource`` (on any pyarrow filesystem), so row groups are read on demand
through the one process-wide ``RowGroupCache``; this module adds only the merge across files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ..batch import TIME_COLUMN, Chunk
from ..exceptions import DataError, InvalidValueError, brief
from ..timeconv import to_ns
from .base import Cursor, ReplaySource
from .dataframe import check_count, end_bound
from .merged import union_dtype
from .parquet import _INT96_UNIT, ParquetSource, _numpy_dtype
from .storage import is_url, list_files, resolve_filesystem

__all__ = ["DatasetSource", "DatasetCursor"]

_I64_MAX = int(np.iinfo(np.int64).max)


class _FileSource(ParquetSource):
    """A ``ParquetSource`` on any pyarrow filesystem; its cache identity is (URI, size, mtime)."""

    def __init__(self, fs: pafs.FileSystem, path: str, display: str, **kwargs: Any) -> None:
        self._fs = fs
        self._fs_path = path
        self._display = display
        super().__init__(path, **kwargs)
        self.path = display  # type: ignore[assignment]  # messages name the URL or path given

    def _file(self) -> pq.ParquetFile:
        if self._pf is None:
            try:
                self._pf = pq.ParquetFile(
                    self._fs.open_input_file(self._fs_path), coerce_int96_timestamp_unit=_INT96_UNIT
                )
            except FileNotFoundError:
                raise DataError(f"{self._display}: no such Parquet file") from None
            except (pa.ArrowException, OSError) as exc:
                raise DataError(f"{self._display}: not a readable Parquet file: {brief(str(exc))}") from None
        return self._pf

    def _stat(self, real: str | None = None) -> tuple:
        try:
            info = self._fs.get_file_info(self._fs_path)
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"{self._display}: cannot stat the Parquet file: {brief(str(exc))}") from None
        if info.type != pafs.FileType.File:
            raise DataError(f"{self._display}: no such Parquet file")
        return (f"{self._fs.type_name}:{self._fs_path}", info.size, info.mtime_ns)


class DatasetSource(ReplaySource):
    """Replay a set of Parquet files (a directory, a glob, a list, local or object storage) as one stream.

    Args:
        path: a directory (read recursively), a glob (``data/date=2024-01-*/**/*.parquet``;
            ``*`` also crosses ``/``), a single file, or a URL of those (``s3://bucket/prefix/``,
            ``gs://...``, ``file://...``; see ``sources.storage``). Hidden files (``.``/``_``) are skipped.
        time: the time column (in every file; see ``ParquetSource``).
        columns: value columns to keep (file columns and partition fields; default: all of them).
        filter: a ``pyarrow.dataset`` expression on partition fields, e.g.
            ``pc.field("date") >= "2024-01-02"``; files outside it are never opened.
        symbols: keep only these values of the partition field ``symbol_column`` (same pruning).
        symbol_column: the partition field ``symbols=`` applies to (default ``"symbol"``).
        partitioning: ``"hive"`` (``key=value`` directories, the default), None (no partition
            fields) or a ``pyarrow.dataset.Partitioning``.
        filesystem: a pyarrow or fsspec filesystem to read ``path`` with (default: from its scheme).

    Construction reads each file's footer only (row counts, time statistics per row group). Rows
    come out in time order across files; files and row groups that overlap in time (e.g. one file
    per symbol and day) are merged. Equal timestamps keep the order of the row groups' first
    timestamps, then of the file paths, then of the rows. ``open(at_ns)`` counts the rows before
    ``at_ns`` from the statistics and reads the time column only of the row groups that span it.
    A cursor holds one row group of each file overlapping its position (shared read-only views of
    the ``RowGroupCache`` entries; a row group above the cache budget is read whole but not kept).

    A filter on columns inside the files is refused: filter the data first (e.g. with DuckDB or
    Polars, whose results ``as_source`` takes) or partition by that column. Every file must have
    the time column and the chosen columns; a column's dtype is the union over files (e.g.
    float64 when an int column has nulls in one of them, see ``MergedSource``).
    """

    def __init__(
        self,
        path: str | os.PathLike | Sequence[str],
        time: str | None = TIME_COLUMN,
        columns: Sequence[str] | None = None,
        filter: ds.Expression | None = None,
        symbols: Sequence[str] | str | None = None,
        symbol_column: str = "symbol",
        partitioning: Any = "hive",
        filesystem: Any = None,
    ) -> None:
        if not isinstance(time, str) or not time:
            raise InvalidValueError(f"a dataset needs time=<column name>, got {brief(time)}")
        self.url = os.fspath(path) if isinstance(path, (str, os.PathLike)) else None
        fs, files, base = self._files(path, filesystem)
        dataset = self._dataset(fs, files, base, partitioning)
        part_schema = self._partition_schema(dataset, partitioning)
        expr = self._filter(filter, symbols, symbol_column, part_schema)
        fragments = sorted(
            dataset.get_fragments() if expr is None else dataset.get_fragments(filter=expr), key=lambda f: f.path
        )
        if not fragments:
            raise DataError(f"no files of {brief(self.url or files)} match the filter")

        part_names = [f.name for f in part_schema]
        file_names = [n for n in dataset.schema.names if n not in part_names]
        if time not in file_names:
            raise DataError(f"time column {brief(time)} not found; available columns: {brief(file_names)}")
        wanted = [n for n in file_names + part_names if n != time] if columns is None else list(dict.fromkeys(
            [columns] if isinstance(columns, str) else columns))
        unknown = [c for c in wanted if c not in file_names and c not in part_names]
        if unknown:
            raise DataError(f"columns not found: {brief(unknown)}; available: {brief(file_names + part_names)}")
        if TIME_COLUMN in wanted and TIME_COLUMN != time:
            raise DataError(f"value column {TIME_COLUMN!r} clashes with the replay time column name; leave it out")
        in_files = [c for c in wanted if c in file_names and c != time]
        from_parts = [c for c in wanted if c in part_names]

        #: One ``ParquetSource`` per file, in path order.
        self.parts: list[ParquetSource] = []
        self._part_values: list[dict[str, Any]] = []
        try:
            for frag in fragments:
                if isinstance(fs, pafs.LocalFileSystem):  # same cache identity as ParquetSource on that file
                    self.parts.append(ParquetSource(frag.path, time=time, columns=in_files))
                else:
                    display = _url_of(self.url, frag.path) if is_url(self.url or "") else frag.path
                    self.parts.append(_FileSource(fs, frag.path, display, time=time, columns=in_files))
                self._part_values.append(ds.get_partition_keys(frag.partition_expression))
        except BaseException:
            self.close()
            raise
        self.time_column = time

        dtypes: dict[str, np.dtype] = {}
        for c in wanted:
            if c in from_parts:
                values = [pv.get(c) for pv in self._part_values]
                dtypes[c] = _numpy_dtype(part_schema.field(c).type, any(v is None for v in values))
            else:
                dtypes[c] = union_dtype([p.dtypes[c] for p in self.parts], missing=False)
        self.dtypes = dtypes
        self.columns = list(dtypes)
        self._from_parts = from_parts

        # row-group segments of every file, in the order the merge consumes them
        seg_part, seg_index, seg_rows, seg_min, seg_max = [], [], [], [], []
        for k, p in enumerate(self.parts):
            n = int(p._groups.size)
            seg_part.append(np.full(n, k, dtype=np.int64))
            seg_index.append(np.arange(n, dtype=np.int64))
            seg_rows.append(p._rows)
            seg_min.append(p._mins)
            seg_max.append(p._maxes)
        mins = np.concatenate(seg_min)
        parts_ = np.concatenate(seg_part)
        index = np.concatenate(seg_index)
        order = np.lexsort((index, parts_, mins))
        self._seg_part = parts_[order]
        self._seg_index = index[order]
        self._seg_rows = np.concatenate(seg_rows)[order]
        self._seg_min = mins[order]
        self._seg_max = np.concatenate(seg_max)[order]
        self.num_rows = int(self._seg_rows.sum())
        self.start_ns = int(self._seg_min.min())
        self.end_ns = int(self._seg_max.max())
        tzs = {p.tz for p in self.parts}
        self.tz = tzs.pop() if len(tzs) == 1 else ("UTC" if tzs - {None} else None)
        #: Row groups loaded by this source's cursors (cached or read).
        self.row_groups_read = 0

    # -- construction helpers

    @staticmethod
    def _files(path: Any, filesystem: Any) -> tuple[pafs.FileSystem, list[str], str]:
        if isinstance(path, (list, tuple)):
            if not path:
                raise InvalidValueError("DatasetSource needs at least one file")
            fs, first = resolve_filesystem(path[0], filesystem)
            files = [first] + [resolve_filesystem(p, filesystem)[1] for p in path[1:]]
            base = os.path.commonpath(files) if len(files) > 1 else first.rsplit("/", 1)[0]
            return fs, files, base
        if not isinstance(path, (str, os.PathLike)):
            raise InvalidValueError(
                f"DatasetSource needs a path, URL, glob or list of files, got {type(path).__name__}"
            )
        fs, inner = resolve_filesystem(path, filesystem)
        files, base = list_files(fs, inner)
        while "/" in base.rstrip("/") and "=" in base.rstrip("/").rsplit("/", 1)[-1]:
            base = base.rstrip("/").rsplit("/", 1)[0]  # a glob inside date=.../: keep that partition field
        return fs, files, base

    @staticmethod
    def _dataset(fs: pafs.FileSystem, files: list[str], base: str, partitioning: Any) -> ds.Dataset:
        try:
            return ds.dataset(
                files, filesystem=fs, format="parquet", partitioning=partitioning,
                partition_base_dir=base or None,
            )
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise DataError(f"cannot open the Parquet dataset: {brief(str(exc))}") from None

    @staticmethod
    def _partition_schema(dataset: ds.Dataset, partitioning: Any) -> pa.Schema:
        if partitioning is None:
            return pa.schema([])
        part = getattr(dataset, "partitioning", None)
        return part.schema if part is not None else pa.schema([])

    @staticmethod
    def _filter(expr: Any, symbols: Any, symbol_column: str, part_schema: pa.Schema) -> ds.Expression | None:
        if expr is not None and not isinstance(expr, ds.Expression):
            raise InvalidValueError(f"filter must be a pyarrow.dataset expression, got {type(expr).__name__}")
        if symbols is not None:
            if isinstance(symbols, str):
                symbols = [symbols]
            if symbol_column not in part_schema.names:
                raise InvalidValueError(
                    f"symbols= needs {brief(symbol_column)} to be a partition field (directories "
                    f"{symbol_column}=...); partition fields: {part_schema.names}"
                )
            typ = part_schema.field(symbol_column).type
            sym = pc.field(symbol_column).isin(pa.array(list(symbols)).cast(typ))
            expr = sym if expr is None else (expr & sym)
        if expr is None:
            return None
        try:  # an expression naming a field outside the partition schema cannot prune files
            pa.table({f.name: pa.array([], f.type) for f in part_schema}).filter(expr)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise InvalidValueError(
                f"filter {brief(str(expr))} must use partition fields only ({part_schema.names}): "
                f"{brief(str(exc))}; filter the rows first (DuckDB, Polars, pyarrow) and replay the result"
            ) from None
        return expr

    # -- reading

    def _segment(self, s: int) -> tuple[np.ndarray, Any]:
        """The time column of sorted segment ``s`` and a loader of its value columns."""
        part = self.parts[int(self._seg_part[s])]
        index = int(self._seg_index[s])
        self.row_groups_read += 1
        return part._group_ts(index), lambda: self._values(s)

    def _values(self, s: int) -> dict[str, np.ndarray]:
        k = int(self._seg_part[s])
        index = int(self._seg_index[s])
        part = self.parts[k]
        vals = part._group_values(index)
        n = int(self._seg_rows[s])
        out: dict[str, np.ndarray] = {}
        for c, dtype in self.dtypes.items():
            if c in self._from_parts:
                out[c] = np.full(n, self._part_values[k].get(c), dtype=dtype)
                out[c].flags.writeable = False
            else:
                out[c] = vals[c].astype(dtype, copy=False)
        return out

    def open(self, at_ns: Any = None) -> DatasetCursor:
        return DatasetCursor(self, None if at_ns is None else to_ns(at_ns))

    def close(self) -> None:
        for p in self.parts:
            p.close()

    @property
    def row_groups_decoded(self) -> int:
        """Row-group reads from the files (cache misses) over every file."""
        return sum(p.row_groups_decoded for p in self.parts)

    def describe(self) -> dict:
        d = super().describe()
        d["path"] = self.url
        d["files"] = len(self.parts)
        d["row_groups"] = int(self._seg_part.size)
        return d


def _url_of(url: Any, inner: str) -> str:
    """The URL of ``inner`` (a path inside the filesystem) for messages."""
    scheme = url.split("://", 1)[0]
    return f"{scheme}://{inner}"


class _Active:
    """A row group the cursor is consuming: its time column, values (lazy) and next row."""

    __slots__ = ("i", "load", "seg", "ts", "vals")

    def __init__(self, seg: int, ts: np.ndarray, load: Any, i: int = 0) -> None:
        self.seg, self.ts, self.load, self.i = seg, ts, load, i
        self.vals: dict[str, np.ndarray] | None = None


class DatasetCursor(Cursor):
    """A k-way merge over the dataset's row groups, in the order of their first timestamps.

    Row groups are activated in that order; rows of active groups with ``ts <=`` the next
    group's first timestamp can be emitted (they precede everything not yet activated).
    """

    def __init__(self, source: DatasetSource, at_ns: int | None) -> None:
        self._src = source
        self._n = int(source._seg_min.size)
        self._active: list[_Active] = []
        self._next = 0
        self.position = 0
        if at_ns is None:
            return
        first = int(np.searchsorted(source._seg_min, at_ns, side="left"))  # groups from here start >= at_ns
        before = source._seg_max[:first] < at_ns
        self.position = int(source._seg_rows[:first][before].sum())
        for s in np.flatnonzero(~before):  # groups spanning at_ns: read their time column only
            ts, load = source._segment(int(s))
            i = int(np.searchsorted(ts, at_ns, side="left"))
            self.position += i
            if i < len(ts):
                self._active.append(_Active(int(s), ts, load, i))
        self._next = first

    def peek_ns(self) -> int | None:
        heads = [int(a.ts[a.i]) for a in self._active]
        if self._next < self._n:
            heads.append(int(self._src._seg_min[self._next]))
        return min(heads) if heads else None

    def _activate(self) -> None:
        ts, load = self._src._segment(self._next)
        self._active.append(_Active(self._next, ts, load))
        self._next += 1

    def _read(self, end_ns: int | None, limit: int) -> Chunk:
        src = self._src
        pieces: list[Chunk] = []
        remaining = limit
        while remaining > 0:
            upcoming = int(src._seg_min[self._next]) if self._next < self._n else None
            if not self._active:
                if upcoming is None or (end_ns is not None and upcoming > end_ns):
                    break
                self._activate()
                continue
            bound = _I64_MAX if upcoming is None else upcoming
            if end_ns is not None:
                bound = min(bound, end_ns)
            counts = [
                int(np.searchsorted(a.ts[a.i : a.i + remaining], bound, side="right")) for a in self._active
            ]
            if not any(counts):
                if upcoming is not None and (end_ns is None or upcoming <= end_ns):
                    self._activate()
                    continue
                break
            pieces.append(self._emit(counts, remaining))
            remaining -= len(pieces[-1])
        self.position += limit - remaining
        if not pieces:
            return Chunk.empty(src.dtypes)
        return Chunk.concat(pieces)

    def _emit(self, counts: list[int], limit: int) -> Chunk:
        """Merge the first ``counts[k]`` rows of each active group (stable), at most ``limit`` rows."""
        cands = [(a, c) for a, c in zip(self._active, counts) if c]
        vals = []
        for a, _ in cands:
            if a.vals is None:
                a.vals = a.load()
            vals.append(a.vals)
        if len(cands) == 1:
            a, c = cands[0]
            c = min(c, limit)
            lo, hi = a.i, a.i + c
            out = Chunk(a.ts[lo:hi], {k: v[lo:hi] for k, v in vals[0].items()})
            a.i = hi
        else:
            ts = np.concatenate([a.ts[a.i : a.i + c] for a, c in cands])
            order = np.argsort(ts, kind="stable")[:limit]
            sizes = np.array([c for _, c in cands])
            used = np.bincount(np.repeat(np.arange(len(cands)), sizes)[order], minlength=len(cands))
            cols = {
                k: np.concatenate([v[k][a.i : a.i + c] for (a, c), v in zip(cands, vals)])[order]
                for k in self._src.dtypes
            }
            out = Chunk(ts[order], cols)
            for (a, _), u in zip(cands, used):
                a.i += int(u)
        self._active = [a for a in self._active if a.i < len(a.ts)]
        return out

    @property
    def loaded_groups(self) -> int:
        """Row groups held now (one per file overlapping the position, at most)."""
        return len(self._active)

    def read_until(self, end_ns: int, limit: int) -> Chunk:
        return self._read(end_bound(end_ns), check_count(limit, "limit"))

    def read(self, n: int) -> Chunk:
        return self._read(None, check_count(n))

    def close(self) -> None:
        self._active = []
        self._next = self._n
