"""The bindings that resolve only a principal (/mcp, gRPC) under the identity model:
a static token's tenant is part of its owner there too, roles short of every client
permission are refused, and auth turned on by JWTs alone never leaves them anonymous."""

from __future__ import annotations

import httpx
import trio

from protocol.identity import ClaimNames
from runtime.http.auth import TokenAuth, TokenEntry
from runtime.http.identity import Authenticator, IdentityTokenAuth
from runtime.http.jwt_auth import JwtSettings, JwtVerifier
from runtime.security import SecurityConfig
from runtime.server import ServerConfig, open_server
from tests.security.keys import AUDIENCE, ISSUER, SECRET, claims, hs_token

INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {},
    "clientInfo": {"name": "t", "version": "1"}}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


def test_principal_only_view_of_identities() -> None:
    entries = {"tok-ops": TokenEntry("alice", ("operator",), "acme"),
               "tok-view": TokenEntry("alice", ("observer",), "acme"),
               "tok-plain": TokenEntry("bob")}
    tokens = {t: e.principal for t, e in entries.items()}
    auth = IdentityTokenAuth(tokens, Authenticator(entries))
    assert auth.client_principal("Bearer tok-ops", None) == "acme\x1falice"
    assert auth.client_principal("Bearer tok-plain", None) == "bob"
    assert auth.client_principal("Bearer tok-view", None) is None  # an observer may not send
    assert auth.client_principal("Bearer nope", None) is None
    assert auth.client_principal(None, None) is None
    assert auth.principal("Bearer tok-view") == "alice"  # the worker link's check is unchanged
    jwt_only = IdentityTokenAuth({}, Authenticator(jwt=JwtVerifier(JwtSettings(secret=SECRET))))
    assert jwt_only.client_principal(None, None) is None  # not anonymous
    assert jwt_only.client_principal(f"Bearer {hs_token(claims())}", None) is None
    off = IdentityTokenAuth({}, Authenticator(workers=TokenAuth({"w": "worker"})))
    assert off.client_principal(None, None) == ""  # auth off stays off
    assert off.client_principal("Bearer w", TokenAuth({"w": "worker"})) is None


async def test_mcp_is_not_open_when_only_jwts_turn_auth_on() -> None:
    jwt = JwtSettings(issuer=ISSUER, audience=AUDIENCE, secret=SECRET, claims=ClaimNames())
    config = ServerConfig(port=0, store="memory", worker_tokens={"w": "worker"},
                          security=SecurityConfig(jwt=jwt))
    async with open_server(config) as srv, httpx.AsyncClient(base_url=srv.url) as c:
        with trio.fail_after(10):
            r = await c.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS)
            assert r.status_code == 401
            r = await c.post("/", json={"jsonrpc": "2.0", "id": 1, "method": "ListTasks",
                                        "params": {}},
                             headers={"A2A-Version": "1.0",
                                      "Authorization": f"Bearer {hs_token(claims())}"})
            assert "result" in r.json()
