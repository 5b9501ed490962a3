"""Plot markers as values: what an ``on_batch`` callback may return, and the ``marks`` DataFrame.

A mark itself is a control action (``controls.parse_mark``, ``Session.mark``, ``MarkEvent``); this module
reads a callback's return value into ``mark`` calls and turns marks into the DataFrame clients show.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from .batch import Batch
from .controls import MAX_MARKS, parse_mark
from .exceptions import InvalidValueError, brief

__all__ = ["MARK_FIELDS", "returned_marks", "marks_frame"]

#: Argument names of a mark (``Session.mark``, the ``mark`` control, a returned dict or DataFrame's columns).
MARK_FIELDS = ("time", "y", "text", "side")


def _scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    try:
        if value is not None and not isinstance(value, (str, bytes)) and pd.isna(value):
            return None
    except (TypeError, ValueError):  # not a scalar: the normaliser refuses it with its own message
        pass
    return value


def _one(mark: Any, where: str) -> dict[str, Any]:
    if not isinstance(mark, Mapping):
        raise InvalidValueError(
            f"{where} must be a dict with keys {list(MARK_FIELDS)}, got {type(mark).__name__}"
        )
    unknown = [k for k in mark if k not in MARK_FIELDS]
    if unknown:
        raise InvalidValueError(f"unknown mark key(s) {brief(unknown[:5])}; a mark has {list(MARK_FIELDS)}")
    return {k: _scalar(v) for k, v in mark.items()}


def returned_marks(value: Any, batch: Batch | None = None) -> list[dict[str, Any]]:
    """The marks an ``on_batch`` callback returned, as normalised ``mark`` keyword arguments in order
    (``controls.parse_mark``; all are checked before any is marked). A mark without a time gets
    the time of ``batch``'s last row (the callback's batch: later rows may be out when it is marked).

    ``None``: none. A dict (``{"side": "buy"}``), a list/tuple of dicts, or a DataFrame whose columns are
    among ``time, y, text, side``. Anything else, an unknown key or more than ``MAX_MARKS`` marks raises
    ``InvalidValueError`` (counted as a failure of that callback; the replay goes on).
    """
    if value is None:
        return []
    rows: Iterable[Any]
    if isinstance(value, Mapping):
        rows, count = [value], 1
    elif isinstance(value, pd.DataFrame):
        unknown = [c for c in value.columns if c not in MARK_FIELDS]
        if unknown:
            raise InvalidValueError(
                f"returned marks DataFrame has unknown column(s) {brief(unknown[:5])}; use {list(MARK_FIELDS)}"
            )
        rows = value.to_dict("records") if len(value) <= MAX_MARKS else ()
        count = len(value)
    elif isinstance(value, (list, tuple)):
        rows, count = value, len(value)
    else:
        raise InvalidValueError(
            "an on_batch callback returns None or marks: a dict with keys "
            f"{list(MARK_FIELDS)}, a list of them or a DataFrame; got {type(value).__name__}"
        )
    if count > MAX_MARKS:
        raise InvalidValueError(f"a callback returned {count:,} marks; at most {MAX_MARKS:,} are kept")
    out = [parse_mark(**_one(m, "each returned mark")) for m in rows]
    default_ns = int(batch.ts[-1]) if batch is not None and len(batch) else None
    for m in out:
        if m["time"] is None:
            m["time"] = default_ns
    return out


def marks_frame(marks: Iterable[Mapping[str, Any]], tz: Any = None, time_column: str = "time") -> pd.DataFrame:
    """Marks (``MarkEvent.to_json()`` dicts) as a DataFrame: ``time`` (tz-aware like ``frame()``), ``y``
    (NaN: the plotted value), ``text``, ``side`` (None where not given)."""
    items = list(marks)
    ns = np.fromiter((int(m["time_ns"]) for m in items), np.int64, len(items))
    index = pd.DatetimeIndex(ns.view("datetime64[ns]"), tz="UTC")
    if tz is not None:
        index = index.tz_convert(tz)
    y = np.fromiter((np.nan if m.get("y") is None else float(m["y"]) for m in items), np.float64, len(items))
    return pd.DataFrame({
        time_column: index,
        "y": y,
        "text": pd.Series([m.get("text") for m in items], dtype=object),
        "side": pd.Series([m.get("side") for m in items], dtype=object),
    })
