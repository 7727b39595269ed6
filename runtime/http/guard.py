"""Between hypercorn and the quart-trio app: answers that leave a body unread, and
the body limit.

quart-trio answers some requests before their body has fully arrived: the card,
401, 404, 405, a version error, a REST operation that reads no body, 413 on the
declared Content-Length. hypercorn must then close the connection (the rest of the
body cannot be told from a next request), and it does so inside the app's last
`send`, which also hands the app `http.disconnect`. quart-trio, on that message,
cancels the nursery whose other task is the one still inside that `send`: the
close is cut short at its first checkpoint, the socket stays open, the next request
on it is never answered, and once the client gives up the socket sits in
CLOSE-WAIT for good (docs/http.md, "Known upstream issues"). `QuartGuard`:

* shields the last `send` of a response from that cancellation, so hypercorn
  finishes closing the connection;
* marks a response that starts before the request's body has fully arrived
  ``Connection: close``, so the client does not send its next request there;
* refuses a declared Content-Length over `max_body` with 413 before Quart sees the
  request, and a chunked body as soon as it passes `max_body`, and closes the
  connection: Quart read a refused body to its end (100 MB in one report).

Whatever hypercorn still queues for a request that is being refused is taken and
dropped while the answer goes out (`refuse`): with nobody reading, hypercorn's
queue of request messages fills up and its delivery of `http.disconnect`, inside
that same last `send`, would wait forever.
"""

from __future__ import annotations

import json
from typing import Any

import trio

from runtime.http.common import ASGIApp, Receive, Scope, Send, too_large_error

__all__ = ["QuartGuard", "declared_length", "no_websocket_here", "refuse"]

CLOSE = (b"connection", b"close")


def declared_length(headers: Any) -> int | None:
    """The request's Content-Length, None when absent or not a number (hypercorn's
    h11 has already refused a malformed one)."""
    for name, value in headers:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _has_body(headers: Any) -> bool:
    return any((name == b"content-length" and value.strip() not in (b"", b"0"))
               or name == b"transfer-encoding" for name, value in headers)


async def _drop_until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _send_last(send: Send, message: dict[str, Any]) -> None:
    """A response's last message: hypercorn may close the connection inside it,
    which a cancellation must not cut short."""
    with trio.CancelScope(shield=True):
        await send(message)


async def _answer_closing(send: Send, status: int, body: dict[str, Any],
                          headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    data = json.dumps(body, separators=(",", ":")).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), *headers,
        (b"content-length", str(len(data)).encode()), CLOSE]})
    await _send_last(send, {"type": "http.response.body", "body": data, "more_body": False})


async def refuse(receive: Receive, send: Send, status: int, body: dict[str, Any],
                 headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    """Answer with a JSON error and close the connection, reading no more of the
    request than hypercorn has already queued."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_drop_until_disconnect, receive)
        await _answer_closing(send, status, body, headers)
        nursery.cancel_scope.cancel()


class _Exchange:
    """One request's messages between hypercorn and Quart, watched."""

    def __init__(self, receive: Receive, send: Send, limit: int, has_body: bool,
                 nursery: trio.Nursery) -> None:
        self._receive = receive
        self._send = send
        self._limit = limit
        self._nursery = nursery
        self.body_done = not has_body
        self.received = 0
        self.too_large = False
        self.started = False

    async def receive(self) -> Any:
        if self.too_large:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self._limit:
                # Quart hears a disconnect and stops; the guard answers 413.
                self.too_large = True
                self._nursery.start_soon(_drop_until_disconnect, self._receive)
                return {"type": "http.disconnect"}
            if not message.get("more_body", False):
                self.body_done = True
        return message

    async def send(self, message: Any) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.started = True
            headers = list(message.get("headers", ()))
            if not self.body_done and not any(n.lower() == b"connection" for n, _ in headers):
                message = {**message, "headers": [*headers, CLOSE]}
            await self._send(message)
        elif kind == "http.response.body" and not message.get("more_body", False):
            await _send_last(self._send, message)
        else:
            await self._send(message)


class QuartGuard:
    """ASGI middleware in front of the quart-trio app (HTTP only; the lifespan and
    WebSockets pass through)."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self._app = app
        self._max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        length = declared_length(scope["headers"])
        if length is not None and length > self._max_body:
            await refuse(receive, send, 413, too_large_error(self._max_body))
            return
        async with trio.open_nursery() as nursery:
            exchange = _Exchange(receive, send, self._max_body, _has_body(scope["headers"]),
                                 nursery)
            await self._app(scope, exchange.receive, exchange.send)
            if exchange.too_large and not exchange.started:  # (the rest is being dropped)
                await _answer_closing(send, 413, too_large_error(self._max_body))
            nursery.cancel_scope.cancel()


async def no_websocket_here(scope: Scope, receive: Receive, send: Send) -> None:
    """A WebSocket handshake on a path that serves none: HTTP 404 with a JSON body
    naming the path (a close before accepting where the server cannot send one)."""
    if (await receive())["type"] != "websocket.connect":
        return
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008})
        return
    message = f"no WebSocket endpoint at {scope['path']}"
    body = json.dumps({"error": {"code": 404, "status": "NOT_FOUND", "message": message}},
                      separators=(",", ":")).encode()
    await send({"type": "websocket.http.response.start", "status": 404,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "websocket.http.response.body", "body": body, "more_body": False})
