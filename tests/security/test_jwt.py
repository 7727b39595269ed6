"""JWT bearer tokens on a real server: valid ones of every algorithm resolve to their
identity; expired, not-yet-valid, forged, wrong-audience, wrong-issuer, `alg: none`
and algorithm-confused ones get 401 and nothing else; JWKS rotation needs no restart."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jwt
import pytest
import trio
from cryptography.hazmat.primitives import serialization

from protocol.identity import ClaimNames
from runtime.http.jwt_auth import JwksSource, JwtSettings
from runtime.security import SecurityConfig
from runtime.server import RunningServer, ServerConfig, open_server
from tests.agents import scripted_agent
from tests.conftest import user_message
from tests.security.keys import (
    AUDIENCE,
    ISSUER,
    SECRET,
    JwksServer,
    claims,
    hs_token,
    key_token,
    new_key,
    serve_jwks,
)

RSA, EC, ED = new_key("rsa-1", "RS256"), new_key("ec-1", "ES256"), new_key("ed-1", "EdDSA")


@pytest.fixture
async def jwks() -> AsyncIterator[JwksServer]:
    async with serve_jwks([RSA, EC, ED]) as server:
        yield server


def jwt_config(jwks_url: str | None, **kw: object) -> ServerConfig:
    settings = JwtSettings(issuer=ISSUER, audience=AUDIENCE, secret=SECRET, jwks_url=jwks_url,
                           refetch_interval=0.0, leeway=5.0,
                           claims=ClaimNames(roles="realm_access.roles"), **kw)  # type: ignore[arg-type]
    return ServerConfig(port=0, store="memory", agent=scripted_agent(),
                        security=SecurityConfig(jwt=settings))


@pytest.fixture
async def server(jwks: JwksServer) -> AsyncIterator[RunningServer]:
    async with open_server(jwt_config(jwks.url)) as srv:
        yield srv


async def call(srv: RunningServer, token: str | None, method: str = "ListTasks",
               params: dict | None = None) -> httpx.Response:
    headers = {"A2A-Version": "1.0"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(base_url=srv.url) as c:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}
        return await c.post("/", json=body, headers=headers)


def refused(r: httpx.Response, token: str) -> None:
    assert r.status_code == 401, r.text
    assert r.json()["error"]["status"] == "UNAUTHENTICATED"
    assert token not in r.text
    assert r.headers["www-authenticate"].startswith("Bearer")


async def test_valid_tokens_of_every_algorithm_are_identities(server: RunningServer) -> None:
    with trio.fail_after(20):
        tokens = [hs_token(claims("alice")), key_token(RSA, claims("alice")),
                  key_token(EC, claims("alice")), key_token(ED, claims("alice"))]
        first = await call(server, tokens[0], "SendMessage",
                           {"message": user_message("hello")})
        task_id = first.json()["result"]["task"]["id"]
        for token in tokens:  # the same principal whatever signed its token
            r = await call(server, token, "GetTask", {"id": task_id})
            assert r.json()["result"]["id"] == task_id
        other = await call(server, hs_token(claims("bob")), "GetTask", {"id": task_id})
        assert other.json()["error"]["code"] == -32001


def _none_token(payload: dict) -> str:
    def seg(d: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    return f"{seg({'alg': 'none', 'typ': 'JWT'})}.{seg(payload)}."


async def test_bad_tokens_get_401_and_leak_nothing(server: RunningServer) -> None:
    now = int(time.time())
    pem = RSA.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    bad = {
        "expired": hs_token(claims(exp=now - 60, iat=now - 700)),
        "not yet valid": hs_token(claims(nbf=now + 120)),
        "forged": hs_token(claims(), secret="x" * 40),
        "wrong audience": hs_token(claims(aud="someone-else")),
        "wrong issuer": hs_token(claims(iss="https://evil.test")),
        "no exp": hs_token({k: v for k, v in claims().items() if k != "exp"}),
        "alg none": _none_token(claims()),
        "alg none upper": _none_token(claims()).replace("bm9uZS", "Tk9ORS"),
        "unknown kid": key_token(new_key("rsa-x", "RS256"), claims()),
        "rsa key as HS256 secret": _hs_with_raw_key(pem),
        "EC key named as RS256": _swap_alg(key_token(EC, claims()), "RS256"),
        "HS384": jwt.encode(claims(), "h" * 64, algorithm="HS384"),
        "empty principal": hs_token(claims(sub="")),
        "control char principal": hs_token(claims(sub="a\x1fb")),
        "roles not a list": hs_token(claims(realm_access={"roles": {"x": 1}})),
    }
    with trio.fail_after(20):
        for name, token in bad.items():
            r = await call(server, token)
            assert r.status_code == 401, name
            refused(r, token)


def _hs_with_raw_key(key: bytes) -> str:
    """An HS256 token whose HMAC key is the RSA public key's PEM (the classic confusion)."""
    import hashlib
    import hmac

    def seg(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    head = seg(json.dumps({"alg": "HS256", "kid": RSA.kid}).encode())
    body = seg(json.dumps(claims()).encode())
    sig = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{seg(sig)}"


def _swap_alg(token: str, alg: str) -> str:
    head, body, sig = token.split(".")
    h = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    h["alg"] = alg
    new = base64.urlsafe_b64encode(json.dumps(h).encode()).rstrip(b"=").decode()
    return f"{new}.{body}.{sig}"


async def test_leeway_allows_small_clock_skew(server: RunningServer) -> None:
    now = int(time.time())
    with trio.fail_after(10):
        r = await call(server, hs_token(claims(nbf=now + 2)))
        assert r.status_code == 200


async def test_roles_come_from_the_configured_claim(server: RunningServer) -> None:
    with trio.fail_after(10):
        observer = hs_token(claims(realm_access={"roles": ["observer"]}))
        r = await call(server, observer, "SendMessage", {"message": user_message("x")})
        assert r.json()["error"]["code"] == -32040
        assert (await call(server, observer)).json()["result"]["tasks"] == []


async def test_jwks_rotation_without_restart(jwks: JwksServer) -> None:
    async with open_server(jwt_config(jwks.url)) as srv:
        with trio.fail_after(20):
            assert (await call(srv, key_token(RSA, claims()))).status_code == 200
            fetched = jwks.fetches
            rotated = new_key("rsa-2", "RS256")
            new_token = key_token(rotated, claims())
            refused(await call(srv, new_token), new_token)  # not published yet
            jwks.keys = [rotated]  # the provider rotates: the old key is gone
            assert (await call(srv, new_token)).status_code == 200
            assert jwks.fetches > fetched
            # a token of the retired key is refused once the keys are refetched
            old = key_token(RSA, claims(sub="carol"))
            refused(await call(srv, old), old)


async def test_unknown_kids_refetch_at_most_once_per_interval(tmp_path: Path,
                                                              mock_clock: trio.testing.MockClock
                                                              ) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [RSA.jwk()]}))
    source = JwksSource(file=str(path), refetch_interval=30.0, cache_ttl=3600.0)
    assert await source.key("rsa-1", "RS256") is not None
    assert source.fetches == 1
    for _ in range(100):  # a flood of unknown kids costs no fetch within the interval
        assert await source.key("nope", "RS256") is None
    assert source.fetches == 1
    assert await source.key("rsa-1", "ES256") is None  # a key's own algorithm only
    path.write_text(json.dumps({"keys": [RSA.jwk(), EC.jwk()]}))
    mock_clock.jump(29.0)
    assert await source.key("ec-1", "ES256") is None
    mock_clock.jump(1.0)
    assert await source.key("ec-1", "ES256") is not None
    assert source.fetches == 2
    mock_clock.jump(3600.0)  # past the cache TTL: fetched again before use
    assert await source.key("rsa-1", "RS256") is not None
    assert source.fetches == 3


def test_settings_refuse_weak_or_unknown_configuration() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        JwtSettings(secret="short")
    with pytest.raises(ValueError, match="needs a secret"):
        JwtSettings()
    with pytest.raises(ValueError, match="unsupported JWT algorithm"):
        JwtSettings(secret=SECRET, algorithms=("HS256", "none"))
