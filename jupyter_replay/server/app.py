"""``ReplayExtension``: the Jupyter server extension app (configuration, handlers, session manager)."""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Callable
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Enum, Float, Integer, List, Unicode, observe, validate

from ..controls import MAX_SPEED, MIN_SPEED
from .connection import MAX_BYTES, STALL_TIMEOUT
from .manager import SessionManager
from .settings import SERVER_MAX_STEP_ROWS, ServerSettings

__all__ = ["ReplayExtension"]


class ReplayExtension(ExtensionApp):
    """Serves one replay session per kernel under ``{base_url}replay/api/``."""

    name = "jupyter_replay"
    description = "Interactive replay of recorded time series, one isolated session per kernel."
    load_other_extensions = True

    max_sessions = Integer(
        64,
        help="Maximum number of replay sessions on this server (one per kernel); creating more answers 409.",
    ).tag(config=True)

    buffer_rows = Integer(
        100_000,
        help="Rows each session keeps in its rolling buffer (the WebSocket history and the plot rollover).",
    ).tag(config=True)

    max_speed = Float(
        MAX_SPEED,
        help=f"Highest numeric replay speed clients may set ({MIN_SPEED} .. {MAX_SPEED:g}); above answers 400.",
    ).tag(config=True)

    allow_max_speed = Bool(
        True,
        help="Whether clients may set speed 'max' (unpaced: rows released as fast as they can be sent).",
    ).tag(config=True)

    idle_timeout = Float(
        3600.0,
        help="Seconds a session may have no WebSocket client before it is closed; 0 keeps sessions forever.",
    ).tag(config=True)

    idle_check_interval = Float(
        30.0,
        help="Seconds between checks for idle sessions and sessions whose kernel is gone.",
    ).tag(config=True)

    data_dirs = List(
        Unicode(),
        help=(
            "Directories file sources (parquet/csv paths in POST sessions) may be read from; relative paths "
            "are relative to the server's root_dir. Empty: the server's root_dir only."
        ),
    ).tag(config=True)

    data_urls = List(
        Unicode(),
        help=(
            "URL prefixes dataset sources may be read from (object storage), e.g. 's3://bucket/ticks/'. "
            "A URL must start with one of them at a '/' boundary. Empty (the default): no URLs. "
            "Credentials come from the server's standard environment (AWS_*, GOOGLE_APPLICATION_CREDENTIALS)."
        ),
    ).tag(config=True)

    handoff_dir = Unicode(
        "",
        help=(
            "Directory (mode 0700) where kernels on this host hand their data over as Arrow IPC files that "
            "the server memory-maps instead of receiving an upload. Empty: 'jupyter-replay-handoff' in the "
            "Jupyter runtime directory."
        ),
    ).tag(config=True)

    max_mapped_bytes = Integer(
        2**40,
        help=(
            "Largest hand-off file (kernel data attached on the same host) the server maps; larger ones answer "
            "413. Mapped numeric columns are file-backed pages shared with the page cache, not server memory."
        ),
    ).tag(config=True)

    max_body_bytes = Integer(
        256 * 1024 * 1024,
        help="Largest request body accepted (data uploads and JSON); larger bodies answer 400.",
    ).tag(config=True)

    max_step_rows = Integer(
        SERVER_MAX_STEP_ROWS,
        help=(
            "Most rows one 'step' may release (step n= or duration=); larger steps answer 400 (use seek to jump). "
            "A step runs on the event loop: the default (the default buffer_rows) keeps it short for the "
            "other sessions; the engine's own limit is higher."
        ),
    ).tag(config=True)

    max_session_rows = Integer(
        20_000_000,
        help="Most rows of replay data one session may hold (uploads, file and sample sources); more answers 413.",
    ).tag(config=True)

    max_session_bytes = Integer(
        1024**3,
        help=(
            "Most bytes one session's replay data may take once decoded (rows x the width of each column as "
            "numpy holds it, run-end-encoded, dictionary and null columns expanded); more answers 413."
        ),
    ).tag(config=True)

    max_server_bytes = Integer(
        4 * 1024**3,
        help=(
            "Most bytes the replay data of all sessions may take together once decoded, and (separately) all "
            "upload bodies being received at once; more answers 413."
        ),
    ).tag(config=True)

    heavy_workers = Integer(
        2,
        help=(
            "Heavy requests (building a source from a file or a sample, decoding an upload) run off the event "
            "loop in this many threads at once; others wait their turn. Sessions keep their pacing meanwhile."
        ),
    ).tag(config=True)

    ws_queue_frames = Integer(
        64,
        help=(
            "Frames queued per WebSocket client before batch frames are coalesced (slow clients); "
            "bounds the memory a client can hold on the server."
        ),
    ).tag(config=True)

    # ---- WebSocket limits (issue 14): what one viewer may hold; see docs/design.md "Slow clients"
    ws_max_bytes = Integer(
        MAX_BYTES,
        help=(
            "Byte budget of one WebSocket connection: its queued output plus what was written and not yet "
            "flushed to the client. A client past it is re-synchronised (its waiting frames discarded, a fresh "
            "history sent; a history carries only the newest rows that fit), and closed (1013) if it then "
            "leaves a write pending for ws_stall_timeout. Server memory for viewers is bounded by "
            "ws_max_bytes x connections."
        ),
    ).tag(config=True)

    ws_stall_timeout = Float(
        STALL_TIMEOUT,
        help=(
            "Seconds a WebSocket client past its ws_max_bytes budget may leave a write pending (not reading) "
            "before it is closed with 1013 (try again later); 0 never closes it (it still holds at most its budget)."
        ),
    ).tag(config=True)

    ws_max_connections_per_session = Integer(
        32,
        help="WebSocket connections one replay session accepts; one more answers the upgrade with 429.",
    ).tag(config=True)

    ws_max_connections_per_user = Integer(
        64,
        help=(
            "WebSocket connections one user may hold on this server, over all sessions (capability-token "
            "connections count per session only); one more answers the upgrade with 429."
        ),
    ).tag(config=True)

    ws_max_message_bytes = Integer(
        1024 * 1024,
        help="Largest message a WebSocket client may send (control messages are small); larger closes it (1009).",
    ).tag(config=True)

    resume_events = Integer(
        1024,
        help="Recent events kept per session so a reconnecting client (?since=<seq>) resumes without a gap.",
    ).tag(config=True)

    server_url = Unicode(
        "",
        help=(
            "URL kernels use to reach this server (sent to the kernel with its session token). "
            "Default: the loopback address and port of this server with its base_url."
        ),
    ).tag(config=True)

    allow_kernelless_sessions = Bool(
        False,
        help=(
            "For benchmarks and the soak test only: let POST sessions create a session whose 'kernel_id' is not "
            "a running kernel (any id of letters, digits, '_' and '-'), so hundreds of sessions need no kernels. "
            "Such sessions follow no kernel life cycle (only DELETE and idle_timeout remove them). Keep off."
        ),
    ).tag(config=True)

    private_sessions = Enum(
        ["auto", True, False],
        default_value="auto",
        help=(
            "Whether a session is private to the user who created it (others see it only when the owner "
            "shares it as a room, see docs/deployment.md). 'auto': when the identity provider tells users "
            "apart (JupyterHub's, or any provider other than jupyter_server's single token/password one, "
            "where everyone holding the token is the same person). Admins (the Authorizer allows 'admin' "
            "on 'replay') see every session."
        ),
    ).tag(config=True)

    @property
    def sessions_private(self) -> bool:
        """Whether sessions are private to their owner on this server (``private_sessions`` resolved)."""
        if self.private_sessions == "auto":
            from .rooms import identities_distinct

            return identities_distinct(self.serverapp)
        return bool(self.private_sessions)

    @validate("max_speed")
    def _check_max_speed(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if not (MIN_SPEED <= value <= MAX_SPEED) or math.isnan(value):
            raise ValueError(f"max_speed must be between {MIN_SPEED} and {MAX_SPEED:g}")
        return value

    @validate(
        "max_sessions", "buffer_rows", "ws_queue_frames", "resume_events", "max_body_bytes", "max_step_rows",
        "max_session_rows", "max_session_bytes", "max_server_bytes", "heavy_workers",
        "ws_max_bytes", "ws_max_connections_per_session", "ws_max_connections_per_user", "ws_max_message_bytes",
    )
    def _check_positive(self, proposal: dict[str, Any]) -> int:
        if proposal["value"] < 1:
            raise ValueError(f"{proposal['trait'].name} must be >= 1")
        return proposal["value"]

    @validate("idle_timeout", "idle_check_interval", "ws_stall_timeout")
    def _check_seconds(self, proposal: dict[str, Any]) -> float:
        if proposal["value"] < 0 or math.isnan(proposal["value"]):
            raise ValueError(f"{proposal['trait'].name} must be >= 0")
        return proposal["value"]

    @property
    def kernel_server_url(self) -> str:
        """The URL kernels on this machine use to reach the server (``server_url`` if configured)."""
        if self.server_url:
            return self.server_url
        app = self.serverapp
        assert app is not None, "the extension is not loaded into a server yet"
        if getattr(app, "sock", ""):
            return f"http+unix://{urllib.parse.quote(app.sock, safe='')}{app.base_url}"
        proto = "https" if getattr(app, "certfile", None) else "http"
        ip = app.ip or "localhost"
        if ip in ("", "*", "0.0.0.0", "localhost"):
            host = "127.0.0.1"
        elif ":" in ip:
            host = "[::1]" if ip == "::" else f"[{ip}]"
        else:
            host = ip
        return f"{proto}://{host}:{app.port}{app.base_url}"

    manager: SessionManager | None = None
    #: ``Session(live_factory=...)`` for LIVE mode: symbols go through the server's shared feed hub
    live_factory: Callable[[str], Any] | None = None

    def initialize_settings(self) -> None:
        from .feedhub import FEEDS_SETTING, HUB_SETTING, ReplayFeeds

        self.feeds = ReplayFeeds(parent=self)
        self.hub = self.feeds.build_hub()
        self.live_factory = self.hub.live_factory(self.feeds.default_feed)
        self.settings[HUB_SETTING] = self.hub
        self.settings[FEEDS_SETTING] = self.feeds
        self.manager = SessionManager(
            self.serverapp, self.server_settings(), live_factory=self.live_factory, log=self.log
        )
        self.settings["replay_manager"] = self.manager
        self.manager.start()

    def server_settings(self) -> ServerSettings:
        """The limits handed to the session manager (a new value each time: traits may change)."""
        values = {name: getattr(self, name) for name in ServerSettings.__dataclass_fields__}
        assert self.serverapp is not None, "the extension is not loaded into a server yet"
        values["data_dirs"] = tuple(self.data_dirs) or (self.serverapp.root_dir,)
        values["data_urls"] = tuple(self.data_urls)
        return ServerSettings(**values)

    @observe(*ServerSettings.__dataclass_fields__)
    def _settings_changed(self, change: dict[str, Any]) -> None:
        """A limit changed at run time (config reload, tests): the manager gets the new settings."""
        if self.manager is not None:
            self.manager.settings = self.server_settings()

    def initialize_handlers(self) -> None:
        from .handlers import default_handlers
        from .room_handlers import room_handlers

        self.handlers.extend(default_handlers)
        self.handlers.extend(room_handlers)

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        if self.manager is not None:
            self.manager.start()

    async def stop_extension(self) -> None:
        if self.manager is not None:
            await self.manager.aclose()
        hub = getattr(self, "hub", None)
        if hub is not None:
            await hub.aclose()
