"""The SSE frames of one subscriber's `EventFeed`: what a waiting stream holds is small.

Ten thousand open streams are ten thousand of these waiting at once, so the
iterator is a plain object, not a chain of async generators: while it waits, a
stream holds this object, its feed, and one cancel scope (the keep-alive
deadline, a stopping server's release and, on HTTP/1.1, the client going away,
all in one). Every event a wake-up finds is one chunk of frames, written with
one send. The first frame (the task snapshot) is rendered at once, so the
snapshot itself is not kept for the stream's life.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from actors.event_feed import EventFeed
from protocol.errors import A2AError, InternalError
from protocol.models import StreamResponse
from protocol.sse import encode_comment
from runtime.http.disconnect import ConnectionScopes
from runtime.http.grace import FINAL_FRAME, current_release

__all__ = ["KEEPALIVE", "FeedFrames", "frame"]

log = logging.getLogger(__name__)

KEEPALIVE = encode_comment("keep-alive")


class FeedFrames:
    """Async iterator of SSE chunks: the first frame, then one chunk per batch of
    the feed, a keep-alive after every `feed.keepalive` seconds without one.

    `connection` (set by `runtime.http.sse.send_stream` on HTTP/1.1) ends the
    iteration when the client goes away, instead of a task reading ``receive``.
    """

    __slots__ = ("_done", "_error_event", "_feed", "_first", "_release", "_render",
                 "_render_error", "connection")

    def __init__(self, first: bytes | None, feed: EventFeed,
                 render: Callable[[StreamResponse], bytes],
                 render_error: Callable[[A2AError], bytes], error_event: str | None) -> None:
        self._first = first
        self._feed = feed
        self._render = render
        self._render_error = render_error
        self._error_event = error_event
        self._release = current_release()
        self._done = False
        self.connection: ConnectionScopes | None = None

    async def aclose(self) -> None:
        """End the frames (an async generator's `aclose`, for consumers that call it)."""
        self._done = True
        self._first = None
        await self._feed.aclose()

    def __aiter__(self) -> FeedFrames:
        return self

    async def __anext__(self) -> bytes:
        if self._first is not None:
            out, self._first = self._first, None
            return out
        if self._done:
            raise StopAsyncIteration
        try:
            return await self._next()
        except StopAsyncIteration:
            self._done = True
            raise
        except A2AError as err:
            return self._fail(b"", err)
        except Exception:
            log.exception("task event stream failed")
            return self._fail(b"", InternalError("the event stream failed"))

    async def _next(self) -> bytes:
        connection = self.connection
        # one scope per wait, never across a send: keep-alive, release and disconnect
        with self._release.hold() as held:
            held.deadline = trio.current_time() + self._feed.keepalive
            if connection is not None:
                connection.add(held)
            try:
                more = await self._feed.wait()
            finally:
                if connection is not None:
                    connection.discard(held)
        if held.cancelled_caught:
            if connection is not None and connection.closed:
                raise StopAsyncIteration  # the client went away
            if self._release.released:  # a stopping server's grace is over
                self._done = True
                return FINAL_FRAME
            return KEEPALIVE
        if not more:
            raise StopAsyncIteration
        frames: list[bytes] = []
        try:
            for ev in self._feed.take():
                frames.append(frame(self._render(ev.event), seq=ev.seq))
        except A2AError as err:  # the frames before a failure are sent, then the error
            return self._fail(b"".join(frames), err)
        except Exception:
            log.exception("task event stream failed")
            return self._fail(b"".join(frames), InternalError("the event stream failed"))
        return b"".join(frames)

    def _fail(self, before: bytes, err: A2AError) -> bytes:
        self._done = True
        return before + frame(self._render_error(err), event=self._error_event)


def frame(data: bytes, *, seq: int | None = None, event: str | None = None) -> bytes:
    """One SSE event; `data` is compact JSON: it has no line breaks, so one data
    line carries it."""
    head = b""
    if event is not None:
        head += b"event: " + event.encode() + b"\n"
    if seq is not None:
        head += b"id: " + str(seq).encode() + b"\n"
    return head + b"data: " + data + b"\n\n"
