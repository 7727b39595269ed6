"""A tiny scripted HTTP/1.1 server on loopback (trio + h11) for provider tests.

Each request is handed to a handler that returns a `Reply`: a status, headers
and body chunks sent one by one (chunked transfer encoding), optionally cut
mid-body (the connection closes without the final chunk) or left hanging. It
records every request with the (possibly virtual) time it arrived, so tests can
assert exact retry waits.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import attrs
import h11
import trio

from protocol.sse import encode_event


@attrs.frozen
class Received:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    def json(self) -> Any:
        return json.loads(self.body)


@attrs.frozen
class Reply:
    status: int = 200
    chunks: Sequence[bytes] = ()
    headers: Sequence[tuple[str, str]] = ()
    content_type: str = "text/event-stream"
    cut: bool = False  # close the connection after the chunks, mid-body
    hang: bool = False  # after the chunks, send nothing more

    @classmethod
    def json(cls, payload: Any, status: int = 200,
             headers: Sequence[tuple[str, str]] = ()) -> Reply:
        return cls(status, [json.dumps(payload).encode()], headers, "application/json")


def sse(data: Any, event: str | None = None) -> bytes:
    """One SSE frame; dicts are JSON-encoded."""
    return encode_event(data if isinstance(data, str) else json.dumps(data), event=event)


Handler = Callable[[Received], Awaitable[Reply]]


@attrs.define
class FakeServer:
    url: str = ""
    requests: list[Received] = attrs.field(factory=list)


async def _read_request(stream: trio.SocketStream, conn: h11.Connection
                        ) -> tuple[h11.Request, bytes] | None:
    request: h11.Request | None = None
    body = b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(65536)
            conn.receive_data(data)
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += bytes(event.data)
        elif isinstance(event, h11.EndOfMessage):
            assert request is not None
            return request, body
        else:  # ConnectionClosed, PAUSED
            return None


async def _serve(handler: Handler, server: FakeServer, stream: trio.SocketStream) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            got = await _read_request(stream, conn)
            if got is None:
                return
            request, body = got
            received = Received(request.method.decode(), request.target.decode(),
                                {k.decode().lower(): v.decode() for k, v in request.headers},
                                body, trio.current_time())
            server.requests.append(received)
            reply = await handler(received)
            headers = [("content-type", reply.content_type), *reply.headers]
            if reply.content_type == "application/json" and not reply.cut:
                headers.append(("content-length", str(sum(len(c) for c in reply.chunks))))
            await stream.send_all(conn.send(h11.Response(status_code=reply.status,
                                                         headers=headers)))
            for chunk in reply.chunks:
                await stream.send_all(conn.send(h11.Data(data=chunk)))
            if reply.cut:
                await stream.aclose()
                return
            if reply.hang:
                await trio.sleep_forever()
            await stream.send_all(conn.send(h11.EndOfMessage()))
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
        return
    finally:
        await stream.aclose()


@asynccontextmanager
async def open_fake_server(handler: Handler) -> AsyncIterator[FakeServer]:
    """Serve `handler` on 127.0.0.1, port 0, until the block exits."""
    server = FakeServer()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, partial(_serve, handler, server),
                                                0, host="127.0.0.1"))
        server.url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
        try:
            yield server
        finally:
            nursery.cancel_scope.cancel()


def replies(*scripted: Reply) -> Handler:
    """A handler answering successive requests with `scripted`, the last one repeated."""
    queue = list(scripted)

    async def handler(_: Received) -> Reply:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return handler


async def collect(events: AsyncIterator[Any]) -> list[Any]:
    """Every event of a provider stream, closing it deterministically."""
    async with contextlib.aclosing(events) as stream:
        return [event async for event in stream]
