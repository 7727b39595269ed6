"""Signing the worker link's requests with an HMAC key (`protocol.request_signing`):
the HTTP binding's requests through an httpx auth flow, the WebSocket handshake with
its headers."""

from __future__ import annotations

import secrets
import time
from collections.abc import Generator
from urllib.parse import urlsplit

import httpx

from protocol.request_signing import signature_headers

__all__ = ["LinkSigner"]


class LinkSigner(httpx.Auth):
    """Signs with `(key_id, secret)`; an httpx auth flow, and headers for a handshake."""

    requires_request_body = True

    def __init__(self, key: tuple[str, bytes]) -> None:
        self._key_id, self._secret = key

    def headers(self, method: str, url: str, body: bytes = b"") -> dict[str, str]:
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return signature_headers(self._key_id, self._secret, method, target, body,
                                 now=time.time(), nonce=secrets.token_urlsafe(18))

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(self.headers(request.method, str(request.url), request.content))
        yield request
