"""``ReplayConnection``: one WebSocket client of one replay session (what the thin handler delegates to).

Session events arrive through a synchronous ``push`` on the server loop and go into a bounded queue; a
writer task drains it, awaiting each write so a slow client applies back-pressure. A client that falls
behind gets, in this order:

1. merged frames: when ``max_queue`` batch frames are waiting, a new batch joins the last waiting frame (one
   frame ``first_seq``..``seq``; it may overtake waiting ``state`` messages, never a ``reset``); the frames
   merged away are reported with a ``merged`` message (``frames_merged``; no row is lost);
2. a resync: when merging is not possible (a reset in between, the merged frame would exceed the session's
   ``buffer_rows``, ``max_queue`` state/reset messages are waiting) or the connection's output would exceed
   its byte budget ``max_bytes``, everything waiting is discarded and the client is re-synchronised:
   ``reset`` (reason ``resync``), ``state``, ``history``. Rows it thereby never receives are counted in
   ``rows_dropped`` (see ``_settle_loss``; also reported in ``merged``). Control replies (``ack``/``error``)
   are never discarded;
3. a close: a client past its budget (a resync pending) whose write has not completed for
   ``stall_timeout`` seconds is closed with 1013 (try again later); a client that does not read its replies
   is closed with 1008.

The byte budget counts encoded output held for the client: what waits in the queue (batch bytes as they will
be encoded, text messages' JSON) plus what was encoded and handed to tornado and whose write future has not
resolved (its write buffer). A history larger than the budget carries only the newest rows that fit
(``first_row`` says where they start). Memory per client is therefore bounded by ``max_bytes``.

Flow control (``ack=True``, the browser widget's ``?ack=1``): the client acknowledges the binary frames it
has processed with ``{"type": "ack_frames", "seq": n}`` (``seq`` of the last binary frame it handled). At
most ``ack_window`` binary frames are then unacknowledged in flight (a history counts as ``ack_window``: it
replaces what the client shows); meanwhile new batches are merged into the waiting frame (same accounting
as above), at most ``ack_window`` frames wait (one per stream, e.g. across a loop reset), and beyond that
the client is re-synchronised. Data in flight to such a client is thus a few frames, so a pause or any
state change reaches it within about one of its frames.

``tail=n`` (a display that keeps only its last ``n`` rows, e.g. the widget's plot rollover): a history (on
connect or in a resync) carries only the newest ``n`` buffered rows (``first_row`` says where they start).

Client messages: ``id`` values are echoed in replies, so only ``null``, numbers (|n| <= 2**53) and strings
of at most ``MAX_ID_CHARS`` characters are accepted; anything else gets an ``error`` (400) without an id.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError

from .. import wire
from ..batch import Batch, Event, MarkEvent, ResetEvent, StateEvent, can_merge
from ..controls import table_json
from ..exceptions import ReplayError

if TYPE_CHECKING:
    from .manager import ManagedSession, SessionManager

__all__ = [
    "ACK_WINDOW",
    "MAX_BYTES",
    "MAX_ID_CHARS",
    "SHARED_USER",
    "STALL_TIMEOUT",
    "ReplayConnection",
    "Writer",
    "connection_limit_reason",
]

log = logging.getLogger(__name__)

#: binary frames a flow-controlled (``ack``) client may have unacknowledged; also its waiting-frame bound
ACK_WINDOW = 2
#: default byte budget of one connection's queued + in-flight output (``ReplayExtension.ws_max_bytes``)
MAX_BYTES = 16 * 1024 * 1024
#: default seconds a client past its budget may leave a write pending before it is closed (1013)
STALL_TIMEOUT = 30.0
#: longest string ``id`` a client message may carry (ids are echoed in replies)
MAX_ID_CHARS = 64
#: longest ``message`` text in an ``error`` reply
MAX_ERROR_CHARS = 1024
#: the per-user connection key of everyone holding the server's one token or password
SHARED_USER = "\0shared"
#: seconds a session waits for its kernel client's callbacks on one release before it stops waiting for it
HOLD_TIMEOUT = 10.0
_MAX_ID_INT = 2**53  # exact in JavaScript
_FRAME_OVERHEAD = 4096  # a binary frame's JSON header and padding, roughly (column specs, dictionaries)


class Writer(Protocol):
    """The WebSocket side: ``write_message`` returns an awaitable that resolves once flushed."""

    def write_message(self, message: str | bytes, binary: bool = False) -> Any: ...

    def close(self, code: int | None = None, reason: str | None = None) -> None: ...


def _row_bytes(batch: Batch, ms_only: bool) -> int:
    """Bytes one row of ``batch`` takes in a binary frame (time as float64 ms, plus int64 ns unless ms_only)."""
    width = 8 if ms_only else 16
    for values in batch.columns.values():
        width += max(1, getattr(getattr(values, "dtype", None), "itemsize", 8))
    return width


def _batch_bytes(batch: Batch, ms_only: bool) -> int:
    """Bytes ``batch`` takes once encoded, estimated before encoding (queue accounting)."""
    return len(batch) * _row_bytes(batch, ms_only) + _FRAME_OVERHEAD


class _Frames:
    """Pending batches that go out as one (possibly coalesced) binary frame of stream ``epoch``."""

    __slots__ = ("batches", "epoch", "nbytes", "rows")

    def __init__(self, batch: Batch, nbytes: int, epoch: int) -> None:
        self.batches = [batch]
        self.rows = len(batch)
        self.nbytes = nbytes
        self.epoch = epoch

    def can_take(self, batch: Batch, max_rows: int) -> bool:
        """The one merge rule (``batch.can_merge``) plus this frame's row limit."""
        return can_merge(self.batches[-1], batch) and self.rows + len(batch) <= max_rows

    def add(self, batch: Batch, nbytes: int) -> None:
        self.batches.append(batch)
        self.rows += len(batch)
        self.nbytes += nbytes - _FRAME_OVERHEAD


