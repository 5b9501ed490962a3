"""Helpers shared by the feed tests: read a live source until enough rows arrived."""

from __future__ import annotations

import asyncio

from jupyter_replay.batch import Chunk


async def collect(source, rows: int, timeout: float = 10.0) -> list[Chunk]:
    """Chunks from ``source.batches()`` until at least ``rows`` rows arrived (``TimeoutError`` after ``timeout``)."""
    out: list[Chunk] = []

    async def run() -> None:
        got = 0
        async for chunk in source.batches():
            out.append(chunk)
            got += len(chunk)
            if got >= rows:
                return

    await asyncio.wait_for(run(), timeout)
    return out


async def take_rows(source, rows: int, timeout: float = 10.0) -> Chunk:
    """The first (at least) ``rows`` rows of ``source`` as one chunk."""
    return Chunk.concat(await collect(source, rows, timeout))
