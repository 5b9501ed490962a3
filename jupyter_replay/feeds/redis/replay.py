"""Replay of a time range of a Redis stream: the rows read once with ``XRANGE``, kept in memory."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from ...exceptions import DataError, FeedError, InvalidValueError, brief
from ...sources.dataframe import ArraySource
from ...timeconv import TimeLike, to_ns
from .._columns import FieldsSpec, normalize_fields
from .layout import (
    SCHEMA_SUFFIX,
    Entry,
    Schema,
    async_client,
    decode_schema,
    id_text,
    infer_schema,
    sync_client,
    time_to_id,
)

__all__ = ["RedisStreamReplay"]


def _id_bounds(start_ns: int | None, end_ns: int | None) -> tuple[str, str]:
    """The XRANGE bounds covering ``[start_ns, end_ns]`` (``-`` / ``+`` when open)."""
    return (
        "-" if start_ns is None else time_to_id(start_ns),
        "+" if end_ns is None else time_to_id(end_ns, end=True),
    )


def _check_max(n: int, max_rows: int | None, stream: str) -> None:
    if max_rows is not None and n > max_rows:
        raise DataError(f"redis stream {brief(stream)}: more than max_rows={max_rows} entries in the range")


def _read_failed(stream: str, exc: Exception) -> FeedError:
    return FeedError(f"reading redis stream {brief(stream)} failed: {brief(str(exc))}")


class RedisStreamReplay(ArraySource):
    """The rows of a Redis stream between ``start`` and ``end`` (inclusive) as a replay source.

    Reads the id range ``[start ms, end ms]`` with ``XRANGE`` in pages of ``page`` entries when
    created (sync client; use :meth:`aload` on an event loop) and keeps the rows in memory, stably
    sorted by time. ``start``/``end`` default to the whole stream. ``last_id`` is the id of the last
    entry read: tail from it to continue live without a gap.
    """

    def __init__(
        self, url: Any, stream: str, start: TimeLike | None = None, end: TimeLike | None = None,
        fields: FieldsSpec = None, *, time_field: str | None = "ts", entry_columns: bool = True,
        page: int = 10_000, max_rows: int | None = None, _entries: list[Entry] | None = None,
        _schema: Mapping[str, np.dtype] | None = None,
    ) -> None:
        if page < 1:
            raise InvalidValueError(f"page must be >= 1, got {brief(page)}")
        self.url = url if isinstance(url, str) else None
        self.stream = stream
        self.time_field = time_field
        self._range = (None if start is None else to_ns(start), None if end is None else to_ns(end))
        if self._range[0] is not None and self._range[1] is not None and self._range[0] > self._range[1]:
            raise InvalidValueError(f"start {brief(start)} is after end {brief(end)}")
        dtypes = normalize_fields(fields)
        if _entries is None:
            client, own = sync_client(url)
            try:
                if dtypes is None:
                    dtypes = decode_schema(client.hgetall(stream + SCHEMA_SUFFIX))
                entries = list(self._pages(client, page, max_rows))
            except (DataError, InvalidValueError):
                raise
            except Exception as exc:
                raise _read_failed(stream, exc) from exc
            finally:
                if own:
                    client.close()
        else:
            entries, dtypes = _entries, dict(_schema) if _schema is not None else dtypes
        self._build(entries, dtypes, entry_columns)

    @classmethod
    async def aload(
        cls, url: Any, stream: str, start: TimeLike | None = None, end: TimeLike | None = None,
        fields: FieldsSpec = None, *, page: int = 10_000, max_rows: int | None = None, **kwargs: Any,
    ) -> RedisStreamReplay:
        """Like the constructor, with the asyncio client (does not block the event loop)."""
        client, own = async_client(url)
        dtypes = normalize_fields(fields)
        rng = (None if start is None else to_ns(start), None if end is None else to_ns(end))
        try:
            if dtypes is None:
                dtypes = decode_schema(await client.hgetall(stream + SCHEMA_SUFFIX))
            entries: list[Entry] = []
            lo, hi = _id_bounds(*rng)
            while True:
                got = await client.xrange(stream, min=lo, max=hi, count=page)
                entries.extend(got)
                _check_max(len(entries), max_rows, stream)
                if len(got) < page:
                    break
                lo = "(" + id_text(got[-1][0])
        except (DataError, InvalidValueError):
            raise
        except Exception as exc:
            raise _read_failed(stream, exc) from exc
        finally:
            if own:
                await client.aclose()
        return cls(url, stream, start, end, dtypes, page=page, _entries=entries, _schema=dtypes, **kwargs)

    def _pages(self, client: Any, page: int, max_rows: int | None) -> Iterator[Entry]:
        lo, hi = _id_bounds(*self._range)
        total = 0
        while True:
            got = client.xrange(self.stream, min=lo, max=hi, count=page)
            total += len(got)
            _check_max(total, max_rows, self.stream)
            yield from got
            if len(got) < page:
                break
            lo = "(" + id_text(got[-1][0])

    def _build(self, entries: list[Entry], dtypes: Mapping[str, np.dtype] | None, entry_columns: bool) -> None:
        if not entries:
            raise DataError(f"redis stream {brief(self.stream)} has no entries in the requested time range")
        if dtypes is None:
            dtypes = infer_schema(entries[0][1], self.time_field)
        chunk = Schema(dtypes, self.time_field, entry_columns).decode(entries)
        self.last_id = id_text(entries[-1][0])
        ts = chunk.ts
        cols = dict(chunk.columns)
        lo, hi = self._range
        if self.time_field and (lo is not None or hi is not None):
            mask = np.ones(len(ts), dtype=bool)
            if lo is not None:
                mask &= ts >= lo
            if hi is not None:
                mask &= ts <= hi
            if not mask.all():
                ts = ts[mask]
                cols = {k: v[mask] for k, v in cols.items()}
        if len(ts) == 0:
            raise DataError(f"redis stream {brief(self.stream)} has no entries in the requested time range")
        if np.any(np.diff(ts) < 0):
            order = np.argsort(ts, kind="stable")
            ts = ts[order]
            cols = {k: v[order] for k, v in cols.items()}
        ArraySource.__init__(self, np.ascontiguousarray(ts), {k: np.ascontiguousarray(v) for k, v in cols.items()})

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update(stream=self.stream, last_id=self.last_id)
        return out