class _Text:
    """A text message; ``reply`` messages survive a resync, ``state`` ones may be superseded, rows may
    overtake ``state`` and ``mark`` ones (a mark follows its own rows, which are sent before it)."""

    __slots__ = ("mark", "message", "nbytes", "reply", "state")

    def __init__(self, message: dict[str, Any], *, reply: bool = False, state: bool = False,
                 mark: bool = False) -> None:
        self.message = message
        self.reply = reply
        self.state = state
        self.mark = mark
        self.nbytes = len(wire.dumps(message))  # JSON is cheap; measured, not estimated (ids are capped)


class _History:
    """The session's buffer as one frame, announced by a ``history`` message."""

    __slots__ = ("batch", "nbytes")

    def __init__(self, batch: Batch, nbytes: int) -> None:
        self.batch = batch
        self.nbytes = nbytes


class _Resync:
    """Marker: send reset + state + history, snapshotted when the writer reaches it (holds nothing)."""

    __slots__ = ()
    nbytes = 0


_Item = _Frames | _Text | _History | _Resync


def check_id(value: Any) -> Any:
    """A client message's ``id`` if it may be echoed (null, a number, a short string), else ``WireError``."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and abs(value) <= _MAX_ID_INT:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, str) and len(value) <= MAX_ID_CHARS:
        return value
    raise wire.WireError(
        f"'id' must be null, a number or a string of at most {MAX_ID_CHARS} characters (it is echoed in replies)"
    )


def connection_limit_reason(
    clients: Iterable[Any], user: str | None, *, per_session: int, per_user: int, user_clients: Iterable[Any]
) -> str | None:
    """Why one more connection may not open (None: it may).

    ``clients``: the session's connections; ``user_clients``: every connection on the server (those of
    ``user`` are counted; capability-token connections have no user and count per session only).
    """
    if sum(1 for _ in clients) >= per_session:
        return f"too many connections to this replay session (ws_max_connections_per_session={per_session})"
    if user is not None and sum(1 for c in user_clients if getattr(c, "user", None) == user) >= per_user:
        who = "this server's token" if user == SHARED_USER else f"user {user[:MAX_ID_CHARS]!r}"
        return f"too many replay connections for {who} (ws_max_connections_per_user={per_user})"
    return None


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
        max_bytes: int = MAX_BYTES,
        stall_timeout: float = STALL_TIMEOUT,
        user: str | None = None,
        may_hold: bool = False,
        hold_timeout: float = HOLD_TIMEOUT,
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
        #: the requesting user (per-user connection limit); None for capability tokens
        self.user = user
        self.max_queue = max(2, int(max_queue))
        #: byte budget of queued + in-flight output (see the module docstring)
        self.max_bytes = max(64 * 1024, int(max_bytes))
        self.stall_timeout = float(stall_timeout)
        #: flow control: the client acknowledges frames (``ack_frames``); at most ``ack_window`` in flight
        self.ack = bool(ack)
        self.ack_window = max(1, int(ack_window))
        #: batch frames that may wait in the queue before a resync (flow-controlled: merged, few)
        self._max_frames = min(self.max_queue, self.ack_window) if self.ack else self.max_queue
        self._in_flight: deque[int] = deque()  # seqs of binary frames sent and not yet acknowledged
        #: a history carries at most this many (the newest) buffered rows (None: all)
        self.tail = None if tail is None else max(1, int(tail))
        self.frames_merged = 0  # batch frames merged into others or discarded in a resync, in total
        self.rows_dropped = 0  # rows released that this client never receives (resyncs), in total
        self.resyncs = 0
        self.max_frames_queued = 0  # high-water mark of queued batch frames (diagnostics, tests)
        self.queued_bytes = 0  # estimated encoded bytes waiting in the queue
        self.written_bytes = 0  # encoded bytes handed to the socket whose write has not completed
        self.max_held_bytes = 0  # high-water mark of queued_bytes + written_bytes
        self._queue: deque[_Item] = deque()
        self._frames = 0  # queued _Frames items
        self._texts = 0  # queued non-reply text items
        self._replies = 0  # queued reply items
        self._unreported = 0  # frames merged since the last ``merged`` report
        self._unreported_rows = 0  # rows dropped since the last ``merged`` report
        self._resync_pending = False
        # stream bookkeeping for rows_dropped: every reset starts a new epoch; discarded rows of the
        # current epoch form one contiguous range [_lost_start, _lost_end), older epochs' are all lost
        self._epoch = 0
        self._lost_epoch = 0
        self._lost_start = self._lost_end = 0
        self._lost_older = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.close_code: int | None = None  # the code this side closed the socket with, if it did
        self._sent_seq = 0
        self._weight = 1  # in-flight window slots of the binary frame ``_encode`` returned last
        self._budget_first_row = 0  # set by ``_history_item``
        #: callback hold (``hold`` messages; only the kernel's capability connection may): pacing waits until
        #: this client has acknowledged every batch pushed to it, at most ``hold_timeout`` s per release
        self.may_hold = bool(may_hold)
        self.hold_timeout = float(hold_timeout)
        self._release_hold: Callable[[], None] | None = None
        self._pushed_batch = 0  # seq of the last batch pushed to this client
        self._acked_batch = 0  # seq of the last batch it acknowledged
        self._acked = asyncio.Event()

    @property
    def held_bytes(self) -> int:
        """Output this connection holds now: queued (estimated) plus written and not yet flushed."""
        return self.queued_bytes + self.written_bytes

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
            self._put(self._history_item())
            self._put(self._marks_item())
        else:
            for event in missed:
                self.push(event)
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"jupyter_replay.ws.{session.id}")

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Stop following the session; with ``code`` also close the socket (session removed, limits)."""
        if self._closed:
            return
        self._closed = True
        self._set_hold(False)
        self._acked.set()
        self.managed.detach(self)
        self._queue.clear()
        self.queued_bytes = 0
        self._wake.set()
        if code is not None:
            self.close_code = code
            try:
                self.writer.close(code, reason)
            except Exception:  # noqa: BLE001 - already closed: nothing left to tell the client
                pass
        # Safe to cancel mid-write: ``_flushed`` waits on tornado's write future without cancelling it
        # (cancelling that future made tornado log a CancelledError traceback per stalled client); tornado
        # fails it when it aborts the socket, and ``_quiet`` retrieves that.
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    # ----------------------------------------------------------------- session events (sync)
    def push(self, event: Event) -> None:
        """Called by the session (through the manager) for every event."""
        if self._closed:
            return
        if isinstance(event, ResetEvent):
            self._epoch += 1
        elif isinstance(event, Batch):
            self._pushed_batch = event.seq
        self._enqueue(event)
        self._wake.set()

    def _held(self) -> None:
        held = self.queued_bytes + self.written_bytes
        if held > self.max_held_bytes:
            self.max_held_bytes = held

    def _fits(self, nbytes: int) -> bool:
        return self.queued_bytes + self.written_bytes + nbytes <= self.max_bytes

    def _put(self, item: _Item) -> None:
        self._queue.append(item)
        self.queued_bytes += item.nbytes
        if isinstance(item, _Frames):
            self._frames += 1
            self.max_frames_queued = max(self.max_frames_queued, self._frames)
        elif isinstance(item, _Text):
            if item.reply:
                self._replies += 1
            else:
                self._texts += 1
        self._held()

    def _pop(self) -> _Item:
        item = self._queue.popleft()
        self.queued_bytes -= item.nbytes
        if isinstance(item, _Frames):
            self._frames -= 1
        elif isinstance(item, _Text):
            if item.reply:
                self._replies -= 1
            else:
                self._texts -= 1
        return item

    def _coalesce_target(self, batch: Batch) -> _Frames | None:
        """The last queued frame if ``batch`` may join it: only state messages and replies after it."""
        for item in reversed(self._queue):
            if isinstance(item, _Frames):
                return item if item.can_take(batch, self.managed.session.buffer_rows) else None
            if not (isinstance(item, _Text) and (item.state or item.reply or item.mark)):
                return None  # a reset or the history: rows after it belong to another stream
        return None

    def _enqueue(self, event: Event) -> None:
        if self._resync_pending:  # everything until the resync snapshot is contained in it
            if isinstance(event, Batch):
                self._lose(self._epoch, event)
                self._count(frames_merged=1)
            return
        if isinstance(event, Batch):
            nbytes = _batch_bytes(event, self.ms_only)
            if not self._fits(nbytes):  # past the byte budget: start over from a snapshot
                self._resync(event)
            elif self.ack:  # flow-controlled: rows wait in one frame until the client has room for it
                target = self._coalesce_target(event) if self._frames else None
                if target is not None:
                    self._merge(target, event, nbytes)
                elif self._frames < self._max_frames:
                    self._put(_Frames(event, nbytes, self._epoch))
                else:
                    self._resync(event)
            elif self._frames < self.max_queue:
                self._put(_Frames(event, nbytes, self._epoch))
            else:
                target = self._coalesce_target(event)
                if target is not None:
                    self._merge(target, event, nbytes)  # rows may overtake an unsent status, never a reset
                else:
                    self._resync(event)
            return
        if isinstance(event, StateEvent):
            item = _Text(wire.state_message(event), state=True)
            if self._texts >= self.max_queue:  # a newer status supersedes the oldest unsent one
                old = next((i for i in self._queue if isinstance(i, _Text) and i.state), None)
                if old is None:
                    self._resync()
                    return
                self._queue.remove(old)
                self._texts -= 1
                self.queued_bytes -= old.nbytes
            if self._fits(item.nbytes):
                self._put(item)  # after the rows released before it
            else:
                self._resync()
        elif isinstance(event, (ResetEvent, MarkEvent)):
            item = _Text(wire.event_message(event), mark=isinstance(event, MarkEvent))
            if self._texts < self.max_queue and self._fits(item.nbytes):
                self._put(item)
            else:
                self._resync()  # its snapshot carries the marks

    def _merge(self, target: _Frames, batch: Batch, nbytes: int) -> None:
        self.queued_bytes += nbytes - _FRAME_OVERHEAD
        target.add(batch, nbytes)
        self._held()
        self._count(frames_merged=1)

    def _resync(self, batch: Batch | None = None) -> None:
        """Drop everything pending except control replies (and ``batch``); the writer sends a fresh snapshot."""
        frames = 0
        for item in self._queue:
            if isinstance(item, _Frames):
                frames += len(item.batches)
                for queued in item.batches:
                    self._lose(item.epoch, queued)
        replies = [item for item in self._queue if isinstance(item, _Text) and item.reply]
        self._queue.clear()
        self.queued_bytes = 0
        self._frames = self._texts = self._replies = 0
        for item in replies:
            self._put(item)
        self._put(_Resync())
        self._acked_batch = self._pushed_batch  # discarded frames are never acknowledged: stop waiting for them
        self._acked.set()
        self._resync_pending = True
        self.resyncs += 1
        if batch is not None:
            self._lose(self._epoch, batch)
            frames += 1
        self._count(frames_merged=frames)

    def _lose(self, epoch: int, batch: Batch) -> None:
        """``batch`` was not sent: its rows count as dropped unless the resync's history carries them."""
        if epoch != self._lost_epoch:  # a reset since: the earlier range belongs to an older stream
            self._lost_older += self._lost_end - self._lost_start
            self._lost_epoch, self._lost_start = epoch, batch.first_row
        elif self._lost_end == self._lost_start:
            self._lost_start = batch.first_row
        self._lost_end = batch.first_row + len(batch)

    def _settle_loss(self, history_first_row: int) -> None:
        """At a resync snapshot: ``rows_dropped`` += discarded rows the history does not carry.

        Those are the rows of earlier streams (before a reset the client never saw) and the current stream's
        rows before ``history_first_row`` (already out of the session's buffer, or cut by the byte budget;
        rows cut by the client's own ``tail`` do not count: it would not show them anyway).
        """
        lost = self._lost_older
        if self._lost_epoch == self._epoch:
            lost += max(0, min(self._lost_end, history_first_row) - self._lost_start)
        else:
            lost += self._lost_end - self._lost_start
        self._lost_older = 0
        self._lost_epoch, self._lost_start, self._lost_end = self._epoch, 0, 0
        self._count(rows_dropped=lost)

    def _count(self, *, frames_merged: int = 0, rows_dropped: int = 0) -> None:
        if frames_merged or rows_dropped:
            self.frames_merged += frames_merged
            self.rows_dropped += rows_dropped
            self._unreported += frames_merged
            self._unreported_rows += rows_dropped
            self.managed.count_slow_client(frames_merged, rows_dropped)

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
            try:
                msg = wire.loads(message)
            except wire.WireError:
                raise
            except (ValueError, RecursionError):  # e.g. an integer literal too long to convert
                raise wire.WireError("malformed JSON message") from None
            msg_id = check_id(msg.get("id"))
            if msg["type"] == "ack_frames":
                self._acknowledge(msg.get("seq"))
                return False
            if msg["type"] == "ping":
                self._reply({"type": "pong", "id": msg_id})
                return True
            if msg["type"] == "hold":
                if not self.may_hold:
                    self._reply(wire.error_message(403, "only the kernel's own client may hold the replay", msg_id))
                    return True
                self._set_hold(msg.get("on") is True)
                self._reply(wire.ack_message(msg_id, self.managed.model()))
                return True
            if msg["type"] != "control":
                raise wire.WireError(f"unknown message type {msg['type'][:MAX_ID_CHARS]!r}; expected 'control'")
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
            self._reply(wire.error_message(500, f"internal error: {type(exc).__name__}", msg_id))
        else:
            self._reply(wire.ack_message(msg_id, status))
        return True

    def _set_hold(self, on: bool) -> None:
        """Start or stop holding the session's pacing for this client's callbacks (``Session.hold``)."""
        if on and self._release_hold is None and not self._closed:
            self._acked_batch = max(self._acked_batch, self._pushed_batch)  # nothing earlier to wait for
            self._release_hold = self.managed.session.hold(self._wait_for_ack)
        elif not on and self._release_hold is not None:
            self._release_hold()
            self._release_hold = None

    async def _wait_for_ack(self) -> None:
        """The hold: until every batch pushed to this client is acknowledged, it closes, or the timeout
        (a kernel that stopped answering must not hold the session: the hold is then dropped)."""
        deadline = asyncio.get_running_loop().time() + self.hold_timeout
        while not self._closed and self._acked_batch < self._pushed_batch:
            self._acked.clear()
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                log.warning("replay session %s: its kernel client did not acknowledge rows for %.0f s; "
                            "no longer waiting for its callbacks", self.managed.id, self.hold_timeout)
                self._set_hold(False)
                return
            try:
                await asyncio.wait_for(self._acked.wait(), left)
            except asyncio.TimeoutError:
                pass

    def _acknowledge(self, seq: Any) -> None:
        """``ack_frames``: the client has processed every binary frame up to ``seq``."""
        if isinstance(seq, bool) or not isinstance(seq, int):
            raise wire.WireError("'ack_frames' needs an integer 'seq'")
        self._in_flight = deque(s for s in self._in_flight if s > seq)
        if seq > self._acked_batch:
            self._acked_batch = seq
            self._acked.set()
        self._wake.set()

    def _blocked(self) -> bool:
        """Flow control: the next item is a binary frame and ``ack_window`` frames are unacknowledged."""
        return (
            self.ack
            and len(self._in_flight) >= self.ack_window
            and isinstance(self._queue[0], (_Frames, _History, _Resync))
        )

    def _reply(self, message: dict[str, Any]) -> None:
        if message.get("type") == "error" and len(message.get("message", "")) > MAX_ERROR_CHARS:
            message["message"] = message["message"][: MAX_ERROR_CHARS - 3] + "..."
        item = _Text(message, reply=True)
        if self._replies >= self.max_queue or not self._fits(item.nbytes):
            # the client sends requests but does not read the answers
            log.info("replay client of %s does not read its replies; closing (1008)", self.managed.id)
            self.close(1008, "too many unread replies")
            return
        self._put(item)
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
                payloads = self._encode(item)
                del item  # the encoded payloads are all this connection holds of it from here on
                self.written_bytes = sum(len(payload) for payload, _ in payloads)
                self._held()
                while payloads:
                    payload, binary = payloads.pop(0)
                    if binary and self.ack:
                        # a history replaces what the client shows: it fills the window by itself (at speed
                        # "max" every frame is a resync; rows sent behind it would only be redrawn over)
                        self._in_flight.extend([self._sent_seq] * self._weight)
                    size = len(payload)
                    result = self.writer.write_message(payload, binary=binary)
                    del payload  # tornado holds its own copy (the frame) until it is flushed
                    await self._flushed(result)
                    if self._closed:
                        return
                    self.written_bytes -= size
                self.written_bytes = 0
                if (self._unreported or self._unreported_rows) and not self._resync_pending:
                    report = wire.merged_message(
                        self._unreported, self._unreported_rows,
                        total_frames_merged=self.frames_merged, total_rows_dropped=self.rows_dropped,
                    )
                    self._unreported = self._unreported_rows = 0
                    await self._flushed(self.writer.write_message(wire.dumps(report), binary=False))
        except (WebSocketClosedError, StreamClosedError):
            self.close()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("replay WebSocket writer for session %s failed", self.managed.id)
            self.close(1011, "internal error")
        finally:
            self.written_bytes = 0

    def _encode(self, item: _Item) -> list[tuple[str | bytes, bool]]:
        """The messages for ``item``; ``_sent_seq`` is the ``seq`` of its binary frame (there is one at most)."""
        self._weight = 1
        if isinstance(item, _Text):
            return [(wire.dumps(item.message), False)]
        if isinstance(item, _Frames):
            self._sent_seq = item.batches[-1].seq
            return [(self._encoder.encode(item.batches), True)]
        if isinstance(item, _History):
            self._weight = self.ack_window
            batch = item.batch
            frame = self._encoder.encode(batch, history=True)
            while len(frame) > self.max_bytes and len(batch) > 1:  # estimate exceeded (e.g. text dictionaries)
                # a history starts the encoder's dictionaries afresh, so encoding it again is harmless
                batch = _cut(batch, max(1, len(batch) * self.max_bytes // len(frame) * 9 // 10))
                frame = self._encoder.encode(batch, history=True)
            self._sent_seq = batch.seq
            head = wire.history_message(len(batch), batch.seq, first_row=batch.first_row, mode=batch.mode.value)
            return [(wire.dumps(head), False), (frame, True)]
        if isinstance(item, _Resync):
            # Snapshot now (synchronously): events pushed from here on follow it without gap or overlap.
            self._resync_pending = False
            managed = self.managed
            session = managed.session
            reset = wire.reset_message(ResetEvent(session.seq, session.id, session.mode, "resync"))
            history = self._history_item()
            self._settle_loss(self._budget_first_row)
            marks = self._marks_item()
            state = {"type": "state", "seq": session.seq, "status": managed.model()}
            return [(wire.dumps(reset), False), (wire.dumps(state), False), *self._encode(history),
                    (wire.dumps(marks.message), False)]
        raise TypeError(f"unknown queue item {item!r}")

    def _history_item(self) -> _History:
        """The session's buffer as one history: its newest rows that fit the byte budget, at most ``tail``.

        Sets ``_budget_first_row``: where the history would start with the budget cut alone (not ``tail``).
        """
        batch = self.managed.history()
        per_row = _row_bytes(batch, self.ms_only)
        fit = max(1, (self.max_bytes - 2 * _FRAME_OVERHEAD) // per_row)
        self._budget_first_row = batch.first_row + max(0, len(batch) - fit)
        keep = min(fit, self.tail) if self.tail is not None else fit
        if len(batch) > keep:
            batch = _cut(batch, keep)
        return _History(batch, len(batch) * per_row + _FRAME_OVERHEAD)

    def _marks_item(self) -> _Text:
        """The session's current marks (bounded by ``controls.MAX_MARKS``), sent after a history."""
        session = self.managed.session
        return _Text(wire.marks_history_message(session.marks, session.seq))

    async def _flushed(self, result: Any) -> None:
        """Wait until tornado has flushed a written message (until then its write buffer is held for us).

        A client past its budget (a resync pending) that lets a write wait ``stall_timeout`` is closed (1013).
        """
        if result is None:
            return
        future = asyncio.ensure_future(result)
        future.add_done_callback(_quiet)
        while True:
            done, _ = await asyncio.wait([future], timeout=self.stall_timeout if self.stall_timeout > 0 else None)
            if done:
                future.result()  # WebSocketClosedError / StreamClosedError end the writer
                return
            if self._closed:
                continue  # closing: tornado aborts a client that does not answer the close
            if self._resync_pending or self.held_bytes > self.max_bytes:
                log.info("replay client of %s stopped reading past its budget; closing (1013)", self.managed.id)
                self.close(1013, "client too slow: output budget exceeded; try again later")
                return


def _cut(batch: Batch, rows: int) -> Batch:
    """The newest ``rows`` rows of ``batch``."""
    cut = len(batch) - rows
    if cut <= 0:
        return batch
    columns = {name: col[cut:] for name, col in batch.columns.items()}
    position = None if batch.position is None else batch.position + cut
    return Batch(
        batch.seq, batch.session_id, batch.mode, batch.ts[cut:], columns, batch.first_row + cut, position,
        batch.warmup,
    )


def _quiet(future: asyncio.Future[Any]) -> None:
    """Retrieve a finished write's or writer's outcome so asyncio logs no traceback for a closed client."""
    if not future.cancelled():
        future.exception()
