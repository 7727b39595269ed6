"""The worker link takes identities whose roles grant `worker.link` when configured to
(`SecurityConfig.worker_identities`, `--worker-identities`): a JWT or a static token of
role agent or admin connects a real worker over both bindings and runs a task; roles
without it, an identity of one tenant, and any identity while the setting is off are
refused with 401; worker tokens keep working beside them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio

from protocol import worker_link as wl
from protocol.identity import ClaimNames
from runtime.cli import server_config
from runtime.flags import build_parser
from runtime.http.auth import TokenEntry
from runtime.http.jwt_auth import JwtSettings
from runtime.security import SecurityConfig
from runtime.server import RunningServer, ServerConfig, open_server
from runtime.worker import WorkerRejected, open_worker
from tests.conftest import user_message
from tests.security.keys import AUDIENCE, ISSUER, SECRET, claims, hs_token

JWT = JwtSettings(issuer=ISSUER, audience=AUDIENCE, secret=SECRET, claims=ClaimNames())
ENTRIES = {"tok-agent": TokenEntry("ci", ("agent",)),
           "tok-operator": TokenEntry("ops", ("operator",)),
           "tok-client": TokenEntry("alice", ("admin",))}
AGENT_JWT = hs_token(claims("runner", roles=["agent"]))
ADMIN_JWT = hs_token(claims("root", roles=["admin"]))
OBSERVER_JWT = hs_token(claims("eve", roles=["observer"]))
TENANT_AGENT_JWT = hs_token(claims("runner", roles=["agent"], tenant="acme"))


def config(identities: bool, **kw: Any) -> ServerConfig:
    return ServerConfig(port=0, store="memory", local_workers=0,
                        tokens={t: e.principal for t, e in ENTRIES.items()},
                        security=SecurityConfig(jwt=JWT, token_entries=ENTRIES,
                                                worker_identities=identities), **kw)


async def run_task(server: RunningServer) -> str:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        r = await client.post("/", json={
            "jsonrpc": "2.0", "id": 1, "method": "SendMessage",
            "params": {"message": user_message("echo over the link")}},
            headers={"A2A-Version": "1.0", "Authorization": "Bearer tok-client"})
        return r.json()["result"]["task"]["status"]["state"]


async def refused(server: RunningServer, token: str | None) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        r = await client.get("/worker/link", headers=headers)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == wl.UNAUTHORIZED
    assert token is None or token not in r.text
    with pytest.raises(WorkerRejected, match="HTTP 401"):
        async with open_worker(server.url, token=token, name="intruder") as worker:
            await worker.wait_registered()


@pytest.mark.parametrize("transport", ["websocket", "http"])
async def test_identities_with_worker_link_connect_workers(transport: str) -> None:
    with trio.fail_after(30):
        async with open_server(config(True)) as server:
            for token in (AGENT_JWT, ADMIN_JWT, "tok-agent"):
                async with open_worker(server.url, token=token, transport=transport,
                                       name="w") as worker:
                    await worker.wait_registered()
                    assert await run_task(server) == "TASK_STATE_COMPLETED"
            for token in (OBSERVER_JWT, "tok-operator", TENANT_AGENT_JWT, None, "nope"):
                await refused(server, token)


async def test_off_by_default_and_worker_tokens_beside_identities() -> None:
    with trio.fail_after(30):
        async with open_server(config(False, worker_tokens={"w-tok": "fleet"})) as server:
            for token in (AGENT_JWT, "tok-agent"):
                await refused(server, token)
            async with open_worker(server.url, token="w-tok", name="w") as worker:
                await worker.wait_registered()
                assert await run_task(server) == "TASK_STATE_COMPLETED"
        async with open_server(config(True, worker_tokens={"w-tok": "fleet"})) as server:
            for token in ("w-tok", AGENT_JWT):
                async with open_worker(server.url, token=token, name="w") as worker:
                    await worker.wait_registered()


async def test_the_flag_lets_a_remote_only_server_start() -> None:
    with trio.fail_after(10), pytest.raises(ValueError, match="--worker-identities"):
        async with open_server(config(False)):
            pass
    args = build_parser().parse_args(["server", "--worker-identities", "--store", "memory"])
    assert server_config(args).security.worker_identities
    async with open_server(config(True)) as server:
        assert server.dispatcher.statistics().workers == 0
