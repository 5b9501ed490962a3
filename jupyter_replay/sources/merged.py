"""``MergedSource``: several sources replayed as one time-ordered stream."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..batch import TIME_COLUMN, Chunk
from ..exceptions import DataError, InvalidValueError, brief
from ..timeconv import int_time_to_ns, temporal_to_ns, to_ns
from .base import Cursor, ReplaySource
from .dataframe import ArraySource, DataFrameSource, check_count, end_bound

__all__ = ["MERGED_OPTIONS", "MergedSource", "STREAM_COLUMN", "STREAM_ID_COLUMN", "union_dtype"]

#: Column holding the name of the source each row came from (object array of str).
STREAM_COLUMN = "stream"
#: Column holding the index of that source in ``MergedSource.stream_names`` (int8, sent on the wire).
STREAM_ID_COLUMN = "stream_id"

_MAX_STREAMS = int(np.iinfo(np.int8).max) + 1
#: Options a merged source passes to each DataFrame it converts (see ``DataFrameSource``).
MERGED_OPTIONS = ("sort", "dropna", "time_unit")


def union_dtype(dtypes: Sequence[np.dtype], missing: bool) -> np.dtype:
    """The dtype of a column present with ``dtypes`` in some sources (``missing``: absent in others).

    Numbers keep their common dtype; when missing somewhere, ints/bools/floats become float64
    (NaN for missing rows). Datetimes/timedeltas stay ``[ns]`` (NaT for missing). Anything else,
    or a mix of kinds, becomes object (None for missing rows).
    """
    kinds = {d.kind for d in dtypes}
    if kinds <= set("biufc"):
        if missing:
            return np.result_type(*dtypes, np.float64)
        return np.result_type(*dtypes)
    if kinds == {"M"}:
        return np.dtype("datetime64[ns]")
    if kinds == {"m"}:
        return np.dtype("timedelta64[ns]")
    return np.dtype(object)


def _fill_value(dtype: np.dtype) -> Any:
    if dtype.kind in "fc":
        return np.nan
    if dtype.kind in "mM":
        return np.datetime64("NaT") if dtype.kind == "M" else np.timedelta64("NaT")
    return None


class MergedSource(ReplaySource):
    """Several sources replayed as one stream ordered by time.

    ``MergedSource({"trades": df1, "quotes": df2}, time="timestamp")`` or a list (streams are then
    named ``"0"``, ``"1"``, ...). Items may be DataFrames (converted with ``DataFrameSource(df,
    time=time)``), any ``ReplaySource``, or file paths (see ``as_source``).

    Order: rows are sorted by timestamp; rows with equal timestamps come in the order the sources
    were given, then in their original row order (a stable merge). Two columns are added: ``stream``
    (object array with the source name) and ``stream_id`` (int8 index into ``stream_names``, numeric
    so it can be sent on the wire). The other columns are the union of the sources' columns; rows
    from a source lacking a column get NaN (ints and bools are upcast to float64 for that), NaT
    for datetimes, None for object columns.

    When every input is in memory (DataFrames, ``DataFrameSource``, ``CSVSource``) the merge is done
    once, vectorised (stable argsort of the concatenated timestamps), and cursors read numpy views;
    otherwise (e.g. ``ParquetSource``) cursors merge the sources lazily, chunk by chunk.
    """

    def __init__(
        self,
        sources: Mapping[str, Any] | Sequence[Any],
        time: str | None = TIME_COLUMN,
        **options: Any,
    ) -> None:
        unknown = sorted(set(options) - set(MERGED_OPTIONS))
        if unknown:
            raise TypeError(
                f"MergedSource got unexpected keyword argument(s) {unknown}; allowed: {list(MERGED_OPTIONS)}"
            )
        items = self._items(sources)
        if not items:
            raise InvalidValueError("MergedSource needs at least one source")
        if len(items) > _MAX_STREAMS:
            raise InvalidValueError(
                f"MergedSource supports at most {_MAX_STREAMS} sources, got {len(items)}: for many instruments "
                "use one long-format frame, pd.concat(frames, keys=names, names=['symbol']).reset_index(level=0)"
            )
        self.sources: dict[str, ReplaySource] = {}
        for name, item in items:
            self.sources[name] = self._to_source(name, item, time, options)
        self.stream_names: list[str] = list(self.sources)
        self._names = np.array(self.stream_names, dtype=object)

        union: dict[str, list[np.dtype]] = {}
        for name, src in self.sources.items():
            for col in src.columns:
                if col in (STREAM_COLUMN, STREAM_ID_COLUMN):
                    raise DataError(f"source {name!r} already has a {col!r} column, which MergedSource adds")
                union.setdefault(col, []).append(np.dtype(src.dtypes[col]))
        n = len(self.sources)
        self._value_dtypes = {c: union_dtype(d, missing=len(d) < n) for c, d in union.items()}
        self.dtypes = {STREAM_COLUMN: np.dtype(object), STREAM_ID_COLUMN: np.dtype(np.int8), **self._value_dtypes}
        self.columns = list(self.dtypes)

        srcs = list(self.sources.values())
        self.num_rows = sum(int(s.num_rows) for s in srcs)
        self.start_ns = min(int(s.start_ns) for s in srcs)
        self.end_ns = max(int(s.end_ns) for s in srcs)
        tzs = {s.tz for s in srcs}
        self.tz = tzs.pop() if len(tzs) == 1 else ("UTC" if tzs - {None} else None)

        #: True when the merge was done in memory (cursors are numpy views).
        self.in_memory = all(isinstance(s, ArraySource) for s in srcs)
        self._merged: ArraySource | None = None
        if self.in_memory:
            chunks = [self.conform(i, Chunk(s.ts, s.data)) for i, s in enumerate(srcs)]  # type: ignore[attr-defined]
            ts, cols = _merge(chunks)
            self._merged = ArraySource(ts, cols, tz=self.tz)

    # -- construction helpers

    @staticmethod
    def _items(sources: Any) -> list[tuple[str, Any]]:
        if isinstance(sources, Mapping):
            items = [(str(k), v) for k, v in sources.items()]
            if len({k for k, _ in items}) != len(items):
                raise InvalidValueError("source names must be unique as strings")
            return items
        if isinstance(sources, (list, tuple)):
            return [(str(i), v) for i, v in enumerate(sources)]
        raise InvalidValueError(
            f"MergedSource needs a dict {{name: source}} or a list of sources, got {type(sources).__name__}"
        )

    @staticmethod
    def _to_source(name: str, item: Any, time: str | None, options: Mapping[str, Any]) -> ReplaySource:
        if isinstance(item, ReplaySource):
            return item
        if isinstance(item, pd.DataFrame):
            try:
                return DataFrameSource(item, time=time, **options)
            except DataError as exc:
                raise DataError(f"source {brief(name)}: {exc}") from None
        if isinstance(item, (Mapping, list, tuple)):
            raise InvalidValueError(f"source {name!r}: nested collections of sources are not supported")
        from . import as_source  # late import: as_source builds MergedSource too

        return as_source(item, time=time)

    # -- data

    def conform(self, index: int, chunk: Chunk) -> Chunk:
        """Rows of source ``index`` with this source's columns (stream columns added, gaps filled).

        Timestamps become int64 ns and datetime/timedelta columns ``[ns]``, range-checked: a custom
        source yielding other units gets a ``DataError``, never wrapped values.
        """
        n = len(chunk)
        stream = brief(self.stream_names[index])
        sid = np.full(n, index, dtype=np.int8)
        cols: dict[str, np.ndarray] = {STREAM_COLUMN: self._names[sid], STREAM_ID_COLUMN: sid}
        for name, dtype in self._value_dtypes.items():
            col = chunk.columns.get(name)
            if col is None:
                cols[name] = np.full(n, _fill_value(dtype), dtype=dtype)
            elif col.dtype.kind in "mM" and dtype.kind in "mM":
                cols[name] = temporal_to_ns(col, f"source {stream}: column {brief(name)}")
            else:
                cols[name] = col.astype(dtype, copy=False)
        ts = np.asarray(chunk.ts)
        if ts.dtype != np.int64:
            what = f"source {stream}: timestamps"
            ts = temporal_to_ns(ts, what).view(np.int64) if ts.dtype.kind == "M" else int_time_to_ns(ts, what)
        return Chunk(ts, cols)

    @property
    def ts(self) -> np.ndarray:
        """All merged timestamps (in-memory merges only)."""
        if self._merged is None:
            raise AttributeError("ts is only available when every input is in memory")
        return self._merged.ts

    @property
    def data(self) -> dict[str, np.ndarray]:
        """All merged columns (in-memory merges only)."""
        if self._merged is None:
            raise AttributeError("data is only available when every input is in memory")
        return self._merged.data

    def open(self, at_ns: Any = None) -> Cursor:
        if self._merged is not None:
            return self._merged.open(at_ns)
        at = None if at_ns is None else to_ns(at_ns)
        return _MergeCursor(self, [s.open(at) for s in self.sources.values()])

    def close(self) -> None:
        for s in self.sources.values():
            s.close()

    def describe(self) -> dict:
        d = super().describe()
        d["streams"] = list(self.stream_names)
        return d


def _merge(chunks: Sequence[Chunk]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Stable merge of conformed chunks: by ts, then chunk order, then row order."""
    ts = np.concatenate([c.ts for c in chunks])
    order = np.argsort(ts, kind="stable")  # the concatenation is in source order, then row order
    names = list(chunks[0].columns)
    return ts[order], {k: np.concatenate([c.columns[k] for c in chunks])[order] for k in names}


