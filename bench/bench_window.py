"""Figure 5: server-side cost per update with a 1M-row retained window vs a 10k-row one.

An update is what the server does for one released batch: the session emits it (sequence number,
``RollingBuffer.append``, latest-row snapshot, subscribers) and a subscriber encodes it as a wire frame
(``wire.encode_batch``). The buffer is first filled to capacity (``step(n=capacity)``), then the
session plays at speed "max" in 100-row batches; cost per update = play-to-finished time / batches.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import numpy as np

from jupyter_replay import wire
from jupyter_replay.batch import Batch, StateEvent
from jupyter_replay.session import Session
from jupyter_replay.sources.dataframe import ArraySource

from .common import Figure, at_most, info, timed

__all__ = ["NAME", "run", "cost_per_update"]

NAME = "window"
UPDATE_ROWS = 100


def _source(rows: int) -> ArraySource:
    rng = np.random.default_rng(3)
    ts = 1_704_186_000_000_000_000 + np.arange(rows, dtype=np.int64) * 1_000_000
    return ArraySource(ts, {f"c{i}": 100 + np.cumsum(rng.normal(0, 0.01, rows)) for i in range(4)})


async def _measure(source: ArraySource, window: int, updates: int) -> float:
    session = Session(source, speed="max", buffer_rows=window)
    session.step(n=window)  # fill the retained window
    if len(session.buffer) != window:
        raise RuntimeError("buffer not full")
    session.controller.max_batch_rows = UPDATE_ROWS
    done = asyncio.Event()
    frames = 0

    def on_event(event: Any) -> None:
        nonlocal frames
        if isinstance(event, Batch):
            wire.encode_batch(event, ms_only=True)
            frames += 1
        elif isinstance(event, StateEvent) and event.status["state"] == "finished":
            done.set()

    session.subscribe(on_event)
    t0 = time.perf_counter()
    session.play()
    await done.wait()
    dt = time.perf_counter() - t0
    await session.aclose()
    if frames != updates or len(session.buffer) != window:
        raise RuntimeError(f"expected {updates} updates, got {frames}")
    return dt / frames


def cost_per_update(source: ArraySource, window: int, updates: int, repeat: int) -> float:
    return statistics.median(timed(lambda: asyncio.run(_measure(source, window, updates)))[1] for _ in range(repeat))


def run(quick: bool = False, tiny: bool = False, **_: Any) -> list[Figure]:
    big, small = (100_000, 1_000) if tiny else (1_000_000, 10_000)
    updates = 100 if tiny else (500 if quick else 3000)
    repeat = 3 if quick else 5
    src_big = _source(big + updates * UPDATE_ROWS)
    src_small = _source(small + updates * UPDATE_ROWS)
    # Alternate the two so machine noise hits both alike.
    big_c, small_c = [], []
    for _ in range(repeat):
        small_c.append(cost_per_update(src_small, small, updates, 1))
        big_c.append(cost_per_update(src_big, big, updates, 1))
    c_big, c_small = statistics.median(big_c), statistics.median(small_c)
    return [
        Figure(NAME, f"cost per update, {big:,}-row window vs {small:,}", c_big * 1e6, c_small * 1e6, unit="us",
               target=at_most(2, "<= 2x"), baseline_name="same with a 10k-row window",
               note=f"{UPDATE_ROWS}-row updates: emit + buffer append + wire encode; median of {repeat} runs "
                    f"of {updates:,} updates"),
        info(NAME, f"retained window memory, {big:,} rows x (ts + 4 float64)", (big * 40) / 1e6, "MB"),
    ]
