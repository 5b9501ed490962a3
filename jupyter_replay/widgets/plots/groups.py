"""``by=``: one series per group of a column (long-format data ``date, symbol, price``).

The groups are fixed when the spec is built, so each keeps its series, its source and its colour for the
widget's life (resets, seeks, modes): the unique values of the ``by`` column of in-memory data, sorted
(text, categories or integers), or the ``groups=`` list as given (needed for data that is not in memory,
and to pick a subset). Rows of a group not in the list are not drawn. The browser splits each frame's rows
by the ``by`` column once (js/src/plots/groups.js) into one window and one source per group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ...exceptions import DataError, InvalidValueError, brief
from .common import DASHES, PALETTE, typical_spacing_ms

__all__ = ["MAX_GROUPS", "Groups", "resolve_groups", "series_style"]

#: More series than this are unreadable (and each costs a window and a source in the browser).
MAX_GROUPS = 32

GroupValue = str | int


@dataclass(frozen=True)
class Groups:
    """The ``by`` column and its groups, in series order."""

    by: str
    values: tuple[GroupValue, ...]

    def __len__(self) -> int:
        return len(self.values)

    def labels(self) -> list[str]:
        return [str(v) for v in self.values]

    def spacing_ms(self, times_ns: Any, column: Any, sample: int = 1_000_000) -> list[float | None]:
        """The typical row interval of each group (median gap of its times, see ``typical_spacing_ms``)."""
        if times_ns is None or column is None:
            return [None] * len(self.values)
        t = np.asarray(times_ns)[:sample]
        col = np.asarray(column)[:sample]
        return [typical_spacing_ms(t[col == v]) for v in self.values]


def series_style(index: int, column: int = 0) -> tuple[str, str]:
    """(colour, dash) of series ``index`` (its ``column``-th value column): colours by series, dashes once
    the palette repeats and for further columns of one group."""
    return PALETTE[index % len(PALETTE)], DASHES[(index // len(PALETTE) + column) % len(DASHES)]


def _scalar(v: Any) -> GroupValue | None:
    """A group value as JSON (what the wire's dictionary or int column decodes to in the browser)."""
    if isinstance(v, (bool, np.bool_)):
        return None
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, str):
        return v
    return None


def _check_given(by: str, groups: Sequence[Any]) -> tuple[GroupValue, ...]:
    if isinstance(groups, (str, bytes)) or not isinstance(groups, Sequence):
        raise InvalidValueError(f"groups= must be a list of values of the {brief(by)} column, got {brief(groups)}")
    out: list[GroupValue] = []
    for v in groups:
        s = _scalar(v)
        if s is None:
            raise InvalidValueError(f"groups= values must be text or integers, got {brief(v)}")
        if s in out:
            raise InvalidValueError(f"groups= names {brief(s)} twice")
        out.append(s)
    if not out:
        raise InvalidValueError("groups= is empty: name at least one group to draw")
    if len(out) > MAX_GROUPS:
        raise InvalidValueError(f"groups= names {len(out)} groups, at most {MAX_GROUPS} can be drawn; pass fewer")
    return tuple(out)


def resolve_groups(
    dtypes: Mapping[str, Any], values: Mapping[str, Any] | None, by: str | None, groups: Sequence[Any] | None
) -> Groups | None:
    """The groups of ``by`` (None without ``by``). Errors name the column and the fix: a missing column
    (with the columns there are), a column that is not text/categorical/integer, more than ``MAX_GROUPS``
    groups, and data that is not in memory without ``groups=``."""
    if by is None:
        if groups is not None:
            raise InvalidValueError("groups= picks groups of the by= column: pass by= too (e.g. by='symbol')")
        return None
    if not isinstance(by, str):
        raise InvalidValueError(f"by= must be a column name, got {brief(by)}")
    if by not in dtypes:
        raise DataError(f"by column {brief(by)} not found; the columns are {brief(list(dtypes), 200)}")
    kind = np.dtype(dtypes[by]).kind
    if kind not in "OUiu":
        raise DataError(
            f"by column {brief(by)} holds {np.dtype(dtypes[by])}; it must hold text, categories or integers "
            "(one series per value)"
        )
    if groups is not None:
        return Groups(by, _check_given(by, groups))
    col = values.get(by) if isinstance(values, Mapping) else None
    if col is None:
        raise InvalidValueError(
            f"by={brief(by)} needs groups=[...] for data that is not in memory (the groups cannot be known "
            "before the rows arrive): name the groups to draw"
        )
    uniq = [u for u in pd.unique(np.asarray(col)) if u is not None and not (isinstance(u, float) and u != u)]
    found = [_scalar(u) for u in uniq]
    bad = [u for u, s in zip(uniq, found) if s is None]
    if bad:
        raise DataError(f"by column {brief(by)} holds values that are not text or integers, e.g. {brief(bad[0])}")
    if len(found) > MAX_GROUPS:
        raise DataError(
            f"by column {brief(by)} has {len(found)} groups, at most {MAX_GROUPS} can be drawn: filter the data "
            f"or pass groups=[...] with the ones to draw (e.g. {brief(sorted(found, key=_order)[:5])})"
        )
    if not found:
        raise DataError(f"by column {brief(by)} holds no values (every row is empty): nothing to group by")
    return Groups(by, tuple(sorted(found, key=_order)))  # type: ignore[arg-type]


def _order(v: GroupValue | None) -> tuple[int, Any]:
    return (0, v) if isinstance(v, int) else (1, str(v))
