"""Shared fixtures: a real server on loopback, an HTTP client, JSON-RPC helpers."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import attrs
import httpx
import pytest
import trio
import trio.testing

from protocol.sse import SSEDecoder, SSEEvent
from runtime.server import RunningServer, ServerConfig, open_server
from tests.agents import Controls, scripted_agent
from tests.postgres import (  # noqa: F401  (fixtures)
    fresh_postgres_url,
    postgres_session_db,
    postgres_url,
)


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


@pytest.fixture
def controls() -> Controls:
    return Controls()


@pytest.fixture
def server_config(controls: Controls) -> ServerConfig:
    return ServerConfig(port=0, store="memory", agent=scripted_agent(controls),
                        allow_private_push_urls=True)


@pytest.fixture
async def server(server_config: ServerConfig) -> AsyncIterator[RunningServer]:
    async with open_server(server_config) as srv:
        yield srv


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as c:
        yield c


def user_message(text: str, **extra: Any) -> dict[str, Any]:
    return {"messageId": str(uuid.uuid4()), "role": "ROLE_USER", "parts": [{"text": text}],
            **extra}


def user_message_v03(text: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "message", "messageId": str(uuid.uuid4()), "role": "user",
            "parts": [{"kind": "text", "text": text}], **extra}


@attrs.define
class Rpc:
    """A JSON-RPC caller for one protocol generation."""

    client: httpx.AsyncClient
    version: str | None  # None: no A2A-Version header (0.3)
    headers: dict[str, str] = attrs.field(factory=dict)
    next_id: int = 1

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        h = {"Content-Type": "application/json", **self.headers, **(extra or {})}
        if self.version is not None:
            h["A2A-Version"] = self.version
        return h

    async def raw(self, method: str, params: Any = None) -> dict[str, Any]:
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        self.next_id += 1
        if params is not None:
            body["params"] = params
        r = await self.client.post("/", content=json.dumps(body), headers=self._headers())
        assert r.status_code == 200, r.text
        return r.json()

    async def call(self, method: str, params: Any = None) -> Any:
        out = await self.raw(method, params)
        assert "error" not in out, out
        return out["result"]

    async def error(self, method: str, params: Any = None) -> dict[str, Any]:
        out = await self.raw(method, params)
        assert "error" in out, out
        return out["error"]

    async def stream(self, method: str, params: Any, *, headers: dict[str, str] | None = None,
                     limit: int | None = None) -> list[SSEEvent]:
        """Read an SSE response to its end (or `limit` data events)."""
        body = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}
        self.next_id += 1
        events: list[SSEEvent] = []
        async with self.client.stream("POST", "/", content=json.dumps(body),
                                      headers=self._headers(headers)) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            dec = SSEDecoder()
            async for chunk in r.aiter_bytes():
                events.extend(dec.feed(chunk))
                if limit is not None and len(events) >= limit:
                    break
        return events

    async def stream_error(self, method: str, params: Any,
                           headers: dict[str, str] | None = None) -> dict[str, Any]:
        """A streaming method refused before its stream starts: a plain JSON-RPC error."""
        body = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}
        self.next_id += 1
        r = await self.client.post("/", content=json.dumps(body), headers=self._headers(headers))
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/json"), r.headers
        out = r.json()
        assert "error" in out, out
        return out["error"]


def results(events: list[SSEEvent]) -> list[dict[str, Any]]:
    out = []
    for ev in events:
        payload = json.loads(ev.data)
        assert "result" in payload, payload
        out.append(payload["result"])
    return out


async def wait_state(server: RunningServer, task_id: str, state: str) -> None:
    """Until the task's committed state is `state` (a TASK_STATE_* name); woken by the store."""
    await server.store.wait_record(task_id, lambda r: r.state.value == state)


@pytest.fixture
def rpc(client: httpx.AsyncClient) -> Rpc:
    return Rpc(client, "1.0")


@pytest.fixture
def rpc03(client: httpx.AsyncClient) -> Rpc:
    return Rpc(client, None)
