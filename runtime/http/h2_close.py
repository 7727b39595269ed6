"""hypercorn's HTTP/2 connection, with its response buffers released when the
connection closes.

A plain-text HTTP/1.1 request can ask to go on in HTTP/2 (``Upgrade: h2c``):
hypercorn answers 101 and serves the request as stream 1 of an `H2Protocol`. That
protocol's writer task stops when the connection closes, but the streams' buffers
are left as they are, and an app that sends its response after the close (the
client closed at once, the app was slower) waits in the last `send` for a writer
that is gone (`StreamBuffer.drain`), for good. The connection's task group never
ends, so hypercorn never closes the socket: it sat in CLOSE-WAIT (the hostile
traffic's ``h2c upgrade`` cases, under load; docs/http.md, "Known upstream
issues"). `ClosingH2Protocol` closes every stream buffer on `Closed`: a `send`
waiting on one returns, a later one is dropped (hypercorn catches the
`BufferCompleteError`).
"""

from __future__ import annotations

import hypercorn.protocol as hyper_protocol
from hypercorn.events import Closed, Event
from hypercorn.protocol.h2 import H2Protocol

__all__ = ["ClosingH2Protocol", "install"]


class ClosingH2Protocol(H2Protocol):
    async def handle(self, event: Event) -> None:
        await super().handle(event)
        if isinstance(event, Closed):
            for buffer in list(self.stream_buffers.values()):
                await buffer.close()


def install() -> None:
    """Make hypercorn's protocol wrapper create `ClosingH2Protocol` for HTTP/2."""
    hyper_protocol.H2Protocol = ClosingH2Protocol  # type: ignore[misc]
