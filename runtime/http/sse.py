"""Task event streams as Server-Sent Events responses.

Each frame's `id:` is the event's sequence number in the task's log, so a client
that reconnects with `Last-Event-ID` resumes exactly after the last frame it saw.
Idle streams get a comment line (keep-alive) every `ServiceSettings.keepalive`
seconds. A client that goes away only cancels this response: the task runs on.
A stopping server ends a stream still open at the end of its grace with
`runtime.http.grace.FINAL_FRAME` (the task runs on there too).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

import trio
from quart import Response

from actors.event_feed import EventFeed
from actors.store_port import StoredEvent
from protocol.errors import A2AError, InternalError
from protocol.models import StreamResponse
from runtime.http.common import Receive, Scope, Send
from runtime.http.disconnect import cancelled_on_disconnect, connection_of
from runtime.http.grace import FINAL_FRAME, current_release
from runtime.http.sse_feed import KEEPALIVE, FeedFrames
from runtime.http.sse_feed import frame as _frame
from runtime.http.turns import Turn

__all__ = ["error_frame", "event_frames", "send_stream", "sse_response"]

log = logging.getLogger(__name__)

_END = object()
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def error_frame(data: bytes, event: str | None = "error") -> AsyncIterator[bytes]:
    """A stream of one error event: a refusal sent where the client reads SSE."""
    yield _frame(data, event=event)


def event_frames(
    first: StoredEvent | None,
    events: AsyncIterator[StoredEvent | None],
    render: Callable[[StreamResponse], bytes],
    render_error: Callable[[A2AError], bytes],
    error_event: str | None = "error",
) -> AsyncIterator[bytes]:
    """SSE frames for an optional first event, then live events and keep-alives.

    From an `EventFeed`, every event a wake-up finds is one chunk of frames (so
    written with one send: `runtime.http.sse_feed.FeedFrames`). A failure ends the
    stream with one frame of `render_error`, as an `error_event` event (None: an
    unnamed one, where A2A 0.3 JSON-RPC clients look for a JSON-RPC error response
    among the data events)."""
    if isinstance(events, EventFeed):
        head = None if first is None else _frame(render(first.event), seq=first.seq)
        return FeedFrames(head, events, render, render_error, error_event)
    return _event_frames(first, events, render, render_error, error_event)


async def _event_frames(
    first: StoredEvent | None,
    events: AsyncIterator[StoredEvent | None],
    render: Callable[[StreamResponse], bytes],
    render_error: Callable[[A2AError], bytes],
    error_event: str | None,
) -> AsyncIterator[bytes]:
    if first is not None:
        yield _frame(render(first.event), seq=first.seq)
    release = current_release()
    try:
        while True:
            # held only while waiting, never across a yield (a scope must not span one)
            with release.hold() as held:
                ev = await anext(events, _END)
            if held.cancelled_caught:  # a stopping server's grace is over
                yield FINAL_FRAME
                return
            if ev is _END:
                return
            if ev is None:
                yield KEEPALIVE
            else:
                yield _frame(render(ev.event), seq=ev.seq)  # type: ignore[union-attr]
    except A2AError as err:
        yield _frame(render_error(err), event=error_event)
    except Exception:
        log.exception("task event stream failed")
        yield _frame(render_error(InternalError("the event stream failed")), event=error_event)


def sse_response(frames: AsyncIterator[bytes]) -> Response:
    response = Response(frames, status=200, content_type="text/event-stream",
                        headers=SSE_HEADERS)
    response.timeout = None
    return response


_SSE_START = [(b"content-type", b"text/event-stream"),
              *((k.lower().encode(), v.encode()) for k, v in SSE_HEADERS.items())]


async def send_stream(scope: Scope, receive: Receive, send: Send,
                       frames: AsyncIterator[bytes]) -> None:
    """Send SSE frames until the stream ends or the client disconnects.

    A disconnect cancels only this response: the task goes on, and its events stay
    in the log for the next subscriber. On HTTP/1.1 the connection cancels it
    (`runtime.http.disconnect`); elsewhere a second task watches for it.
    """
    await send({"type": "http.response.start", "status": 200, "headers": _SSE_START})
    connection = connection_of(scope)
    if isinstance(frames, FeedFrames) and connection is not None:
        frames.connection = connection  # its waits end when the client goes away
        connection.streaming()
        turn = Turn()  # a burst of events does not starve other requests
        async for frame in frames:
            async with turn:
                await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    with cancelled_on_disconnect(scope) as watched:
        if watched is not None:
            async for frame in frames:
                await send({"type": "http.response.body", "body": frame, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
    async with trio.open_nursery() as nursery:

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            nursery.cancel_scope.cancel()

        nursery.start_soon(watch_disconnect)
        async for frame in frames:
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        nursery.cancel_scope.cancel()
