"""Calls from grpcio's threads, run as trio tasks: one bounded channel per call.

grpcio's asyncio server needs an asyncio loop and cannot run inside trio, so its
threaded server runs beside trio and hands each call over here. A call is a task
in the gRPC child's nursery, under its own cancel scope, writing what it produces
into a memory channel of `buffer` items; the gRPC thread pulls from that channel
(`trio.from_thread`) only as fast as grpcio sends, and grpcio sends a streamed
message only once the previous one left under HTTP/2 flow control. So a slow
reader holds its task at `send` with at most `buffer` items queued, never a
growing buffer, and since a stream follows the task's log from its own cursor,
a held stream never holds the store or other subscribers.

When the call ends on the gRPC side (the client cancelled, its deadline passed,
the server stops), grpcio runs the callback registered with `add_callback`, which
cancels the call's scope: the task ends and its channel closes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import attrs
import trio

__all__ = ["BridgeStatistics", "CallHandle", "END", "TrioBridge"]

log = logging.getLogger(__name__)

END = object()
"""Sent by a stream that finished on its own; a channel that closes without it (or,
for a unary call, without its answer) was cut short: cancelled, or the server stopping."""

CallBody = Callable[[trio.MemorySendChannel[Any]], Awaitable[None]]


@attrs.frozen
class BridgeStatistics:
    active: int
    """Calls whose trio task is running."""
    started: int
    cancelled: int
    """Calls whose task was cancelled before it finished (client gone, deadline, stop)."""
    buffer: int
    """Items one call may queue for its gRPC thread."""
    queued: int
    """Items queued now, all calls together (at most `buffer` per call)."""
    blocked: int
    """Calls whose task waits for its gRPC thread to take an item (a slow reader)."""


class CallHandle:
    """The gRPC thread's end of one call."""

    def __init__(self, token: trio.lowlevel.TrioToken, scope: trio.CancelScope,
                 results: trio.MemoryReceiveChannel[Any]) -> None:
        self._token = token
        self._scope = scope
        self._results = results

    def cancel(self) -> None:
        """Cancel the call's task; safe from any thread, at any time, more than once."""
        try:
            self._token.run_sync_soon(self._scope.cancel)
        except trio.RunFinishedError:
            pass

    def __iter__(self) -> Iterator[Any]:
        """What the call produces, each item once it is there; ends when the task does.

        A run that has ended (the server is gone) ends the iteration too."""
        while True:
            try:
                yield trio.from_thread.run(self._results.receive, trio_token=self._token)
            except (trio.EndOfChannel, trio.RunFinishedError):
                return


class TrioBridge:
    """Starts calls, for gRPC threads, as tasks of one trio nursery."""

    def __init__(self, nursery: trio.Nursery, token: trio.lowlevel.TrioToken, *,
                 buffer: int = 8) -> None:
        self._nursery = nursery
        self._token = token
        self._buffer = buffer
        self._closed = False
        self._active = 0
        self._started = 0
        self._cancelled = 0
        self._channels: set[trio.MemorySendChannel[Any]] = set()

    def statistics(self) -> BridgeStatistics:
        channels = [c.statistics() for c in self._channels]
        return BridgeStatistics(active=self._active, started=self._started,
                                cancelled=self._cancelled, buffer=self._buffer,
                                queued=sum(c.current_buffer_used for c in channels),
                                blocked=sum(1 for c in channels if c.tasks_waiting_send))

    def close(self) -> None:
        """Start no more calls (the server is stopping). Call in trio."""
        self._closed = True

    def open_call(self, body: CallBody) -> CallHandle | None:
        """From a gRPC thread: run `body(send)` in trio; None if the server is stopping."""
        try:
            return trio.from_thread.run_sync(self._start, body, trio_token=self._token)
        except trio.RunFinishedError:
            return None

    def _start(self, body: CallBody) -> CallHandle | None:
        if self._closed:
            return None
        send, receive = trio.open_memory_channel[Any](self._buffer)
        scope = trio.CancelScope()
        self._nursery.start_soon(self._run, body, scope, send)
        return CallHandle(self._token, scope, receive)

    async def _run(self, body: CallBody, scope: trio.CancelScope,
                   send: trio.MemorySendChannel[Any]) -> None:
        self._active += 1
        self._started += 1
        self._channels.add(send)
        try:
            async with send:
                with scope:
                    await body(send)
        finally:
            # both counters move together: no checkpoint between them
            self._active -= 1
            self._cancelled += scope.cancelled_caught
            self._channels.discard(send)
        if scope.cancelled_caught:
            log.debug("gRPC call cancelled", extra={"calls_active": self._active})
