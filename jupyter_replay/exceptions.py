"""One exception tree for everything jupyter_replay raises.

Each class maps to one HTTP status in the server extension (see ``http_status``).
"""

from __future__ import annotations

__all__ = [
    "brief",
    "ReplayError",
    "InvalidValueError",
    "IllegalTransitionError",
    "DataError",
    "SessionNotFoundError",
    "SessionLimitError",
    "PathNotAllowedError",
    "FeedError",
    "PayloadTooLargeError",
]


def brief(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: error messages and logs never echo unbounded input."""
    try:
        text = repr(value) if not isinstance(value, str) or len(value) <= 4 * limit else repr(value[: 4 * limit])
    except Exception:  # noqa: BLE001 - a hostile __repr__ must not turn a 400 into a 500
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: max(limit - 3, 1)] + "..."


class ReplayError(Exception):
    """Base class of every error raised by jupyter_replay."""

    #: HTTP status the server extension answers with.
    http_status: int = 500


class InvalidValueError(ReplayError, ValueError):
    """A control got a bad value (speed 0, NaN, seek to NaT, unknown mode...)."""

    http_status = 400


class IllegalTransitionError(ReplayError):
    """The command is not allowed in the current state or mode (step while playing, seek in LIVE)."""

    http_status = 409


class DataError(ReplayError, ValueError):
    """Input data cannot be replayed (missing time column, NaT, empty, unsorted, corrupt file)."""

    http_status = 400


class SessionNotFoundError(ReplayError, KeyError):
    """No session with that id (or not one the caller may see)."""

    http_status = 404

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "session not found"


class SessionLimitError(ReplayError):
    """The configured maximum number of sessions is reached."""

    http_status = 409


class PathNotAllowedError(ReplayError, PermissionError):
    """A file source points outside the allowed data directories."""

    http_status = 403


class FeedError(ReplayError):
    """A live feed failed (connection lost, bad message)."""

    http_status = 502


class PayloadTooLargeError(ReplayError):
    """Data would exceed a configured size once decoded (rows or bytes per session, bytes per server)."""

    http_status = 413
