"""Deterministic sample market data (trades, quotes) for the demo, notebooks and tests."""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from ..batch import TIME_COLUMN
from ..exceptions import InvalidValueError, brief
from ..timeconv import NS_MAX, NS_RANGE, TimeLike, to_ns

__all__ = ["sample_trades", "sample_quotes"]


def _check(n: int, freq_ms: float, start_price: float) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InvalidValueError(f"n must be an int >= 1, got {n!r}")
    if not (isinstance(freq_ms, (int, float)) and np.isfinite(freq_ms) and freq_ms > 0):
        raise InvalidValueError(f"freq_ms must be a number > 0, got {freq_ms!r}")
    if not (isinstance(start_price, (int, float)) and np.isfinite(start_price) and start_price > 0):
        raise InvalidValueError(f"start_price must be a number > 0, got {start_price!r}")


def _rng(seed: int, symbol: str, kind: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(f"{kind}:{symbol}".encode())])


def _timestamps(rng: np.random.Generator, n: int, start: TimeLike, freq_ms: float) -> pd.Series:
    """Irregular (Poisson-like) arrivals with mean spacing ``freq_ms``, first one at ``start``."""
    gaps = np.maximum(rng.exponential(freq_ms * 1e6, size=n - 1), 1_000).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(gaps)])
    first = to_ns(start)
    if first + int(offsets[-1]) > NS_MAX:  # numpy would wrap past 2262
        raise InvalidValueError(f"start {brief(start)} + {n} rows at freq_ms={brief(freq_ms)} goes past {NS_RANGE}")
    ns = first + offsets
    return pd.Series(pd.DatetimeIndex(ns.view("datetime64[ns]"), tz="UTC"))


def _walk(rng: np.random.Generator, n: int, start_price: float, vol: float) -> np.ndarray:
    return start_price * np.exp(np.cumsum(vol * rng.standard_normal(n)))


def sample_trades(
    n: int = 20_000,
    seed: int = 7,
    symbol: str = "DEMO",
    start: TimeLike = "2024-01-02 09:30",
    freq_ms: float = 50.0,
    start_price: float = 100.0,
) -> pd.DataFrame:
    """``n`` random-walk trades: ``timestamp`` (UTC), ``price`` (float64), ``size`` (int64), ``side`` (int8).

    Deterministic for given arguments (different symbols give different walks). Trades arrive at
    irregular times, ``freq_ms`` apart on average (``start`` naive = UTC); a buy (+1) moves the price up.
    """
    _check(n, freq_ms, start_price)
    rng = _rng(seed, symbol, "trades")
    ts = _timestamps(rng, n, start, freq_ms)
    z = rng.standard_normal(n)
    price = np.round(start_price * np.exp(np.cumsum(0.0004 * z)), 2)
    side = np.where(z >= 0, 1, -1).astype(np.int8)
    size = (rng.integers(1, 20, size=n) * 10).astype(np.int64)
    df = pd.DataFrame({TIME_COLUMN: ts, "price": price, "size": size, "side": side})
    df.attrs["symbol"] = symbol
    return df


def sample_quotes(
    n: int = 20_000,
    seed: int = 11,
    symbol: str = "DEMO",
    start: TimeLike = "2024-01-02 09:30",
    freq_ms: float = 25.0,
    start_price: float = 100.0,
) -> pd.DataFrame:
    """``n`` top-of-book quotes: ``timestamp`` (UTC), ``bid``, ``ask`` (float64), ``bid_size``, ``ask_size`` (int64).

    Deterministic for given arguments; the spread is 1 to 4 cents and ``bid < ask`` always.
    """
    _check(n, freq_ms, start_price)
    rng = _rng(seed, symbol, "quotes")
    ts = _timestamps(rng, n, start, freq_ms)
    mid = _walk(rng, n, start_price, 0.0003)
    spread_cents = rng.integers(1, 5, size=n)
    bid_cents = np.floor(mid * 100 - spread_cents / 2)
    bid = np.round(bid_cents / 100, 2)
    ask = np.round((bid_cents + spread_cents) / 100, 2)
    bid_size = (rng.integers(1, 50, size=n) * 100).astype(np.int64)
    ask_size = (rng.integers(1, 50, size=n) * 100).astype(np.int64)
    df = pd.DataFrame({TIME_COLUMN: ts, "bid": bid, "ask": ask, "bid_size": bid_size, "ask_size": ask_size})
    df.attrs["symbol"] = symbol
    return df
