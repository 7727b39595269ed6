"""Signing keys, tokens and a JWKS server on loopback for the security tests."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import jwt
import trio
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

SECRET = "s" * 40
ISSUER = "https://idp.test"
AUDIENCE = "trio-a2a"


@attrs.frozen
class Key:
    kid: str
    alg: str
    private: Any

    def jwk(self) -> dict[str, Any]:
        pub = self.private.public_key()
        conv = {"RS256": RSAAlgorithm, "ES256": ECAlgorithm, "EdDSA": OKPAlgorithm}[self.alg]
        out = conv.to_jwk(pub, as_dict=True)
        return {**out, "kid": self.kid, "use": "sig"}


def new_key(kid: str, alg: str) -> Key:
    if alg == "RS256":
        private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    else:
        private = ed25519.Ed25519PrivateKey.generate()
    return Key(kid, alg, private)


def claims(sub: str = "alice", **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600, **extra}


def hs_token(payload: dict[str, Any], secret: str = SECRET, **headers: Any) -> str:
    return jwt.encode(payload, secret, algorithm="HS256", headers=headers or None)


def key_token(key: Key, payload: dict[str, Any]) -> str:
    return jwt.encode(payload, key.private, algorithm=key.alg, headers={"kid": key.kid})


@attrs.define
class JwksServer:
    """Serves `keys` as a JWKS at `url`; counts the fetches."""

    keys: list[Key]
    url: str = ""
    fetches: int = 0

    def body(self) -> bytes:
        return json.dumps({"keys": [k.jwk() for k in self.keys]}).encode()


@asynccontextmanager
async def serve_jwks(keys: list[Key]) -> AsyncIterator[JwksServer]:
    """A real HTTP/1.1 server on loopback answering every GET with the JWKS."""
    server = JwksServer(list(keys))

    async def handle(stream: trio.SocketStream) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(4096)
            if not chunk:
                return
            data += chunk
        server.fetches += 1
        body = server.body()
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              b"Connection: close\r\nContent-Length: "
                              + str(len(body)).encode() + b"\r\n\r\n" + body)
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, handle, 0,
                                                          host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        server.url = f"http://127.0.0.1:{port}/jwks.json"
        yield server
        nursery.cancel_scope.cancel()
