"""What every plot kind shares: column choice, the datetime axis, the empty-plot anchors, bar widths.

Every spec has ``ColumnDataSource`` s named :func:`source_names` (``replay_source``, then
``replay_source_1``, ... one per group of ``by=``) for the raw rows (the browser keeps the last
``rollover`` rows of each at full resolution and puts their per-pixel M4 decimation there); their time
column ``timestamp`` is float milliseconds since the epoch (what BokehJS wants; int64 ns would fall back to
slow element-by-element encoding), shown on a datetime axis (:func:`datetime_formatter`: clock times at
every scale, the date under the first tick and wherever it changes).

Empty plots keep their axes and grid: ``DataRange1d`` finds no bounds without data (NaN ranges, no axes),
so each figure has an invisible *anchor* renderer (names in the spec's ``anchors``) whose two points span
the data's time range and value range (``[now - anchor_now_ms, now]`` for live specs, set by the JS).
The ranges only count visible renderers (``only_visible``); the JS shows the anchors while the raw
sources are empty and hides them once rows arrive, so the ranges then follow the data as usual.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ...exceptions import DataError, InvalidValueError, brief

if TYPE_CHECKING:  # bokeh is imported when a plot is built, not with the module
    from bokeh.plotting import figure

__all__ = [
    "SOURCE_NAME",
    "BARS_NAME",
    "TIME_MS",
    "ANCHOR_NAME",
    "LIVE_SPAN_MS",
    "PALETTE",
    "plottable_columns",
    "numbers_as_text",
    "default_y",
    "default_volume",
    "auto_bar_ms",
    "typical_spacing_ms",
    "datetime_formatter",
    "value_bounds",
    "series_names",
    "check_numeric",
    "choose_y",
]

SOURCE_NAME = "replay_source"
BARS_NAME = "replay_bars"
TIME_MS = "timestamp"
ANCHOR_NAME = "replay_anchor"
#: Time span of an empty live plot (the JS anchors it at [now - span, now]).
LIVE_SPAN_MS = 60_000

#: Category10 then its light variants (Category20): series colours, by series (group) index.
PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
]
#: Dash patterns that tell series apart once the palette repeats (and columns of one group apart).
DASHES = ["solid", "dashed", "dotted", "dotdash"]
#: Candle body width as a share of the bar interval.
BAR_FILL = 0.7
_UP, _DOWN = "#26a69a", "#ef5350"
_NICE_MS = [
    1, 2, 5, 10, 20, 50, 100, 200, 500,
    1_000, 2_000, 5_000, 10_000, 15_000, 30_000,
    60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000,
    3_600_000, 7_200_000, 14_400_000, 21_600_000, 43_200_000, 86_400_000,
    7 * 86_400_000, 30.436875 * 86_400_000, 91.310625 * 86_400_000, 365.2425 * 86_400_000,
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


def auto_bar_ms(span_ns: int | None, target_bars: int = 120, spacing_ms: float | None = None) -> float:
    """A round bar width (1 ms .. 1 day, a week, a month, a quarter, a year) giving about ``target_bars``
    bars over ``span_ns`` and never narrower than the rows' typical ``spacing_ms`` (a monthly series gets
    monthly bars, not empty daily ones; a nice width within 10% below the spacing counts: months differ).
    1 s when nothing is known."""
    raw = span_ns / 1e6 / target_bars if span_ns and span_ns > 0 else 0.0
    if spacing_ms and spacing_ms > 0:
        raw = max(raw, 0.9 * spacing_ms)
    if raw <= 0:
        return 1_000
    for nice in _NICE_MS:
        if nice >= raw:
            return nice
    return _NICE_MS[-1]


def typical_spacing_ms(times_ns: Any, sample: int = 1_000_000) -> float | None:
    """The median gap between consecutive distinct times (ms) of the first ``sample`` of ``times_ns``
    (int64 ns, sorted): the row interval of bar data (daily, weekly, monthly). None with fewer than 2."""
    if times_ns is None:
        return None
    t = np.asarray(times_ns)[:sample].astype(np.int64, copy=False)
    d = np.diff(t)
    d = d[d > 0]
    return float(np.median(d)) / 1e6 if d.size else None


def as_list(y: str | Iterable[str] | None) -> list[str] | None:
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


def figure_for(title: str, height: int, x_range: Any = None) -> figure:
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


def anchor(fig: Any, name: str, x: tuple[float, float], y: tuple[float, float]) -> None:
    """An invisible two-point renderer spanning ``x`` by ``y``: valid ranges (axes, grid) while empty."""
    from bokeh.models import ColumnDataSource

    src = ColumnDataSource(data={"x": np.asarray(x, np.float64), "y": np.asarray(y, np.float64)})
    fig.scatter("x", "y", source=src, size=0, fill_alpha=0, line_alpha=0, name=name)


def x_bounds(span: tuple[float, float] | None) -> tuple[float, float]:
    if span is None or not all(math.isfinite(v) for v in span):
        now = time.time() * 1e3
        return (now - LIVE_SPAN_MS, now)
    lo, hi = span
    return (lo, hi) if hi > lo else (lo - LIVE_SPAN_MS / 2, lo + LIVE_SPAN_MS / 2)


def y_bounds(span: tuple[float, float] | None) -> tuple[float, float]:
    return span if span is not None else (0.0, 1.0)


def empty(names: Sequence[str]) -> dict[str, np.ndarray]:
    return {name: np.empty(0, np.float64) for name in names}


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


def text_hint(names: Sequence[str]) -> str:
    first = brief(str(names[0]), 40)
    return (
        f"column(s) {brief(list(names))} hold numbers stored as text, which cannot be plotted; convert them "
        f"first, e.g. df[{first}] = pd.to_numeric(df[{first}])"
    )


def series_names(base: str, count: int) -> list[str]:
    """Model names of one source per series: ``base``, ``base_1``, ... (the first keeps the plain name, so
    code that finds ``spec["source"]`` finds the first series)."""
    return [base] + [f"{base}_{i}" for i in range(1, count)]


def check_numeric(names: Sequence[str], dtypes: Mapping[str, Any], values: Mapping[str, Any] | None,
                  what: str = "y") -> None:
    """Every name is a plottable (numeric) column, else a typed error naming the columns and the fix
    (``DataError`` for numbers stored as text)."""
    cols = plottable_columns(dtypes)
    missing = [c for c in names if c not in cols]
    if not missing:
        return
    texts = [c for c in numbers_as_text(dtypes, values) if c in missing]
    if texts:
        raise DataError(text_hint(texts))
    raise InvalidValueError(f"cannot plot {brief(missing)}: pass {what}= one of the numeric columns {brief(cols)}")


def choose_y(y: list[str] | None, dtypes: Mapping[str, Any], values: Mapping[str, Any] | None,
             exclude: str | None = None) -> list[str]:
    """``y`` as given (checked numeric), or the default column (never ``exclude``, the ``by`` column); a
    ``DataError`` naming the columns when there is nothing numeric to plot."""
    ys = y or default_y({k: v for k, v in dtypes.items() if k != exclude})
    if not ys:
        texts = numbers_as_text(dtypes, values)
        if texts:
            raise DataError(text_hint(texts))
        raise DataError(
            f"no numeric column to plot among {brief(list(dtypes), 200)}: the data needs an int or float "
            "column besides the time"
        )
    check_numeric(ys, dtypes, values)
    return ys
