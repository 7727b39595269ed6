"""The admin API for identities whose roles grant `admin` (operator, admin), beside the
admin token, over both bindings: a JWT of role operator may, an observer's is refused
(403), and so is a token or JWT that names no roles (the default role, client, holds no
`admin`: a deployment's existing tokens do not gain the admin API); one of a tenant is
refused (the API spans tenants), the admin token still works, and a server with client
auth but no admin token serves it to them alone."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from protocol.identity import ClaimNames
from runtime.admin import AdminSettings
from runtime.http.auth import TokenEntry
from runtime.http.jwt_auth import JwtSettings
from runtime.security import SecurityConfig
from runtime.server import RunningServer, ServerConfig, open_server
from tests.admin.helpers import TOKEN, Admin, AdminError
from tests.agents import Controls, scripted_agent
from tests.security.keys import AUDIENCE, ISSUER, SECRET, claims, hs_token

JWT = JwtSettings(issuer=ISSUER, audience=AUDIENCE, secret=SECRET, claims=ClaimNames())
OPERATOR = hs_token(claims("ops", roles=["operator"]))
OBSERVER = hs_token(claims("eve", roles=["observer"]))
TENANT_OPERATOR = hs_token(claims("ops", roles=["operator"], tenant="acme"))
ENTRIES = {"tok-admin": TokenEntry("root", ("admin",)), "tok-agent": TokenEntry("ci", ("agent",)),
           "tok-plain": TokenEntry("bob", None)}
"""tok-plain names no roles: it has the default (client), which may not administer."""
NO_ROLES = hs_token(claims("carol"))


def config(controls: Controls, admin_token: str | None) -> ServerConfig:
    return ServerConfig(port=0, store="memory", agent=scripted_agent(controls),
                        tokens={t: e.principal for t, e in ENTRIES.items()},
                        admin=AdminSettings(token=admin_token),
                        security=SecurityConfig(jwt=JWT, token_entries=ENTRIES))


@pytest.fixture(params=[TOKEN, None], ids=["with-admin-token", "identities-only"])
def admin_token(request: pytest.FixtureRequest) -> str | None:
    return request.param


@pytest.fixture
async def server(admin_token: str | None, controls: Controls) -> AsyncIterator[RunningServer]:
    async with open_server(config(controls, admin_token)) as srv:
        yield srv


@pytest.mark.parametrize("binding", ["rest", "rpc"])
async def test_operator_allowed_observer_and_tenant_refused(
        server: RunningServer, admin_token: str | None, binding: str) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        with trio.fail_after(20):
            for token in (OPERATOR, "tok-admin"):
                out = await Admin(http, binding, token=token)("listWorkers")
                assert len(out["workers"]) == 1
            for token, message in ((OBSERVER, "neither the admin token"),
                                   ("tok-agent", "neither the admin token"),
                                   ("tok-plain", "neither the admin token"),
                                   (NO_ROLES, "neither the admin token"),
                                   (TENANT_OPERATOR, "not for an identity of one tenant")):
                with pytest.raises(AdminError) as err:
                    await Admin(http, binding, token=token)("listWorkers")
                assert err.value.status == 403, err.value
                assert err.value.code == (-32041 if binding == "rpc" else "PERMISSION_DENIED")
                assert message in err.value.message and token not in err.value.message
            if admin_token is None:  # without one, it is just another wrong credential
                with pytest.raises(AdminError) as err:
                    await Admin(http, binding, token=TOKEN)("listWorkers")
                assert err.value.status == 403
            else:
                out = await Admin(http, binding, token=admin_token)("listQueue")
                assert out["routes"] == []
            with pytest.raises(AdminError) as err:
                await Admin(http, binding, token=None)("listWorkers")
            assert err.value.status == 401


async def test_an_operator_changes_a_task_and_follows_the_stream(
        server: RunningServer, controls: Controls) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        with trio.fail_after(20):
            r = await http.post("/", json={"jsonrpc": "2.0", "id": 1, "method": "SendMessage",
                                           "params": {"message": {
                                               "messageId": "m-1", "role": "ROLE_USER",
                                               "parts": [{"text": "ask"}]},
                                               "configuration": {"returnImmediately": True}}},
                                headers={"A2A-Version": "1.0",
                                         "Authorization": "Bearer tok-agent"})
            task_id = r.json()["result"]["task"]["id"]
            admin = Admin(http, "rest", token=OPERATOR)
            failed = await admin("failTask", id=task_id, reason="by a JWT operator")
            assert failed["id"] == task_id and failed["state"] == "TASK_STATE_FAILED", failed
            async with http.stream("GET", "/admin/v1/stream",
                                   headers={"Authorization": f"Bearer {OPERATOR}"}) as s:
                assert s.status_code == 200
            async with http.stream("GET", "/admin/v1/stream",
                                   headers={"Authorization": f"Bearer {OBSERVER}"}) as s:
                assert s.status_code == 403


async def test_auth_off_leaves_it_off_for_anonymous_operators(controls: Controls) -> None:
    """Anonymous callers hold operator (and so `admin`) while auth is off: the admin
    API must still be off without an admin token, and refuse them with one."""
    for admin_token, expected in ((None, 404), (TOKEN, 401)):
        cfg = ServerConfig(port=0, store="memory", agent=scripted_agent(controls),
                           admin=AdminSettings(token=admin_token))
        async with open_server(cfg) as srv, httpx.AsyncClient(base_url=srv.url) as http:
            with trio.fail_after(10):
                r = await http.get("/admin/v1/workers")
                assert r.status_code == expected
                r = await http.get("/admin/v1/workers",
                                   headers={"Authorization": "Bearer whatever"})
                assert r.status_code == (404 if admin_token is None else 403)
