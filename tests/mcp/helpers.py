"""The official `mcp` client, opened on a test server's /mcp."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


@contextlib.asynccontextmanager
async def open_mcp(url: str, *, token: str | None = None, mode: str = "auto"
                   ) -> AsyncIterator[Client]:
    """A connected client (`mode`: "auto" negotiates 2026-07-28, "legacy" the
    2025 initialize handshake), sending `token` as a bearer token."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=10) as http:
        async with Client(streamable_http_client(f"{url}/mcp", http_client=http),
                          mode=mode) as client:
            yield client


def text_of(result: types.CallToolResult) -> str:
    [content] = result.content
    assert isinstance(content, types.TextContent)
    return content.text
