"""The rest of the permission matrix: every role x the operations beside A2A's (the
token service's verify and logout, the admin API, the worker link), on each binding
that carries them (JSON-RPC 1.0 and 0.3 and HTTP+JSON; the admin API's JSON-RPC methods
and /admin/v1 routes; the worker link's HTTP endpoint): allowed exactly when the role's
permissions say so, and refused with the right code otherwise."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from protocol.permissions import ROLES, RoleTable
from runtime.admin import AdminSettings
from runtime.http.auth import TokenEntry
from runtime.http.token_service import TokenServiceSettings
from runtime.security import SecurityConfig
from runtime.server import RunningServer, ServerConfig, open_server
from tests.agents import scripted_agent

ENTRIES = {f"tok-{role}": TokenEntry(f"pat-{role}", (role,)) for role in ROLES}
NS = "trio-a2a/tokens."


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    security = SecurityConfig(token_entries=ENTRIES, worker_identities=True,
                              token_service=TokenServiceSettings(secret="t" * 40))
    config = ServerConfig(port=0, store="memory", agent=scripted_agent(),
                          tokens={t: e.principal for t, e in ENTRIES.items()},
                          admin=AdminSettings(token="admin-token-" + "x" * 20),
                          security=security)
    async with open_server(config) as srv:
        yield srv


async def rpc(c: httpx.AsyncClient, version: str, method: str, params: dict,
              token: str) -> tuple[int, int | None]:
    """HTTP status and JSON-RPC error code (None: a result)."""
    r = await c.post("/", json={"jsonrpc": "2.0", "id": 1, "method": method,
                                "params": params},
                     headers={"A2A-Version": version, "Authorization": f"Bearer {token}"})
    body = r.json()
    return r.status_code, body["error"]["code"] if "error" in body else None


async def test_every_role_beside_the_a2a_operations(server: RunningServer) -> None:
    table = RoleTable()
    checked = 0
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as c:
        with trio.fail_after(60):
            for role in ROLES:
                token = f"tok-{role}"
                auth = {"Authorization": f"Bearer {token}"}
                verify = table.allows([role], "token.verify")
                manage = table.allows([role], "token.manage")
                admin = table.allows([role], "admin")
                link = table.allows([role], "worker.link")
                for version in ("1.0", "0.3"):
                    # token.verify: a status for an unknown token; else -32040
                    out = await rpc(c, version, NS + "verify", {"token": "x.y.z"}, token)
                    assert out == ((200, None) if verify else (200, -32040)), (role, version)
                    # token.manage: past the permission, a static token has no session
                    # to log out (-32043); without it -32040
                    out = await rpc(c, version, NS + "logout", {}, token)
                    assert out == (200, -32043 if manage else -32040), (role, version, out)
                    # the admin methods (judged by their own gate, whatever the version)
                    status, code = await rpc(c, version, "trio-a2a/admin/listWorkers", {},
                                             token)
                    assert (status, code) == ((200, None) if admin else (403, -32041)), (
                        role, version, status, code)
                    checked += 3
                r = await c.post("/tokens:verify", json={"token": "x.y.z"}, headers=auth)
                assert r.status_code == (200 if verify else 403), (role, r.text)
                r = await c.post("/tokens:logout", json={}, headers=auth)
                assert r.status_code == (401 if manage else 403), (role, r.text)
                if not manage:
                    assert "PERMISSION_DENIED" in r.text and "token.manage" in r.text
                r = await c.get("/admin/v1/workers", headers=auth)
                assert r.status_code == (200 if admin else 403), (role, r.text)
                # the worker link (identities let in by worker.link): 401 without it
                async with c.stream("GET", "/worker/link", headers=auth) as r:
                    status = r.status_code  # an accepted link stays open: no body read
                assert status == (200 if link else 401), (role, status)
                checked += 4
    assert checked == len(ROLES) * 10
