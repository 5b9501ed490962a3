"""Figure 3: pacing precision at 1x and 100x against a busy-wait and a plain ``asyncio.sleep`` baseline.

Ours: a ``Session`` playing on the real ``SystemTimer``; ``ReplayController.on_release(deadline, actual)``
records the lateness of every release. At 1x the rows are 25 ms apart (one release per row); at 100x
they are 10 ms of data apart (100 us of wall time), so releases are coalesced into display frames.
Baselines, on the same schedule (the deadline intervals our run produced, replayed from a new start):
a loop spinning on ``time.monotonic_ns()`` until each deadline (the best a single thread can do), and
``await asyncio.sleep(deadline - now)`` (what plain asyncio code gets; epoll rounds up to whole ms).
Median and drift come from one continuous run (60 s by default); the p99 comparison from short engine
and busy-wait segments run alternately, so that load from other processes hits both alike.
Drift: how much later the releases of the last tenth of the run are than those of the first tenth,
measured against the ideal anchored schedule ``play time + (row time - first row time) / speed``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

from jupyter_replay.batch import Batch, StateEvent
from jupyter_replay.session import Session
from jupyter_replay.sources.dataframe import ArraySource

from .common import Figure, abs_at_most, at_most, percentile

__all__ = ["NAME", "run", "measure_engine", "busy_wait", "asyncio_sleep"]

NAME = "pacing"
SLEEP_REF_S = 10.0

SCHEDULES = {  # speed -> data spacing between rows (ns)
    1.0: 25_000_000,
    100.0: 10_000_000,
}


async def _engine(speed: float, duration_s: float, spacing_ns: int) -> dict[str, np.ndarray]:
    rows = int(duration_s * 1e9 * speed / spacing_ns) + 1
    start = 1_704_186_000_000_000_000
    ts = start + np.arange(rows, dtype=np.int64) * spacing_ns
    source = ArraySource(ts, {"v": np.arange(rows, dtype=np.float64)})
    session = Session(source, speed=speed, buffer_rows=10_000)
    ctl = session.controller
    deadlines: list[int] = []
    actuals: list[int] = []
    firsts: list[int] = []  # ideal wall time of the first row of each batch
    received: list[int] = []
    done = asyncio.Event()

    def on_release(deadline: int, actual: int) -> None:
        deadlines.append(deadline)
        actuals.append(actual)

    def on_event(event: Any) -> None:
        if isinstance(event, Batch):
            received.append(time.monotonic_ns())
            firsts.append(ctl.clock.wall_deadline(int(event.ts[0])))
        elif isinstance(event, StateEvent) and event.status["state"] == "finished":
            done.set()

    ctl.on_release = on_release
    session.subscribe(on_event)
    session.play()
    await done.wait()
    await session.aclose()
    return {
        "deadline": np.array(deadlines, np.int64),
        "actual": np.array(actuals, np.int64),
        "ideal": np.array(firsts, np.int64),
        "received": np.array(received, np.int64),
        "rows": np.array([rows]),
    }


def measure_engine(speed: float, duration_s: float) -> dict[str, np.ndarray]:
    return asyncio.run(_engine(speed, duration_s, SCHEDULES[speed]))


def _schedule(deadlines: np.ndarray, max_s: float) -> np.ndarray:
    """Deadline offsets (ns from the start) of the first ``max_s`` seconds of a recorded schedule."""
    rel = deadlines - deadlines[0]
    return rel[rel <= max_s * 1e9]


def busy_wait(offsets: np.ndarray) -> np.ndarray:
    """Lateness (ns) of a loop spinning on ``time.monotonic_ns()`` until each deadline."""
    now = time.monotonic_ns
    t0 = now() + 5_000_000
    late = np.empty(len(offsets), np.int64)
    for i, off in enumerate(offsets.tolist()):
        d = t0 + off
        while now() < d:
            pass
        late[i] = now() - d
    return late


def asyncio_sleep(offsets: np.ndarray) -> np.ndarray:
    """Lateness (ns) of ``await asyncio.sleep(deadline - now)`` on the same schedule."""

    async def main() -> np.ndarray:
        now = time.monotonic_ns
        t0 = now() + 5_000_000
        late = np.empty(len(offsets), np.int64)
        for i, off in enumerate(offsets.tolist()):
            d = t0 + off
            delay = d - now()
            if delay > 0:
                await asyncio.sleep(delay / 1e9)
            late[i] = now() - d
        return late

    return asyncio.run(main())


def _drift_us(ideal: np.ndarray, received: np.ndarray) -> float:
    late = (received - ideal) / 1e3
    k = max(1, len(late) // 10)
    return float(np.median(late[-k:]) - np.median(late[:k]))


def interleaved(speed: float, rounds: int, segment_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Lateness (us) of the engine and of the busy-wait loop in alternating ``segment_s`` segments.

    Alternating puts both under the same machine noise (other processes preempting us), so their p99s
    compare the loops themselves rather than the luck of which one ran during a burst of load.
    """
    ours, busy = [], []
    for _ in range(rounds):
        eng = measure_engine(speed, segment_s)
        ours.append((eng["actual"] - eng["deadline"]) / 1e3)
        busy.append(busy_wait(_schedule(eng["deadline"], segment_s)) / 1e3)
    return np.concatenate(ours), np.concatenate(busy)


def run(quick: bool = False, tiny: bool = False, duration: float | None = None, **_: Any) -> list[Figure]:
    duration_s = duration or (1.0 if tiny else 5.0 if quick else 60.0)
    rounds, segment_s = (2, 0.5) if tiny else (5, 1.0) if quick else (10, 2.0)
    ref_s = min(duration_s, SLEEP_REF_S)
    figs: list[Figure] = []
    for speed in SCHEDULES:
        eng = measure_engine(speed, duration_s)
        late_us = (eng["actual"] - eng["deadline"]) / 1e3
        sleep_us = asyncio_sleep(_schedule(eng["deadline"], ref_s)) / 1e3
        ours_i, busy_i = interleaved(speed, rounds, segment_s)
        med, p99 = float(np.median(late_us)), percentile(late_us, 99)
        s_med = float(np.median(sleep_us))
        drift = _drift_us(eng["ideal"], eng["received"])
        tag = f"{speed:g}x"
        figs += [
            Figure(NAME, f"{tag} median lateness", med, s_med, unit="us", target=at_most(50, "<= 50 us", on="value"),
                   baseline_name="plain asyncio.sleep, same schedule",
                   note=f"{len(late_us):,} releases in one {duration_s:g} s run (p99 {p99:.0f} us, max "
                        f"{late_us.max():.0f} us); asyncio.sleep over {ref_s:g} s: median {s_med:.0f} us, p99 "
                        f"{percentile(sleep_us, 99):.0f} us; ratio = ours / asyncio.sleep"),
            Figure(NAME, f"{tag} p99 lateness vs busy-wait", percentile(ours_i, 99), percentile(busy_i, 99), unit="us",
                   target=at_most(2, "<= 2x"), baseline_name="busy-wait on monotonic_ns, same schedule",
                   note=f"{rounds} alternating {segment_s:g} s segments each ({len(ours_i):,} vs {len(busy_i):,} "
                        f"releases); medians {np.median(ours_i):.2f} vs {np.median(busy_i):.2f} us, max "
                        f"{ours_i.max():.0f} vs {busy_i.max():.0f} us"),
            Figure(NAME, f"{tag} drift (last vs first tenth)", drift, unit="us",
                   target=abs_at_most(100, "|drift| <= 100 us"),
                   note=f"lateness of each batch's first row vs play time + data offset / speed, over {duration_s:g} s"),
        ]
    return figs
