"""Checking HMAC request signatures (`protocol.request_signing`) in front of every path:
the A2A endpoints and the worker link alike (the card and the probes excepted).

A request that carries signature headers is checked whatever the settings; with
`required` every request must carry one. A refusal is 401 naming what was wrong with the
signature (never a secret). Nonces are kept for the window, in this process: a replica
does not see another's, which the window bounds (docs/security.md).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

import trio

from protocol.request_signing import SIGNED_HEADERS, SignatureRejected, check_signature
from runtime.http.common import ASGIApp, Receive, Scope, Send
from runtime.http.signing_settings import SIGNED_BY, SigningSettings

__all__ = ["NonceStore", "SignatureCheck"]

log = logging.getLogger(__name__)

UNSIGNED_PATHS = ("/.well-known/", "/healthz", "/readyz")
BODY_TIMEOUT = 60.0
"""Seconds a signed request's body may take to arrive (as on the JSON-RPC endpoint)."""


class NonceStore:
    """Nonces seen within the window, dropped once they are older than it."""

    def __init__(self, window: float, limit: int = 1_000_000) -> None:
        self._window = window
        self._limit = limit
        self._seen: dict[tuple[str, str], float] = {}

    def first_use(self, key_id: str, nonce: str, now: float) -> bool:
        """Record a nonce; False if it was seen within twice the window (a request
        whose timestamp is within the window cannot be older than that)."""
        keep = 2 * self._window
        if len(self._seen) >= self._limit or len(self._seen) % 1024 == 1023:
            self._seen = {k: t for k, t in self._seen.items() if now - t <= keep}
        seen = self._seen.get((key_id, nonce))
        if seen is not None and now - seen <= keep:
            return False
        self._seen[(key_id, nonce)] = now
        return True


class SignatureCheck:
    """ASGI middleware applying `SigningSettings` in front of `app`."""

    def __init__(self, settings: SigningSettings, app: ASGIApp, *, max_body: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.app = app
        self._max_body = max_body
        self._clock = clock
        self.nonces = NonceStore(settings.window)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"].startswith(
                UNSIGNED_PATHS) or scope.get("method") == "OPTIONS":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if not any(h in headers for h in SIGNED_HEADERS) and not self.settings.required:
            await self.app(scope, receive, send)
            return
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_body:
            await self.app(scope, receive, send)  # refused unread (413) downstream
            return
        body: bytes | None = b""
        replay = receive
        if scope["type"] == "http":
            with trio.move_on_after(BODY_TIMEOUT) as slow:
                body, replay = await _buffer(receive, self._max_body)
            if slow.cancelled_caught:
                await _refuse(scope, receive, send, f"request body not received within "
                              f"{BODY_TIMEOUT:g} s", status=408)
                return
        if body is None:
            return  # the client went away
        target = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        now = self._clock()
        try:
            key_id = check_signature(
                headers, scope.get("method", "GET"), target, body,
                keys=self.settings.keys, now=now, window=self.settings.window,
                first_use=lambda k, n: self.nonces.first_use(k, n, now))
        except SignatureRejected as exc:
            log.info("request signature refused", extra={"reason": str(exc),
                                                         "path": scope["path"]})
            await _refuse(scope, receive, send, f"request signature: {exc}")
            return
        scope = {**scope, SIGNED_BY: key_id}
        await self.app(scope, replay, send)


async def _buffer(receive: Receive, limit: int) -> tuple[bytes | None, Receive]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None, receive
        chunk = message.get("body", b"")
        size += len(chunk)
        chunks.append(chunk)
        if size > limit or not message.get("more_body", False):
            break
    body = b"".join(chunks)
    sent = False

    async def replay() -> dict:  # type: ignore[type-arg]
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


async def _refuse(scope: Scope, receive: Receive, send: Send, message: str,
                  status: int = 401) -> None:
    name = "UNAUTHENTICATED" if status == 401 else "DEADLINE_EXCEEDED"
    body = json.dumps({"error": {"code": status, "status": name,
                                 "message": message}}, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode()),
               (b"www-authenticate", b'A2A-HMAC realm="a2a"')]
    if scope["type"] == "websocket":
        if (await receive())["type"] != "websocket.connect":
            return
        if "websocket.http.response" not in scope.get("extensions", {}):
            await send({"type": "websocket.close", "code": 1008})
            return
        await send({"type": "websocket.http.response.start", "status": 401, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body, "more_body": False})
        return
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
