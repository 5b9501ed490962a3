"""The kernel-local transport of a ``Replay``: session events -> widget comm messages (and trait refreshes).

Every message is built by ``jupyter_replay.wire``: rows as binary frames from one ``wire.FrameEncoder`` per
widget (so text columns go as dictionary codes, each value once per comm; a history frame starts the
dictionaries afresh), ``reset``/``history``/``marks``/``error`` as the same JSON messages the server's WebSocket sends.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any

from .. import wire
from ..batch import Batch, Chunk, MarkEvent, ResetEvent, StateEvent, can_merge

if TYPE_CHECKING:
    from .replay import Replay

__all__ = ["FRAME_RATE", "STATUS_RATE", "CommSender"]

log = logging.getLogger(__name__)

#: Most binary frame messages per second sent to the browser on the local path.
FRAME_RATE = 30.0
#: Most ``status`` refreshes per second while rows flow (state changes are sent at once).
STATUS_RATE = 4.0


class _History:
    """The session's buffer and marks, snapshotted on the engine's thread, queued behind the rows before it."""

    __slots__ = ("chunk", "marks", "mode", "seq")

    def __init__(self, chunk: Chunk, seq: int, mode: str, marks: list[MarkEvent]) -> None:
        self.chunk, self.seq, self.mode, self.marks = chunk, seq, mode, marks


class _Notice:
    """A text message for the browser (``wire.error_message``), sent in order with the rows."""

    __slots__ = ("message",)

    def __init__(self, message: dict[str, Any]) -> None:
        self.message = message


class CommSender(threading.Thread):
    """Takes session events (from the engine's thread) and sends them to the browser and the traits.

    Batches in between are merged (``batch.can_merge``), so at most ``FRAME_RATE`` frame messages go out
    per second; resets and history keep their order relative to the rows.
    """

    def __init__(self, widget: Replay) -> None:
        super().__init__(name="jupyter-replay-sender", daemon=True)
        self._widget = weakref.ref(widget)
        self._items: deque[Any] = deque()
        self._cond = threading.Condition()
        self._stopped = False
        self._last_send = 0.0
        self._last_status = 0.0
        self._encoder = wire.FrameEncoder(ms_only=True)
        self.frames_sent = 0

    def push(self, item: Any) -> None:
        """Queue a session event (a ``subscribe`` callback)."""
        with self._cond:
            self._items.append(item)
            self._cond.notify()

    def push_history(self, chunk: Chunk, seq: int, mode: str, marks: list[MarkEvent] | None = None) -> None:
        """Queue the buffer and marks snapshot (taken on the engine's thread, so it fits the event order)."""
        self.push(_History(chunk, seq, mode, marks or []))

    def push_error(self, text: str) -> None:
        """Queue an ``error`` message (e.g. the first failure of an ``on_batch`` callback)."""
        self.push(_Notice(wire.error_message(500, text)))

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def run(self) -> None:
        dirty_status = False
        while True:
            with self._cond:
                if not self._items and not self._stopped:
                    self._cond.wait(1.0 / STATUS_RATE if dirty_status else None)
                if self._stopped:
                    return
            # coalesce: wait until one frame interval passed since the last send
            wait = self._last_send + 1.0 / FRAME_RATE - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            with self._cond:
                items = list(self._items)
                self._items.clear()
            widget = self._widget()
            if widget is None:
                return
            try:
                dirty_status = self._process(widget, items, dirty_status)
            except Exception:  # never let the sender die: the browser would freeze
                log.exception("jupyter_replay widget sender failed")
            del widget

    def _process(self, widget: Replay, items: list[Any], dirty_status: bool) -> bool:
        run: list[Batch] = []
        urgent = False

        def flush() -> None:
            if run:
                if widget._frames_to_browser():
                    widget._send_custom({"type": "frame"}, [self._encoder.encode(run)])
                    self.frames_sent += 1
                run.clear()

        for item in items:
            if isinstance(item, Batch):
                if run and not can_merge(run[-1], item):
                    flush()
                run.append(item)
                dirty_status = True
            elif isinstance(item, ResetEvent):
                flush()
                if widget._frames_to_browser():
                    widget._send_custom(wire.reset_message(item))
                urgent = True
            elif isinstance(item, MarkEvent):
                flush()  # after its rows
                if widget._frames_to_browser():
                    widget._send_custom(wire.mark_message(item))
                dirty_status = True
            elif isinstance(item, StateEvent):
                urgent = True
            elif isinstance(item, _History):
                flush()
                self._send_history(widget, item)
            elif isinstance(item, _Notice):
                flush()
                if widget._has_view:  # both paths: the browser shows it in the status line
                    widget._send_custom(item.message)
        flush()
        if items:
            self._last_send = time.monotonic()
        now = time.monotonic()
        if urgent or (dirty_status and now - self._last_status >= 1.0 / STATUS_RATE):
            widget._refresh_status()
            self._last_status = now
            return False
        return dirty_status

    def _send_history(self, widget: Replay, item: _History) -> None:
        if not widget._frames_to_browser():
            return
        chunk = item.chunk
        msg = wire.history_message(len(chunk), item.seq, mode=item.mode)
        header = {"type": "batch", "seq": int(item.seq), "first_row": 0, "mode": item.mode, "history": True}
        # always a frame, empty too: it carries the columns (and restarts the dictionaries)
        widget._send_custom(msg, [self._encoder.encode_columns(header, chunk.ts, chunk.columns)])
        widget._send_custom(wire.marks_history_message(item.marks, item.seq))
