"""HMAC-SHA256 request signatures, sans-IO: what is signed and how a signature is checked.

A signed request carries four headers: the key id, a timestamp (Unix seconds), a nonce
(unique per request) and the signature, base64url of HMAC-SHA256 with the key's secret
over the string to sign:

    METHOD \\n PATH?QUERY \\n TIMESTAMP \\n NONCE \\n hex(SHA-256(body))

A request outside the window around the server's clock, or repeating a nonce seen within
the window, is refused, so a captured request cannot be replayed, and the body cannot be
changed without the key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping

__all__ = ["KEY_ID_HEADER", "NONCE_HEADER", "SIGNATURE_HEADER", "SignatureRejected",
           "TIMESTAMP_HEADER", "check_signature", "sign_request", "signature_headers",
           "string_to_sign"]

KEY_ID_HEADER = "x-a2a-key-id"
TIMESTAMP_HEADER = "x-a2a-timestamp"
NONCE_HEADER = "x-a2a-nonce"
SIGNATURE_HEADER = "x-a2a-signature"
SIGNED_HEADERS = (KEY_ID_HEADER, TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER)
MAX_NONCE = 128


class SignatureRejected(ValueError):
    """Why a signature is refused; safe to tell the client (names no secret)."""


def string_to_sign(method: str, target: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    return "\n".join((method.upper(), target, timestamp, nonce,
                      hashlib.sha256(body).hexdigest())).encode()


def sign_request(secret: bytes, method: str, target: str, timestamp: str, nonce: str,
                 body: bytes) -> str:
    mac = hmac.new(secret, string_to_sign(method, target, timestamp, nonce, body),
                   hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def signature_headers(key_id: str, secret: bytes, method: str, target: str, body: bytes, *,
                      now: float, nonce: str) -> dict[str, str]:
    """The four headers that sign a request (`target`: its path and query)."""
    ts = str(int(now))
    return {KEY_ID_HEADER: key_id, TIMESTAMP_HEADER: ts, NONCE_HEADER: nonce,
            SIGNATURE_HEADER: sign_request(secret, method, target, ts, nonce, body)}


def check_signature(headers: Mapping[str, str], method: str, target: str, body: bytes, *,
                    keys: Mapping[str, bytes], now: float, window: float,
                    first_use: Callable[[str, str], bool]) -> str:
    """The key id of a valid signature, else `SignatureRejected` saying why.

    `first_use(key_id, nonce)` records a nonce and answers whether it was new; it is
    called only for a signature that verified, so garbage cannot fill the nonce store."""
    missing = [h for h in SIGNED_HEADERS if not headers.get(h)]
    if missing:
        raise SignatureRejected(f"missing header(s) {', '.join(missing)}")
    key_id, ts, nonce, sig = (headers[h] for h in SIGNED_HEADERS)
    secret = keys.get(key_id)
    if secret is None:
        raise SignatureRejected("unknown key id")
    try:
        stamp = int(ts)
    except ValueError:
        raise SignatureRejected("the timestamp is not an integer (Unix seconds)") from None
    if abs(now - stamp) > window:
        raise SignatureRejected(f"the timestamp is outside the allowed window of "
                                f"{window:g} s around the server's clock")
    if len(nonce) > MAX_NONCE:
        raise SignatureRejected(f"the nonce is longer than {MAX_NONCE} characters")
    expected = sign_request(secret, method, target, ts, nonce, body)
    if not hmac.compare_digest(expected.encode(), sig.encode()):
        raise SignatureRejected("the signature does not match the request")
    if not first_use(key_id, nonce):
        raise SignatureRejected("the nonce was already used (a replayed request)")
    return key_id
