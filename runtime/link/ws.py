"""``GET /worker/ws``: the worker link's WebSocket binding, as a plain ASGI handler.

Like the JSON-RPC endpoint it sits in front of the quart-trio app: Quart would
carry every received frame through a task of its own, a signal and a queue
before the link saw it, a cost paid twice per task (claim, release) on the
remote path. Here hypercorn's ASGI events are read and written directly.

The handshake needs one ``Authorization: Bearer <worker token>`` header (see
`WorkerLinkEndpoint.authenticate`; two are refused, as on every endpoint), signed
when the worker's principal is bound to a `required` signing key; a refused one
is answered with HTTP 401 and a JSON error body before any upgrade.
After the upgrade each text (or binary) message is one frame of
docs/worker-link.md, served by `WorkerLinkEndpoint.serve`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import trio

from protocol import worker_link as wl
from runtime.http.auth import RepeatedAuthorization, one_authorization
from runtime.http.signing_settings import SIGNED_BY
from runtime.link.endpoint import WS_PATH, WorkerLinkEndpoint

__all__ = ["WS_PATH", "AsgiLinkSocket", "serve_worker_websocket"]

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_REFUSAL_HEADERS = [(b"content-type", b"application/json"),
                    (b"www-authenticate", b'Bearer realm="trio-a2a-worker"')]


class AsgiLinkSocket:
    """An accepted ASGI WebSocket as a `LinkSocket`; `receive` raises
    `trio.EndOfChannel` once the worker has gone."""

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send

    async def receive(self) -> str | bytes:
        while True:
            message = await self._receive()
            kind = message["type"]
            if kind == "websocket.receive":
                text = message.get("text")
                return text if text is not None else bytes(message.get("bytes") or b"")
            if kind == "websocket.disconnect":
                raise trio.EndOfChannel

    async def send(self, data: str) -> None:
        await self._send({"type": "websocket.send", "text": data})


async def serve_worker_websocket(endpoint: WorkerLinkEndpoint, scope: Scope, receive: Receive,
                                 send: Send) -> None:
    """Answer one WebSocket handshake on ``/worker/ws`` and serve the link on it."""
    if (await receive())["type"] != "websocket.connect":
        return
    client = scope.get("client")
    peer = f"{client[0]}:{client[1]}" if client else ""
    why = endpoint.unauthorized
    try:
        principal = await endpoint.authenticate(one_authorization(
            [v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"]))
    except RepeatedAuthorization as exc:
        principal, why = None, str(exc)
    if principal is None:
        log.warning("worker link refused: bad or missing worker token", extra={"peer": peer})
    elif (unsigned := endpoint.signature_refusal(principal, scope.get(SIGNED_BY))):
        principal, why = None, unsigned
    if principal is None:
        body = wl.error_ack(None, wl.UNAUTHORIZED, why).encode()
        await send({"type": "websocket.http.response.start", "status": 401,
                    "headers": [*_REFUSAL_HEADERS, (b"content-length", str(len(body)).encode())]})
        await send({"type": "websocket.http.response.body", "body": body, "more_body": False})
        return
    if endpoint.going_away is not None:  # a worker should connect to another replica
        body = wl.error_ack(None, wl.INTERNAL, f"this server is stopping "
                            f"({endpoint.going_away}): connect to another one").encode()
        await send({"type": "websocket.http.response.start", "status": 503,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "websocket.http.response.body", "body": body, "more_body": False})
        return
    await send({"type": "websocket.accept"})
    await endpoint.serve(AsgiLinkSocket(receive, send), principal=principal, peer=peer)
    await send({"type": "websocket.close", "code": 1000})  # ignored if the worker left first
