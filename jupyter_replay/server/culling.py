"""Kernel manager for dashboards: shut down kernels that no browser has been connected to for a while.

jupyter_server's idle culling (``MappingKernelManager.cull_idle_timeout``) counts every kernel message as
activity, and a playing replay sends messages all the time: the kernel of a visitor whose browser crashed
(so no ``beforeunload`` shutdown) would never count as idle. This manager adds a second rule that does
not look at activity: a kernel with no client connection (kernel WebSocket) for ``disconnect_timeout``
seconds is shut down, busy or not. Its replay session goes with it (the extension drops a session when
its kernel shuts down; on the kernel-local engine the session lives in the kernel process).

Used by ``jupyter replay dashboard`` for Voilà (standalone: ``VoilaConfiguration.multi_kernel_manager_class``;
as a server extension: ``ServerApp.kernel_manager_class``). Every kernel of such a server belongs to a
page, so "nobody connected" means "nobody is looking".
"""

from __future__ import annotations

import time
from typing import Any

from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado.ioloop import PeriodicCallback
from traitlets import Float


class DisconnectCullingKernelManager(AsyncMappingKernelManager):
    """``AsyncMappingKernelManager`` that also shuts down kernels left without a connection."""

    disconnect_timeout = Float(
        60.0, config=True,
        help="Shut down a kernel that has had no client connection for this many seconds (0: never). "
             "Must exceed the time a page needs from starting its kernel to connecting to it.",
    )
    connect_timeout = Float(
        300.0, config=True,
        help="Shut down a kernel no client has connected to yet this many seconds after it went idle "
             "(a page that never finished loading). Counted from idle because Voilà runs the notebook "
             "before it sends the page, and generous because on a loaded server the page then still has "
             "to load its scripts before it connects.",
    )
    disconnect_check_interval = Float(5.0, config=True, help="Seconds between two checks.")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._unwatched_since: dict[str, float] = {}
        self._ever_connected: set[str] = set()
        self._disconnect_checker: PeriodicCallback | None = None

    async def _async_start_kernel(self, *args: Any, **kwargs: Any) -> str:
        kernel_id = await super()._async_start_kernel(*args, **kwargs)
        self._start_disconnect_checker()
        return kernel_id

    start_kernel = _async_start_kernel  # type: ignore[assignment]  # (as jupyter_server does)

    def notify_connect(self, kernel_id: str) -> None:
        """A client connected (called by the kernel WebSocket handler): from now on the kernel counts as
        watched once, so losing its clients starts ``disconnect_timeout``, however short the visit was."""
        super().notify_connect(kernel_id)
        if kernel_id in self._kernel_connections:
            self._ever_connected.add(kernel_id)
            self._unwatched_since.pop(kernel_id, None)

    def _start_disconnect_checker(self) -> None:
        if self._disconnect_checker is None and self.disconnect_timeout > 0:
            self._disconnect_checker = PeriodicCallback(self._check_disconnected,
                                                        1000 * self.disconnect_check_interval)
            self._disconnect_checker.start()

    async def _check_disconnected(self) -> None:
        now = time.monotonic()
        kernel_ids = set(self.list_kernel_ids())
        if not kernel_ids and self._disconnect_checker is not None:  # idle server: the next kernel restarts it
            self._disconnect_checker.stop()
            self._disconnect_checker = None
        for gone in set(self._unwatched_since) - kernel_ids:
            del self._unwatched_since[gone]
        self._ever_connected &= kernel_ids
        for kernel_id in kernel_ids:
            if self._kernel_connections.get(kernel_id, 0) > 0:
                self._unwatched_since.pop(kernel_id, None)
                continue
            connected_before = kernel_id in self._ever_connected
            if not connected_before and self.kernel_model(kernel_id)["execution_state"] == "busy":
                self._unwatched_since.pop(kernel_id, None)  # still running the page's notebook
                continue
            since = self._unwatched_since.setdefault(kernel_id, now)
            limit = self.disconnect_timeout if connected_before else self.connect_timeout
            if now - since >= limit:
                self.log.info("Culling kernel %s: no client connected for %.0f s", kernel_id, now - since)
                self._unwatched_since.pop(kernel_id, None)
                try:
                    await self.shutdown_kernel(kernel_id)
                except Exception:  # already gone (shut down by its page meanwhile)
                    self.log.debug("culling kernel %s failed", kernel_id, exc_info=True)
