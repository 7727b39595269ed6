"""Signing our requests with an HMAC key (`protocol.request_signing`), as an httpx auth
flow: every request the client sends gets the key id, a timestamp, a fresh nonce and the
signature over method, path, timestamp, nonce and body."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Generator
from urllib.parse import urlsplit

import attrs
import httpx

from protocol.request_signing import signature_headers as protocol_headers

__all__ = ["HmacAuth", "HmacKey", "parse_hmac_key"]


@attrs.frozen
class HmacKey:
    key_id: str
    secret: bytes = attrs.field(repr=False)


def parse_hmac_key(text: str) -> HmacKey:
    """``KEY_ID:SECRET`` (the secret at least 32 bytes)."""
    key_id, sep, secret = text.partition(":")
    if not sep or not key_id or len(secret.encode()) < 32:
        raise ValueError("a signing key is KEY_ID:SECRET, the secret 32 bytes or more")
    return HmacKey(key_id, secret.encode())


class HmacAuth(httpx.Auth):
    requires_request_body = True

    def __init__(self, key: HmacKey, *, clock: Callable[[], float] = time.time) -> None:
        self.key = key
        self._clock = clock

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        for name, value in signature_headers(self.key, request.method, str(request.url),
                                             request.content, self._clock()).items():
            request.headers[name] = value
        yield request


def signature_headers(key: HmacKey, method: str, url: str, body: bytes,
                      now: float) -> dict[str, str]:
    """The signature headers of one request to `url`, with a fresh nonce."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return protocol_headers(key.key_id, key.secret, method, target, body, now=now,
                            nonce=secrets.token_urlsafe(18))
