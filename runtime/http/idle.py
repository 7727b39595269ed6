"""A keep-alive connection's idle timer without a new trio task per request.

hypercorn (trio worker) times out an idle keep-alive connection with a task it
cancels when a request arrives and spawns again, behind a lock and a
`nursery.start` handshake, when the response is done: per request a spawn, a
cancellation and four task switches, about a tenth of what the HTTP layer costs
for a small JSON-RPC call. `IdleTimer` keeps one task per connection and moves
its deadline instead: out of reach while a request is in flight, the keep-alive
timeout from the moment the connection is idle again. It closes the connection
exactly when hypercorn's own timer would: after `keep_alive_timeout` seconds
idle, or at once when the server shuts down while the connection is idle (a
connection busy at shutdown is closed as soon as its response is done).

`install()` puts it in place of hypercorn's per-request timer; if the hypercorn
installed does not look as expected it changes nothing.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import trio

__all__ = ["IdleTimer", "install"]

log = logging.getLogger(__name__)


class IdleTimer:
    """Stands in for hypercorn's `TrioSingleTask` as a TCP connection's idle timer.

    hypercorn calls `restart(task_group, server._idle_timeout)` when the connection
    becomes idle and `stop()` when a request arrives.
    """

    def __init__(self) -> None:
        self._scope: trio.CancelScope | None = None
        self._busy = False
        self._idle = trio.Event()
        self._running = False

    async def restart(self, task_group: Any, action: Callable[[], Awaitable[None]]) -> None:
        server = action.__self__  # type: ignore[attr-defined]
        deadline = trio.current_time() + server.config.keep_alive_timeout
        self._busy = False
        self._idle.set()
        if not self._running:
            self._running = True
            task_group._nursery.start_soon(self._watch, server, deadline)
        elif self._scope is not None:
            self._scope.deadline = deadline

    async def stop(self) -> None:
        if not self._busy:
            self._busy = True
            self._idle = trio.Event()
        if self._scope is not None:
            self._scope.deadline = math.inf

    async def _watch(self, server: Any, deadline: float) -> None:
        try:
            with trio.CancelScope(deadline=math.inf if self._busy else deadline) as scope:
                self._scope = scope
                await server.context.terminated.wait()
            self._scope = None
            while self._busy:  # shutting down mid-request: close once it is answered
                await self._idle.wait()
        finally:
            self._scope = None
            self._running = False
        with trio.CancelScope(shield=True):
            await server._initiate_server_close()


def install() -> bool:
    """Use `IdleTimer` for hypercorn's trio TCP connections; False if not possible."""
    try:
        from hypercorn.trio import tcp_server
    except ImportError:  # pragma: no cover - hypercorn is a dependency
        return False
    server = tcp_server.TCPServer
    if not all(hasattr(server, name) for name in ("_idle_timeout", "_initiate_server_close")) \
            or not hasattr(tcp_server, "TrioSingleTask"):
        log.warning("hypercorn's TCP server is not as expected; keeping its idle timer")
        return False
    tcp_server.TrioSingleTask = IdleTimer  # type: ignore[misc, assignment]
    return True
