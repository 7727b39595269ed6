"""The admin API under the server's rate limits, on virtual time: the same buckets and
settings as the A2A calls; over the limit HTTP 429 with Retry-After on /admin/v1 and
JSON-RPC -32042; the bucket refills and calls pass again. Refused calls (no or a wrong
credential) spend nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import trio
import trio.testing

from runtime.admin import AdminSettings
from runtime.http.auth import TokenEntry
from runtime.http.rate_limit import RateLimit
from runtime.security import SecurityConfig
from runtime.server import RunningServer, ServerConfig, open_server
from tests.admin.helpers import TOKEN, Admin, AdminError
from tests.agents import scripted_agent
from tests.security.matrix import Call, perform

ENTRIES = {"tok-op": TokenEntry("op", ("operator",)),
           "tok-client": TokenEntry("client", ("client",))}
LIST = Call("POST", "/", {"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": {}},
            "1.0", rpc=True)


@pytest.fixture
async def server(mock_clock: trio.testing.MockClock) -> AsyncIterator[RunningServer]:
    # the clock stands still unless the test moves it: the buckets refill only then
    config = ServerConfig(port=0, store="memory", agent=scripted_agent(),
                          tokens={t: e.principal for t, e in ENTRIES.items()},
                          worker_tokens={"w": "worker"}, admin=AdminSettings(token=TOKEN),
                          security=SecurityConfig(token_entries=ENTRIES,
                                                  rate_limit=RateLimit(1.0, 2)))
    async with open_server(config) as srv:
        yield srv


async def limited(admin: Admin) -> AdminError:
    with pytest.raises(AdminError) as info:
        await admin("listWorkers")
    return info.value


@pytest.mark.parametrize("binding", ["rest", "rpc"])
async def test_the_admin_token_is_limited_then_recovers(
        server: RunningServer, mock_clock: trio.testing.MockClock, binding: str) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as c:
        admin = Admin(c, binding)
        await admin("listWorkers")
        await admin("listQueue")  # the burst of 2 is spent
        err = await limited(admin)
        if binding == "rest":
            assert (err.status, err.code) == (429, "RATE_LIMITED")
        else:
            assert (err.status, err.code) == (200, -32042)
        assert "too many requests for this caller; retry in 1 s" in err.message
        assert TOKEN not in err.message
        mock_clock.jump(0.5)
        await limited(admin)  # half a token: not yet
        mock_clock.jump(0.5)
        assert isinstance(await admin("listWorkers"), dict)  # recovered
        await limited(admin)


async def test_retry_after_and_the_rpc_error_info(server: RunningServer) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=server.url, timeout=10, headers=headers) as c:
        for _ in range(2):
            assert (await c.get("/admin/v1/workers")).status_code == 200
        r = await c.get("/admin/v1/tasks")
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert r.json()["error"]["status"] == "RATE_LIMITED"
        # the dashboard's stream is an admin path too
        assert (await c.get("/admin/v1/stream")).status_code == 429
        body = {"jsonrpc": "2.0", "id": 7, "method": "trio-a2a/admin/listWorkers"}
        out = (await c.post("/", content=json.dumps(body),
                            headers={"Content-Type": "application/json"})).json()
        assert out["id"] == 7 and out["error"]["code"] == -32042
        (info,) = out["error"]["data"]
        assert info["reason"] == "RATE_LIMITED"
        assert info["metadata"] == {"retryAfterSeconds": "1"}


async def test_an_identity_has_its_own_bucket_shared_with_its_a2a_calls(
        server: RunningServer, mock_clock: trio.testing.MockClock) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as c:
        op = Admin(c, "rest", token="tok-op")
        await op("listWorkers")
        assert (await perform(c, LIST, "tok-op")).code is None  # the same bucket
        assert (await limited(op)).status == 429
        assert (await perform(c, LIST, "tok-op")).code == -32042
        # the admin token's bucket is another; refused callers spend nothing
        for _ in range(3):
            with pytest.raises(AdminError) as info:
                await Admin(c, "rest", token="tok-client")("listWorkers")
            assert info.value.status == 403
            with pytest.raises(AdminError) as info:
                await Admin(c, "rpc", token=None)("listWorkers")
            assert info.value.status == 401
        assert (await perform(c, LIST, "tok-client")).code is None
        await Admin(c, "rpc")("listWorkers")
        mock_clock.jump(1.0)
        await op("listWorkers")
