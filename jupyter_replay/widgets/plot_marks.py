"""The marks layer of a plot spec: where ``r.mark(...)`` and marks returned by callbacks are drawn.

One ``ColumnDataSource`` named :data:`MARKS_NAME` per spec, drawn on the price figure by two ``Text``
glyphs: the side as a triangle (buy: green ▲ just below the value, sell: red ▼ just above it; offsets in
screen pixels, so they stay next to the line at any zoom) and the label beyond it. The browser
(``js/src/plots/marks.js``) fills it as marks arrive, resolves a mark's missing ``y`` to the plotted value
at its time and clears it with the plot on every reset.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["MARKS_NAME", "MARK_COLUMNS", "BUY_COLOR", "SELL_COLOR", "add_marks"]

MARKS_NAME = "replay_marks"
#: The marks source's columns (the JS streams these): time in ms, value, the triangle character, its
#: colour and pixel offset, the label and its pixel offset.
MARK_COLUMNS = ("x", "y", "glyph", "color", "glyph_offset", "text", "text_offset")
BUY_COLOR, SELL_COLOR = "#2e7d32", "#c62828"


def add_marks(fig: Any) -> str:
    """Add the (empty) marks source and its glyphs to ``fig``; returns the source's name for the spec."""
    from bokeh.models import ColumnDataSource

    numbers = {"x", "y", "glyph_offset", "text_offset"}
    source = ColumnDataSource(
        data={c: (np.empty(0, np.float64) if c in numbers else []) for c in MARK_COLUMNS}, name=MARKS_NAME,
    )
    fig.text("x", "y", text="glyph", source=source, text_color="color", y_offset="glyph_offset",
             text_align="center", text_baseline="middle", text_font_size="15px")
    fig.text("x", "y", text="text", source=source, text_color="#333333", y_offset="text_offset",
             text_align="center", text_baseline="middle", text_font_size="11px")
    return MARKS_NAME
