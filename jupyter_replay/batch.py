"""Columnar data in flight: ``Chunk`` (from sources) and the events a session emits."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar, Union

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = [
    "TIME_COLUMN",
    "Batch",
    "Chunk",
    "Event",
    "MarkEvent",
    "Mode",
    "ResetEvent",
    "StateEvent",
    "can_merge",
    "merge_batches",
]

#: Name of the time column in DataFrames and Arrow batches the engine produces.
TIME_COLUMN = "timestamp"


class Mode(str, Enum):
    """What feeds a session."""

    REPLAY = "replay"  # recorded data, paced by a virtual clock
    LIVE = "live"  # a live feed, on the wall clock


@dataclass(frozen=True, slots=True)
class Chunk:
    """Rows from a source: int64 ns timestamps plus value columns of the same length."""

    ts: np.ndarray
    columns: Mapping[str, np.ndarray]

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def slice(self, start: int, stop: int) -> Chunk:
        """Rows ``start:stop`` as numpy views (no copies)."""
        return Chunk(self.ts[start:stop], {k: v[start:stop] for k, v in self.columns.items()})

    @staticmethod
    def empty(columns: Mapping[str, np.dtype]) -> Chunk:
        """A zero-row chunk with the given column dtypes."""
        return Chunk(np.empty(0, np.int64), {k: np.empty(0, dt) for k, dt in columns.items()})

    @staticmethod
    def concat(chunks: Sequence[Chunk]) -> Chunk:
        """Concatenate chunks with the same columns (a single chunk is returned as is)."""
        chunks = [c for c in chunks if len(c)] or list(chunks[:1])
        if len(chunks) == 1:
            return chunks[0]
        names = list(chunks[0].columns)
        return Chunk(
            np.concatenate([c.ts for c in chunks]),
            {k: np.concatenate([c.columns[k] for c in chunks]) for k in names},
        )


#: pandas' dtype for a column of text ("str" on pandas 3, object before)
_TEXT_DTYPE = pd.Series(["x"]).dtype


def _frame(ts: np.ndarray, columns: Mapping[str, np.ndarray], time_column: str, tz: Any) -> pd.DataFrame:
    index = pd.DatetimeIndex(ts.view("datetime64[ns]"), tz="UTC", name=time_column)
    if tz is not None:
        index = index.tz_convert(tz)
    data: dict[str, Any] = {time_column: index}
    for name, col in columns.items():
        # object columns hold text (pandas infers its text dtype from the values); with no rows there is
        # nothing to infer from, so an emptied buffer keeps the text dtype its rows had
        data[name] = pd.Series(col, dtype=_TEXT_DTYPE) if col.dtype == object and not len(col) else col
    return pd.DataFrame(data)


@dataclass(frozen=True, slots=True)
class Batch:
    """Rows released by a session; ``seq`` is the session's sequence number for this event."""

    seq: int
    session_id: str
    mode: Mode
    ts: np.ndarray
    columns: Mapping[str, np.ndarray]
    first_row: int  # index of the first row in this mode's stream since the last reset
    #: REPLAY: index in the source of this batch's first row (a resume continues it, a restart goes back);
    #: LIVE: rows since the feed started. None when unknown (e.g. built by hand).
    position: int | None = None
    #: True for rows released as warm-up history before a seek's cut (``seek(..., warmup=...)``).
    warmup: bool = False
    kind: ClassVar[str] = "batch"

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    @property
    def last_row(self) -> int:
        """Index one past the last row (``first_row + len``)."""
        return self.first_row + len(self)

    def to_pandas(self, time_column: str = TIME_COLUMN, tz: Any = None) -> pd.DataFrame:
        """The rows as a DataFrame with a tz-aware time column."""
        return _frame(self.ts, self.columns, time_column, tz)

    def to_arrow(self, time_column: str = TIME_COLUMN) -> pa.RecordBatch:
        """The rows as an Arrow record batch (time column as ``timestamp[ns, UTC]``)."""
        from .sources.arrow import (
            chunk_to_arrow,  # late: the sources package imports this module
        )

        return chunk_to_arrow(Chunk(self.ts, self.columns), time_column)


