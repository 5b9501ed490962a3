"""Wall-time sources that pace a replay: ``SystemTimer`` (real, precise) and ``TestTimer`` (manual)."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from abc import ABC, abstractmethod

from .exceptions import InvalidValueError, brief

__all__ = ["Timer", "SystemTimer", "TestTimer"]


class Timer(ABC):
    """Monotonic nanoseconds plus a way to wait until a deadline."""

    @abstractmethod
    def now(self) -> int:
        """Monotonic time in nanoseconds."""

    @abstractmethod
    async def sleep_until(self, deadline_ns: int) -> None:
        """Return once ``now() >= deadline_ns`` (never before)."""


class SystemTimer(Timer):
    """Real monotonic time with sub-millisecond wake-ups.

    ``asyncio.sleep`` wakes up to ~1 ms late because epoll rounds timeouts up to whole milliseconds.
    We sleep with asyncio until ``spin_ns`` before the deadline, then yield to the event loop in a
    tight loop (other tasks keep running) until ``block_ns`` before it, and finish with a short
    blocking spin, so one slow loop iteration of another task cannot make us late.
    """

    def __init__(self, spin_ns: int = 1_200_000, block_ns: int = 60_000) -> None:
        if spin_ns < 0 or block_ns < 0:
            raise InvalidValueError(f"spin_ns and block_ns must be >= 0, got {brief(spin_ns)} and {brief(block_ns)}")
        self.spin_ns = int(spin_ns)
        self.block_ns = min(int(block_ns), self.spin_ns)

    def now(self) -> int:
        return time.monotonic_ns()

    async def sleep_until(self, deadline_ns: int) -> None:
        remaining = deadline_ns - time.monotonic_ns()
        if remaining > self.spin_ns:
            await asyncio.sleep((remaining - self.spin_ns) / 1e9)
        block_from = deadline_ns - self.block_ns
        while time.monotonic_ns() < block_from:
            await asyncio.sleep(0)
        while time.monotonic_ns() < deadline_ns:  # at most block_ns of busy-waiting
            pass


class TestTimer(Timer):
    """A manual timer for deterministic tests: time moves only with ``advance()`` / ``set()``."""

    __test__ = False  # not a pytest test class

    def __init__(self, start_ns: int = 0) -> None:
        self._now = int(start_ns)
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._counter = itertools.count()

    def now(self) -> int:
        return self._now

    async def sleep_until(self, deadline_ns: int) -> None:
        if deadline_ns <= self._now:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (int(deadline_ns), next(self._counter), fut))
        await fut

    @property
    def next_deadline(self) -> int | None:
        """The earliest pending deadline (ignoring cancelled sleepers)."""
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)
        return self._sleepers[0][0] if self._sleepers else None

    def set(self, now_ns: int) -> None:
        """Move time to ``now_ns`` (never backwards) and wake every sleeper that is due."""
        if now_ns < self._now:
            raise InvalidValueError(f"TestTimer cannot go backwards: at {self._now}, asked for {brief(now_ns)}")
        self._now = int(now_ns)
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    def advance(self, delta_ns: int) -> None:
        """Move time forward by ``delta_ns``."""
        self.set(self._now + int(delta_ns))

    async def run_until_idle(self, limit_ns: int | None = None, max_steps: int = 1_000_000) -> int:
        """Jump from deadline to deadline, letting tasks run, until nothing is sleeping.

        Stops early at ``limit_ns`` (absolute). Returns the final time.
        """
        for _ in range(max_steps):
            await _settle()
            deadline = self.next_deadline
            if deadline is None or (limit_ns is not None and deadline > limit_ns):
                break
            self.set(deadline)
        if limit_ns is not None and limit_ns > self._now:
            self.set(limit_ns)
            await _settle()
        return self._now


async def _settle(rounds: int = 5) -> None:
    """Let ready tasks run a few loop iterations."""
    for _ in range(rounds):
        await asyncio.sleep(0)
