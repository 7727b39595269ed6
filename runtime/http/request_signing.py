"""Checking HMAC request signatures (`protocol.request_signing`) in front of every path:
the A2A endpoints and the worker link alike (the card and the probes excepted).

A request that carries signature headers is checked whatever the settings; with
`required` every request must carry one. A refusal is 401 naming what was wrong with the
signature (never a secret). Nonces are kept for twice the window in the task store's
database (`SharedNonces`): the SQLite file, so a request replayed after a restart within
the window is refused, or the PostgreSQL database the replicas share, so one replayed to
another replica is refused there too; with the memory store (whose tasks do not outlive
the process either) in this process (docs/security.md). The same `RequestVerifier`
checks the gRPC binding's signatures (`runtime.grpc.signing`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Protocol

import trio

from protocol.request_signing import SIGNED_HEADERS, SignatureRejected, check_signature
from runtime.http.common import ASGIApp, Receive, Scope, Send
from runtime.http.signing_settings import SIGNED_BY, SigningSettings

__all__ = ["NonceStore", "NoncesUnavailable", "RequestVerifier", "SharedNonces",
           "SignatureCheck"]

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


class SharedNonces(Protocol):
    """Nonces in the task store's database: the file of a SQLite store
    (`runtime.store.sqlite_security`), kept across restarts, or the PostgreSQL database
    every replica reads (`runtime.store.postgres_security`)."""

    async def first_use(self, key_id: str, nonce: str, now: float, keep: float) -> bool:
        """Record a nonce at `now`; False if it was seen within `keep` seconds."""
        ...

    async def prune_nonces(self, before: float) -> int: ...


PRUNE_EVERY = 1024
"""Nonces recorded in a shared store between two deletions of those past keeping."""
REPLAYED = "the nonce was already used (a replayed request)"


class NoncesUnavailable(Exception):
    """The store could not record a verified signature's nonce: the request is refused
    (503), never let through unchecked."""


class RequestVerifier:
    """Checks one request's signature and records its nonce, for every binding (the
    HTTP paths through `SignatureCheck`, gRPC from its call metadata); nonces in
    `shared` when given, else in this process."""

    def __init__(self, settings: SigningSettings, *, clock: Callable[[], float] = time.time,
                 shared: SharedNonces | None = None) -> None:
        self.settings = settings
        self._clock = clock
        self.nonces = NonceStore(settings.window)
        self._shared = shared
        self._recorded = 0

    async def first_use_shared(self, key_id: str, nonce: str, now: float) -> bool:
        assert self._shared is not None
        keep = 2 * self.settings.window
        first = await self._shared.first_use(key_id, nonce, now, keep)
        self._recorded += 1
        if self._recorded % PRUNE_EVERY == 0:
            await self._shared.prune_nonces(now - keep)
        return first

    async def verify(self, headers: Mapping[str, str], method: str, target: str,
                     body: bytes) -> str:
        """The key id of a valid signature whose nonce is new; `SignatureRejected`
        saying why not, `NoncesUnavailable` if the nonce cannot be recorded now."""
        now = self._clock()
        verified: list[str] = []  # the nonce of a signature that verified (shared store)

        def first_use(key: str, nonce: str) -> bool:
            if self._shared is None:
                return self.nonces.first_use(key, nonce, now)
            verified.append(nonce)  # checked in the shared store below (async)
            return True

        key_id = check_signature(headers, method, target, body, keys=self.settings.keys,
                                 now=now, window=self.settings.window, first_use=first_use)
        if verified:
            try:
                first = await self.first_use_shared(key_id, verified[0], now)
            except Exception as exc:
                log.warning("request nonce not checked: the store cannot be reached",
                            exc_info=True)
                raise NoncesUnavailable("the request's nonce cannot be checked now; "
                                        "retry") from exc
            if not first:
                raise SignatureRejected(REPLAYED)
        return key_id


class SignatureCheck:
    """ASGI middleware applying `SigningSettings` in front of `app` with `verifier`
    (made here, nonces in `shared` when given, else in this process, if not given)."""

    def __init__(self, settings: SigningSettings, app: ASGIApp, *, max_body: int,
                 clock: Callable[[], float] = time.time,
                 shared: SharedNonces | None = None,
                 verifier: RequestVerifier | None = None) -> None:
        self.settings = settings
        self.app = app
        self._max_body = max_body
        self.verifier = verifier or RequestVerifier(settings, clock=clock, shared=shared)
        self.nonces = self.verifier.nonces

    async def _first_use_shared(self, key_id: str, nonce: str, now: float) -> bool:
        return await self.verifier.first_use_shared(key_id, nonce, now)

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
        try:
            key_id = await self.verifier.verify(headers, scope.get("method", "GET"), target,
                                                body)
        except NoncesUnavailable as exc:
            await _refuse(scope, receive, send, str(exc), status=503)
            return
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
    name = {401: "UNAUTHENTICATED", 503: "UNAVAILABLE"}.get(status, "DEADLINE_EXCEEDED")
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
        await send({"type": "websocket.http.response.start", "status": status,
                    "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body, "more_body": False})
        return
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
