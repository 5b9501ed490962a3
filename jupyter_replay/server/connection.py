"""``ReplayConnection``: one WebSocket client of one replay session (what the thin handler delegates to).

Session events arrive through a synchronous ``push`` on the server loop and go into a bounded queue; a
writer task drains it, awaiting each write so a slow client applies back-pressure. When ``max_queue``
batch frames are waiting, a new batch joins the last waiting frame (one frame ``first_seq``..``seq``; it
may overtake waiting ``state`` messages, never a ``reset``) and the number of frames merged away is
reported with a ``dropped`` message. When that is not possible (a reset in between, the merged frame would
exceed the session's ``buffer_rows``, or ``max_queue`` state/reset messages are waiting), everything
waiting is discarded and the client is re-synchronised: ``reset`` (reason ``resync``), ``state``,
``history``. Control replies (``ack``/``error``) are never discarded. Memory per client is therefore
bounded by ``max_queue`` frames of at most ``buffer_rows`` rows.

Flow control (``ack=True``, the browser widget's ``?ack=1``): the client acknowledges the binary frames it
has processed with ``{"type": "ack_frames", "seq": n}`` (``seq`` of the last binary frame it handled). At
most ``ack_window`` binary frames are then unacknowledged in flight (a history counts as ``ack_window``: it
replaces what the client shows); meanwhile new batches are merged into the waiting frame (same accounting
as above), at most ``ack_window`` frames wait (one per stream, e.g. across a loop reset), and beyond that
the client is re-synchronised. Data in flight to such a client is thus a few frames, so a pause or any
state change reaches it within about one of its frames.

``tail=n`` (a display that keeps only its last ``n`` rows, e.g. the widget's plot rollover): a history (on
connect or in a resync) carries only the newest ``n`` buffered rows (``first_row`` says where they start).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol, Union

from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError

from .. import wire
from ..batch import Batch, Event, ResetEvent, StateEvent, can_merge
from ..controls import table_json
from ..exceptions import ReplayError

if TYPE_CHECKING:
    from .manager import ManagedSession, SessionManager

__all__ = ["ACK_WINDOW", "ReplayConnection", "Writer"]

log = logging.getLogger(__name__)

#: binary frames a flow-controlled (``ack``) client may have unacknowledged; also its waiting-frame bound
ACK_WINDOW = 2


class Writer(Protocol):
    """The WebSocket side: ``write_message`` returns an awaitable that resolves once flushed."""

    def write_message(self, message: str | bytes, binary: bool = False) -> Any: ...

    def close(self, code: int | None = None, reason: str | None = None) -> None: ...


class _Frames:
    """Pending batches that go out as one (possibly coalesced) binary frame."""

    __slots__ = ("batches", "rows")

    def __init__(self, batch: Batch) -> None:
        self.batches = [batch]
        self.rows = len(batch)

    def can_take(self, batch: Batch, max_rows: int) -> bool:
        return can_merge(self.batches[-1], batch) and self.rows + len(batch) <= max_rows

    def add(self, batch: Batch) -> None:
        self.batches.append(batch)
        self.rows += len(batch)


class _Text:
    """A text message; ``reply`` messages survive a resync, ``state`` ones may be superseded."""

    __slots__ = ("message", "reply", "state")

    def __init__(self, message: dict[str, Any], *, reply: bool = False, state: bool = False) -> None:
        self.message = message
        self.reply = reply
        self.state = state


class _History:
    """The session's buffer as one frame, announced by a ``history`` message."""

    __slots__ = ("batch",)

    def __init__(self, batch: Batch) -> None:
        self.batch = batch


class _Resync:
    """Marker: send reset + state + history, snapshotted when the writer reaches it."""

    __slots__ = ()


_Item = Union[_Frames, _Text, _History, _Resync]


