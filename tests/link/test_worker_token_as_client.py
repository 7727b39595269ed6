"""A worker token never acts as a client, whether client auth is on or off.

With client auth off (no client tokens) the A2A endpoints are open: no token, or
any token that is not a worker's, is served. A worker token is refused there with
the same 401 a bad client token gets under client auth; it still opens the
worker link. Real servers on loopback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import trio

from runtime.http.auth import TokenAuth
from runtime.server import RunningServer, ServerConfig, open_server
from runtime.worker import open_worker
from tests.conftest import user_message

WORKER_TOKENS = {"wtok-1": "worker-a", "wtok-2": "worker-b"}
CLIENT_TOKENS = {"ctok": "alice"}
V10 = {"A2A-Version": "1.0"}
UNAUTHENTICATED = {"error": {
    "code": 401, "status": "UNAUTHENTICATED",
    "message": "a valid bearer token is required (Authorization: Bearer <token>)"}}


@asynccontextmanager
async def serving(**kw: Any) -> AsyncIterator[tuple[RunningServer, httpx.AsyncClient]]:
    config = ServerConfig(port=0, store="memory", worker_tokens=WORKER_TOKENS, **kw)
    async with open_server(config) as srv, \
            httpx.AsyncClient(base_url=srv.url, timeout=10) as client:
        yield srv, client


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def rpc_body(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}


async def jsonrpc(client: httpx.AsyncClient, token: str | None, method: str = "ListTasks",
                  params: dict[str, Any] | None = None, **headers: str) -> httpx.Response:
    return await client.post("/", json=rpc_body(method, params or {}),
                             headers={**V10, **bearer(token), **headers})


async def rest_requests(client: httpx.AsyncClient, token: str | None
                        ) -> dict[str, httpx.Response]:
    """One request per kind of HTTP+JSON route, 1.0 and the 0.3 paths under /v1."""
    h = bearer(token)
    send = {"message": user_message("hello")}
    return {
        "GET /tasks": await client.get("/tasks", headers={**V10, **h}),
        "POST /message:send": await client.post("/message:send", json=send,
                                                headers={**V10, **h}),
        "GET /v1/tasks": await client.get("/v1/tasks", headers=h),
    }


def assert_unauthorized(r: httpx.Response, what: str) -> None:
    assert r.status_code == 401, (what, r.status_code, r.text)
    assert r.headers["www-authenticate"] == 'Bearer realm="a2a"', what
    assert r.json() == UNAUTHENTICATED, what


def test_client_principal_refuses_worker_tokens_only() -> None:
    workers = TokenAuth(WORKER_TOKENS)
    off, on = TokenAuth({}), TokenAuth(CLIENT_TOKENS)
    # client auth off: open, except for a worker token (any spelling `principal` accepts)
    assert off.client_principal(None, workers) == ""
    assert off.client_principal("Bearer someone-else", workers) == ""
    assert off.client_principal("Basic wtok-1", workers) == ""  # not a bearer token
    for header in ("Bearer wtok-1", "bearer  wtok-2 ", "BEARER wtok-1"):
        assert off.client_principal(header, workers) is None, header
    assert off.client_principal("Bearer wtok-1", None) == ""  # no worker tokens known
    assert off.client_principal("Bearer wtok-1", TokenAuth({})) == ""
    # client auth on: exactly `principal`
    for header in (None, "Bearer ctok", "Bearer wtok-1", "Bearer nope"):
        assert on.client_principal(header, workers) == on.principal(header), header
    assert on.client_principal("Bearer ctok", workers) == "alice"


async def test_worker_token_is_refused_on_jsonrpc_with_client_auth_off() -> None:
    with trio.fail_after(15):
        async with serving() as (_, client):
            for token in WORKER_TOKENS:
                assert_unauthorized(await jsonrpc(client, token), f"ListTasks {token}")
            r = await jsonrpc(client, "wtok-1", "SendMessage",
                              {"message": user_message("hello")})
            assert_unauthorized(r, "SendMessage")
            r = await client.post("/", json=rpc_body("SendStreamingMessage",
                                                     {"message": user_message("hi")}),
                                  headers={**V10, **bearer("wtok-2")})
            assert_unauthorized(r, "SendStreamingMessage")
            r = await jsonrpc(client, "wtok-1", "GetExtendedAgentCard")
            assert_unauthorized(r, "GetExtendedAgentCard")
            r = await client.post("/", json=rpc_body("tasks/get", {"id": "x"}),
                                  headers=bearer("wtok-1"))  # 0.3: no A2A-Version
            assert_unauthorized(r, "0.3 tasks/get")
            # nothing was created on the worker token's behalf
            listed = await jsonrpc(client, None)
            assert listed.status_code == 200 and listed.json()["result"]["tasks"] == []


async def test_no_token_or_another_token_is_served_with_client_auth_off() -> None:
    with trio.fail_after(15):
        async with serving() as (_, client):
            for token in (None, "not-a-worker-token"):
                r = await jsonrpc(client, token, "SendMessage",
                                  {"message": user_message("echo hi")})
                assert r.status_code == 200, r.text
                assert r.json()["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
                r = await jsonrpc(client, token)
                assert r.status_code == 200 and "result" in r.json(), r.text


async def test_worker_token_is_refused_on_http_json_with_client_auth_off() -> None:
    with trio.fail_after(15):
        async with serving() as (_, client):
            for what, r in (await rest_requests(client, "wtok-1")).items():
                assert_unauthorized(r, what)
            r = await client.get("/extendedAgentCard", headers={**V10, **bearer("wtok-2")})
            assert_unauthorized(r, "GET /extendedAgentCard")
            for token in (None, "not-a-worker-token"):
                for what, r in (await rest_requests(client, token)).items():
                    assert r.status_code == 200, (what, token, r.text)
            # the public agent card is public to everyone
            card = await client.get("/.well-known/agent-card.json", headers=bearer("wtok-1"))
            assert card.status_code == 200


async def test_worker_token_still_opens_the_worker_link_with_client_auth_off() -> None:
    with trio.fail_after(15):
        async with serving(local_workers=0) as (srv, client), \
                open_worker(srv.url, token="wtok-1", name="remote") as worker:
            await worker.wait_registered()
            assert srv.dispatcher.statistics().workers == 1
            assert_unauthorized(await jsonrpc(client, "wtok-1"), "ListTasks")
            r = await jsonrpc(client, None, "SendMessage", {"message": user_message("hi")})
            assert r.json()["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"


async def test_with_client_auth_on_behaviour_is_unchanged() -> None:
    with trio.fail_after(15):
        async with serving(tokens=CLIENT_TOKENS) as (_, client):
            for token in (*WORKER_TOKENS, None, "not-a-token"):
                assert_unauthorized(await jsonrpc(client, token), f"JSON-RPC {token}")
                for what, r in (await rest_requests(client, token)).items():
                    assert_unauthorized(r, f"{what} {token}")
            r = await jsonrpc(client, "ctok", "SendMessage",
                              {"message": user_message("echo hi")})
            assert r.status_code == 200, r.text
            assert r.json()["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
            for what, r in (await rest_requests(client, "ctok")).items():
                assert r.status_code == 200, (what, r.text)
