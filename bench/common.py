"""Shared pieces of the benchmarks: the ``Figure`` row, targets, timing and data helpers.

Every figure is a ratio against a baseline measured in the same run: absolute times on a shared 2-core
machine are not stable, ratios are. A figure whose part is missing (a layer not installed, a server that
does not start) is reported as ``not available`` with the reason, never with a made-up number.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "BENCH_DIR",
    "CACHE_DIR",
    "E2E_DIR",
    "use_e2e_harness",
    "Figure",
    "Target",
    "at_least",
    "at_most",
    "abs_at_most",
    "info",
    "not_available",
    "fmt_value",
    "timed",
    "best_of",
    "median_of",
    "make_frame",
    "percentile",
]

BENCH_DIR = Path(__file__).resolve().parent
CACHE_DIR = BENCH_DIR / ".cache"  # generated data (gitignored)
E2E_DIR = BENCH_DIR.parent / "tests" / "e2e"  # lab_harness: JupyterLab/Chromium and server process helpers


def use_e2e_harness() -> None:
    """Make ``tests/e2e/lab_harness`` importable (the benches drive servers the way the e2e tests do)."""
    if str(E2E_DIR) not in sys.path:
        sys.path.insert(0, str(E2E_DIR))


@dataclass(frozen=True)
class Target:
    """What a ratio (or a value) is held to: ``op`` is ``>=`` or ``<=``; ``on`` is "ratio" or "value"."""

    op: str
    bound: float
    on: str = "ratio"
    text: str = ""

    def check(self, value: float | None, ratio: float | None) -> bool | None:
        x = ratio if self.on == "ratio" else value
        if x is None or not np.isfinite(x):
            return None
        if self.op == "abs<=":
            return abs(x) <= self.bound
        return x >= self.bound if self.op == ">=" else x <= self.bound

    def describe(self) -> str:
        if self.text:
            return self.text
        if self.on == "ratio":
            return f"ratio {self.op} {self.bound:g}"
        return f"{self.op} {self.bound:g}"


def at_least(bound: float, text: str = "", on: str = "ratio") -> Target:
    return Target(">=", bound, on, text)


def at_most(bound: float, text: str = "", on: str = "ratio") -> Target:
    return Target("<=", bound, on, text)


def abs_at_most(bound: float, text: str = "", on: str = "value") -> Target:
    return Target("abs<=", bound, on, text)


@dataclass
class Figure:
    """One row of the results table.

    ``value`` is our measurement, ``baseline`` the baseline's, both in ``unit``; ``ratio`` is computed as
    ``value / baseline`` unless given (e.g. a speed-up of a time is ``baseline / value``).
    ``target`` None means an informational row (no PASS/FAIL).
    """

    bench: str
    name: str
    value: float | None
    baseline: float | None = None
    unit: str = ""
    ratio: float | None = None
    target: Target | None = None
    note: str = ""
    baseline_name: str = ""
    available: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.ratio is None and self.value is not None and self.baseline not in (None, 0):
            self.ratio = float(self.value) / float(self.baseline)

    @property
    def passed(self) -> bool | None:
        if not self.available or self.target is None:
            return None
        return self.target.check(self.value, self.ratio)

    @property
    def verdict(self) -> str:
        if not self.available:
            return "n/a"
        p = self.passed
        return "info" if p is None else ("PASS" if p else "FAIL")

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["target"] = self.target.describe() if self.target else ""
        d["verdict"] = self.verdict
        return d


def info(bench: str, name: str, value: float | None, unit: str = "", note: str = "", **kw: Any) -> Figure:
    """An informational row (no target)."""
    return Figure(bench, name, value, unit=unit, note=note, **kw)


def not_available(bench: str, name: str, reason: str, target: Target | None = None) -> Figure:
    """A row for a figure that could not be measured in this run."""
    return Figure(bench, name, None, target=target, note=f"not available: {reason}", available=False)


def fmt_value(x: float | None, unit: str = "") -> str:
    """Compact human formatting: 3 significant digits, thousands separators, SI-ish units kept."""
    if x is None:
        return "-"
    if not np.isfinite(x):
        return str(x)
    ax = abs(x)
    if ax >= 1e5:
        s = f"{x:,.0f}"
    elif ax >= 100:
        s = f"{x:,.0f}" if ax >= 1000 else f"{x:.0f}"
    elif ax >= 10:
        s = f"{x:.1f}"
    elif ax >= 0.01 or ax == 0:
        s = f"{x:.3g}" if ax < 1 else f"{x:.2f}"
    else:
        s = f"{x:.2e}"
    return f"{s} {unit}".strip()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds taken by ``fn()`` (GC collected before, disabled during) and its result."""
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
    finally:
        if was:
            gc.enable()
    return dt, out


def best_of(fn: Callable[[], Any], repeat: int) -> float:
    """Shortest of ``repeat`` timings (seconds): the least disturbed run on a noisy machine."""
    return min(timed(fn)[0] for _ in range(max(1, repeat)))


def median_of(fn: Callable[[], Any], repeat: int) -> float:
    """Median of ``repeat`` timings (seconds)."""
    return statistics.median(timed(fn)[0] for _ in range(max(1, repeat)))


def percentile(values: Sequence[float] | np.ndarray, q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def make_frame(rows: int, n_cols: int = 4, step_ns: int = 1_000_000, seed: int = 0,
               start: str = "2024-01-02 09:30") -> pd.DataFrame:
    """``rows`` rows of a ``timestamp`` column (``step_ns`` apart) plus ``n_cols`` float64 random-walk columns."""
    rng = np.random.default_rng(seed)
    ts = pd.Timestamp(start, tz="UTC").value + np.arange(rows, dtype=np.int64) * step_ns
    data: dict[str, Any] = {"timestamp": pd.to_datetime(ts, utc=True)}
    for i in range(n_cols):
        data[f"c{i}"] = 100.0 + np.cumsum(rng.normal(0.0, 0.01, rows))
    return pd.DataFrame(data)