class _MergeCursor(Cursor):
    """Lazy k-way merge over the sources' cursors (for sources that are not in memory).

    Each read gathers at most ``limit`` candidate rows per source, merges them stably and keeps the
    rows it did not emit as per-source look-ahead for the next read.
    """

    def __init__(self, source: MergedSource, cursors: list[Cursor]) -> None:
        self._src = source
        self._cursors = cursors
        self._pending: list[Chunk | None] = [None] * len(cursors)
        self.position = sum(int(c.position) for c in cursors)

    def peek_ns(self) -> int | None:
        best: int | None = None
        for cur, pend in zip(self._cursors, self._pending):
            t = int(pend.ts[0]) if pend is not None and len(pend) else cur.peek_ns()
            if t is not None and (best is None or t < best):
                best = t
        return best

    def _gather(self, i: int, end_ns: int | None, limit: int) -> tuple[Chunk, Chunk | None]:
        """Up to ``limit`` rows of source ``i`` (``ts <= end_ns``) and the look-ahead left after them."""
        pend = self._pending[i]
        self._pending[i] = None
        if pend is not None and len(pend):
            k = len(pend) if end_ns is None else int(np.searchsorted(pend.ts, end_ns, side="right"))
            k = min(k, limit)
            if k < len(pend) or k == limit:
                return pend.slice(0, k), pend.slice(k, len(pend))
            need = limit - k
        else:
            pend, need = None, limit
        cur = self._cursors[i]
        more = cur.read(need) if end_ns is None else cur.read_until(end_ns, need)
        more = self._src.conform(i, more)
        return (Chunk.concat([pend, more]) if pend is not None else more), None

    def _read(self, end_ns: int | None, limit: int) -> Chunk:
        if limit == 0:
            return Chunk.empty(self._src.dtypes)
        gathered = [self._gather(i, end_ns, limit) for i in range(len(self._cursors))]
        cands = [c for c, _ in gathered]
        sizes = np.array([len(c) for c in cands])
        total = int(sizes.sum())
        if total == 0:
            for i, (_, rest) in enumerate(gathered):
                self._pending[i] = rest
            return Chunk.empty(self._src.dtypes)
        ts = np.concatenate([c.ts for c in cands])
        order = np.argsort(ts, kind="stable")[:limit]
        sid = np.repeat(np.arange(len(cands)), sizes)
        used = np.bincount(sid[order], minlength=len(cands))
        for i, (cand, rest) in enumerate(gathered):
            left = cand.slice(int(used[i]), len(cand))
            parts = [c for c in (left, rest) if c is not None and len(c)]
            self._pending[i] = Chunk.concat(parts) if parts else None
        out = Chunk(ts[order], {k: np.concatenate([c.columns[k] for c in cands])[order] for k in self._src.dtypes})
        self.position += len(out)
        return out

    def read_until(self, end_ns: int, limit: int) -> Chunk:
        return self._read(end_bound(end_ns), check_count(limit, "limit"))

    def read(self, n: int) -> Chunk:
        return self._read(None, check_count(n))

    def close(self) -> None:
        for c in self._cursors:
            c.close()
        self._pending = [None] * len(self._cursors)
