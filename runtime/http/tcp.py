"""hypercorn's per-connection server, with our timer fed by its read loop.

`hypercorn.trio.tcp_server.TCPServer` runs one HTTP connection: a read loop that
feeds the protocol, and an idle task. `TimedTCPServer` replaces the idle task
with `runtime.http.idle.IdleTimer` and tells it what only the read loop knows:
when bytes arrive (a request head has begun, and its timeout runs) and when
reading has stopped (the peer closed the connection, or the server did), so the
timer ends at once instead of holding the connection open until it expires.
The read loop is hypercorn's, with those two calls added.
"""

from __future__ import annotations

import math
from typing import Any

import trio
from hypercorn.events import Closed, RawData
from hypercorn.trio.tcp_server import MAX_RECV, TCPServer

from runtime.http.idle import IdleTimer

__all__ = ["TimedTCPServer"]


class TimedTCPServer(TCPServer):
    """One connection, served by hypercorn, timed by `IdleTimer`."""

    def __init__(self, *args: Any, header_timeout: float) -> None:
        super().__init__(*args)
        self.timer = IdleTimer(header_timeout)
        self.idle_task = self.timer  # type: ignore[assignment]

    async def _read_data(self) -> None:
        try:
            while True:
                try:
                    with trio.fail_after(self.config.read_timeout or math.inf):
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
