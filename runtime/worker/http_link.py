"""The worker link over plain HTTP, worker side: `open_http_link(server_url, token=...)`.

For networks that block WebSockets (docs/worker-link.md, "HTTP binding"). The
link is one Server-Sent Events stream, ``GET /worker/link``, whose first event
names the link id and which then carries the server's pushes; each frame the
worker sends is one ``POST /worker/link/{op}`` with header ``Worker-Link`` whose
response body is the frame's ack. `HttpLink` is the same `Connection` as
`runtime.worker.ws_link.WebSocketLink`, so the worker's actors see no difference.

The stream is the connection: when it ends, goes silent for longer than a few
keep-alive intervals, or the server answers a POST with ``UNKNOWN_LINK``, the
link is down (`LinkDown`) and the worker connects again. Requests in flight
then raise `LinkDown` too; every worker op is safe to resend.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import urllib.parse
from collections import deque
from collections.abc import AsyncIterator

import httpx
import trio

from actors.worker import LinkDown, Push
from protocol.sse import SSEDecoder, SSEEvent
from protocol.worker_link import (
    SERVER_OPS,
    UNKNOWN_LINK,
    LinkModel,
    LinkProtocolError,
    decode_frame,
    encode_frame,
    parse_reply,
)
from runtime.worker.errors import WorkerRejected
from runtime.worker.signing import LinkSigner

__all__ = ["HttpLink", "http_link_url", "open_http_link"]

log = logging.getLogger(__name__)

LINK_HEADER = "Worker-Link"
_DEFAULT_IDLE = 60.0


def http_link_url(server_url: str) -> str:
    """The URL of the worker link's HTTP binding for a server's base URL."""
    parts = urllib.parse.urlsplit(server_url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"server URL must be http(s):// for the HTTP link, not {server_url!r}")
    path = parts.path.rstrip("/")
    if not path.endswith("/worker/link"):
        path += "/worker/link"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


class _EventReader:
    """SSE events of a streaming response; `LinkDown` when it fails or goes silent."""

    def __init__(self, response: httpx.Response, idle_timeout: float) -> None:
        self._chunks = response.aiter_bytes()
        self._decoder = SSEDecoder()
        self._ready: deque[SSEEvent] = deque()
        self.idle_timeout = idle_timeout

    async def next(self) -> SSEEvent | None:
        """The next event; None when the stream ended."""
        while not self._ready:
            chunk = None
            with trio.move_on_after(self.idle_timeout):
                try:
                    chunk = await anext(self._chunks)
                except StopAsyncIteration:
                    return None
                except httpx.HTTPError as exc:
                    raise LinkDown(f"the link stream failed: {exc!r}") from None
            if chunk is None:
                raise LinkDown(f"the link stream was silent for {self.idle_timeout:g} s")
            self._ready.extend(self._decoder.feed(chunk))
        return self._ready.popleft()


class HttpLink:
    """The `Link` over the HTTP binding: one POST per frame (its response is the
    ack), pushes read from the stream and queued (bounded: when full, a push is
    dropped with a warning; offers are hints and heartbeat replies repeat
    cancellations and drain). Pushes are not acked over HTTP."""

    def __init__(self, client: httpx.AsyncClient, url: str, link_id: str,
                 events: _EventReader, *, push_queue: int = 64) -> None:
        self._client = client
        self._url = url
        self.link_id = link_id
        self._events = events
        self._ids = itertools.count(1)
        self._push_send, self._push_receive = trio.open_memory_channel[Push](push_queue)
        self._down: str | None = None
        self._scopes: set[trio.CancelScope] = set()
        self._serve_scope = trio.CancelScope()

    @property
    def pushes(self) -> trio.MemoryReceiveChannel[Push]:
        return self._push_receive

    async def request(self, op: str, body: LinkModel) -> LinkModel:
        if self._down is not None:
            raise LinkDown(self._down)
        frame_id = f"w-{next(self._ids)}"
        text = encode_frame(op, body, frame_id)
        response: httpx.Response | None = None
        with trio.CancelScope() as scope:
            self._scopes.add(scope)
            try:
                response = await self._client.post(
                    f"{self._url}/{op}", content=text,
                    headers={LINK_HEADER: self.link_id, "Content-Type": "application/json"})
            except httpx.HTTPError as exc:
                raise LinkDown(f"POST {op} failed: {exc!r}") from None
            finally:
                self._scopes.discard(scope)
        if response is None:  # the link closed while the POST was in flight
            raise LinkDown(self._down or "the link is closed")
        return self._reply(op, frame_id, response)

    def _reply(self, op: str, frame_id: str, response: httpx.Response) -> LinkModel:
        try:
            frame = decode_frame(response.content, pending={frame_id: op})
        except LinkProtocolError as exc:
            raise LinkDown(f"POST {op} answered HTTP {response.status_code} without an ack "
                           f"frame ({exc.message})") from None
        if not frame.is_ack or frame.id not in (frame_id, None):
            raise LinkDown(f"POST {op} answered with a {frame.op} frame {frame.id!r}, "
                           f"not the ack of {frame_id!r}")
        if frame.ok is False and frame.error is not None and frame.error.code == UNKNOWN_LINK:
            self.close(f"the server closed the link ({UNKNOWN_LINK}: {frame.error.message})")
            raise LinkDown(self._down or frame.error.message)
        return parse_reply(op, frame)

    async def serve(self) -> None:
        """Read the stream until it ends, then raise `LinkDown`."""
        try:
            with self._serve_scope:
                while True:
                    event = await self._events.next()
                    if event is None:
                        self.close("the server ended the link stream")
                        break
                    self._receive(event)
            raise LinkDown(self._down or "the link is closed")
        except LinkDown as exc:
            self.close(str(exc))
            raise
        finally:
            self._push_send.close()

    def _receive(self, event: SSEEvent) -> None:
        if event.event not in SERVER_OPS:
            log.debug("link stream event ignored", extra={"event": event.event,
                                                          "link_id": self.link_id})
            return
        try:
            frame = decode_frame(event.data)
        except LinkProtocolError as exc:
            log.warning("bad push from the server: %s", exc.message,
                        extra={"op": exc.op, "link_id": self.link_id})
            return
        if frame.op != event.event or frame.op not in SERVER_OPS:
            log.warning("push event %s carries a %s frame; ignored", event.event, frame.op,
                        extra={"op": frame.op, "link_id": self.link_id})
            return
        assert isinstance(frame.body, LinkModel)
        try:
            self._push_send.send_nowait(frame.body)  # type: ignore[arg-type]
        except trio.WouldBlock:
            log.warning("push queue full; %s dropped", frame.op, extra={"op": frame.op})
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    def close(self, reason: str = "the link is closed") -> None:
        """Take the link down: `serve` and requests in flight end with `LinkDown`."""
        if self._down is None:
            self._down = reason
        self._serve_scope.cancel()
        for scope in self._scopes:
            scope.cancel()


async def _refusal_detail(response: httpx.Response) -> str:
    """': <message>' of an error-ack body, or '' (it is only for people)."""
    try:
        await response.aread()
        return f": {json.loads(response.content)['error']['message']}"
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return ""


@contextlib.asynccontextmanager
async def open_http_link(
    server_url: str,
    *,
    token: str | None,
    push_queue: int = 64,
    connect_timeout: float = 10.0,
    idle_timeout: float | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    signing_key: tuple[str, bytes] | None = None,
) -> AsyncIterator[HttpLink]:
    """Open the server's worker link over HTTP. `LinkDown` if it cannot be reached,
    `WorkerRejected` if it refuses the token. Run `serve()` to read pushes.

    `idle_timeout`: seconds without a byte on the stream before the link is taken
    for dead (None: three of the keep-alive intervals the server announces).
    Acks have no HTTP timeout here: the caller bounds each request (ack timeout).
    With `signing_key` (key id, secret) every request is HMAC-signed.
    """
    url = http_link_url(server_url)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timeout = httpx.Timeout(connect_timeout, read=None)
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(
            httpx.AsyncClient(headers=headers, timeout=timeout, transport=transport,
                              auth=LinkSigner(signing_key) if signing_key else None))
        try:
            response = await stack.enter_async_context(
                client.stream("GET", url, headers={"Accept": "text/event-stream"}))
        except httpx.HTTPError as exc:
            raise LinkDown(f"cannot connect to {url}: {exc!r}") from None
        status = response.status_code
        if status in (401, 403):
            raise WorkerRejected(f"{url} refused the worker token (HTTP {status}"
                                 f"{await _refusal_detail(response)})")
        if status == 404:
            raise WorkerRejected(f"{url} is not a worker link (HTTP 404): check the server "
                                 "URL (--server)")
        content_type = response.headers.get("content-type", "")
        if status != 200 or not content_type.startswith("text/event-stream"):
            raise LinkDown(f"{url} answered HTTP {status} ({content_type or 'no content type'}),"
                           f" not an event stream")
        events = _EventReader(response, connect_timeout)
        first = await events.next()
        if first is None or first.event != "link":
            raise LinkDown(f"{url}: the stream did not start with a link event")
        try:
            hello = json.loads(first.data)
            link_id = hello["linkId"]
            keepalive = hello.get("keepalive")
        except (ValueError, KeyError, TypeError, AttributeError):
            raise LinkDown(f"{url}: the link event has no linkId: {first.data!r}") from None
        if not isinstance(link_id, str) or not link_id:
            raise LinkDown(f"{url}: the link event has no linkId: {first.data!r}")
        if idle_timeout is None:
            idle_timeout = (3 * keepalive if isinstance(keepalive, int | float) and keepalive > 0
                            else _DEFAULT_IDLE)
        events.idle_timeout = idle_timeout
        link = HttpLink(client, url, link_id, events, push_queue=push_queue)
        log.info("worker link open over HTTP", extra={"url": url, "link_id": link_id})
        try:
            yield link
        finally:
            link.close()
