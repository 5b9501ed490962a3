"""Data sources: recorded (``ReplaySource``) and live (``LiveSource``)."""

from .base import Cursor, LiveSource, ReplaySource

__all__ = ["Cursor", "LiveSource", "ReplaySource"]
