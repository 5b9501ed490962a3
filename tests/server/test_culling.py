"""``DisconnectCullingKernelManager`` (the dashboard's kernel manager) with real kernels: a kernel without a
client connection is shut down after ``disconnect_timeout``, a connected one is kept, one that never got a
client waits for the longer ``connect_timeout``, and a visit shorter than one check still counts as a visit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from jupyter_replay.server.culling import DisconnectCullingKernelManager


async def _until(predicate: Callable[[], bool], timeout: float, message: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, message
        await asyncio.sleep(0.05)


async def test_kernels_without_a_client_are_culled_connected_ones_kept() -> None:
    mgr = DisconnectCullingKernelManager(disconnect_timeout=1.0, connect_timeout=600.0, disconnect_check_interval=0.2)
    try:
        watched = await mgr.start_kernel()
        brief = await mgr.start_kernel()
        never = await mgr.start_kernel()
        mgr.notify_connect(watched)  # what the kernel WebSocket handler does when a page connects
        mgr.notify_connect(brief)  # a page that left again before the next check
        mgr.notify_disconnect(brief)

        await _until(lambda: brief not in mgr, 60,
                     "a visit shorter than one check was taken for a page that never connected (connect_timeout)")
        assert never in mgr, "a kernel no page connected to yet was culled before connect_timeout"
        mgr.connect_timeout = 1.0
        await _until(lambda: never not in mgr, 60, "a kernel no page ever connected to was not culled")
        assert watched in mgr, "a kernel with a connected page was culled"

        mgr.notify_disconnect(watched)  # the page went away without shutting its kernel down
        await _until(lambda: watched not in mgr, 60, "a disconnected kernel was not culled")
        await _until(lambda: mgr._disconnect_checker is None, 10, "the checker kept running on an empty server")
    finally:
        await mgr.shutdown_all()
