"""Run sessions where no server is present (kernels, scripts, nbval): a background asyncio loop.

``ThreadedSession`` is a synchronous facade over ``Session``: every call runs on one background event
loop thread, so replay keeps playing while the caller (a notebook cell) is busy.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pandas as pd

from .client import SessionClient
from .clock import Clock
from .controller import State
from .marks import marks_frame
from .session import Session
from .sources.base import ReplaySource
from .worker import DEFAULT_CAPACITY

__all__ = ["BackgroundLoop", "ThreadedSession"]

T = TypeVar("T")


class BackgroundLoop:
    """One daemon thread running an asyncio event loop, shared by the sessions of a process."""

    _default: BackgroundLoop | None = None
    _default_lock = threading.Lock()

    def __init__(self, name: str = "jupyter-replay-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    @classmethod
    def default(cls) -> BackgroundLoop:
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


class ThreadedSession(SessionClient):
    """A ``Session`` living on a ``BackgroundLoop``: the in-process I/O adapter of ``SessionClient``.

    Every call runs on the loop thread (blocking, thread-safe); events are delivered there, ``on_batch``
    and ``on_reset`` callbacks on this session's own worker thread (``SessionClient.flush``). ``frame()``
    reads the engine's own buffer (no mirror needed in-process).
    """

    def __init__(
        self, source: ReplaySource | None = None, *, runner: BackgroundLoop | None = None,
        callback_queue: int = DEFAULT_CAPACITY, **kwargs: Any,
    ):
        super().__init__(buffer_rows=kwargs.get("buffer_rows", 100_000), mirror=False, callback_queue=callback_queue)
        self.runner = runner or BackgroundLoop.default()
        self.session: Session = self.runner.call(lambda: Session(source, **kwargs))

        def wire_up() -> Callable[[], None]:
            unsubscribe = self.session.subscribe(self._on_event)
            self.session.on_batch(self._run_callbacks)  # after every subscriber has the batch, as headless
            self.session.hold(self._callback_room)  # a slow callback holds back this session only
            return unsubscribe

        self._unsubscribe = self.runner.call(wire_up)

    def _call(self, fn: Callable[[], T]) -> T:
        return self.runner.call(fn)

    # SessionClient I/O ------------------------------------------------------
    def _control(self, action: str, args: dict[str, Any]) -> dict[str, Any]:
        return self._call(lambda: self.session.control(action, args))

    def _read_status(self) -> dict[str, Any]:
        return self._call(self.session.status)

    @property
    def id(self) -> str:  # type: ignore[override]
        return self.session.id

    @property
    def state(self) -> State:
        return self.session.state

    @property
    def clock(self) -> Clock:
        return self.session.clock

    def frame(self) -> pd.DataFrame:
        return self._call(self.session.frame)

    @property
    def marks(self) -> pd.DataFrame:
        """The session's marks (read from the engine, like ``frame()``)."""
        return self._call(lambda: marks_frame([m.to_json() for m in self.session.marks], self.session.buffer.tz))

    def set_source(self, source: ReplaySource) -> None:
        """Replace the data (in-process only; an attached client uploads instead)."""
        self._call(lambda: self.session.set_source(source))

    def close(self) -> None:
        """Stop the session and release its sources."""
        if self._closed:
            return
        self._closed = True
        self._close_callbacks()
        try:
            self.runner.run(self.session.aclose())
        except RuntimeError:  # loop already gone (interpreter shutdown)
            pass
