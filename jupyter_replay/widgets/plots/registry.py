"""Plot kinds by name and :func:`plot_spec`, the one entry point that builds a spec for the widget JS.

A kind is one module (``line.py``, ``ohlc.py``) registering a builder with :func:`register`: it gets a
:class:`PlotRequest` (the checked, kind-independent inputs) and returns the Bokeh model and its spec fields.
The browser side registers the same names in js/src/plots/index.js.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...exceptions import InvalidValueError, brief
from ..plot_marks import MARKS_NAME
from .common import LIVE_SPAN_MS, as_list, x_bounds
from .groups import Groups, resolve_groups

if TYPE_CHECKING:
    from bokeh.model import Model

__all__ = ["PlotRequest", "register", "kinds", "plot_spec"]


@dataclass(frozen=True)
class PlotRequest:
    """What a kind builds from (``y`` as given: None means the kind's default)."""

    dtypes: Mapping[str, Any]
    y: list[str] | None
    volume: str | None
    ohlc: tuple[str, ...] | None
    bar_ms: float | None
    span_ns: int | None
    title: str
    height: int
    x: tuple[float, float]  # the empty plot's time extent (ms)
    values: Mapping[str, Any] | None  # in-memory columns (bounds, groups, spacing), or None
    times_ns: Any  # in-memory int64 ns times, or None
    groups: Groups | None

    @property
    def series(self) -> int:
        """Sources (one per group; one without ``by``)."""
        return len(self.groups) if self.groups else 1

    @property
    def by_values(self) -> Any:
        return self.values.get(self.groups.by) if self.groups and self.values else None


Builder = Callable[[PlotRequest], "tuple[Model, dict[str, Any]]"]
_KINDS: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    """Register a kind's builder under ``name`` (the spec's ``kind``, the JS kind's ``static kind``)."""

    def deco(fn: Builder) -> Builder:
        _KINDS[name] = fn
        return fn

    return deco


def kinds() -> tuple[str, ...]:
    return tuple(_KINDS)


def plot_spec(
    kind: str,
    dtypes: Mapping[str, Any],
    *,
    y: str | Sequence[str] | None = None,
    volume: str | None = None,
    ohlc: Sequence[str] | None = None,
    by: str | None = None,
    groups: Sequence[Any] | None = None,
    bar_ms: float | None = None,
    span_ns: int | None = None,
    rollover: int = 100_000,
    title: str = "",
    height: int = 300,
    time_ns: tuple[int, int] | None = None,
    values: Mapping[str, Any] | None = None,
    times_ns: Any = None,
) -> dict[str, Any]:
    """A JSON-safe plot spec for the widget JS.

    ``{"kind", "item" (bokeh json_item), "source" (the first of "sources"), "sources" (one
    ColumnDataSource per series), "by", "groups", "columns" (each raw source's columns), "rollover",
    "anchors", "anchor_now_ms", ...}`` plus the kind's own fields (``ohlc``: "bars"/"bar_sources", "price",
    "volume", "ohlc", "bar_ms", "bar_rollover"). ``by`` draws one series per group (see ``groups.py``).
    ``time_ns`` (first, last timestamp) and ``values`` (in-memory columns: their min/max, groups) set the
    extent of the empty plot; without ``time_ns`` it is a live plot (the last minute, kept current by the
    JS). ``times_ns``: in-memory times (int64 ns), for the row spacing of bar data.
    """
    from bokeh.embed import json_item

    if kind not in _KINDS:
        raise InvalidValueError(f"kind must be one of {kinds()}, got {brief(kind)}")
    if ohlc is not None and (isinstance(ohlc, str) or len(ohlc) != 4):
        raise InvalidValueError(f"ohlc= names 4 columns (open, high, low, close), got {brief(ohlc)}")
    req = PlotRequest(
        dtypes=dtypes, y=as_list(y), volume=volume, ohlc=tuple(str(c) for c in ohlc) if ohlc is not None else None,
        bar_ms=bar_ms, span_ns=span_ns, title=title, height=height,
        x=x_bounds((time_ns[0] / 1e6, time_ns[1] / 1e6) if time_ns is not None else None),
        values=values, times_ns=times_ns, groups=resolve_groups(dtypes, values, by, groups),
    )
    model, fields = _KINDS[kind](req)
    sources = fields.pop("sources")
    spec: dict[str, Any] = {
        "kind": kind, "source": sources[0], "sources": sources, "rollover": max(1, int(rollover)),
        "by": req.groups.by if req.groups else None, "groups": list(req.groups.values) if req.groups else None,
        "bars": None, "bar_sources": None, "price": None, "volume": None, "ohlc": None, "bar_ms": None,
        "bar_widths": None, "bar_rollover": None, "anchor_now_ms": None if time_ns is not None else LIVE_SPAN_MS,
        "marks": MARKS_NAME,  # the marks layer (plot_marks), drawn by every kind on its price figure
    }
    spec.update(fields)
    spec["item"] = json_item(model)
    return spec
