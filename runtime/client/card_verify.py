"""Checking an agent card's signature (A2A 1.0 `AgentCard.signatures`) before the
client trusts the card: a JWS with a detached payload over the card's RFC 8785 form
without `signatures`, verified with PyJWT against the key or JWKS the caller gives.
The algorithm comes from the key, never from the signature's header."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from protocol.jcs import card_signing_payload
from runtime.client.errors import A2AResponseError

if TYPE_CHECKING:
    import jwt

__all__ = ["CardKeys", "verify_card"]


class CardKeys:
    """The keys a card may be signed with: a JWKS (a dict) or one public key (PEM, or a
    `cryptography` public key object) with the `kid` it signs as (None: any)."""

    def __init__(self, key: Any = None, *, kid: str | None = None,
                 jwks: Mapping[str, Any] | None = None) -> None:
        import jwt  # PyJWT and cryptography only for a client given keys: `send` starts faster

        self._keys: list[tuple[str | None, jwt.PyJWK]] = []
        if jwks is not None:
            for k in jwt.PyJWKSet.from_dict(dict(jwks)).keys:
                self._keys.append((k.key_id, k))
        if key is not None:
            if isinstance(key, str | bytes):
                from cryptography.hazmat.primitives import serialization
                key = serialization.load_pem_public_key(
                    key.encode() if isinstance(key, str) else key)
            jwk = json.loads(jwt.algorithms.get_default_algorithms()[_alg_of(key)].to_jwk(key))
            self._keys.append((kid, jwt.PyJWK(jwk)))
        if not self._keys:
            raise ValueError("CardKeys needs a key or a JWKS")

    def candidates(self, kid: str | None) -> list[jwt.PyJWK]:
        return [k for k_kid, k in self._keys if k_kid is None or k_kid == kid]


def _alg_of(key: Any) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ES256"
    if isinstance(key, rsa.RSAPublicKey):
        return "RS256"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "EdDSA"
    raise ValueError("use an EC P-256, RSA or Ed25519 public key")


def verify_card(data: Mapping[str, Any], keys: CardKeys, url: str) -> None:
    """A2AResponseError unless one of the card's signatures verifies with `keys`."""
    import jwt

    payload = card_signing_payload(dict(data))
    signatures = data.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise A2AResponseError(f"the agent card at {url} is not signed", url=url)
    for sig in signatures:
        if not isinstance(sig, dict):
            continue
        protected, signature = sig.get("protected"), sig.get("signature")
        if not isinstance(protected, str) or not isinstance(signature, str):
            continue
        try:
            header = json.loads(base64.urlsafe_b64decode(protected + "=" * (-len(protected) % 4)))
        except ValueError:
            continue
        kid = header.get("kid") if isinstance(header, dict) else None
        for key in keys.candidates(kid if isinstance(kid, str) else None):
            try:
                jwt.api_jws.PyJWS().decode_complete(
                    f"{protected}..{signature}", key.key, algorithms=[key.algorithm_name],
                    detached_payload=payload)
                return
            except (jwt.PyJWTError, ValueError, TypeError):
                continue
    raise A2AResponseError(f"the agent card at {url} has no signature by a trusted key",
                           url=url)