class ReplayConnection:
    """Streams one session to one WebSocket and applies its control messages."""

    def __init__(
        self,
        managed: ManagedSession,
        manager: SessionManager,
        writer: Writer,
        *,
        can_write: bool,
        ms_only: bool = False,
        since: int | None = None,
        instance: str | None = None,
        max_queue: int = 64,
        ack: bool = False,
        ack_window: int = ACK_WINDOW,
        tail: int | None = None,
    ) -> None:
        self.managed = managed
        self.manager = manager
        self.writer = writer
        self.can_write = can_write
        self.ms_only = ms_only
        #: this connection's frame encoder (its text-column dictionaries are per stream)
        self._encoder = wire.FrameEncoder(ms_only=ms_only)
        self.since = since
        self.instance = instance
        self.max_queue = max(2, int(max_queue))
        #: flow control: the client acknowledges frames (``ack_frames``); at most ``ack_window`` in flight
        self.ack = bool(ack)
        self.ack_window = max(1, int(ack_window))
        #: batch frames that may wait in the queue before a resync (flow-controlled: merged, few)
        self._max_frames = min(self.max_queue, self.ack_window) if self.ack else self.max_queue
        self._in_flight: deque[int] = deque()  # seqs of binary frames sent and not yet acknowledged
        #: a history carries at most this many (the newest) buffered rows (None: all)
        self.tail = None if tail is None else max(1, int(tail))
        self.dropped = 0  # frames coalesced or discarded for this client, in total
        self.max_frames_queued = 0  # high-water mark of queued batch frames (diagnostics, tests)
        self._queue: deque[_Item] = deque()
        self._frames = 0  # queued _Frames items
        self._texts = 0  # queued non-reply text items
        self._unreported = 0
        self._resync_pending = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._sent_seq = 0

    # ----------------------------------------------------------------- life cycle
    def open(self) -> None:
        """Queue ``hello`` and the history (or the missed events), then follow the session.

        Runs synchronously on the loop, so nothing can slip between the snapshot and the subscription.
        """
        managed = self.managed
        if managed.closed:  # removed between the upgrade request and now
            self.close(1001, "replay session closed")
            return
        session = managed.session
        managed.attach(self)
        hello = wire.hello_message(
            managed.model(), session.seq, instance=managed.instance, writable=self.can_write,
            controls=table_json(session.policy),
        )
        self._put(_Text(hello))
        missed = None
        if self.since is not None and (self.instance is None or self.instance == managed.instance):
            missed = managed.events_since(self.since)
        if missed is None:
            if self.since is not None:  # cannot resume: start over from the current buffer
                self._put(_Text(wire.reset_message(ResetEvent(session.seq, session.id, session.mode, "resync"))))
            self._put(_History(self._history()))
        else:
            for event in missed:
                self._enqueue(event)
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"jupyter_replay.ws.{session.id}")

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Stop following the session; with ``code`` also close the socket (session removed)."""
        if self._closed:
            return
        self._closed = True
        self.managed.detach(self)
        self._queue.clear()
        self._wake.set()
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
        if code is not None:
            try:
                self.writer.close(code, reason)
            except Exception:
                pass

    # ----------------------------------------------------------------- session events (sync)
    def push(self, event: Event) -> None:
        """Called by the session (through the manager) for every event."""
        if self._closed:
            return
        self._enqueue(event)
        self._wake.set()

    def _put(self, item: _Item) -> None:
        self._queue.append(item)
        if isinstance(item, _Frames):
            self._frames += 1
            self.max_frames_queued = max(self.max_frames_queued, self._frames)
        elif isinstance(item, _Text) and not item.reply:
            self._texts += 1

    def _pop(self) -> _Item:
        item = self._queue.popleft()
        if isinstance(item, _Frames):
            self._frames -= 1
        elif isinstance(item, _Text) and not item.reply:
            self._texts -= 1
        return item

    def _coalesce_target(self, batch: Batch) -> _Frames | None:
        """The last queued frame if ``batch`` may join it: only state messages and replies after it."""
        for item in reversed(self._queue):
            if isinstance(item, _Frames):
                return item if item.can_take(batch, self.managed.session.buffer_rows) else None
            if not (isinstance(item, _Text) and (item.state or item.reply)):
                return None  # a reset or the history: rows after it belong to another stream
        return None

    def _enqueue(self, event: Event) -> None:
        if self._resync_pending:  # everything until the resync snapshot is contained in it
            if isinstance(event, Batch):
                self._count_dropped(1)
            return
        if isinstance(event, Batch):
            if self.ack:  # flow-controlled: rows wait in one frame until the client has room for it
                target = self._coalesce_target(event) if self._frames else None
                if target is not None:
                    target.add(event)
                    self._count_dropped(1)
                elif self._frames < self._max_frames:
                    self._put(_Frames(event))
                else:
                    self._resync()
                    self._count_dropped(1)
                return
            if self._frames < self.max_queue:
                self._put(_Frames(event))
                return
            target = self._coalesce_target(event)
            if target is not None:
                target.add(event)  # rows may overtake an unsent status snapshot, never a reset
                self._count_dropped(1)
            else:
                self._resync()
                self._count_dropped(1)
            return
        last = self._queue[-1] if self._queue else None
        if isinstance(event, StateEvent):
            message = wire.state_message(event)
            if self._texts < self.max_queue:
                self._put(_Text(message, state=True))
            elif isinstance(last, _Text) and last.state:
                last.message = message  # a newer status supersedes an unsent one
            else:
                self._resync()
        elif isinstance(event, ResetEvent):
            if self._texts < self.max_queue:
                self._put(_Text(wire.reset_message(event)))
            else:
                self._resync()

    def _resync(self) -> None:
        """Drop everything pending except control replies; the writer will send a fresh snapshot."""
        frames = sum(len(item.batches) for item in self._queue if isinstance(item, _Frames))
        replies = [item for item in self._queue if isinstance(item, _Text) and item.reply]
        self._queue.clear()
        self._frames = self._texts = 0
        self._queue.extend(replies)
        self._put(_Resync())
        self._resync_pending = True
        self._count_dropped(frames)

    def _count_dropped(self, n: int) -> None:
        if n:
            self.dropped += n
            self._unreported += n
            self.managed.count_dropped(n)

    # ----------------------------------------------------------------- control messages
    def handle_message(self, message: str | bytes) -> bool:
        """A client message: a ``control`` request answered with ``ack`` or ``error``, ``ping``, or
        ``ack_frames`` (flow control, no reply). Returns whether it was a user action (not ``ack_frames``)."""
        if self._closed:
            return False
        msg_id = None
        try:
            if isinstance(message, bytes):
                raise wire.WireError("binary messages are not accepted")
            msg = wire.loads(message)
            msg_id = msg.get("id")
            if msg["type"] == "ack_frames":
                self._acknowledge(msg.get("seq"))
                return False
            if msg["type"] == "ping":
                self._reply({"type": "pong", "id": msg_id})
                return True
            if msg["type"] != "control":
                raise wire.WireError(f"unknown message type {msg['type']!r}; expected 'control'")
            if not self.can_write:
                self._reply(wire.error_message(403, "not authorized to control this replay session", msg_id))
                return True
            args = {k: v for k, v in msg.items() if k not in ("type", "id", "action")}
            status = self.manager.control(self.managed, msg.get("action"), args)
        except wire.WireError as exc:
            self._reply(wire.error_message(400, str(exc), msg_id))
        except ReplayError as exc:
            self._reply(wire.error_message(exc.http_status, str(exc), msg_id))
        except Exception as exc:  # a bug must not kill the connection
            log.exception("replay control message failed")
            self._reply(wire.error_message(500, f"internal error: {exc!r}", msg_id))
        else:
            self._reply(wire.ack_message(msg_id, status))
        return True

    def _acknowledge(self, seq: Any) -> None:
        """``ack_frames``: the client has processed every binary frame up to ``seq``."""
        if isinstance(seq, bool) or not isinstance(seq, int):
            raise wire.WireError(f"'ack_frames' needs an integer 'seq', got {seq!r}")
        self._in_flight = deque(s for s in self._in_flight if s > seq)
        self._wake.set()

    def _blocked(self) -> bool:
        """Flow control: the next item is a binary frame and ``ack_window`` frames are unacknowledged."""
        return (
            self.ack
            and len(self._in_flight) >= self.ack_window
            and isinstance(self._queue[0], (_Frames, _History, _Resync))
        )

    def _reply(self, message: dict[str, Any]) -> None:
        replies = sum(1 for item in self._queue if isinstance(item, _Text) and item.reply)
        if replies >= self.max_queue:  # the client sends requests but does not read the answers
            log.warning("replay client of %s does not read its replies; closing", self.managed.id)
            self.close()
            try:
                self.writer.close(1008, "too many unread replies")
            except Exception:
                pass
            return
        self._put(_Text(message, reply=True))
        self._wake.set()

    # ----------------------------------------------------------------- writer task
    async def _run(self) -> None:
        try:
            while not self._closed:
                if not self._queue or self._blocked():
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                item = self._pop()
                for payload, binary in self._encode(item):
                    if binary and self.ack:
                        # a history replaces what the client shows: it fills the window by itself (at speed
                        # "max" every frame is a resync; rows sent behind it would only be redrawn over)
                        weight = self.ack_window if isinstance(item, (_History, _Resync)) else 1
                        self._in_flight.extend([self._sent_seq] * weight)
                    await self._write(payload, binary)
                    if self._closed:
                        return
                if self._unreported and not self._resync_pending:
                    count, self._unreported = self._unreported, 0
                    await self._write(wire.dumps(wire.dropped_message(count, total=self.dropped)), False)
        except (WebSocketClosedError, StreamClosedError):
            self.close()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("replay WebSocket writer for session %s failed", self.managed.id)
            self.close(1011, "internal error")

    def _encode(self, item: _Item) -> list[tuple[str | bytes, bool]]:
        """The messages for ``item``; ``_sent_seq`` is the ``seq`` of its binary frame (there is one at most)."""
        if isinstance(item, _Text):
            return [(wire.dumps(item.message), False)]
        if isinstance(item, _Frames):
            self._sent_seq = item.batches[-1].seq
            return [(self._encoder.encode(item.batches), True)]
        if isinstance(item, _History):
            batch = item.batch
            self._sent_seq = batch.seq
            head = wire.history_message(len(batch), batch.seq, first_row=batch.first_row, mode=batch.mode.value)
            return [(wire.dumps(head), False), (self._encoder.encode(batch, history=True), True)]
        if isinstance(item, _Resync):
            # Snapshot now (synchronously): events pushed from here on follow it without gap or overlap.
            self._resync_pending = False
            managed = self.managed
            session = managed.session
            reset = wire.reset_message(ResetEvent(session.seq, session.id, session.mode, "resync"))
            state = {"type": "state", "seq": session.seq, "status": managed.model()}
            return [(wire.dumps(reset), False), (wire.dumps(state), False), *self._encode(_History(self._history()))]
        raise TypeError(f"unknown queue item {item!r}")

    def _history(self) -> Batch:
        """The session's buffer as one batch; with ``tail`` only its newest ``tail`` rows."""
        batch = self.managed.history()
        cut = len(batch) - self.tail if self.tail is not None else 0
        if cut <= 0:
            return batch
        columns = {name: col[cut:] for name, col in batch.columns.items()}
        position = None if batch.position is None else batch.position + cut
        return Batch(
            batch.seq, batch.session_id, batch.mode, batch.ts[cut:], columns, batch.first_row + cut, position,
        )

    async def _write(self, payload: str | bytes, binary: bool) -> None:
        result = self.writer.write_message(payload, binary=binary)
        if result is not None:
            await result
