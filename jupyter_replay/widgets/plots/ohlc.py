"""Plot kind ``ohlc``: candlesticks plus a volume panel (per group of ``by=``: candles in the group's colour,
hollow when up, one legend entry hiding the group's candles, line and volume).

Two ways to get bars, both drawn **in the browser** from the streamed rows (in the attached path the rows go
from the server straight to BokehJS and never pass through the kernel; js/src/plots/candles.js):

- ``ohlc=("open", "high", "low", "close")``: every row is a bar (daily, weekly, monthly bar data). The
  candle width is ``BAR_FILL`` of the rows' typical spacing (the median gap of the time column, per group),
  or of ``bar=``.
- otherwise one price column (``y``) is bucketed by ``bar=`` of data time (tick data); the automatic width
  (:func:`auto_bar_ms`) gives about 120 bars over the data and is never narrower than the rows' spacing.
  ``y`` with several columns is refused (it would silently use the first): use ``ohlc=`` for bar columns.

Bars go to sources named :data:`BARS_NAME` (then ``_1``, ...) with columns ``time open high low close volume
dir`` (``dir`` is +1 up / -1 down, coloured by a mapper); the close (or price) is also drawn as a thin line.
"""

from __future__ import annotations

from typing import Any

from ...exceptions import InvalidValueError, brief
from ..plot_marks import add_marks
from .common import (
    ANCHOR_NAME,
    BAR_FILL,
    BARS_NAME,
    SOURCE_NAME,
    TIME_MS,
    anchor,
    auto_bar_ms,
    check_numeric,
    choose_y,
    default_volume,
    empty,
    figure_for,
    plottable_columns,
    series_names,
    typical_spacing_ms,
    value_bounds,
    y_bounds,
)
from .groups import series_style
from .registry import PlotRequest, register

_UP, _DOWN = "#26a69a", "#ef5350"
BAR_KEYS = ["time", "open", "high", "low", "close", "volume", "dir"]
#: Candles kept per series (BokehJS draws every one; the raw line keeps ``rollover`` rows).
BAR_ROLLOVER = 5_000


def _columns(req: PlotRequest) -> tuple[str, list[str] | None]:
    """(price column, the ohlc columns or None)."""
    if req.ohlc is not None:
        check_numeric(req.ohlc, req.dtypes, req.values, what="ohlc")
        return req.ohlc[3], list(req.ohlc)
    ys = choose_y(req.y, req.dtypes, req.values, exclude=req.groups.by if req.groups else None)
    if len(ys) > 1:
        raise InvalidValueError(
            f"kind='ohlc' buckets one price column into bars, got y={brief(ys)}; for bars in columns pass "
            "ohlc=('open', 'high', 'low', 'close') (each row is a bar)"
        )
    return ys[0], None


def _widths(req: PlotRequest, rows_are_bars: bool) -> list[float]:
    """The bar interval (ms) of each series: ``bar=``, else from the rows' spacing (per group)."""
    if req.bar_ms is not None:
        if not req.bar_ms > 0:
            raise InvalidValueError(f"bar width must be > 0 ms, got bar_ms={brief(req.bar_ms)}")
        return [float(req.bar_ms)] * req.series
    overall = typical_spacing_ms(req.times_ns)
    spacing = req.groups.spacing_ms(req.times_ns, req.by_values) if req.groups else [overall]
    out = []
    for s in spacing:
        s = s or overall
        out.append(float(s) if rows_are_bars and s else float(auto_bar_ms(req.span_ns, spacing_ms=s)))
    return out


@register("ohlc")
def build(req: PlotRequest) -> tuple[Any, dict[str, Any]]:
    from bokeh.layouts import column
    from bokeh.models import ColumnDataSource, LinearColorMapper
    from bokeh.models.annotations import Legend, LegendItem
    from bokeh.transform import transform

    price, ohlc = _columns(req)
    cols = plottable_columns(req.dtypes)
    vol = req.volume if req.volume is not None else default_volume(req.dtypes)
    if vol is not None and vol not in cols:
        raise InvalidValueError(
            f"volume column {brief(vol)} is not a numeric column; pass volume= one of {brief(cols)}"
        )
    widths = _widths(req, ohlc is not None)
    raw_cols = [TIME_MS, price] + ([vol] if vol else [])
    names = series_names(SOURCE_NAME, req.series)
    bar_names = series_names(BARS_NAME, req.series)
    labels = req.groups.labels() if req.groups else None

    fig = figure_for(req.title, req.height)
    vb = value_bounds(req.values, [vol]) if vol else None
    volfig = figure_for("", max(80, req.height // 3), x_range=fig.x_range)
    items = []  # one legend item per group: its candles, close line and volume bars (the other panel)
    for g in range(req.series):
        source = ColumnDataSource(data=empty(raw_cols), name=names[g])
        bars = ColumnDataSource(data=empty(BAR_KEYS), name=bar_names[g])
        w = widths[g] * BAR_FILL
        line: Any
        edge: Any
        vol_fill: Any
        if labels is None:
            fill = edge = transform("dir", LinearColorMapper(palette=[_DOWN, _UP], low=-1, high=1))
            line, vol_fill, vol_alpha = "#555555", fill, 1.0
        else:
            colour, _ = series_style(g)
            fill = transform("dir", LinearColorMapper(palette=[colour, "#ffffff"], low=-1, high=1))  # up: hollow
            line = edge = vol_fill = colour
            vol_alpha = 0.4
        renderers: list[Any] = [
            fig.segment("time", "high", "time", "low", source=bars, color=edge),
            fig.vbar("time", w, "open", "close", source=bars, fill_color=fill, line_color=edge),
            fig.line(TIME_MS, price, source=source, line_width=1, color=line, alpha=0.35),
            volfig.vbar("time", w, "volume", 0, source=bars, fill_color=vol_fill, fill_alpha=vol_alpha,
                        line_color=None),
        ]
        if labels is not None:
            items.append(LegendItem(label=labels[g], renderers=renderers))
    anchor(fig, ANCHOR_NAME, req.x, y_bounds(value_bounds(req.values, ohlc or [price])))
    add_marks(fig)
    if items:
        fig.add_layout(Legend(items=items, location="top_left", click_policy="hide"))
    fig.yaxis.axis_label = price if ohlc is None else "price"
    fig.xaxis.visible = False
    vb2 = (0.0, max(1.0, vb[1])) if vb is not None else (0.0, 1.0)
    anchor(volfig, ANCHOR_NAME + "_volume", req.x, vb2)
    volfig.yaxis.axis_label = vol or "rows"
    yaxis: Any = volfig.yaxis  # bokeh's splat list: setting an attribute sets it on every y axis
    yaxis.ticker.desired_num_ticks = 3  # a short panel: a few labels, not a crowded column
    model = column(fig, volfig, sizing_mode="stretch_width")
    return model, {
        "sources": names, "columns": raw_cols, "anchors": [ANCHOR_NAME, ANCHOR_NAME + "_volume"],
        "bars": bar_names[0], "bar_sources": bar_names, "price": price, "volume": vol, "ohlc": ohlc,
        "bar_ms": widths[0], "bar_widths": widths, "bar_rollover": BAR_ROLLOVER,
    }
