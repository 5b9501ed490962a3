"""``CallbackWorker``: one client's user callbacks on their own thread, behind a bounded queue.

Every ``SessionClient`` (``ThreadedSession``, ``RemoteSession``, hence every ``Replay``) owns one. The
event loop that feeds it (shared by every session of the process) never blocks on it: ``submit`` always
queues, and back-pressure is asynchronous: the producer of this one session awaits ``room()`` before it
releases (or reads) more rows, so a slow callback slows its own replay only, never another replay and
never a control call such as ``play()``. Items run in submission order (batches and resets interleaved as
they happened). The thread starts with the first item and is a daemon.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["CallbackWorker", "DEFAULT_CAPACITY"]

log = logging.getLogger(__name__)

#: Items (batches or resets) queued or running before the producer is held back. 1: the producer releases
#: the next rows only once the callbacks of the previous ones have run, so a control called from a callback
#: (``stop()``, ``pause()``, ``seek()``) takes effect before any further row, as in the engine.
DEFAULT_CAPACITY = 1


class CallbackWorker:
    """Runs ``fn(*args)`` items on one thread, in order; ``capacity`` bounds the queue via ``room()``."""

    def __init__(self, name: str = "jupyter-replay-callbacks", capacity: int = DEFAULT_CAPACITY) -> None:
        self.name = name
        self.capacity = max(1, int(capacity))
        self._items: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._waiters: list[Callable[[], None]] = []

    # ---------------------------------------------------------------- producer side
    @property
    def pending(self) -> int:
        """Items queued or running."""
        with self._cond:
            return len(self._items) + (1 if self._busy else 0)

    @property
    def in_worker_thread(self) -> bool:
        """Whether the caller is this worker's thread (a callback calling a control)."""
        return self._thread is not None and threading.current_thread() is self._thread

    def full(self) -> bool:
        with self._cond:
            return not self._has_room()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)`` (never blocks; see ``room`` for back-pressure). Ignored once closed."""
        with self._cond:
            if self._closed:
                return
            self._items.append((fn, args))
            if self._thread is None:
                self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _has_room(self) -> bool:
        return len(self._items) + (1 if self._busy else 0) < self.capacity

    async def room(self) -> None:
        """Return once fewer than ``capacity`` items are queued or running (awaited by this session's
        producer on its loop)."""
        while True:
            with self._cond:
                if self._closed or self._has_room():
                    return
                loop = asyncio.get_running_loop()
                ready = asyncio.Event()
                self._waiters.append(_waker(loop, ready))
            await ready.wait()

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every item submitted so far has run (True), or ``timeout`` s passed (False).
        From the worker thread itself (a callback calling a control) it returns at once."""
        if self.in_worker_thread:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._items or self._busy:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def close(self, timeout: float = 5.0) -> None:
        """Run what is queued (up to ``timeout`` s), then stop the thread; later submits are ignored."""
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._items.clear()
            waiters, self._waiters = self._waiters, []
            self._cond.notify_all()
        for wake in waiters:
            _call(wake)

    # ---------------------------------------------------------------- worker thread
    def _main(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._closed:
                    self._cond.wait()
                if not self._items:
                    return
                fn, args = self._items.popleft()
                self._busy = True
            try:
                fn(*args)  # BatchCallbacks.run: counts and logs the callbacks' own failures
            except Exception:
                log.exception("callback worker %s: item failed", self.name)
            finally:
                with self._cond:
                    self._busy = False
                    waiters: list[Callable[[], None]] = []
                    if self._has_room() and self._waiters:
                        waiters, self._waiters = self._waiters, []
                    self._cond.notify_all()
                for wake in waiters:
                    _call(wake)


def _waker(loop: asyncio.AbstractEventLoop, ready: asyncio.Event) -> Callable[[], None]:
    """Set ``ready`` on its own loop (from the worker thread)."""

    def wake() -> None:
        loop.call_soon_threadsafe(ready.set)

    return wake


def _call(fn: Callable[[], None]) -> None:
    try:
        fn()
    except RuntimeError:  # the producer's loop is closed: nobody waits any more
        pass
