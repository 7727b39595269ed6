"""HMAC request signatures on the gRPC binding, carried in call metadata.

The same four values as the HTTP headers, under the same (lowercase) metadata keys:
`x-a2a-key-id`, `x-a2a-timestamp`, `x-a2a-nonce`, `x-a2a-signature`. What is signed is
what HTTP signs (`protocol.request_signing`), with the method ``POST``, the path the
rpc's gRPC method path (``/lf.a2a.v1.A2AService/SendMessage``) and the body the
request message's bytes exactly as received on the wire (the service takes them raw
and parses them itself). The same window, the same nonce store and the same keys
(`SigningSettings.required`, and per-principal required keys through `gate.authorize`)
apply, through the server's one `RequestVerifier`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from protocol.request_signing import SIGNED_HEADERS, SignatureRejected
from protocol.security_errors import UnauthenticatedError
from runtime.grpc.codec import SERVICE_NAME
from runtime.http.request_signing import NoncesUnavailable

__all__ = ["NoncesUnavailable", "method_path", "signature_metadata", "verify_call"]

log = logging.getLogger(__name__)


def method_path(name: str) -> str:
    """The gRPC method path of rpc `name`: what a signature signs as its path."""
    return f"/{SERVICE_NAME}/{name}"


def signature_metadata(values: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """The signature values among a call's metadata (keys lowercased), last one wins
    as on HTTP."""
    return {key: values[key][-1] for key in SIGNED_HEADERS if values.get(key)}


async def verify_call(state: object, name: str, signature: Mapping[str, str],
                      body: bytes) -> str | None:
    """The key that signed the call (None: unsigned, and allowed to be); the refusal
    as `UnauthenticatedError` naming what was wrong; `NoncesUnavailable` when its nonce
    cannot be recorded now. Signatures are ignored when signing is off, as on HTTP."""
    verifier = getattr(state, "signature_verifier", None)
    if verifier is None or (not signature and not verifier.settings.required):
        return None
    try:
        return str(await verifier.verify(signature, "POST", method_path(name), body))
    except SignatureRejected as exc:
        log.info("request signature refused", extra={"reason": str(exc), "rpc": name})
        raise UnauthenticatedError(f"request signature: {exc} (gRPC: metadata "
                                   "x-a2a-key-id, x-a2a-timestamp, x-a2a-nonce, "
                                   "x-a2a-signature)") from None
