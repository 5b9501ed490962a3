"""``SessionManager``: one engine ``Session`` per kernel, tied to the kernel's life cycle.

Sessions live on the server's asyncio loop (tornado's). A session is created only for a kernel the
server's kernel manager knows, and removed when that kernel shuts down, is culled or dies; a kernel
restart clears its buffer. Idle sessions (no WebSocket client for ``idle_timeout``) are closed.
Nothing here is global: the manager belongs to one extension app, each session to one kernel.

Limits come from a frozen ``ServerSettings`` the app hands over (and replaces when a trait changes).
Heavy work (building a source from a file or a sample, measuring and decoding an upload) runs in a small
thread pool (``heavy_workers``) so the loop keeps pacing every session; results are installed on the loop.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import hmac
import logging
import os
import re
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from tornado.ioloop import PeriodicCallback

from ..batch import Batch, Event
from ..controls import Policy, parse_loop, parse_speed
from ..exceptions import (
    DataError,
    IllegalTransitionError,
    InvalidValueError,
    PathNotAllowedError,
    PayloadTooLargeError,
    ReplayError,
    SessionLimitError,
    SessionNotFoundError,
    brief,
)
from ..session import Session
from ..sources.base import ReplaySource
from .payload import DataSize, decode_upload, describe, mapped_size, measure_upload, source_size
from .rooms import Room
from .settings import ServerSettings

__all__ = [
    "KERNEL_ACTIONS_SCHEMA", "ManagedSession", "SessionManager", "resolve_data_path", "resolve_dataset_location",
    "EventSink", "unknown_kernel",
]

T = TypeVar("T")

log = logging.getLogger(__name__)

#: jupyter_server's kernel life-cycle events (emitted by ``ServerKernelManager``).
KERNEL_ACTIONS_SCHEMA = "https://events.jupyter.org/jupyter_server/kernel_actions/v1"

_SOURCE_KEYS = {
    "sample": {"kind", "n", "seed"},
    "parquet": {"kind", "path", "time"},
    "csv": {"kind", "path", "time"},
    "dataset": {"kind", "path", "time", "symbols", "symbol_column", "columns"},
}
_MAX_NAMES = 10_000  # symbols/columns in a dataset spec
_SAMPLE_MAX_ROWS = 5_000_000


def unknown_kernel(kernel_id: Any) -> SessionNotFoundError:
    """The one answer for a kernel that does not run and for one the requester may not use (no oracle)."""
    return SessionNotFoundError(f"no running kernel {brief(kernel_id)}")


class EventSink(Protocol):
    """What a managed session fans its events out to (a WebSocket connection)."""

    def push(self, event: Event) -> None: ...

    def close(self, code: int | None = None, reason: str | None = None) -> None: ...


class ManagedSession:
    """A ``Session`` plus what the server keeps for it: clients, capability token, resume log."""

    #: created without a kernel (``ReplayExtension.allow_kernelless_sessions``): no kernel life cycle
    kernelless = False

    def __init__(
        self, session: Session, *, kernel_id: str, resume_events: int, owner: str | None = None
    ) -> None:
        self.session = session
        self.kernel_id = kernel_id
        #: user name of the creator (None: unowned, open to everyone the Authorizer lets in)
        self.owner = owner
        #: the room when the owner shared the session (see ``rooms.py``)
        self.room: Room | None = None
        self.client_token = secrets.token_urlsafe(32)
        #: changes when a session is re-created for the same kernel, so old resume points are not reused
        self.instance = uuid.uuid4().hex[:12]
        self.created = time.time()
        self.last_active = time.monotonic()
        self.clients: set[EventSink] = set()
        self.closed = False
        #: rows and decoded bytes of the replay data (counted against the server's byte budget)
        self.data_size = DataSize(0, 0)
        self._resume_events = max(1, int(resume_events))
        self._log: deque[Event] = deque()
        self._log_rows = 0
        self._unsubscribe = session.subscribe(self._on_event)

    @property
    def id(self) -> str:
        return self.session.id

    # ----------------------------------------------------------------- events
    def _on_event(self, event: Event) -> None:
        self._log.append(event)
        if isinstance(event, Batch):
            self._log_rows += len(event)
        limit_rows = self.session.buffer_rows
        while len(self._log) > self._resume_events or (self._log_rows > limit_rows and len(self._log) > 1):
            old = self._log.popleft()
            if isinstance(old, Batch):
                self._log_rows -= len(old)
        for client in list(self.clients):
            try:
                client.push(event)
            except Exception:  # one broken client must not starve the others
                log.exception("replay client of session %s failed", self.id)

    def events_since(self, seq: int) -> list[Event] | None:
        """Events with ``seq`` greater than ``seq`` if all are still retained (possibly none), else None."""
        current = self.session.seq
        if seq == current:
            return []
        if seq > current or seq < 0 or not self._log or self._log[0].seq > seq + 1:
            return None
        return [e for e in self._log if e.seq > seq]

    def history(self) -> Batch:
        """The session's buffer as one batch (``first_row``/``seq`` consistent with the event stream)."""
        session = self.session
        chunk = session.buffer.to_chunk()
        first_row = max(0, session.rows - len(chunk))
        return Batch(session.seq, session.id, session.mode, chunk.ts, dict(chunk.columns), first_row)

    # ----------------------------------------------------------------- clients
    def attach(self, client: EventSink) -> None:
        self.clients.add(client)
        self.last_active = time.monotonic()

    def detach(self, client: EventSink) -> None:
        self.clients.discard(client)
        self.last_active = time.monotonic()

    def count_slow_client(self, frames_merged: int = 0, rows_dropped: int = 0) -> None:
        """A slow client's frames merged (no data lost) and rows it never received (``status()`` keys)."""
        self.session.frames_merged += int(frames_merged)
        self.session.rows_dropped += int(rows_dropped)

    def check_token(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token), self.client_token)

    # ----------------------------------------------------------------- model
    def model(self) -> dict[str, Any]:
        """The REST model: the session's status plus server-side facts."""
        status = self.session.status()
        status.update(
            kernel_id=self.kernel_id,
            clients=len(self.clients),
            created=self.created,
            instance=self.instance,
            owner=self.owner,
            shared=self.room is not None,
        )
        return status

    async def aclose(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        for client in list(self.clients):
            try:
                client.close(1001, f"replay session closed: {reason}")
            except Exception:
                log.exception("closing a client of session %s failed", self.id)
        self.clients.clear()
        self._unsubscribe()
        self._log.clear()
        await self.session.aclose()


def resolve_data_path(path: Any, data_dirs: Iterable[str], root_dir: str) -> str:
    """The real path of a data file, which must lie inside one of ``data_dirs``.

    Relative paths are relative to the server's ``root_dir``. Symbolic links are resolved before the
    check, so neither ``..`` nor a link can escape the allowed directories (``PathNotAllowedError``).
    """
    if not isinstance(path, str) or not path.strip() or "\0" in path:
        raise InvalidValueError("source 'path' must be a non-empty string")
    candidate = path if os.path.isabs(path) else os.path.join(root_dir, path)
    real = os.path.realpath(candidate)
    if not any(_inside(real, os.path.realpath(directory)) for directory in data_dirs):
        raise PathNotAllowedError(f"path {path!r} is outside the allowed data directories")
    if not os.path.isfile(real):
        raise DataError(f"no such data file: {path!r}")
    return real


def resolve_dataset_location(path: Any, data_dirs: Iterable[str], data_urls: Iterable[str], root_dir: str) -> str:
    """A dataset's location: a local directory, file or glob inside ``data_dirs``, or a URL under ``data_urls``.

    URLs (``s3://bucket/prefix/...``) must start with one of the allowed prefixes at a ``/`` boundary
    and may not hold ``..`` segments; ``file://`` URLs are local paths. For a glob the directory
    before the first wildcard must be allowed and the pattern may not hold ``..``; symbolic links
    are resolved (files found under a directory are checked again once listed: ``check_dataset_files``).
    """
    from ..sources.storage import has_glob, is_url

    if not isinstance(path, str) or not path.strip() or "\0" in path:
        raise InvalidValueError("source 'path' must be a non-empty string")
    if is_url(path) and not path.lower().startswith("file://"):
        if ".." in path.split("://", 1)[1].split("/") or not any(_under_url(path, p) for p in data_urls):
            raise PathNotAllowedError(
                f"URL {brief(path)} is not under an allowed prefix (ReplayExtension.data_urls)"
            )
        return path
    local = path[len("file://"):] if is_url(path) else path
    candidate = local if os.path.isabs(local) else os.path.join(root_dir, local)
    base, pattern = candidate, ""
    if has_glob(candidate):
        cut = min(candidate.index(c) for c in "*?[" if c in candidate)
        base, pattern = candidate[:cut].rsplit(os.sep, 1)[0], candidate[cut:]
        if ".." in candidate[len(base):].split(os.sep):
            raise PathNotAllowedError(f"path {brief(path)} is outside the allowed data directories")
    real = os.path.realpath(base)
    if not any(_inside(real, os.path.realpath(directory)) for directory in data_dirs):
        raise PathNotAllowedError(f"path {brief(path)} is outside the allowed data directories")
    if not os.path.exists(real):
        raise DataError(f"no such data file or directory: {brief(path)}")
    return real + candidate[len(base):] if pattern else real


def check_dataset_files(files: Iterable[str], data_dirs: Iterable[str]) -> None:
    """Every local file a dataset opened lies inside ``data_dirs`` (a link inside must not lead out)."""
    dirs = [os.path.realpath(d) for d in data_dirs]
    for f in files:
        if not any(_inside(os.path.realpath(f), d) for d in dirs):
            raise PathNotAllowedError(f"dataset file {brief(f)} is outside the allowed data directories")


def _under_url(url: str, prefix: str) -> bool:
    return bool(prefix) and (url == prefix or url.startswith(prefix if prefix.endswith("/") else prefix + "/"))


def _inside(path: str, directory: str) -> bool:
    try:
        return os.path.commonpath([path, directory]) == directory
    except ValueError:  # different drives on Windows
        return False


class SessionManager:
    """Holds one session per kernel id for one Jupyter server.

    ``settings``: the server's limits (the app assigns a new value when a trait changes);
    ``live_factory``: ``Session(live_factory=...)`` for LIVE mode (the server's feed hub).
    """

    def __init__(
        self,
        serverapp: Any,
        settings: ServerSettings,
        *,
        live_factory: Callable[[str], Any] | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.serverapp = serverapp
        self.settings = settings
        self.live_factory = live_factory
        self.log = log or logging.getLogger(__name__)
        self._sessions: dict[str, ManagedSession] = {}
        self._reserved_bytes = 0  # decoded bytes of uploads/sources being built, not yet installed
        self._body_bytes = 0  # upload bodies being received (see reserve_body)
        self._heavy: ThreadPoolExecutor | None = None
        self._handoff: tuple[str, str] | None = None  # (directory, server id), made on first use
        self._dead_callbacks: dict[str, Callable[[], None]] = {}
        self._idle_check: PeriodicCallback | None = None
        self._listening = False
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()

    # ----------------------------------------------------------------- life cycle
    @property
    def kernel_manager(self) -> Any:
        return self.serverapp.kernel_manager

    def start(self) -> None:
        """Listen to kernel life-cycle events (idempotent; safe before the loop runs)."""
        if self._listening or self._closed:
            return
        self.serverapp.event_logger.add_listener(schema_id=KERNEL_ACTIONS_SCHEMA, listener=self._on_kernel_action)
        self._listening = True

    def _ensure_idle_check(self) -> None:
        """Start the periodic idle check (needs the running loop; called lazily)."""
        if self._idle_check is not None or self._closed:
            return
        interval_s = self.settings.idle_check_interval
        self._idle_check = PeriodicCallback(self._idle_tick, max(0.05, interval_s) * 1000)
        self._idle_check.start()

    async def aclose(self) -> None:
        """Close every session and stop listening (server shutdown)."""
        self._closed = True
        if self._listening:
            self.serverapp.event_logger.remove_listener(
                schema_id=KERNEL_ACTIONS_SCHEMA, listener=self._on_kernel_action
            )
            self._listening = False
        if self._idle_check is not None:
            self._idle_check.stop()
            self._idle_check = None
        for session_id in list(self._sessions):
            await self.remove(session_id, "server shutdown")
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._heavy is not None:
            self._heavy.shutdown(wait=False, cancel_futures=True)
            self._heavy = None

    # ----------------------------------------------------------------- heavy work, off the loop
    async def run_heavy(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the heavy-work pool (at most ``heavy_workers`` at once; others queue).

        For CPU- or IO-bound work on request data (files, samples, uploads): the loop keeps pacing the
        other sessions meanwhile. ``fn`` must not touch sessions; install its result on the loop.
        """
        if self._closed:
            raise SessionLimitError("the replay extension is shutting down")
        if self._heavy is None:
            self._heavy = ThreadPoolExecutor(
                max_workers=max(1, self.settings.heavy_workers), thread_name_prefix="replay-heavy"
            )
        return await asyncio.get_running_loop().run_in_executor(self._heavy, functools.partial(fn, *args))

    # ----------------------------------------------------------------- data budget
    def data_bytes(self) -> int:
        """Decoded bytes of all sessions' replay data, plus what is being built right now."""
        return sum(m.data_size.nbytes for m in self._sessions.values()) + self._reserved_bytes

    def reserve_body(self, nbytes: int) -> bool:
        """Count ``nbytes`` more of upload bodies being received against ``max_server_bytes``.

        False (nothing reserved) when the bodies in flight would pass it: many concurrent uploads, each
        under ``max_body_bytes``, cannot add up to unbounded memory. (Bodies have their own budget of
        ``max_server_bytes``: a body replacing a session's data briefly coexists with it.)
        """
        if self._body_bytes + nbytes > self.settings.max_server_bytes:
            return False
        self._body_bytes += nbytes
        return True

    def release_body(self, nbytes: int) -> None:
        """The body of an upload is no longer held (request finished or connection lost)."""
        self._body_bytes = max(0, self._body_bytes - nbytes)

    @contextlib.contextmanager
    def _admit(self, size: DataSize, replacing: ManagedSession | None = None) -> Iterator[None]:
        """Reserve ``size`` against the limits until the data is installed (``PayloadTooLargeError``).

        ``replacing``: the session whose current data the new data replaces (not counted twice).
        """
        s = self.settings
        if size.rows > s.max_session_rows:
            raise PayloadTooLargeError(
                f"the data has {size.rows:,} rows, more than max_session_rows={s.max_session_rows:,}; "
                "send fewer rows or ask the server's admin to raise ReplayExtension.max_session_rows"
            )
        if size.nbytes > s.max_session_bytes:
            raise PayloadTooLargeError(
                f"the data would take {describe(size)}, more than max_session_bytes={s.max_session_bytes:,}; "
                "send fewer rows or columns, or ask the admin to raise ReplayExtension.max_session_bytes"
            )
        in_use = self.data_bytes() - (replacing.data_size.nbytes if replacing is not None else 0)
        if in_use + size.nbytes > s.max_server_bytes:
            raise PayloadTooLargeError(
                f"the data would take {describe(size)}; the server's sessions already hold {in_use:,} of "
                f"max_server_bytes={s.max_server_bytes:,}; close sessions or send less data"
            )
        self._reserved_bytes += size.nbytes
        try:
            yield
        finally:
            self._reserved_bytes -= size.nbytes

    # ----------------------------------------------------------------- queries
    def __contains__(self, session_id: object) -> bool:
        return session_id in self._sessions

    def __len__(self) -> int:
        return len(self._sessions)

    def list(self) -> list[ManagedSession]:
        return list(self._sessions.values())

    def get(self, session_id: str) -> ManagedSession:
        try:
            return self._sessions[session_id]
        except KeyError:
            raise SessionNotFoundError(f"no replay session {brief(session_id)}") from None

    def find(self, session_id: str | None) -> ManagedSession | None:
        """The session with that id, or None."""
        return self._sessions.get(session_id) if session_id else None

    # ----------------------------------------------------------------- create / remove
    async def create(
        self,
        kernel_id: Any,
        source: dict[str, Any] | None = None,
        *,
        owner: str | None = None,
        reclaim: bool = False,
        **settings: Any,
    ) -> ManagedSession:
        """A new session for a running kernel (``SessionNotFoundError`` if the kernel is unknown).

        ``owner``: the creating user's name (sessions are private to it when users are told apart).
        ``reclaim``: the caller may use the kernel, so a session of it owned by someone else is closed
        and replaced (nobody can squat a kernel's session); the caller's own session answers 409.
        The source is built off the loop (``run_heavy``) and counted against the data limits (413).
        """
        if self._closed:
            raise SessionLimitError("the replay extension is shutting down")
        if not isinstance(kernel_id, str) or not kernel_id:
            raise InvalidValueError("'kernel_id' must be a non-empty string")
        unknown = set(settings) - {"speed", "loop"}
        if unknown:
            raise InvalidValueError(f"unknown session setting(s) {brief(sorted(unknown))}")
        speed = parse_speed(settings.get("speed", 1.0), self.policy)
        loop = parse_loop(settings.get("loop", False))
        # the source is validated (400) before the kernel is looked up (404/409), as for every other field
        replay_source = await self.run_heavy(self.make_source, source) if source is not None else None
        try:
            size = source_size(replay_source)
            with self._admit(size):
                kernelless = self._check_can_create(kernel_id, owner, reclaim)
                foreign = self._sessions.get(kernel_id)
                if foreign is not None:
                    self.log.warning(
                        "replay session of kernel %s (owner %s) reclaimed by %s", kernel_id, foreign.owner, owner
                    )
                    await self.remove(kernel_id, "reclaimed by a user of its kernel")
                    self._check_can_create(kernel_id, owner, reclaim)
                limits = self.settings
                session = Session(
                    replay_source,
                    session_id=kernel_id,
                    buffer_rows=limits.buffer_rows,
                    policy=self.policy,
                    speed=speed,
                    loop=loop,
                    live_factory=self.live_factory,
                )
                managed = ManagedSession(
                    session, kernel_id=kernel_id, resume_events=limits.resume_events, owner=owner
                )
                managed.data_size = size
                self._sessions[kernel_id] = managed
        except BaseException:
            if replay_source is not None:
                replay_source.close()
            raise
        managed.kernelless = kernelless
        if not kernelless:
            self._watch_kernel(kernel_id)
        self._ensure_idle_check()
        self.log.info("replay session created for kernel %s", kernel_id)
        return managed

    def _check_can_create(self, kernel_id: str, owner: str | None, reclaim: bool) -> bool:
        """Raise unless a session for ``kernel_id`` may be created now; returns whether it is kernelless."""
        if self._closed:
            raise SessionLimitError("the replay extension is shutting down")
        kernelless = kernel_id not in self.kernel_manager
        if kernelless and not self.settings.allow_kernelless_sessions:
            raise unknown_kernel(kernel_id)
        if kernelless and not re.fullmatch(r"[\w-]{1,128}", kernel_id):
            raise InvalidValueError("a session id must be 1-128 letters, digits, '_' or '-'")
        existing = self._sessions.get(kernel_id)
        if existing is not None and not (reclaim and existing.owner != owner):
            raise IllegalTransitionError(f"a replay session for kernel {brief(kernel_id)} already exists")
        if existing is None and len(self._sessions) >= self.settings.max_sessions:
            raise SessionLimitError(f"too many replay sessions (max_sessions={self.settings.max_sessions})")
        return kernelless

    async def remove(self, session_id: str, reason: str = "deleted") -> None:
        """Close and forget a session (``SessionNotFoundError`` if unknown)."""
        managed = self._sessions.pop(session_id, None)
        if managed is None:
            raise SessionNotFoundError(f"no replay session {session_id!r}")
        self._unwatch_kernel(managed.kernel_id)
        self.log.info("replay session %s closed (%s)", session_id, reason)
        await managed.aclose(reason)

    def _remove_soon(self, session_id: str, reason: str) -> None:
        if session_id not in self._sessions:
            return
        task = asyncio.get_running_loop().create_task(self.remove(session_id, reason))
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() and not isinstance(task.exception(), SessionNotFoundError):
            self.log.error("replay session cleanup failed", exc_info=task.exception())

    # ----------------------------------------------------------------- control
    @property
    def policy(self) -> Policy:
        """The server's limits on control values (one ``controls.Policy`` for every session)."""
        return self.settings.policy()

    def control(self, managed: ManagedSession, action: Any, args: dict[str, Any] | None) -> dict[str, Any]:
        """Run a control action on a session under the server's policy; returns the session model."""
        managed.session.control(action, args, self.policy)
        return managed.model()

    def make_source(self, spec: Any) -> ReplaySource:
        """Build a replay source from ``{"kind": "parquet"|"csv"|"dataset", "path", "time"?, ...}`` or
        ``{"kind": "sample"}``: the JSON spec is checked here, the source built by the one factory,
        ``sources.as_source``."""
        if not isinstance(spec, dict):
            raise InvalidValueError("'source' must be a JSON object with a 'kind'")
        kind = spec.get("kind")
        allowed = _SOURCE_KEYS.get(kind) if isinstance(kind, str) else None
        if allowed is None:
            raise InvalidValueError(
                f"source 'kind' must be 'parquet', 'csv', 'dataset' or 'sample', got {brief(kind)}"
            )
        unknown = set(spec) - allowed
        if unknown:
            raise InvalidValueError(f"unknown source field(s) {sorted(unknown)} for kind {kind!r}")
        time_column = spec.get("time", "timestamp")
        if not isinstance(time_column, str) or not time_column:
            raise InvalidValueError("source 'time' must be a column name")
        if kind == "sample":
            from ..sources import as_source, sample_trades

            kwargs: dict[str, Any] = {}
            for key in ("n", "seed"):
                if key in spec:
                    value = spec[key]
                    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                        raise InvalidValueError(f"sample source {key!r} must be a non-negative integer")
                    kwargs[key] = value
            if not 1 <= kwargs.get("n", 1) <= _SAMPLE_MAX_ROWS:
                raise InvalidValueError(f"sample source 'n' must be between 1 and {_SAMPLE_MAX_ROWS}")
            return as_source(sample_trades(**kwargs), time="timestamp")
        if kind in ("parquet", "csv"):
            path = resolve_data_path(spec.get("path"), self.data_dirs, self.serverapp.root_dir)
            from ..sources import as_source

            try:
                return as_source(path, time=time_column, format=kind)
            except ReplayError:
                raise
            except (OSError, ValueError) as exc:
                raise DataError(f"cannot read {kind} file {spec.get('path')!r}: {exc}") from exc
        if kind == "dataset":
            return self._make_dataset(spec, time_column)
        raise AssertionError(kind)  # unreachable: kinds checked above

    def _make_dataset(self, spec: dict, time_column: str) -> ReplaySource:
        """``{"kind": "dataset", "path": dir | glob | URL, "time"?, "symbols"?, "symbol_column"?, "columns"?}``."""
        import pyarrow as pa

        from ..sources import DatasetSource, ParquetSource
        from ..sources.storage import is_url

        location = resolve_dataset_location(spec.get("path"), self.data_dirs, self.settings.data_urls,
                                            self.serverapp.root_dir)
        names: dict[str, Any] = {}
        for key in ("symbols", "columns"):
            value = spec.get(key)
            if value is None:
                continue
            if (not isinstance(value, list) or len(value) > _MAX_NAMES
                    or not all(isinstance(v, str) and 0 < len(v) <= 1024 for v in value)):
                raise InvalidValueError(f"dataset {key!r} must be a list of at most {_MAX_NAMES} names")
            names[key] = value
        symbol_column = spec.get("symbol_column", "symbol")
        if not isinstance(symbol_column, str) or not symbol_column:
            raise InvalidValueError("dataset 'symbol_column' must be a column name")
        try:  # the class itself: "dataset" also means one file (as_source would make that a ParquetSource)
            source = DatasetSource(location, time=time_column, symbol_column=symbol_column, **names)
        except ReplayError:
            raise
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise DataError(f"cannot read dataset {brief(spec.get('path'))}: {brief(str(exc))}") from exc
        if not is_url(location):
            check_dataset_files([str(p.path) for p in source.parts if isinstance(p, ParquetSource)], self.data_dirs)
        return source

    @property
    def data_dirs(self) -> builtins.list[str]:
        return list(self.settings.data_dirs) or [self.serverapp.root_dir]

    def handoff(self) -> tuple[str, str]:
        """``(directory, server id)`` kernels on this host hand data over through (made on first use, 0700)."""
        if self._handoff is None:
            from jupyter_core.paths import jupyter_runtime_dir

            from ..sources.handoff import prepare_handoff_dir

            path = self.settings.handoff_dir or os.path.join(jupyter_runtime_dir(), "jupyter-replay-handoff")
            self._handoff = prepare_handoff_dir(path)
        return self._handoff

    async def load_handoff(self, managed: ManagedSession, name: Any, time_column: str = "timestamp") -> None:
        """Replace a session's data with a kernel's hand-off file, memory-mapped (no copy, no upload).

        The file is refused past ``max_mapped_bytes`` (413); mapped columns cost no server memory, what
        the source materialises (text columns, columns with nulls) counts against the session and server
        byte budgets like an upload (``payload.mapped_size``). Mapping and building run off the loop.
        """
        from ..sources.handoff import handoff_source

        if not isinstance(time_column, str) or not time_column:
            raise InvalidValueError("'time' must be a column name")
        directory = self.handoff()[0]
        source = await self.run_heavy(handoff_source, directory, name, self.settings.max_mapped_bytes, time_column)
        try:
            size = mapped_size(source)
            with self._admit(size, replacing=managed):
                if managed.closed:
                    raise SessionNotFoundError(f"replay session {brief(managed.id)} was closed during the attach")
                managed.session.set_source(source)
                managed.data_size = size
        except BaseException:
            source.close()
            raise

    async def load_arrow(self, managed: ManagedSession, body: bytes, time_column: str = "timestamp") -> None:
        """Replace a session's data with an Arrow IPC stream (the kernel's upload).

        The stream is measured from its metadata and zero-copy batches first (rows x decoded width) and
        refused with 413 past the limits; only then decoded, off the loop, and installed on the loop.
        """
        if not isinstance(time_column, str) or not time_column:
            raise InvalidValueError("'time' must be a column name")
        size = await self.run_heavy(measure_upload, body, self.settings.max_session_rows)
        with self._admit(size, replacing=managed):
            source = await self.run_heavy(decode_upload, body, time_column)
            if managed.closed:
                source.close()
                raise SessionNotFoundError(f"replay session {brief(managed.id)} was closed during the upload")
            managed.session.set_source(source)
            managed.data_size = size

    # ----------------------------------------------------------------- kernel life cycle
    def _watch_kernel(self, kernel_id: str) -> None:
        def on_dead() -> None:
            self.log.warning("kernel %s died; closing its replay session", kernel_id)
            self._remove_soon(kernel_id, "kernel died")

        try:
            self.kernel_manager.add_restart_callback(kernel_id, on_dead, "dead")
        except Exception:  # kernel vanished in between: the idle check removes the session
            self.log.debug("cannot watch kernel %s", kernel_id, exc_info=True)
            return
        self._dead_callbacks[kernel_id] = on_dead

    def _unwatch_kernel(self, kernel_id: str) -> None:
        callback = self._dead_callbacks.pop(kernel_id, None)
        if callback is None:
            return
        try:
            self.kernel_manager.remove_restart_callback(kernel_id, callback, "dead")
        except Exception:  # noqa: BLE001 - the kernel is already gone
            pass

    async def _on_kernel_action(self, logger: Any, schema_id: str, data: dict[str, Any]) -> None:
        """``kernel_actions`` listener: shutdown/cull removes the session, restart clears its buffer."""
        kernel_id = data.get("kernel_id")
        managed = self._sessions.get(kernel_id) if isinstance(kernel_id, str) else None
        if managed is None or not isinstance(kernel_id, str):
            return
        action = data.get("action")
        if action == "shutdown":
            if data.get("status") == "success" or kernel_id not in self.kernel_manager:
                await self._remove_quietly(kernel_id, "kernel shutdown")
        elif action == "restart" and data.get("status") == "success":
            self.log.info("kernel %s restarted; clearing its replay buffer", kernel_id)
            managed.session.reset("restart")

    async def _remove_quietly(self, session_id: str, reason: str) -> None:
        try:
            await self.remove(session_id, reason)
        except SessionNotFoundError:
            pass

    # ----------------------------------------------------------------- idle expiry
    async def expire_idle(self, now: float | None = None) -> builtins.list[str]:
        """Close sessions without clients for ``idle_timeout`` and sessions whose kernel is gone."""
        now = time.monotonic() if now is None else now
        timeout = self.settings.idle_timeout
        expired = []
        for session_id, managed in list(self._sessions.items()):
            if not managed.kernelless and managed.kernel_id not in self.kernel_manager:
                reason = "kernel gone"
            elif timeout > 0 and not managed.clients and now - managed.last_active >= timeout:
                reason = "idle"
            else:
                continue
            expired.append(session_id)
            await self._remove_quietly(session_id, reason)
        return expired

    async def _idle_tick(self) -> None:
        try:
            await self.expire_idle()
        except Exception:
            self.log.exception("replay idle check failed")
