"""The worker link's WebSocket transport: `open_websocket_link(server_url, ...)`.

trio-websocket; ``GET /worker/ws`` with ``Authorization: Bearer <token>``, one
text message per frame (docs/worker-link.md). `WebSocketLink` is a `Connection`:
the worker's supervision tree (`runtime.worker.process`) opens one per connect.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import urllib.parse
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import attrs
import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    HandshakeError,
    WebSocketConnection,
    open_websocket_url,
)

from actors.worker import Link, LinkDown, Push
from protocol.worker_link import (
    ACK,
    INTERNAL,
    SERVER_OPS,
    UNKNOWN_OP,
    Frame,
    LinkModel,
    LinkProtocolError,
    ack,
    decode_frame,
    encode_frame,
    error_ack,
    parse_reply,
)
from runtime.worker.errors import WorkerRejected
from runtime.worker.signing import LinkSigner

__all__ = ["Connect", "Connection", "WebSocketLink", "link_url", "open_websocket_link"]

log = logging.getLogger(__name__)


class Connection(Link, Protocol):
    """A `Link` that is one open connection."""

    async def serve(self) -> None:
        """Read the connection until it closes (then raise `LinkDown`)."""
        ...


Connect = Callable[[], AbstractAsyncContextManager[Connection]]


def link_url(server_url: str) -> str:
    """The worker link's WebSocket URL for a server's base URL."""
    parts = urllib.parse.urlsplit(server_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ValueError(f"server URL must be http(s):// or ws(s)://, not {server_url!r}")
    path = parts.path.rstrip("/")
    if not path.endswith("/worker/ws"):
        path += "/worker/ws"
    return urllib.parse.urlunsplit((scheme, parts.netloc, path, parts.query, ""))


@attrs.define(eq=False)
class _Waiter:
    op: str
    event: trio.Event = attrs.Factory(trio.Event)
    frame: Frame | None = None


class WebSocketLink:
    """The `Link` over one WebSocket: frames out, acks matched by id, pushes queued
    and acked (bounded: when full, a push is dropped with a warning and an error
    ack; offers are hints and heartbeat replies repeat cancellations and drain)."""

    def __init__(self, ws: WebSocketConnection, *, push_queue: int = 64) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._waiters: dict[str, _Waiter] = {}
        self._ops: dict[str, str] = {}
        self._push_send, self._push_receive = trio.open_memory_channel[Push](push_queue)
        self._closed = False
        self._close_reason = "the connection is closed"

    @property
    def pushes(self) -> trio.MemoryReceiveChannel[Push]:
        return self._push_receive

    async def request(self, op: str, body: LinkModel) -> LinkModel:
        if self._closed:
            raise LinkDown(self._close_reason)
        frame_id = f"w-{next(self._ids)}"
        waiter = self._waiters[frame_id] = _Waiter(op)
        self._ops[frame_id] = op
        try:
            await self._send(encode_frame(op, body, frame_id))
            await waiter.event.wait()
        finally:
            del self._waiters[frame_id], self._ops[frame_id]
        if waiter.frame is None:
            raise LinkDown(self._close_reason)
        return parse_reply(op, waiter.frame)

    async def _send(self, text: str) -> None:
        try:
            await self._ws.send_message(text)
        except (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise LinkDown(f"the connection closed: {exc!r}") from exc

    async def _send_quietly(self, text: str) -> None:
        with contextlib.suppress(LinkDown):
            await self._send(text)

    async def serve(self) -> None:
        try:
            while True:
                try:
                    message = await self._ws.get_message()
                except ConnectionClosed as exc:
                    self._close_reason = f"the server closed the connection ({exc.reason})"
                    raise LinkDown(self._close_reason) from None
                await self._receive(message)
        finally:
            self._closed = True
            for waiter in self._waiters.values():
                waiter.event.set()  # frame None: LinkDown
            self._push_send.close()

    async def _receive(self, message: str | bytes) -> None:
        try:
            frame = decode_frame(message, pending=self._ops)
        except LinkProtocolError as exc:
            log.warning("bad frame from the server: %s", exc.message, extra={"op": exc.op})
            if exc.op != ACK:
                await self._send_quietly(exc.to_ack())
            return
        if frame.is_ack:
            waiter = self._waiters.get(frame.id or "")
            if waiter is not None:
                waiter.frame = frame
                waiter.event.set()
            return
        if frame.op not in SERVER_OPS:
            await self._send_quietly(error_ack(frame.id, UNKNOWN_OP,
                                               f"op {frame.op!r} is not one a worker accepts"))
            return
        assert isinstance(frame.body, LinkModel)
        try:
            self._push_send.send_nowait(frame.body)  # type: ignore[arg-type]
        except trio.WouldBlock:
            log.warning("push queue full; %s dropped", frame.op, extra={"op": frame.op})
            await self._send_quietly(error_ack(frame.id, INTERNAL, "the worker's push queue "
                                               f"is full; {frame.op} dropped"))
            return
        await self._send_quietly(ack(frame.id))  # every frame on the connection is acked


@contextlib.asynccontextmanager
async def open_websocket_link(
    server_url: str,
    *,
    token: str | None,
    push_queue: int = 64,
    connect_timeout: float = 10.0,
    disconnect_timeout: float = 2.0,
    max_message_size: int = 16 << 20,
    signing_key: tuple[str, bytes] | None = None,
) -> AsyncIterator[WebSocketLink]:
    """Connect to the server's worker link. `LinkDown` if it cannot be reached,
    `WorkerRejected` if it refuses the token. Run `serve()` to read frames. With
    `signing_key` (key id, secret) the handshake is HMAC-signed."""
    url = link_url(server_url)
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    if signing_key is not None:
        headers += [(k.encode(), v.encode())
                    for k, v in LinkSigner(signing_key).headers("GET", url).items()]
    async with contextlib.AsyncExitStack() as stack:
        try:
            ws = await stack.enter_async_context(open_websocket_url(
                url, extra_headers=headers, message_queue_size=64,
                max_message_size=max_message_size, connect_timeout=connect_timeout,
                disconnect_timeout=disconnect_timeout))
        except ConnectionRejected as exc:
            if exc.status_code in (401, 403):
                raise WorkerRejected(f"{url} refused the worker token "
                                     f"(HTTP {exc.status_code})") from None
            if exc.status_code == 404:
                raise WorkerRejected(f"{url} is not a worker link (HTTP 404): check the "
                                     "server URL (--server)") from None
            raise LinkDown(f"{url} refused the connection (HTTP {exc.status_code})") from None
        except (HandshakeError, OSError) as exc:
            cause = exc.__cause__ or exc
            raise LinkDown(f"cannot connect to {url}: {cause!r}") from None
        yield WebSocketLink(ws, push_queue=push_queue)
