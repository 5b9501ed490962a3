"""Helpers of the widget tests: a ``Replay`` that records what it would send to the browser (no frontend needed)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from jupyter_replay import wire
from jupyter_replay.widgets.replay import Replay


class RecordingReplay(Replay):
    """``Replay`` whose custom messages to the browser are kept in ``sent`` (content, buffers)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.sent: list[tuple[dict, list[bytes]]] = []
        self.sent_lock = threading.Lock()
        super().__init__(*args, **kwargs)
        self._show()  # a browser only talks to a displayed widget (whose comm is open)

    def render(self) -> RecordingReplay:
        """What a rendered view does first: ask for the buffer (from then on rows are streamed)."""
        self.from_browser({"type": "history"})
        return self

    def send(self, content: Any, buffers: Any = None) -> None:  # what would go to the comm
        with self.sent_lock:
            self.sent.append((content, [bytes(b) for b in (buffers or [])]))

    def from_browser(self, content: dict) -> None:
        """Deliver a custom message as the widget JS would (``model.send``)."""
        self._handle_custom_msg(content, [])

    def messages(self, kind: str | None = None) -> list[tuple[dict, list[bytes]]]:
        with self.sent_lock:
            return [m for m in self.sent if kind is None or m[0].get("type") == kind]

    def frames(self) -> list[tuple[dict, dict[str, np.ndarray]]]:
        """Decoded binary frames sent (``frame`` and ``history`` messages), in order."""
        decoder = wire.FrameDecoder()  # one per comm, as in the browser: dictionaries are per stream
        out = []
        for content, buffers in self.messages():
            if content.get("type") in ("frame", "history") and buffers:
                out.append(decoder.decode(buffers[0]))
        return out


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, message: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(message or f"condition not met within {timeout}s (last {value!r})")
        time.sleep(0.01)


def trades(n: int = 500, start: str = "2024-01-02 09:30", freq: str = "100ms", seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "timestamp": pd.date_range(start, periods=n, freq=freq, tz="UTC"),
            "price": 100 + np.cumsum(rng.standard_normal(n)) * 0.1,
            "size": rng.integers(1, 100, n).astype(np.int64),
        }
    )


def long_format(n: int = 60) -> pd.DataFrame:
    """A long-format frame (``date, symbol, price``) with every kind of column a user brings: text,
    categorical, nullable bool and int, datetime and tz-aware values, text with missing values."""
    i = np.arange(n)
    return pd.DataFrame(
        {
            "date": pd.date_range("2024-01-02 09:30", periods=n, freq="100ms", tz="America/New_York"),
            "symbol": np.array(["AAPL", "MSFT", "GOOG"], dtype=object)[i % 3],
            "price": 100 + i * 0.25,
            "venue": pd.Categorical(np.where(i % 2 == 0, "XNAS", "ARCX")),
            "flag": pd.array([True, None, False] * (n // 3) + [True] * (n % 3), dtype="boolean"),
            "qty": pd.array([1, None, 3] * (n // 3) + [1] * (n % 3), dtype="Int64"),
            "settle": pd.date_range("2024-02-01", periods=n, freq="D"),
            "local": pd.date_range("2024-02-01", periods=n, freq="h", tz="Europe/Berlin"),
            "note": (["a", None, "ü €"] * (n // 3) + ["a"] * (n % 3)),
        }
    )
