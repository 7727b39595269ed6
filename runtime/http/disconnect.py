"""A response's end when its HTTP/1.1 client goes away, without a task to watch for it.

An ASGI app learns of a disconnect by receiving ``http.disconnect``; a response that
streams (SSE) must keep reading while it writes, which takes a second task per
stream (its frame, its nursery and cancel scope: about a tenth of what a waiting
subscriber costs). On HTTP/1.1 under hypercorn the same moment is known where the
message is made: when the connection's protocol handles ``Closed`` with a request
in flight (the peer closed or reset, a write failed, or the server closed it).
`runtime.http.coalesce.CoalescingH11Protocol` calls `closing` then, for the cancel
scopes its current response registered (`cancelled_on_disconnect`, or each wait of
`runtime.http.sse_feed.FeedFrames`), and sets the context this module reads
(inherited by the app's task) when it starts one. `ConnectionScopes.streaming` also
parks the connection's idle timer while a stream is open (`IdleTimer.park`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import trio

from runtime.http.idle import IdleTimer

__all__ = ["ConnectionScopes", "cancelled_on_disconnect", "connection_of", "serving"]


class ConnectionScopes:
    """The cancel scopes of one HTTP/1.1 connection's response, ended on its close."""

    def __init__(self, timer: IdleTimer | None = None) -> None:
        self._scopes: set[trio.CancelScope] = set()
        self._timer = timer
        self.closed = False

    def streaming(self) -> None:
        """The response in flight is a stream: the connection's idle timer need not
        wait alongside it (`IdleTimer.park`)."""
        if self._timer is not None:
            self._timer.park()

    def closing(self) -> None:
        self.closed = True
        for scope in list(self._scopes):
            scope.cancel()

    def add(self, scope: trio.CancelScope) -> None:
        """Cancel `scope` when the connection closes (at once if it has)."""
        if self.closed:
            scope.cancel()
        self._scopes.add(scope)

    def discard(self, scope: trio.CancelScope) -> None:
        self._scopes.discard(scope)


serving: ContextVar[ConnectionScopes | None] = ContextVar("trio_a2a_h11_connection",
                                                          default=None)
"""Set by the HTTP/1.1 protocol while it starts a request's app task."""


def connection_of(scope: dict[str, Any]) -> ConnectionScopes | None:
    """The connection of this HTTP/1.x request, if it can tell when its client goes
    away (None for HTTP/2 or under another ASGI server: read ``http.disconnect``)."""
    if scope.get("http_version") not in ("1.0", "1.1"):
        return None
    return serving.get()


@contextlib.contextmanager
def cancelled_on_disconnect(scope: dict[str, Any]) -> Iterator[trio.CancelScope | None]:
    """A cancel scope that is cancelled when the client of this HTTP/1.x request
    goes away; None (and nothing is done) when the connection cannot tell, e.g.
    an HTTP/2 stream or another ASGI server: read ``http.disconnect`` there."""
    connection = connection_of(scope)
    if connection is None:
        yield None
        return
    with trio.CancelScope() as cancel_scope:
        connection.add(cancel_scope)
        try:
            yield cancel_scope
        finally:
            connection.discard(cancel_scope)
