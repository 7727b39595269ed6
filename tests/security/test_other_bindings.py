"""gRPC and /mcp resolve the same identities as JSON-RPC and HTTP+JSON: static tokens
with roles and tenant, JWTs (a shared secret and a JWKS), the token service's access
tokens (a revoked one refused at once), with tenants kept apart and refusals that
say nothing of what was sent."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import trio
from a2a.types import a2a_pb2

from protocol.identity import ClaimNames
from runtime.http.auth import TokenEntry
from runtime.http.jwt_auth import JwtSettings
from runtime.http.token_service import TokenServiceSettings
from runtime.security import SecurityConfig
from runtime.server import RunningServer, ServerConfig, open_server
from tests.agents import scripted_agent
from tests.grpc.test_grpc_server import error_info
from tests.mcp.helpers import open_mcp
from tests.security.keys import (
    AUDIENCE,
    ISSUER,
    SECRET,
    claims,
    hs_token,
    key_token,
    new_key,
    serve_jwks,
)
from tests.security.test_permission_matrix_grpc_mcp import GRPC_REQUESTS, grpc_call

INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {},
    "clientInfo": {"name": "t", "version": "1"}}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}
ENTRIES = {"key-acme": TokenEntry("alice", ("operator",), "acme"),
           "key-globex": TokenEntry("alice", ("operator",), "globex")}
RSA = new_key("rsa-1", "RS256")


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with serve_jwks([RSA]) as jwks:
        jwt = JwtSettings(issuer=ISSUER, audience=AUDIENCE, secret=SECRET,
                          jwks_url=jwks.url, claims=ClaimNames())
        config = ServerConfig(
            port=0, store="sqlite", data_dir=tmp_path, agent=scripted_agent(), grpc_port=0,
            worker_tokens={"w-tok": "worker"},
            tokens={t: e.principal for t, e in ENTRIES.items()},
            security=SecurityConfig(token_entries=ENTRIES, jwt=jwt,
                                    token_service=TokenServiceSettings(secret="t" * 40)))
        async with open_server(config) as srv:
            yield srv


async def grpc_(server: RunningServer, rpc: str, token: str, task: str = "",
                **fields: Any) -> Any:
    request = GRPC_REQUESTS[rpc](task, "")
    for name, value in fields.items():
        setattr(request, name, value)
    return await trio.to_thread.run_sync(functools.partial(
        grpc_call, f"127.0.0.1:{server.grpc.port}", rpc, request, token))


async def mcp_(server: RunningServer, token: str | None, tool: str, **arguments: Any) -> Any:
    async with open_mcp(server.url, token=token) as client:
        return await client.call_tool(tool, arguments)


async def login(server: RunningServer, api_key: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url) as c:
        r = await c.post("/tokens:login", json={"apiKey": api_key})
        return r.json()


async def test_jwts_and_static_tokens_on_grpc_and_mcp(server: RunningServer) -> None:
    hs = hs_token(claims("alice", tenant="acme", roles=["operator"]))
    rs = key_token(RSA, claims("alice", tenant="acme", roles="operator"))
    observer = hs_token(claims("alice", tenant="acme", roles=["observer"]))
    with trio.fail_after(30):
        sent = await grpc_(server, "SendMessage", "key-acme")
        task = sent.task.id
        # the same owner (alice in acme) through every credential, on both bindings
        for token in ("key-acme", hs, rs, observer):
            got = await grpc_(server, "GetTask", token, task)
            assert got.id == task, got
            found = await mcp_(server, token, "get_task", task_id=task)
            assert not found.is_error and found.structured_content["taskId"] == task
        # an observer JWT reads but may not send
        refused = await grpc_(server, "SendMessage", observer)
        assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_info(refused).metadata["permission"] == "message.send"
        tool = await mcp_(server, observer, "send_task", text="x")
        assert tool.is_error and tool.structured_content["error"]["code"] == "PermissionDenied"
        # the same principal in another tenant sees none of it, on both bindings
        for token in ("key-globex", hs_token(claims("alice", tenant="globex"))):
            other = await grpc_(server, "GetTask", token, task)
            assert other.code() == grpc.StatusCode.NOT_FOUND
            assert (await grpc_(server, "ListTasks", token)).tasks == []
            tool = await mcp_(server, token, "get_task", task_id=task)
            assert tool.structured_content["error"]["code"] == "TaskNotFound"
            listed = await mcp_(server, token, "list_tasks")
            assert listed.structured_content["tasks"] == []


async def test_a_request_naming_another_tenant_is_refused_on_grpc(
        server: RunningServer) -> None:
    with trio.fail_after(20):
        own = await grpc_(server, "ListTasks", "key-acme", tenant="acme")
        assert not isinstance(own, grpc.RpcError)
        out = await grpc_(server, "ListTasks", "key-acme", tenant="globex")
        assert out.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_info(out).reason == "TENANT_MISMATCH"
        assert "globex" not in out.details() and "acme" not in out.details()


@pytest.mark.parametrize("token", [None, "not-a-token", "w-tok", "a.b.c",
                                   hs_token(claims(), secret="x" * 40)])
async def test_no_valid_credential_is_unauthenticated(server: RunningServer,
                                                      token: str | None) -> None:
    with trio.fail_after(20):
        metadata = () if token is None else (("authorization", f"Bearer {token}"),)
        out = await trio.to_thread.run_sync(functools.partial(
            _raw_grpc, f"127.0.0.1:{server.grpc.port}", metadata))
        assert out.code() == grpc.StatusCode.UNAUTHENTICATED
        info = error_info(out)
        assert info.reason == "UNAUTHENTICATED" and info.domain == "a2a-protocol.org"
        assert token is None or token not in out.details()
        async with httpx.AsyncClient(base_url=server.url) as c:
            headers = {**MCP_HEADERS, **({"Authorization": f"Bearer {token}"} if token else {})}
            r = await c.post("/mcp", json=INITIALIZE, headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == 'Bearer realm="a2a"'
        assert token is None or token not in r.text


def _raw_grpc(target: str, metadata: Any) -> grpc.RpcError:
    from a2a.types import a2a_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        try:
            a2a_pb2_grpc.A2AServiceStub(channel).ListTasks(
                a2a_pb2.ListTasksRequest(), metadata=metadata, timeout=10)
        except grpc.RpcError as exc:
            return exc
    raise AssertionError("the call was not refused")


async def test_token_service_tokens_and_their_revocation(server: RunningServer) -> None:
    with trio.fail_after(30):
        pair = await login(server, "key-acme")
        access = pair["accessToken"]
        task = (await grpc_(server, "SendMessage", access)).task.id
        assert (await grpc_(server, "GetTask", "key-acme", task)).id == task
        tool = await mcp_(server, access, "get_task", task_id=task)
        assert tool.structured_content["taskId"] == task
        async with httpx.AsyncClient(base_url=server.url) as c:
            r = await c.post("/tokens:logout", json={"refreshToken": pair["refreshToken"]},
                             headers={"Authorization": f"Bearer {access}"})
            assert r.json() == {"revoked": True}
        out = await grpc_(server, "GetTask", access, task)
        assert out.code() == grpc.StatusCode.UNAUTHENTICATED
        async with httpx.AsyncClient(base_url=server.url) as c:
            r = await c.post("/mcp", json=INITIALIZE,
                             headers={**MCP_HEADERS, "Authorization": f"Bearer {access}"})
        assert r.status_code == 401


async def test_auth_off_serves_anonymous_callers_but_not_workers() -> None:
    config = ServerConfig(port=0, store="memory", agent=scripted_agent(), grpc_port=0,
                          worker_tokens={"w-tok": "worker"})
    async with open_server(config) as srv:
        with trio.fail_after(20):
            listed = await grpc_(srv, "ListTasks", "anything")
            assert not isinstance(listed, grpc.RpcError)
            worker = await grpc_(srv, "ListTasks", "w-tok")
            assert worker.code() == grpc.StatusCode.UNAUTHENTICATED
            async with httpx.AsyncClient(base_url=srv.url) as c:
                r = await c.post("/mcp", json=INITIALIZE,
                                 headers={**MCP_HEADERS, "Authorization": "Bearer w-tok"})
                assert r.status_code == 401
                r = await c.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS)
                assert r.status_code == 200
