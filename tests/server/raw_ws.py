"""``RawWebSocket``: a WebSocket client on a plain TCP socket that can really stop reading.

tornado's client keeps draining its socket into its own buffers, and a receive buffer shrunk after the
connection is established does not shrink the window already advertised, so such a "slow" client may keep
up after all. This one sets a tiny ``SO_RCVBUF`` before connecting, completes the handshake and then reads
nothing until told to (``recv``/``drain``); ``stall_server_side`` also pins the server's send buffer of the
connection, so the server's writes block after a few KiB.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import time
from typing import Any

import pytest
from server_helpers import read_until, read_until_quiet

from jupyter_replay import wire

__all__ = ["RawWebSocket", "raw_ws", "stall_server_side"]


class RawWebSocket:
    """One client connection; ``status`` is the upgrade answer (101, or e.g. 429 with ``body``)."""

    def __init__(self, sock: socket.socket, status: int, head: bytes, rest: bytes) -> None:
        self.sock = sock
        self.status = status
        self.head = head
        self.body = rest if status != 101 else b""
        self._buf = rest if status == 101 else b""
        self.close_code: int | None = None
        self.close_reason = ""

    @classmethod
    async def connect(
        cls, port: int, path: str, headers: dict[str, str], *, rcvbuf: int = 4096, timeout: float = 20.0
    ) -> "RawWebSocket":
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: the window stays tiny
        sock.setblocking(False)
        await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        await loop.sock_sendall(sock, ("\r\n".join(lines) + "\r\n\r\n").encode())
        buf = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in buf:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 4096), max(0.1, deadline - time.monotonic()))
            if not chunk:
                break
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1]) if head else 0
        if status != 101:  # read the (small) error body too
            try:
                while True:
                    chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), 2.0)
                    if not chunk:
                        break
                    rest += chunk
            except asyncio.TimeoutError:
                pass
        return cls(sock, status, head, rest)

    # ---------------------------------------------------------------- reading (only when told)
    async def _read(self, n: int, deadline: float) -> bytes:
        loop = asyncio.get_running_loop()
        while len(self._buf) < n:
            chunk = await asyncio.wait_for(loop.sock_recv(self.sock, 1 << 20), max(0.05, deadline - time.monotonic()))
            if not chunk:
                raise ConnectionError("socket closed")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    async def recv(self, timeout: float = 20.0) -> tuple[str, Any]:
        """Like ``WsClient.recv``: ``("text", dict)``, ``("frame", (header, columns))``, ``("closed", code)``."""
        deadline = time.monotonic() + timeout
        try:
            return await self._recv(deadline)
        except ConnectionError:  # EOF, or a reset (which may discard a close frame sent just before)
            return "closed", self.close_code

    async def _recv(self, deadline: float) -> tuple[str, Any]:
        while True:
            b0, b1 = await self._read(2, deadline)
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack(">H", await self._read(2, deadline))
            elif n == 127:
                (n,) = struct.unpack(">Q", await self._read(8, deadline))
            payload = await self._read(n, deadline)
            opcode = b0 & 0x0F
            if opcode == 0x8:
                self.close_code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
                self.close_reason = payload[2:].decode("utf-8", "replace")
                return "closed", self.close_code
            if opcode == 0x1:
                return "text", json.loads(payload)
            if opcode == 0x2:
                return "frame", wire.decode_frame(payload)
            # 0x9 ping / 0xA pong: keep-alive, not part of the stream

    async def until(self, pred: Any, timeout: float = 60.0) -> list[tuple[str, Any]]:
        """Messages up to and including the first one matching ``pred(kind, msg)`` (or the close)."""
        return await read_until(self.recv, pred, timeout)

    def unstall(self, connection: Any = None, nbytes: int = 4 * 2**20) -> None:
        """Let data flow fast again (larger buffers on this side, and on the server's if given)."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, nbytes)
        if connection is not None:
            stall_server_side(connection, nbytes)

    async def drain(self, quiet: float = 1.0, timeout: float = 60.0) -> list[tuple[str, Any]]:
        """Everything until nothing arrives for ``quiet`` seconds (or the close)."""
        return await read_until_quiet(self.recv, quiet, timeout)

    # ---------------------------------------------------------------- writing
    async def send_text(self, text: str | bytes) -> None:
        """One masked text frame (clients must mask)."""
        data = text.encode() if isinstance(text, str) else text
        mask = os.urandom(4)
        n = len(data)
        if n < 126:
            head = struct.pack(">BB", 0x81, 0x80 | n)
        elif n < 1 << 16:
            head = struct.pack(">BBH", 0x81, 0x80 | 126, n)
        else:
            head = struct.pack(">BBQ", 0x81, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data)) if n < 1 << 16 else _mask_big(data, mask)
        await asyncio.get_running_loop().sock_sendall(self.sock, head + mask + masked)

    async def send(self, **message: Any) -> None:
        await self.send_text(json.dumps(message))

    def close(self) -> None:
        self.sock.close()


def _mask_big(data: bytes, mask: bytes) -> bytes:
    import numpy as np

    n = len(data)
    key = np.frombuffer((mask * (n // 4 + 1))[:n], dtype=np.uint8)
    return (np.frombuffer(data, dtype=np.uint8) ^ key).tobytes()


def stall_server_side(connection: Any, sndbuf: int = 4096) -> None:
    """Pin the server's send buffer of ``connection`` (a ``ReplayConnection``): its writes block at once."""
    stream = connection.writer.ws_connection.stream
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)


@pytest.fixture
def raw_ws(jp_http_port: int, jp_base_url: str, jp_auth_header: dict[str, str]) -> Any:
    """``await raw_ws(session_id, headers=None, **query)`` -> a connected ``RawWebSocket`` (not reading)."""
    opened: list[RawWebSocket] = []

    async def connect(session_id: str, headers: dict[str, str] | None = None, **query: Any) -> RawWebSocket:
        path = f"{jp_base_url.rstrip('/')}/replay/api/sessions/{session_id}/ws"
        if query:
            path += "?" + "&".join(f"{k}={v}" for k, v in query.items())
        ws = await RawWebSocket.connect(jp_http_port, path, {**jp_auth_header, **(headers or {})})
        opened.append(ws)
        return ws

    yield connect
    for ws in opened:
        ws.close()