@dataclass(frozen=True, slots=True)
class StateEvent:
    """The session's status changed (state, speed, mode, loop, position after a seek...)."""

    seq: int
    session_id: str
    status: dict[str, Any] = field(default_factory=dict)
    kind: ClassVar[str] = "state"


@dataclass(frozen=True, slots=True)
class ResetEvent:
    """The session's buffer and plots were cleared (``reason``: mode, stop, seek, loop, restart, source)."""

    seq: int
    session_id: str
    mode: Mode
    reason: str
    #: the stream's columns after the reset as (name, numpy dtype str): clients rebuild their mirror with them
    columns: tuple[tuple[str, str], ...] = ()
    #: Where the stream resumes: the source row of the next row in REPLAY (0 after a restart, the old
    #: position after LIVE -> REPLAY), 0 in LIVE. None when unknown.
    position: int | None = None
    kind: ClassVar[str] = "reset"


@dataclass(frozen=True, slots=True)
class MarkEvent:
    """A marker on the plot (``Session.mark``): a buy/sell triangle and/or a text label at ``time_ns``.

    ``y`` None: the plot puts it on its plotted value at that time. Marks belong to the stream: every
    reset clears them (``ResetEvent``), and late joiners get the current ones with the history.
    """

    seq: int
    session_id: str
    time_ns: int
    y: float | None = None
    text: str | None = None
    side: str | None = None
    kind: ClassVar[str] = "mark"

    def to_json(self) -> dict[str, Any]:
        """The mark as the wire's JSON object (``time_ms`` for BokehJS, ``time_ns`` exact)."""
        return {"seq": int(self.seq), "time_ns": int(self.time_ns), "time_ms": self.time_ns / 1e6,
                "y": self.y, "text": self.text, "side": self.side}


Event = Union[Batch, StateEvent, ResetEvent, MarkEvent]  # noqa: UP007 - a runtime alias (isinstance checks, older callers)


def can_merge(a: Batch, b: Batch, max_rows: int | None = None) -> bool:
    """Whether ``b`` continues ``a`` so the two may travel as one frame without losing anything.

    The one merge rule (comm sender, WebSocket writer, wire): same mode, later seq, ``b``'s rows follow
    ``a``'s directly (in the stream and in the source), both warm-up or neither, same column names and
    dtypes, and (with ``max_rows``) at most ``max_rows`` rows in all. A caller that accumulates a run
    passes the run's last batch as ``a`` and checks its own row total.
    """
    if b.seq <= a.seq or b.mode != a.mode or b.first_row != a.first_row + len(a) or b.warmup != a.warmup:
        return False
    if a.position is not None and b.position is not None and b.position != a.position + len(a):
        return False
    if list(a.columns) != list(b.columns):
        return False
    if any(np.asarray(a.columns[k]).dtype != np.asarray(b.columns[k]).dtype for k in a.columns):
        return False
    return max_rows is None or len(a) + len(b) <= max_rows


def merge_batches(batches: Sequence[Batch]) -> Batch:
    """Consecutive batches (``can_merge`` pairwise) as one: seq and mode of the last, rows of all.

    ``ValueError`` if a pair does not continue; one batch is returned as is.
    """
    if not batches:
        raise ValueError("nothing to merge")
    if len(batches) == 1:
        return batches[0]
    for prev, cur in itertools.pairwise(batches):
        if not can_merge(prev, cur):
            raise ValueError(
                f"batch seq {cur.seq} (rows from {cur.first_row}) does not continue seq {prev.seq} "
                f"(rows {prev.first_row}..{prev.last_row}): same mode, contiguous rows and columns needed"
            )
    first, last = batches[0], batches[-1]
    chunk = Chunk.concat([Chunk(b.ts, b.columns) for b in batches])
    return Batch(
        last.seq, last.session_id, last.mode, chunk.ts, dict(chunk.columns), first.first_row,
        first.position, first.warmup,
    )
