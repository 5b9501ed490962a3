"""Plot kind ``line``: value columns against time, one line per column (and per group of ``by=``).

A line skips rows where its column is NaN (merged streams: each stream's columns are NaN on the other
stream's rows); the browser's decimation (js/src/plots/m4.js) bridges them, never drawing a gap or a spike.
"""

from __future__ import annotations

from typing import Any

from ...exceptions import InvalidValueError
from ..plot_marks import add_marks
from .common import (
    ANCHOR_NAME,
    SOURCE_NAME,
    TIME_MS,
    anchor,
    choose_y,
    empty,
    figure_for,
    series_names,
    value_bounds,
    y_bounds,
)
from .groups import series_style
from .registry import PlotRequest, register


@register("line")
def build(req: PlotRequest) -> tuple[Any, dict[str, Any]]:
    from bokeh.models import ColumnDataSource

    if req.ohlc is not None:
        raise InvalidValueError("ohlc= draws candles: pass kind='ohlc' (or leave kind= out)")
    ys = choose_y(req.y, req.dtypes, req.values, exclude=req.groups.by if req.groups else None)
    names = series_names(SOURCE_NAME, req.series)
    labels = req.groups.labels() if req.groups else [""]
    fig = figure_for(req.title, req.height)
    legend = req.groups is not None or len(ys) > 1
    for g, name in enumerate(names):
        source = ColumnDataSource(data=empty([TIME_MS, *ys]), name=name)
        for j, col in enumerate(ys):
            label = " ".join(p for p in (labels[g], col if len(ys) > 1 else "") if p)
            colour, dash = series_style(g, j) if req.groups else series_style(j)
            kwargs = {"legend_label": label} if legend else {}
            fig.line(TIME_MS, col, source=source, line_width=1.5, color=colour, line_dash=dash, **kwargs)
    anchor(fig, ANCHOR_NAME, req.x, y_bounds(value_bounds(req.values, ys)))
    add_marks(fig)
    if legend:
        fig.legend.location = "top_left"
        fig.legend.click_policy = "hide"
    if len(ys) == 1:
        fig.yaxis.axis_label = ys[0]
    return fig, {"sources": names, "columns": [TIME_MS, *ys], "anchors": [ANCHOR_NAME]}
