"""Fewer syscalls per HTTP/1.1 response under hypercorn.

hypercorn's HTTP/1.1 protocol writes a response's status line and headers with
one `send` and its body with another. On loopback and in the benchmark profile
those two syscalls are the biggest single cost of a small JSON-RPC response.
`CoalescingH11Protocol` holds the rendered head of a response that declares a
Content-Length and writes it together with the first body bytes: the same bytes
on the wire, one syscall fewer. Streaming responses (SSE, chunked) are written
as before, so a client sees their headers at once. An event that renders to no
bytes (the end of a body with a Content-Length) is not written at all: hypercorn
would still take its send lock and make an empty write for it.

The chunks of a streamed (chunked) response are handed to the connection as
`StreamedData`, which `runtime.http.tcp.TimedTCPServer` may write at once without
a checkpoint: a stream's chunk is never the end of its response, so nothing
waits on the checkpoint hypercorn's write would take (the end of a response
does: the read loop must see the request's end before the connection recycles).

It also tells a streaming response that its client went away without the app
having to watch ``receive`` in a task of its own (`runtime.http.disconnect`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import h11
import hypercorn.protocol as hyper_protocol
from hypercorn.events import Closed, Event, RawData
from hypercorn.protocol.h11 import H11Protocol

from runtime.http.disconnect import ConnectionScopes, serving

__all__ = ["CoalescingH11Protocol", "StreamedData", "install"]


@dataclass(frozen=True)
class StreamedData(RawData):
    """Bytes of a chunked response's body, never its end (see the module docstring)."""


class CoalescingH11Protocol(H11Protocol):
    _held_head: bytes | None = None
    _chunked = False  # the response being sent has no Content-Length

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        server = getattr(self.send, "__self__", None)  # runtime.http.tcp.TimedTCPServer
        self.scopes = ConnectionScopes(getattr(server, "timer", None))

    async def handle(self, event: Event) -> None:
        if isinstance(event, Closed) and self.stream is not None:
            self.scopes.closing()  # what the app would learn from http.disconnect
        await super().handle(event)

    async def _create_stream(self, request: h11.Request) -> None:
        token = serving.set(self.scopes)  # the app task spawned here inherits it
        try:
            await super()._create_stream(request)
        finally:
            serving.reset(token)

    async def _send_h11_event(self, event: h11._events.Event) -> None:  # type: ignore[name-defined]
        if isinstance(event, h11.Response):
            self._chunked = not _has_length(event)
        if isinstance(event, h11.Response) and not self._chunked:
            try:
                self._held_head = self.connection.send(event)
            except h11.LocalProtocolError:
                if self.connection.their_state != h11.ERROR:
                    raise
            return
        head, self._held_head = self._held_head, None
        if head is None:
            try:
                data = self.connection.send(event)
            except h11.LocalProtocolError:
                if self.connection.their_state != h11.ERROR:
                    raise
                return
            if data and self._chunked and isinstance(event, h11.Data):
                await self.send(StreamedData(data=data))
            elif data:  # the end of a body with a Content-Length is no bytes: no write
                await self.send(RawData(data=data))
            return
        try:
            data = self.connection.send(event) or b""
        except h11.LocalProtocolError:
            await self.send(RawData(data=head))
            if self.connection.their_state != h11.ERROR:
                raise
            return
        await self.send(RawData(data=head + data))


def _has_length(event: h11.Response) -> bool:
    return any(name == b"content-length" for name, _ in event.headers)


def install() -> None:
    """Make hypercorn's protocol wrapper create `CoalescingH11Protocol` for HTTP/1.1."""
    hyper_protocol.H11Protocol = CoalescingH11Protocol  # type: ignore[misc]
