"""A connection's timer while no request is in flight: keep-alive and request heads.

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

Two more rules, which hypercorn's timer does not have:

* A request head must be complete within `header_timeout` seconds of its first
  byte (`data_received`); a client dribbling a header a byte at a time no longer
  holds the connection, and its file descriptor, for as long as it likes.
* The timer ends with the connection (`connection_lost`, once its read loop has
  stopped). It runs in the connection's task group, which hypercorn waits for
  before it closes the socket: a timer waiting out the keep-alive timeout there
  held every connection its client had closed half-open, in CLOSE-WAIT, for 75 s.

`runtime.http.tcp.TimedTCPServer` creates one per connection and feeds it.

While an HTTP/1.1 connection streams a response (SSE) the timer has nothing to
time, and its task would only wait, one per stream: `park` ends the task, and
`restart` starts one again when the response is done. hypercorn itself closes an
HTTP/1.1 connection whose response ends after shutdown began, which is all the
timer would have done meanwhile.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import trio

__all__ = ["IdleTimer"]


class IdleTimer:
    """Stands in for hypercorn's `TrioSingleTask` as a TCP connection's idle timer.

    hypercorn calls `restart(task_group, server._idle_timeout)` when the connection
    becomes idle and `stop()` when a request arrives.
    """

    def __init__(self, header_timeout: float = math.inf) -> None:
        self._header_timeout = header_timeout
        self._scope: trio.CancelScope | None = None
        self._deadline = math.inf
        self._busy = False
        self._head = False  # part of a request head has arrived on an idle connection
        self._lost = False  # the connection's read loop has ended
        self._idle = trio.Event()
        self._running = False
        self._parked = False  # `park` asked the task to end

    def _move(self, deadline: float) -> None:
        self._deadline = deadline
        if self._scope is not None:
            self._scope.deadline = deadline

    async def restart(self, task_group: Any, action: Callable[[], Awaitable[None]]) -> None:
        if self._lost:
            return
        server = action.__self__  # type: ignore[attr-defined]
        self._busy = False
        self._head = False
        self._idle.set()
        self._move(trio.current_time() + server.config.keep_alive_timeout)
        if not self._running:
            self._running = True
            task_group._nursery.start_soon(self._watch, server)

    async def stop(self) -> None:
        if not self._busy:
            self._busy = True
            self._idle = trio.Event()
        self._head = False
        self._move(math.inf)

    def data_received(self) -> None:
        """Bytes arrived: on an idle connection they begin a request head, which
        must be complete within the header timeout."""
        if self._busy or self._head or self._lost:
            return
        self._head = True
        self._move(trio.current_time() + self._header_timeout)

    def park(self) -> None:
        """The request in flight is a long one (an HTTP/1.1 stream): end the timer's
        task until the connection is idle again (`restart`). Nothing while idle."""
        if self._busy and not self._lost and self._scope is not None:
            self._parked = True
            self._scope.cancel()

    def connection_lost(self) -> None:
        """The connection's read loop has ended (the peer closed, or the socket was
        closed): nothing is left to time."""
        self._lost = True
        self._idle.set()
        if self._scope is not None:
            self._scope.cancel()

    async def _watch(self, server: Any) -> None:
        try:
            while True:
                with trio.CancelScope(deadline=self._deadline) as scope:
                    self._scope = scope
                    if self._lost:
                        scope.cancel()
                    await server.context.terminated.wait()
                self._scope = None
                if not self._parked:
                    break
                self._parked = False
                if self._busy and not self._lost:
                    return  # parked: `restart` starts a task again
                # restarted (or lost) before the task got to end: watch on
            while self._busy and not self._lost:  # shutting down mid-request:
                await self._idle.wait()  # close once it is answered
        finally:
            self._scope = None
            self._running = False
        if self._lost:
            return  # hypercorn closes the socket once the connection's tasks are done
        with trio.CancelScope(shield=True):
            await server._initiate_server_close()
