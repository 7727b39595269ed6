"""/mcp at the HTTP level: what is not an MCP request is refused before the SDK sees
it (or by the SDK, precisely), and a refused body is not read."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from runtime.server import RunningServer, ServerConfig, open_server
from tests.agents import scripted_agent

HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
LIMIT = 1000


@pytest.fixture
async def small() -> AsyncIterator[RunningServer]:
    config = ServerConfig(port=0, store="memory", agent=scripted_agent(), max_body=LIMIT)
    async with open_server(config) as srv:
        yield srv


@pytest.mark.parametrize("method", ["GET", "DELETE", "PUT"])
async def test_only_post_is_served(small: RunningServer, method: str) -> None:
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=small.url) as c:
            r = await c.request(method, "/mcp", headers=HEADERS)
    # stateless: a GET stream would never carry anything, and there is no session to DELETE
    assert r.status_code == 405
    assert r.headers["allow"] == "POST"
    assert r.json()["error"]["message"] == (
        f"{method} is not served at /mcp: MCP requests are POSTed (stateless Streamable HTTP)")


async def test_a_body_over_max_body_is_refused(small: RunningServer) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b" " * 400

    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=small.url) as c:
            declared = await c.post("/mcp", content=b" " * (LIMIT + 1), headers=HEADERS)
            chunked = await c.post("/mcp", content=chunks(), headers=HEADERS)
    assert declared.status_code == 413
    assert declared.headers["connection"] == "close"  # refused unread
    assert declared.json()["error"]["message"] == (
        f"request body exceeds the limit of {LIMIT} bytes")
    assert chunked.status_code == 413  # the SDK's count, past the limit


async def test_a_body_that_is_not_json_gets_a_parse_error(small: RunningServer) -> None:
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=small.url) as c:
            r = await c.post("/mcp", content=b"{not json", headers=HEADERS)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == -32700
