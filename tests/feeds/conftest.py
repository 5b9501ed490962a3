"""Fixtures for the feed tests: a real ``redis-server`` on loopback (one per test session)."""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory, require_binary: Callable[..., str]) -> Iterator[str]:
    """URL of a private redis-server (loopback, free port, no persistence), stopped after the session."""
    binary = require_binary("redis-server", "install Debian's redis-server; `./dev setup` does")
    workdir: Path = tmp_path_factory.mktemp("redis")
    last_error = ""
    for _ in range(5):  # a free port can be taken between probing and binding: retry
        port = _free_port()
        log = workdir / f"redis-{port}.log"
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(workdir), "--logfile", str(log), "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None and not _ping(port):
            time.sleep(0.02)
        if proc.poll() is None and _ping(port):
            break
        proc.kill()
        proc.wait()
        last_error = log.read_text() if log.exists() else "no log"
    else:
        raise RuntimeError(f"redis-server did not start: {last_error[-2000:]}")
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def stream_name() -> str:
    """A fresh stream key per test (tests share one server)."""
    return f"test:{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def aredis(redis_server: str):
    """An asyncio Redis client for the test's own writes and checks."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_server, client_name="test-client")
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def sredis(redis_server: str):
    """A sync Redis client for the test's own writes and checks."""
    import redis

    client = redis.Redis.from_url(redis_server)
    try:
        yield client
    finally:
        client.close()
