"""Signing the agent card (A2A 1.0 `AgentCard.signatures`): a JWS with a detached
payload, the card's RFC 8785 form without `signatures` (`protocol.jcs`), made with
PyJWT from a configured private key (ES256, RS256 or EdDSA)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import attrs
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from protocol.jcs import card_signing_payload
from runtime.http.card import CardDocument

__all__ = ["CardSigner", "load_card_signer"]


@attrs.frozen
class CardSigner:
    key: Any = attrs.field(repr=False)
    """A private key object of `cryptography`."""
    kid: str
    alg: str
    jku: str | None = None
    """Where verifiers find the public key (a JWKS URL), put in the protected header."""

    def sign(self, document: CardDocument) -> CardDocument:
        """`document` with a `signatures` member holding this key's signature."""
        data = {k: v for k, v in document.data.items() if k != "signatures"}
        headers: dict[str, Any] = {"kid": self.kid, "typ": "JOSE"}
        if self.jku:
            headers["jku"] = self.jku
        token = jwt.api_jws.PyJWS().encode(card_signing_payload(data), self.key,
                                           algorithm=self.alg, headers=headers,
                                           is_payload_detached=True)
        protected, _, signature = token.split(".")
        signed = {**data, "signatures": [{"protected": protected, "signature": signature}]}
        body = json.dumps(signed, separators=(",", ":"), sort_keys=True).encode()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        return attrs.evolve(document, body=body, etag=etag, data=signed)


def load_card_signer(path: str | Path, kid: str, jku: str | None = None) -> CardSigner:
    """A signer from a PEM private key file; the algorithm follows the key's type.
    ValueError naming the file for anything else."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"card signing key {path}: {exc}") from None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1":
        alg = "ES256"
    elif isinstance(key, rsa.RSAPrivateKey):
        alg = "RS256"
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        alg = "EdDSA"
    else:
        raise ValueError(f"card signing key {path}: use an EC P-256, RSA or Ed25519 key")
    return CardSigner(key=key, kid=kid, alg=alg, jku=jku)
