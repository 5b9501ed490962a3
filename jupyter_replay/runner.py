"""Run sessions where no server is present (kernels, scripts, nbval): a background asyncio loop.

``ThreadedSession`` is a synchronous facade over ``Session``: every call runs on one background event
loop thread, so replay keeps playing while the caller (a notebook cell) is busy.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from typing import Any, Callable, TypeVar

import pandas as pd

from .batch import Event
from .controller import State
from .session import BatchCallback, Session
from .sources.base import ReplaySource

__all__ = ["BackgroundLoop", "ThreadedSession"]

T = TypeVar("T")


class BackgroundLoop:
    """One daemon thread running an asyncio event loop, shared by the sessions of a process."""

    _default: "BackgroundLoop | None" = None
    _default_lock = threading.Lock()

    def __init__(self, name: str = "jupyter-replay-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    @classmethod
    def default(cls) -> "BackgroundLoop":
        """The process-wide loop (created on first use)."""
        with cls._default_lock:
            if cls._default is None or not cls._default._thread.is_alive():
                cls._default = cls()
            return cls._default

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @property
    def in_loop_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def call(self, fn: Callable[[], T], timeout: float | None = 30.0) -> T:
        """Run ``fn()`` on the loop thread and return its result (exceptions are re-raised here)."""
        if self.in_loop_thread:
            return fn()
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            if not fut.set_running_or_notify_cancel():
                return
            try:
                fut.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                fut.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return fut.result(timeout)

    def run(self, coro: Any, timeout: float | None = 30.0) -> Any:
        """Run a coroutine on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


class ThreadedSession:
    """A ``Session`` living on a ``BackgroundLoop``, with blocking, thread-safe methods."""

    def __init__(self, source: ReplaySource | None = None, *, runner: BackgroundLoop | None = None, **kwargs: Any):
        self.runner = runner or BackgroundLoop.default()
        self.session: Session = self.runner.call(lambda: Session(source, **kwargs))
        self._cond = threading.Condition()
        self._unsubscribe = self.runner.call(lambda: self.session.subscribe(self._notify))

    def _notify(self, event: Event) -> None:
        with self._cond:
            self._cond.notify_all()

    def _call(self, fn: Callable[[], T]) -> T:
        return self.runner.call(fn)

    # Views -----------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.session.id

    @property
    def state(self) -> State:
        return self.session.state

    @property
    def clock(self):  # noqa: ANN201 - Clock
        return self.session.clock

    def status(self) -> dict[str, Any]:
        return self._call(self.session.status)

    def frame(self) -> pd.DataFrame:
        return self._call(self.session.frame)

    # Controls --------------------------------------------------------------
    def play(self) -> None:
        self._call(self.session.play)

    def pause(self) -> None:
        self._call(self.session.pause)

    def stop(self) -> None:
        self._call(self.session.stop)

    def step(self, n: int | None = None, *, duration: Any = None) -> int:
        return self._call(lambda: self.session.step(n, duration=duration))

    def seek(self, target: Any = None, *, fraction: float | None = None, row: int | None = None) -> int:
        return self._call(lambda: self.session.seek(target, fraction=fraction, row=row))

    def set_speed(self, value: Any) -> float:
        return self._call(lambda: self.session.set_speed(value))

    def set_loop(self, flag: Any) -> None:
        self._call(lambda: self.session.set_loop(flag))

    def set_mode(self, mode: Any, symbol: str | None = None) -> None:
        self._call(lambda: self.session.set_mode(mode, symbol))

    def set_source(self, source: ReplaySource) -> None:
        self._call(lambda: self.session.set_source(source))

    def control(self, action: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._call(lambda: self.session.control(action, args))

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """``callback(event)`` runs on the loop thread; returns an unsubscribe function."""
        unsub = self._call(lambda: self.session.subscribe(callback))
        return lambda: self._call(unsub)

    def on_batch(self, fn: BatchCallback) -> BatchCallback:
        """Decorator: ``fn(batch, clock)`` runs on the loop thread for every batch."""
        self._call(lambda: self.session.on_batch(fn))
        return fn

    def wait(self, states: tuple[State, ...] = (State.FINISHED, State.PAUSED, State.STOPPED),
             timeout: float = 60.0) -> State:
        """Block until the session is in one of ``states`` (default: not playing); returns the state."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.session.state not in states:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"session still {self.session.state.value} after {timeout}s")
                self._cond.wait(min(left, 0.1))
        return self.session.state

    def close(self) -> None:
        """Stop the session and release its sources."""
        try:
            self.runner.run(self.session.aclose())
        except RuntimeError:  # loop already gone (interpreter shutdown)
            pass
