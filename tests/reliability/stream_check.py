"""``StreamChecker``: follows one replay WebSocket's messages and checks that no row is lost or duplicated.

Rules (docs/design.md, wire format): batch frames' ``seq`` (``first_seq`` for coalesced frames) is above
every seq seen before; within one stream (between ``reset``/``history``) frames' ``first_row`` values are
contiguous; a ``history`` frame restarts the stream at its ``first_row``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["StreamChecker"]


class StreamChecker:
    """Feed it ``(kind, msg)`` pairs as ``WsClient.recv`` returns them; it raises on a gap or duplicate."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.seq = -1
        self.next_row: int | None = None
        self.rows = 0  # live rows received (not history)
        self.frames = 0
        self.resets: list[str] = []
        self.states: list[dict[str, Any]] = []
        self.texts: list[dict[str, Any]] = []
        self.ts: list[np.ndarray] = []  # timestamp_ns of every non-history row, in order
        self.reset_marks: list[int] = []  # len(self.ts) at each reset: rows of the stream since then
        self.resuming = False

    def feed(self, kind: str, msg: Any) -> None:
        if kind == "frame":
            self._frame(*msg)
        elif kind == "text":
            self._text(msg)

    def _text(self, msg: dict[str, Any]) -> None:
        self.texts.append(msg)
        kind = msg["type"]
        if kind == "hello":
            if not self.resuming:
                self.seq, self.next_row = msg["seq"], None
            return
        if kind in ("merged", "ack", "error", "pong", "marks"):  # (rows may overtake a mark: no seq order)
            return
        seq = msg["seq"]
        if kind == "reset":
            assert seq >= self.seq, f"{self.name}: reset seq {seq} after {self.seq}"
            self.resets.append(msg["reason"])
            self.reset_marks.append(len(self.ts))
            self.next_row = 0
        elif kind == "history":
            self.next_row = msg.get("first_row", 0)
        elif kind == "state":
            self.states.append(msg)
        self.seq = max(self.seq, seq)

    def _frame(self, header: dict[str, Any], cols: dict[str, np.ndarray]) -> None:
        rows = header["rows"]
        assert len(cols["timestamp"]) == rows
        if header.get("history"):
            self.next_row = header["first_row"] + rows
            return
        first_seq = header.get("first_seq", header["seq"])
        assert first_seq > self.seq, f"{self.name}: frame seq {first_seq} not after {self.seq} (duplicate)"
        if self.next_row is not None:
            assert header["first_row"] == self.next_row, (
                f"{self.name}: rows start at {header['first_row']}, expected {self.next_row} (gap or duplicate)"
            )
        self.next_row = header["first_row"] + rows
        self.seq = header["seq"]
        self.rows += rows
        self.frames += 1
        if "timestamp_ns" in cols:
            self.ts.append(np.array(cols["timestamp_ns"]))

    def new_texts(self) -> list[dict[str, Any]]:
        """Text messages since the last call."""
        out, self.texts = self.texts, []
        return out
