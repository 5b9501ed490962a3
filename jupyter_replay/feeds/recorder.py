"""``ParquetRecorder``: writes a live feed (or any chunks) to a Parquet file that ``ParquetSource`` replays.

Rows are buffered and written in row groups of exactly ``row_group_rows`` rows (the last one may be
smaller), each with min/max statistics of the time column, so ``ParquetSource.open(at)`` finds a
timestamp by reading one row group. The time column is ``timestamp[ns, UTC]``. The file is written as
``<path>.partial`` and renamed to ``path`` on ``close()``: readers never see a half-written file.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..batch import TIME_COLUMN, Chunk
from ..exceptions import DataError, InvalidValueError
from ..sources.arrow import TIME_TYPE as _TS_TYPE
from ..sources.arrow import chunk_to_arrow
from ..sources.base import LiveSource
from ..timeconv import to_duration_ns

__all__ = ["ParquetRecorder", "PARTIAL_SUFFIX"]

PARTIAL_SUFFIX = ".partial"


class ParquetRecorder:
    """Append chunks to a Parquet file, in time order, row group by row group.

    ``out_of_order``: what to do with a row older than the previous one: ``"error"`` (``DataError``),
    ``"clamp"`` (stamp it with the previous time, keeping the file sorted) or ``"drop"``.
    ``metadata`` (JSON-safe dict) is stored in the file's key-value metadata under ``jupyter_replay``.
    Use as a context manager (sync or async) or call ``close()``.
    """

    def __init__(
        self, path: str | os.PathLike, *, row_group_rows: int = 65_536, compression: str | None = "zstd",
        time_column: str = TIME_COLUMN, out_of_order: str = "error", metadata: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(row_group_rows, bool) or not isinstance(row_group_rows, (int, np.integer)) or row_group_rows < 1:
            raise InvalidValueError(f"row_group_rows must be an int >= 1, got {row_group_rows!r}")
        if out_of_order not in ("error", "clamp", "drop"):
            raise InvalidValueError(f"out_of_order must be 'error', 'clamp' or 'drop', got {out_of_order!r}")
        self.path = Path(path)
        self.partial_path = self.path.with_name(self.path.name + PARTIAL_SUFFIX)
        self.row_group_rows = int(row_group_rows)
        self.compression = compression
        self.time_column = time_column
        self.out_of_order = out_of_order
        self.metadata = dict(metadata or {})
        self._writer: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None
        self._names: list[str] | None = None
        self._pending: list[Chunk] = []
        self._pending_rows = 0
        self._last_ns: int | None = None
        self._closed = False
        #: Rows and row groups written to the file so far; rows that arrived out of order.
        self.rows_written = 0
        self.row_groups = 0
        self.out_of_order_rows = 0

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def buffered_rows(self) -> int:
        """Rows waiting for a full row group (written by ``flush``/``close``)."""
        return self._pending_rows

    # -- writing

    def write(self, chunk: Chunk) -> None:
        """Buffer ``chunk``; full row groups are written as soon as there are enough rows."""
        if self._closed:
            raise InvalidValueError(f"recorder for {self.path} is closed")
        if len(chunk) == 0:
            return
        names = list(chunk.columns)
        if self._names is None:
            if self.time_column in names:
                raise DataError(f"value column {self.time_column!r} clashes with the time column name")
            self._names = names
        elif names != self._names:
            raise DataError(f"chunk columns {names} differ from the recording's columns {self._names}")
        chunk = self._in_order(chunk)
        if len(chunk) == 0:
            return
        self._pending.append(chunk)
        self._pending_rows += len(chunk)
        while self._pending_rows >= self.row_group_rows:
            self._write_rows(self.row_group_rows)

    def flush(self) -> None:
        """Write the buffered rows as a (possibly short) row group."""
        if self._pending_rows:
            self._write_rows(self._pending_rows)

    def close(self) -> Path:
        """Flush, finish the file (footer) and move it to ``path``. Returns ``path``; idempotent."""
        if self._closed:
            return self.path
        self._closed = True
        self.flush()
        if self._writer is None:  # nothing recorded: no file
            return self.path
        self._writer.close()
        os.replace(self.partial_path, self.path)
        return self.path

    def abort(self) -> None:
        """Stop without finishing the file (the partial file is removed)."""
        self._closed = True
        if self._writer is not None:
            try:
                self._writer.close()
            finally:
                self.partial_path.unlink(missing_ok=True)

    def _in_order(self, chunk: Chunk) -> Chunk:
        ts = np.asarray(chunk.ts, dtype=np.int64)
        base = ts[0] if self._last_ns is None else self._last_ns
        running = np.maximum.accumulate(np.concatenate([[base], ts]))
        bad = ts < running[:-1]  # older than some row before it
        if bad.any():
            self.out_of_order_rows += int(bad.sum())
            if self.out_of_order == "error":
                i = int(np.argmax(bad))
                raise DataError(
                    f"recording {self.path}: row time {int(ts[i])} is before the previous row's "
                    f"({int(running[i])}); use out_of_order='clamp' or 'drop'"
                )
            if self.out_of_order == "clamp":
                chunk = Chunk(running[1:], dict(chunk.columns))
            else:
                keep = ~bad
                chunk = Chunk(ts[keep], {k: np.asarray(v)[keep] for k, v in chunk.columns.items()})
        if len(chunk):
            self._last_ns = int(chunk.ts[-1])
        return chunk

    def _take(self, n: int) -> Chunk:
        taken: list[Chunk] = []
        need = n
        while need:
            head = self._pending[0]
            if len(head) <= need:
                taken.append(self._pending.pop(0))
                need -= len(head)
            else:
                taken.append(head.slice(0, need))
                self._pending[0] = head.slice(need, len(head))
                need = 0
        self._pending_rows -= n
        return Chunk.concat(taken)

    def _write_rows(self, n: int) -> None:
        chunk = self._take(n)
        table = self._table(chunk)
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self.partial_path, table.schema, compression=self.compression)
        self._writer.write_table(table, row_group_size=len(chunk))
        self.rows_written += len(chunk)
        self.row_groups += 1

    def _table(self, chunk: Chunk) -> pa.Table:
        names = dict.fromkeys(self._names or [])
        if self._schema is None:
            batch = chunk_to_arrow(chunk, self.time_column, columns=names)
            fields = [pa.field(self.time_column, _TS_TYPE, nullable=False)]
            for name, arr in zip(names, batch.columns[1:]):
                nullable = np.asarray(chunk.columns[name]).dtype.kind in "OfcSU"
                fields.append(pa.field(name, arr.type, nullable=nullable))
            meta = {"jupyter_replay": json.dumps({"recorder": "ParquetRecorder", **self.metadata})}
            self._schema = pa.schema(fields, metadata=meta)
            return pa.Table.from_arrays(batch.columns, schema=self._schema)
        return pa.Table.from_batches([chunk_to_arrow(chunk, self.time_column, self._schema, columns=names)])

    # -- recording a live source

    async def record(
        self, source: LiveSource, *, max_rows: int | None = None, duration: Any = None,
        stop: asyncio.Event | None = None, close_source: bool = True,
    ) -> int:
        """Write chunks from ``source`` until it ends, ``max_rows`` rows, ``duration`` or ``stop`` is set.

        Returns the rows recorded by this call. Buffered rows stay buffered (``close()`` writes them);
        with ``close_source`` the source is closed at the end.
        """
        deadline = None if duration is None else time.monotonic() + to_duration_ns(duration) / 1e9
        recorded = 0
        it = source.batches().__aiter__()
        waiter = asyncio.ensure_future(stop.wait()) if stop is not None else None
        try:
            while max_rows is None or recorded < max_rows:
                timeout = None if deadline is None else deadline - time.monotonic()
                if timeout is not None and timeout <= 0:
                    break
                nxt = asyncio.ensure_future(it.__anext__())
                wait_for = {nxt} if waiter is None else {nxt, waiter}
                done, _ = await asyncio.wait(wait_for, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if nxt not in done:
                    nxt.cancel()
                    try:
                        await nxt
                    except (asyncio.CancelledError, StopAsyncIteration):
                        pass
                    break
                try:
                    chunk = nxt.result()
                except StopAsyncIteration:
                    break
                if max_rows is not None and recorded + len(chunk) > max_rows:
                    chunk = chunk.slice(0, max_rows - recorded)
                self.write(chunk)
                recorded += len(chunk)
        finally:
            if waiter is not None:
                waiter.cancel()
            if close_source:
                await source.aclose()
                aclose = getattr(it, "aclose", None)
                if aclose is not None:
                    try:
                        await aclose()
                    except (RuntimeError, StopAsyncIteration):  # pragma: no cover - already running/closed
                        pass
        return recorded

    # -- context managers

    def __enter__(self) -> ParquetRecorder:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close()  # also after an error: what was recorded before it is valid data

    async def __aenter__(self) -> ParquetRecorder:
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)
