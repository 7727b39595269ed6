"""hypercorn's per-connection server, with our timer fed by its read loop, its
close serialised with its sends, and its failures kept to itself.

`hypercorn.trio.tcp_server.TCPServer` runs one HTTP connection: a read loop that
feeds the protocol, and an idle task. `TimedTCPServer` replaces the idle task
with `runtime.http.idle.IdleTimer` and tells it what only the read loop knows:
when bytes arrive (a request head has begun, and its timeout runs) and when
reading has stopped (the peer closed the connection, or the server did), so the
timer ends at once instead of holding the connection open until it expires.
The read loop is hypercorn's, with those two calls added.

The chunks of a streamed response (SSE: `runtime.http.coalesce.StreamedData`)
take a fast path: with no other write in progress, the bytes go to the socket
with one non-blocking ``send`` and no trio checkpoint (hypercorn's
`protocol_send` takes a lock, a shielded cancel scope and `send_all`, which
yields to the scheduler after every successful send: for a stream of small SSE
writes, the largest cost per frame). Whatever the socket does not take at once,
and any error, goes the usual way, so partial writes, back-pressure and a broken
connection behave exactly as before (and a stream waiting for its client gives
up its turn to write first: `runtime.http.turns`).

Two more changes, for a bug in hypercorn (docs/http.md, "Known upstream issues"):

* `TimedTCPServer._close` sends the EOF holding the connection's send lock, as
  every `send_all` does. hypercorn's does not: an EOF sent while another task was
  writing a response made that task's `send_all` raise `trio.BusyResourceError`,
  which nothing caught.
* `serve_connection` is the listener's per-connection handler: whatever still
  escapes one connection is logged in one line and ends that connection only.
  A connection's error used to reach the listener's nursery, which took every
  other connection (and the worker link's websockets) down with it.
"""

from __future__ import annotations

import logging
from typing import Any

import trio
from hypercorn.events import Closed, Event, RawData
from hypercorn.trio.tcp_server import MAX_RECV, TCPServer

from runtime.http.coalesce import StreamedData
from runtime.http.idle import IdleTimer
from runtime.http.turns import yield_turn

__all__ = ["CLOSE_LOCK_WAIT", "TimedTCPServer", "serve_connection"]

log = logging.getLogger(__name__)

CLOSE_LOCK_WAIT = 1.0
"""Seconds closing waits for a response being written to finish before it sends
the EOF; a peer that does not read must not hold the close (the socket is then
closed without an EOF, which ends the stuck write)."""


class TimedTCPServer(TCPServer):
    """One connection, served by hypercorn, timed by `IdleTimer`."""

    def __init__(self, *args: Any, header_timeout: float) -> None:
        super().__init__(*args)
        self.timer = IdleTimer(header_timeout)
        self.idle_task = self.timer  # type: ignore[assignment]

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, StreamedData):
            sock = getattr(getattr(self.stream, "socket", None), "_sock", None)
            if sock is not None and not self.send_lock.locked():  # plain TCP, no write on
                data = event.data
                try:
                    sent = sock.send(data)
                except OSError:  # full, closed or broken: the usual way takes it from here
                    sent = 0
                if sent == len(data):
                    return
                if sent:
                    event = RawData(data=data[sent:])
            yield_turn()  # about to wait for the client: let another stream write
        await super().protocol_send(event)

    async def _read_data(self) -> None:
        read_timeout = self.config.read_timeout or None
        try:
            while True:
                try:
                    if read_timeout is None:  # no scope to hold while the connection waits
                        data = await self.stream.receive_some(MAX_RECV)
                    else:
                        with trio.fail_after(read_timeout):
                            data = await self.stream.receive_some(MAX_RECV)
                except (trio.ClosedResourceError, trio.BrokenResourceError, trio.TooSlowError):
                    break
                if data:
                    self.timer.data_received()
                await self.protocol.handle(RawData(bytes(data)))
                if data == b"":
                    break
            await self.protocol.handle(Closed())
        finally:
            self.timer.connection_lost()

    async def _close(self) -> None:
        """hypercorn's close, with the EOF sent under the send lock (so never in the
        middle of another task's `send_all`), and the socket closed even when the
        lock is not had in time or the caller is cancelled."""
        try:
            if self.send_lock.statistics().owner is trio.lowlevel.current_task():
                await self._send_eof()  # closing from inside a send that failed
            else:
                with trio.move_on_after(CLOSE_LOCK_WAIT):
                    async with self.send_lock:
                        await self._send_eof()
        finally:
            await self.stream.aclose()  # closes the socket before its checkpoint

    async def _send_eof(self) -> None:
        try:
            await self.stream.send_eof()
        except (trio.BrokenResourceError, trio.BusyResourceError, trio.ClosedResourceError,
                AttributeError):  # the peer is gone, or a TLS stream (no half-close)
            pass


def _peer(stream: Any) -> str:
    try:
        host, port, *_ = stream.socket.getpeername()
    except (OSError, AttributeError, ValueError):
        return "?"
    return f"{host}:{port}"


async def serve_connection(*args: Any, header_timeout: float) -> None:
    """Serve one accepted connection (`args` are `TCPServer`'s, the stream last)
    so that its failure ends it alone: an exception that escapes hypercorn is
    logged in one line and the connection closed; the listener carries on.
    Cancellation (the server stopping) propagates as usual."""
    server = TimedTCPServer(*args, header_timeout=header_timeout)
    try:
        await server.run()
    except* Exception as group:
        errors = [f"{type(exc).__name__}: {exc}" for exc in _leaves(group)]
        log.warning("HTTP connection from %s failed, closed: %s", _peer(server.stream),
                    "; ".join(errors), extra={"errors": errors})
        with trio.CancelScope(shield=True):
            await server.stream.aclose()


def _leaves(group: BaseExceptionGroup[Exception]) -> list[Exception]:
    out: list[Exception] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out
