"""``jr.replay(...)`` options: unknown keywords raise ``TypeError``; data options pass through; errors name the fix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import jupyter_replay as jr
from jupyter_replay import DataError

DATES = pd.DataFrame({"date": pd.to_datetime(["2020-01-01", None, "2020-01-03"]), "price": [1.0, 2.0, 3.0]})


@pytest.mark.parametrize("name", ["hue", "color", "groupby", "open", "dropNA"])  # (by= is an option now)
def test_unknown_keyword_raises_type_error_naming_it(name: str) -> None:
    with pytest.raises(TypeError, match=rf"unexpected keyword argument\(s\) '{name}'"):
        jr.replay(DATES, time="date", dropna=True, **{name: "x"})


def test_dropna_passes_through() -> None:
    with pytest.raises(DataError, match="dropna=True"):
        jr.replay(DATES, time="date")
    r = jr.replay(DATES, time="date", dropna=True)
    try:
        assert r.status["num_rows"] == 2
    finally:
        r.close()


def test_time_unit_passes_through() -> None:
    df = pd.DataFrame({"t": np.array([1_600_000_000, 1_600_086_400]), "price": [1.0, 2.0]})
    with pytest.raises(DataError, match="time_unit='s'"):
        jr.replay(df, time="t")
    r = jr.replay(df, time="t", time_unit="s")
    try:
        assert pd.Timestamp(r.status["start_ns"]) == pd.Timestamp("2020-09-13 12:26:40")
    finally:
        r.close()


def test_prices_as_text_name_the_column_and_pd_to_numeric() -> None:
    df = pd.DataFrame({"date": pd.date_range("2020", periods=3), "price": ["1.5", "2", "3"]})
    for kwargs in ({}, {"y": "price"}):
        with pytest.raises(DataError, match=r"\['price'\].*as text.*pd\.to_numeric\(df\['price'\]\)"):
            jr.replay(df, time="date", **kwargs)
