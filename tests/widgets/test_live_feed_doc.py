"""The README's "LIVE needs a feed" example, run as written (with a stand-in for the broker's client):
a user's ``LiveSource`` plugged into ``jr.replay`` streams in LIVE, and the LIVE plot names its feed."""

from __future__ import annotations

import re
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

import jupyter_replay as jr

README = Path(__file__).resolve().parents[2] / "README.md"


class _Client:
    """What the example calls ``my_client``: an async iterator of ticks per symbol."""

    async def trades(self, symbol: str) -> Any:
        for i in range(1_000_000):
            yield SimpleNamespace(price=200.0 + i, size=i + 1)
            import asyncio

            await asyncio.sleep(0.01)


def _example() -> str:
    text = README.read_text()
    block = text.split("**LIVE needs a feed.**", 1)[1]
    return re.search(r"```python\n(.*?)```", block, re.S).group(1)  # type: ignore[union-attr]


def test_readme_live_feed_example_streams_in_live_mode() -> None:
    trades = pd.DataFrame({"ts": pd.date_range("2024-01-02", periods=50, freq="s"), "price": np.arange(50.0)})
    ns: dict[str, Any] = {"trades": trades, "my_client": _Client()}
    exec(compile(_example(), "README.md", "exec"), ns)  # the documented example itself
    r = ns["r"]
    try:
        assert r.plot["live"]["item"] and "LIVE: MyFeed" in str(r.plot["live"]["item"])
        assert "synthetic" not in str(r.plot["live"]["item"])
        r.symbol = "ACME"
        r.mode = "live"
        r.play()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(r.buffer) < 3:
            time.sleep(0.05)
        df = r.buffer
        assert len(df) >= 3, r.status
        assert list(df["price"][:3]) == [200.0, 201.0, 202.0]
        assert r.status["mode"] == "live" and r.status["symbol"] == "ACME"
    finally:
        r.close()


def test_default_live_plot_says_it_is_synthetic() -> None:
    r = jr.replay(pd.DataFrame({"timestamp": pd.date_range("2024-01-02", periods=5, freq="s"), "price": 1.0}),
                  title="AAPL 2024")
    try:
        live = str(r.plot["live"]["item"])
        assert "synthetic feed" in live and "AAPL 2024" not in live
        assert "AAPL 2024" in str(r.plot["replay"]["item"])
    finally:
        r.close()
