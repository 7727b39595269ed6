"""/mcp under the server's auth: bearer tokens, principals kept apart, refusals.

The MCP client reports a refused connection only as a failed handshake, so the
HTTP answers themselves (status, `WWW-Authenticate`) are checked with httpx.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import trio
from mcp.shared.exceptions import MCPError

from runtime.http.identity import Authenticator
from runtime.mcp import McpEndpoint, McpTools
from runtime.server import RunningServer, ServerConfig, open_server
from tests.agents import scripted_agent
from tests.mcp.helpers import open_mcp, text_of

TOKENS = {"tok-alice": "alice", "tok-bob": "bob"}
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {},
    "clientInfo": {"name": "t", "version": "1"}}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


@pytest.fixture
async def secured() -> AsyncIterator[RunningServer]:
    config = ServerConfig(port=0, store="memory", tokens=TOKENS,
                          worker_tokens={"tok-worker": "w"}, agent=scripted_agent())
    async with open_server(config) as srv:
        yield srv


async def test_requests_without_a_valid_token_get_401(secured: RunningServer) -> None:
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=secured.url) as c:
            for headers in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "tok-alice"},
                            {"Authorization": "Bearer tok-worker"}]:  # a worker is no client
                r = await c.post("/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **headers})
                assert r.status_code == 401, headers
                assert r.headers["www-authenticate"] == 'Bearer realm="a2a"'
                assert r.json()["error"]["status"] == "UNAUTHENTICATED"
                assert r.headers["connection"] == "close"  # its body was never read
            ok = await c.post("/mcp", json=INITIALIZE,
                              headers={**MCP_HEADERS, "Authorization": "Bearer tok-alice"})
            assert ok.status_code == 200
        with pytest.RaisesGroup(MCPError, flatten_subgroups=True):
            async with open_mcp(secured.url, token="wrong") as mcp:
                await mcp.list_tools()


async def test_repeated_authorization_is_refused(secured: RunningServer) -> None:
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=secured.url) as c:
            r = await c.post("/mcp", json=INITIALIZE, headers=httpx.Headers([
                ("Accept", MCP_HEADERS["Accept"]), ("Authorization", "Bearer tok-alice"),
                ("Authorization", "Bearer tok-bob")]))
    assert r.status_code == 400
    assert r.json()["error"]["message"] == (
        "the request has 2 Authorization headers; send exactly one")


async def test_principals_see_only_their_own_tasks(secured: RunningServer) -> None:
    with trio.fail_after(10):
        async with open_mcp(secured.url, token="tok-alice") as alice, \
                open_mcp(secured.url, token="tok-bob") as bob:
            sent = await alice.call_tool("send_task", {"text": "echo secret"})
            task_id = sent.structured_content["taskId"]
            own = await alice.call_tool("get_task", {"task_id": task_id})
            theirs = await bob.call_tool("get_task", {"task_id": task_id})
            cancel = await bob.call_tool("cancel_task", {"task_id": task_id})
            bobs_list = await bob.call_tool("list_tasks", {})
            alices_list = await alice.call_tool("list_tasks", {})
    record = await secured.store.get_task(task_id)
    assert record is not None and record.owner == "alice"
    assert own.structured_content["state"] == "completed"
    for refused in (theirs, cancel):
        assert refused.is_error and text_of(refused) == f"task {task_id!r} not found"
    assert bobs_list.structured_content["tasks"] == []
    assert [t["taskId"] for t in alices_list.structured_content["tasks"]] == [task_id]


async def test_a_page_of_another_origin_is_refused(secured: RunningServer) -> None:
    auth = {"Authorization": "Bearer tok-alice"}
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=secured.url) as c:
            evil = await c.post("/mcp", json=INITIALIZE, headers={
                **MCP_HEADERS, **auth, "Origin": "http://evil.example"})
            same = await c.post("/mcp", json=INITIALIZE, headers={
                **MCP_HEADERS, **auth, "Origin": f"http://127.0.0.1:{secured.port}"})
    assert evil.status_code == 403
    assert evil.json()["error"]["message"] == (
        "requests from a web page of another origin are refused")
    assert same.status_code == 200


async def test_no_mcp_leaves_the_endpoint_out() -> None:
    config = ServerConfig(port=0, store="memory", agent=scripted_agent(), mcp=False)
    with trio.fail_after(10):
        async with open_server(config) as srv:
            assert [c.name for c in srv.supervisor.children if c.name == "mcp"] == []
            async with httpx.AsyncClient(base_url=srv.url) as c:
                r = await c.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS)
    assert r.status_code == 404


async def test_not_running_answers_503() -> None:
    """Between a restart of the MCP child and its start, requests are told to retry."""
    security = SimpleNamespace(authenticator=Authenticator())
    endpoint = McpEndpoint(McpTools(None, list), security)  # type: ignore[arg-type]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await trio.sleep_forever()
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/mcp", "headers": []}
    with trio.fail_after(5):
        await endpoint(scope, receive, send)
    assert sent[0]["status"] == 503
    assert b"the MCP endpoint is starting; retry" in sent[1]["body"]
