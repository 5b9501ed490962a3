"""Bokeh figures for the replay widget, exported as ``json_item`` specs that the widget JS embeds.

A plot kind is one registered module: ``line`` (value columns against time) and ``ohlc`` (candles and a
volume panel, bucketed from a price column or one bar per row with ``ohlc=``). ``by=`` draws one series per
group (``groups.py``). Shared pieces (columns, datetime axis, anchors, bar widths) are in ``common.py``,
the registry and :func:`plot_spec` in ``registry.py``. The browser side is js/src/plots/.
"""

from __future__ import annotations

from . import line, ohlc  # noqa: F401 - the kinds register themselves
from .common import (
    BARS_NAME,
    SOURCE_NAME,
    TIME_MS,
    auto_bar_ms,
    datetime_formatter,
    default_volume,
    default_y,
    numbers_as_text,
    plottable_columns,
    typical_spacing_ms,
    value_bounds,
)
from .groups import MAX_GROUPS, Groups, resolve_groups
from .registry import PlotRequest, kinds, plot_spec, register

#: The registered kinds (``kind=`` values).
KINDS = kinds()

__all__ = [
    "SOURCE_NAME", "BARS_NAME", "TIME_MS", "KINDS", "MAX_GROUPS", "Groups", "PlotRequest", "plottable_columns",
    "numbers_as_text", "default_y", "default_volume", "auto_bar_ms", "typical_spacing_ms", "datetime_formatter",
    "value_bounds", "plot_spec", "register", "resolve_groups", "kinds",
]
