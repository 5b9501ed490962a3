"""``ServerSettings``: the server's limits as one frozen value, built by ``ReplayExtension``.

The app owns the traitlets (configuration, validation, help text); the session manager and the handlers
read limits from this value only, so nothing below the app imports or reads app traits. The app builds a
new value whenever one of those traits changes (``ReplayExtension._settings_changed``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..controls import MAX_SPEED, Policy

__all__ = ["ServerSettings", "SERVER_MAX_STEP_ROWS"]

#: a server's default step limit: a step runs on the event loop every session shares (the engine allows more)
SERVER_MAX_STEP_ROWS = 100_000


@dataclass(frozen=True)
class ServerSettings:
    """Limits and knobs of one replay server (see README "Configuration" for each)."""

    max_sessions: int = 64
    buffer_rows: int = 100_000
    max_speed: float = MAX_SPEED
    allow_max_speed: bool = True
    #: rows one ``step`` may release (``controls.Policy.max_step_rows``)
    max_step_rows: int = SERVER_MAX_STEP_ROWS
    idle_timeout: float = 3600.0
    idle_check_interval: float = 30.0
    #: directories file sources may be read from (already defaulted to the server's root_dir)
    data_dirs: tuple[str, ...] = ()
    #: URL prefixes dataset sources may be read from (object storage); empty: none
    data_urls: tuple[str, ...] = ()
    #: where kernels on this host hand data over as files the server maps ("": the Jupyter runtime dir)
    handoff_dir: str = ""
    #: largest hand-off file the server maps
    max_mapped_bytes: int = 2**40
    #: request body bytes on the wire
    max_body_bytes: int = 256 * 1024 * 1024
    #: rows of replay data one session may hold (uploads, file and sample sources)
    max_session_rows: int = 20_000_000
    #: bytes one session's replay data may take once decoded into numpy columns
    max_session_bytes: int = 1024**3
    #: bytes all sessions' replay data may take together once decoded
    max_server_bytes: int = 4 * 1024**3
    #: heavy requests (source building, upload decoding) run at once, off the event loop
    heavy_workers: int = 2
    resume_events: int = 1024
    allow_kernelless_sessions: bool = False
    #: WebSocket viewers (``connection.py``, ``websocket.py``): frames queued before merging, output byte
    #: budget per connection, how long a write may stall past it, connections per session and per user,
    #: largest client message
    ws_queue_frames: int = 64
    ws_max_bytes: int = 16 * 1024 * 1024
    ws_stall_timeout: float = 30.0
    ws_max_connections_per_session: int = 32
    ws_max_connections_per_user: int = 64
    ws_max_message_bytes: int = 1024 * 1024

    def policy(self) -> Policy:
        """The control table's ``Policy`` for these limits (speed range, speed 'max', step size)."""
        return Policy(
            max_speed=self.max_speed, allow_max_speed=self.allow_max_speed, max_step_rows=self.max_step_rows
        )
