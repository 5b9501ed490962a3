"""Bokeh figures for the replay widget, exported as ``json_item`` specs that the widget JS embeds.

Two kinds:

- ``line``: one or more numeric columns against time.
- ``ohlc``: candlesticks plus a volume panel. The bars are computed **in the browser** from the streamed
  rows (bucketed by ``bar_ms`` of data time), because in the attached path the rows go from the server
  straight to BokehJS and never pass through the kernel. The raw rows are also drawn as a thin last-price
  line.

Every spec has a ``ColumnDataSource`` named :data:`SOURCE_NAME` for the raw rows (the browser keeps the last
``rollover`` rows at full resolution and puts their per-pixel M4 decimation there); its time column
``timestamp`` is float milliseconds since the epoch (what BokehJS wants; int64 ns would fall back to slow
element-by-element encoding), shown on a datetime axis (:func:`datetime_formatter`: clock times at every
scale, the date under the first tick and wherever it changes). OHLC specs add a source named
:data:`BARS_NAME` with columns ``time open high low close volume dir`` (``dir`` is +1 up / -1 down,
coloured by a mapper).

Empty plots keep their axes and grid: ``DataRange1d`` finds no bounds without data (NaN ranges, no axes),
so each figure has an invisible *anchor* renderer (names in the spec's ``anchors``) whose two points span
the data's time range and value range (``[now - anchor_now_ms, now]`` for live specs, set by the JS).
The ranges only count visible renderers (``only_visible``); the JS shows the anchors while the raw
source is empty and hides them once rows arrive, so the ranges then follow the data as usual.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..exceptions import DataError, InvalidValueError, brief
from .plot_marks import MARKS_NAME, add_marks

if TYPE_CHECKING:  # bokeh is imported when a plot is built, not with the module
    from bokeh.model import Model
    from bokeh.plotting import figure

__all__ = [
    "SOURCE_NAME",
    "BARS_NAME",
    "TIME_MS",
    "KINDS",
    "plottable_columns",
    "numbers_as_text",
    "default_y",
    "default_volume",
    "auto_bar_ms",
    "datetime_formatter",
    "value_bounds",
    "plot_spec",
]

SOURCE_NAME = "replay_source"
BARS_NAME = "replay_bars"
TIME_MS = "timestamp"
KINDS = ("line", "ohlc")
ANCHOR_NAME = "replay_anchor"
#: Time span of an empty live plot (the JS anchors it at [now - span, now]).
LIVE_SPAN_MS = 60_000

_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
_UP, _DOWN = "#26a69a", "#ef5350"
_NICE_MS = [
    1, 2, 5, 10, 20, 50, 100, 200, 500,
    1_000, 2_000, 5_000, 10_000, 15_000, 30_000,
    60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000,
    3_600_000, 7_200_000, 14_400_000, 21_600_000, 43_200_000, 86_400_000,
]
_TOOLS = "pan,xwheel_zoom,box_zoom,reset,save"


def plottable_columns(dtypes: Mapping[str, Any]) -> list[str]:
    """Numeric (non-bool) columns, in order: the ones the wire format sends and a plot can draw."""
    out = []
    for name, dt in dtypes.items():
        kind = np.dtype(dt).kind
        if kind in "iuf" and name not in (TIME_MS, f"{TIME_MS}_ns"):
            out.append(str(name))
    return out


def default_y(dtypes: Mapping[str, Any]) -> list[str]:
    """``price`` if there is one, else the first float column, else the first numeric column."""
    cols = plottable_columns(dtypes)
    if not cols:
        return []
    for name in ("price", "last", "close", "value", "mid"):
        if name in cols:
            return [name]
    floats = [c for c in cols if np.dtype(dtypes[c]).kind == "f"]
    return [(floats or cols)[0]]


def default_volume(dtypes: Mapping[str, Any]) -> str | None:
    """A volume-like column (``volume``, ``size``, ``qty``, ``quantity``, ``amount``) if present."""
    cols = plottable_columns(dtypes)
    for name in ("volume", "size", "qty", "quantity", "amount"):
        if name in cols:
            return name
    return None


def auto_bar_ms(span_ns: int | None, target_bars: int = 120) -> int:
    """A round bar width giving about ``target_bars`` bars over ``span_ns`` (1 s when unknown)."""
    if not span_ns or span_ns <= 0:
        return 1_000
    raw = span_ns / 1e6 / target_bars
    for nice in _NICE_MS:
        if nice >= raw:
            return nice
    return _NICE_MS[-1]


def _as_list(y: str | Iterable[str] | None) -> list[str] | None:
    if y is None:
        return None
    if isinstance(y, str):
        return [y]
    return [str(c) for c in y]


def datetime_formatter():
    """Clock times at every scale (never "0ms / 500ms"); the date as context under the first tick and
    wherever it changes."""
    from bokeh.models import DatetimeTickFormatter

    context = DatetimeTickFormatter(
        microseconds="%Y-%m-%d", milliseconds="%Y-%m-%d", seconds="%Y-%m-%d", minsec="%Y-%m-%d",
        minutes="%Y-%m-%d", hourmin="%Y-%m-%d", hours="%Y-%m-%d", days="%Y", months="", years="",
        context_which="all", hide_repeats=True,
    )
    return DatetimeTickFormatter(
        microseconds="%H:%M:%S.%f",
        milliseconds="%H:%M:%S.%3N",
        seconds="%H:%M:%S",
        minsec="%H:%M:%S",
        minutes="%H:%M",
        hourmin="%H:%M",
        hours="%H:%M",
        days="%m/%d",
        months="%Y-%m",
        years="%Y",
        context=context,
        context_which="all",
    )


def value_bounds(values: Mapping[str, Any] | None, names: Iterable[str]) -> tuple[float, float] | None:
    """(min, max) over the finite values of the columns ``names`` of in-memory data (None if unknown)."""
    if not values:
        return None
    lo, hi = math.inf, -math.inf
    for name in names:
        col = values.get(name)
        if col is None:
            continue
        arr = np.asarray(col)
        if arr.dtype.kind not in "iuf" or not arr.size:
            continue
        if arr.dtype.kind == "f":
            arr = arr[np.isfinite(arr)]
            if not arr.size:
                continue
        lo, hi = min(lo, float(arr.min())), max(hi, float(arr.max()))
    return (lo, hi) if lo <= hi else None


def _figure(title: str, height: int, x_range: Any = None) -> figure:
    from bokeh.models import DataRange1d
    from bokeh.plotting import figure

    fig = figure(
        title=title or None,
        x_axis_type="datetime",
        x_range=x_range if x_range is not None else DataRange1d(only_visible=True),
        y_range=DataRange1d(only_visible=True),
        height=height,
        sizing_mode="stretch_width",
        tools=_TOOLS,
        toolbar_location="right",
        output_backend="webgl",  # BokehJS draws on canvas where the browser offers no WebGL
    )
    fig.xaxis.formatter = datetime_formatter()
    fig.toolbar.logo = None
    return fig


def _anchor(fig: Any, name: str, x: tuple[float, float], y: tuple[float, float]) -> None:
    """An invisible two-point renderer spanning ``x`` by ``y``: valid ranges (axes, grid) while empty."""
    from bokeh.models import ColumnDataSource

    src = ColumnDataSource(data={"x": np.asarray(x, np.float64), "y": np.asarray(y, np.float64)})
    fig.scatter("x", "y", source=src, size=0, fill_alpha=0, line_alpha=0, name=name)


def _x_bounds(span: tuple[float, float] | None) -> tuple[float, float]:
    if span is None or not all(math.isfinite(v) for v in span):
        now = time.time() * 1e3
        return (now - LIVE_SPAN_MS, now)
    lo, hi = span
    return (lo, hi) if hi > lo else (lo - LIVE_SPAN_MS / 2, lo + LIVE_SPAN_MS / 2)


def _y_bounds(span: tuple[float, float] | None) -> tuple[float, float]:
    return span if span is not None else (0.0, 1.0)


def _empty(names: Sequence[str]) -> dict[str, np.ndarray]:
    return {name: np.empty(0, np.float64) for name in names}


def _line(
    y: list[str], title: str, height: int, x: tuple[float, float], yb: tuple[float, float]
) -> tuple[Model, list[str]]:
    from bokeh.models import ColumnDataSource

    source = ColumnDataSource(data=_empty([TIME_MS, *y]), name=SOURCE_NAME)
    fig = _figure(title, height)
    for i, col in enumerate(y):
        kwargs = {"legend_label": col} if len(y) > 1 else {}
        fig.line(TIME_MS, col, source=source, line_width=1.5, color=_PALETTE[i % len(_PALETTE)], **kwargs)
    _anchor(fig, ANCHOR_NAME, x, yb)
    add_marks(fig)
    if len(y) > 1:
        fig.legend.location = "top_left"
        fig.legend.click_policy = "hide"
    elif y:
        fig.yaxis.axis_label = y[0]
    return fig, [ANCHOR_NAME]


def _ohlc(price: str, volume: str | None, bar_ms: float, title: str, height: int,
          x: tuple[float, float], yb: tuple[float, float], vb: tuple[float, float]) -> tuple[Model, list[str]]:
    from bokeh.layouts import column
    from bokeh.models import ColumnDataSource, LinearColorMapper
    from bokeh.transform import transform

    raw_cols = [TIME_MS, price] + ([volume] if volume else [])
    source = ColumnDataSource(data=_empty(raw_cols), name=SOURCE_NAME)
    bars = ColumnDataSource(data=_empty(["time", "open", "high", "low", "close", "volume", "dir"]), name=BARS_NAME)
    colors = LinearColorMapper(palette=[_DOWN, _UP], low=-1, high=1)
    fig = _figure(title, height)
    fig.segment("time", "high", "time", "low", source=bars, color=transform("dir", colors))
    fig.vbar(
        "time", bar_ms * 0.7, "open", "close", source=bars,
        fill_color=transform("dir", colors), line_color=transform("dir", colors),
    )
    fig.line(TIME_MS, price, source=source, line_width=1, color="#555555", alpha=0.35)
    _anchor(fig, ANCHOR_NAME, x, yb)
    add_marks(fig)
    fig.yaxis.axis_label = price
    fig.xaxis.visible = False
    vol = _figure("", max(80, height // 3), x_range=fig.x_range)
    vol.vbar("time", bar_ms * 0.7, "volume", 0, source=bars, fill_color=transform("dir", colors), line_color=None)
    _anchor(vol, ANCHOR_NAME + "_volume", x, vb)
    vol.yaxis.axis_label = volume or "rows"
    yaxis: Any = vol.yaxis  # bokeh's splat list: setting an attribute sets it on every y axis
    yaxis.ticker.desired_num_ticks = 3  # a short panel: a few labels, not a crowded column
    return column(fig, vol, sizing_mode="stretch_width"), [ANCHOR_NAME, ANCHOR_NAME + "_volume"]


def numbers_as_text(dtypes: Mapping[str, Any], values: Mapping[str, Any] | None, sample: int = 50) -> list[str]:
    """Text columns whose first ``sample`` values all read as numbers (e.g. prices loaded as strings)."""
    out = []
    for name, dt in dtypes.items():
        col = (values or {}).get(name)
        if np.dtype(dt).kind != "O" or col is None:
            continue
        head = [v for v in np.asarray(col[:sample]) if v is not None]
        try:
            if head and all(isinstance(v, str) for v in head):
                [float(v.replace(",", "")) for v in head]
                out.append(str(name))
        except ValueError:
            continue
    return out


def _text_hint(names: Sequence[str]) -> str:
    first = brief(str(names[0]), 40)
    return (
        f"column(s) {brief(list(names))} hold numbers stored as text, which cannot be plotted; convert them "
        f"first, e.g. df[{first}] = pd.to_numeric(df[{first}])"
    )


def plot_spec(
    kind: str,
    dtypes: Mapping[str, Any],
    *,
    y: str | Sequence[str] | None = None,
    volume: str | None = None,
    bar_ms: float | None = None,
    span_ns: int | None = None,
    rollover: int = 100_000,
    title: str = "",
    height: int = 300,
    time_ns: tuple[int, int] | None = None,
    values: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A JSON-safe plot spec for the widget JS.

    ``{"kind", "item" (bokeh json_item), "source", "bars", "columns" (raw source columns), "price",
    "volume", "bar_ms", "rollover", "bar_rollover", "anchors", "anchor_now_ms"}``. ``y`` names the plotted
    columns (line) or the price column (ohlc, first of ``y``); unknown names raise ``InvalidValueError``.
    ``time_ns`` (first, last timestamp) and ``values`` (in-memory columns, for their min/max) set the
    extent of the empty plot; without ``time_ns`` it is a live plot (the last minute, kept current by the JS).
    """
    from bokeh.embed import json_item

    if kind not in KINDS:
        raise InvalidValueError(f"kind must be one of {KINDS}, got {brief(kind)}")
    cols = plottable_columns(dtypes)
    ys = _as_list(y) or default_y(dtypes)
    missing = [c for c in ys if c not in cols]
    if missing:
        texts = [c for c in numbers_as_text(dtypes, values) if c in missing]
        if texts:
            raise DataError(_text_hint(texts))
        raise InvalidValueError(f"cannot plot {brief(missing)}: pass y= one of the numeric columns {brief(cols)}")
    if not ys:
        texts = numbers_as_text(dtypes, values)
        if texts:
            raise DataError(_text_hint(texts))
        raise DataError("no numeric column to plot: the data needs an int or float column besides the time")
    rollover = max(1, int(rollover))
    spec: dict[str, Any] = {"kind": kind, "source": SOURCE_NAME, "rollover": rollover, "bars": None,
                            "price": None, "volume": None, "bar_ms": None, "bar_rollover": None,
                            "anchor_now_ms": None if time_ns is not None else LIVE_SPAN_MS,
                            "marks": MARKS_NAME}  # the marks layer (plot_marks)
    x = _x_bounds((time_ns[0] / 1e6, time_ns[1] / 1e6) if time_ns is not None else None)
    if kind == "line":
        model, spec["anchors"] = _line(ys, title, height, x, _y_bounds(value_bounds(values, ys)))
        spec["columns"] = [TIME_MS, *ys]
    else:
        vol = volume if volume is not None else default_volume(dtypes)
        if vol is not None and vol not in cols:
            raise InvalidValueError(
                f"volume column {brief(vol)} is not a numeric column; pass volume= one of {brief(cols)}"
            )
        width = float(bar_ms) if bar_ms else float(auto_bar_ms(span_ns))
        if not width > 0:
            raise InvalidValueError(f"bar width must be > 0 ms, got bar_ms={brief(bar_ms)}")
        vb = value_bounds(values, [vol]) if vol else None
        vb = (0.0, max(1.0, vb[1])) if vb is not None else (0.0, 1.0)
        model, spec["anchors"] = _ohlc(ys[0], vol, width, title, height, x,
                                       _y_bounds(value_bounds(values, ys[:1])), vb)
        spec.update(
            columns=[TIME_MS, ys[0]] + ([vol] if vol else []),
            bars=BARS_NAME, price=ys[0], volume=vol, bar_ms=width, bar_rollover=5_000,
        )
    spec["item"] = json_item(model)
    return spec
