"""More than one Authorization header is refused on every surface that reads it.

The JSON-RPC endpoint used to read the last one and the HTTP+JSON binding the
first, so a pair of tokens could authenticate as one principal on one binding and
another (or not at all) on the other. The worker link's WebSocket and HTTP
endpoints read the header too. Real server on loopback.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import trio
import trio_websocket

from protocol import worker_link as wl
from runtime.server import RunningServer, ServerConfig, open_server
from tests.agents import scripted_agent

TIMEOUT = 10
CLIENT = "Bearer ctok"
WORKER = "Bearer wtok"
LIST_TASKS = {"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": {}}
V10 = ("A2A-Version", "1.0")

PAIRS = [
    pytest.param((CLIENT, CLIENT), id="same-twice"),
    pytest.param((CLIENT, "Bearer wrong"), id="valid-first"),
    pytest.param(("Bearer wrong", CLIENT), id="valid-last"),
]


@pytest.fixture
async def secured() -> AsyncIterator[RunningServer]:
    config = ServerConfig(port=0, store="memory", agent=scripted_agent(),
                          tokens={"ctok": "alice"}, worker_tokens={"wtok": "worker"},
                          local_workers=0)
    async with open_server(config) as srv:
        yield srv


def two(pair: tuple[str, str], *extra: tuple[str, str]) -> list[tuple[str, str]]:
    return [("Authorization", pair[0]), ("Authorization", pair[1]), *extra]


def refused(r: httpx.Response) -> None:
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert (err["code"], err["status"]) == (400, "INVALID_ARGUMENT"), err
    assert err["message"] == "the request has 2 Authorization headers; send exactly one"


@pytest.mark.parametrize("pair", PAIRS)
async def test_json_rpc_refuses_two_authorization_headers(
    secured: RunningServer, pair: tuple[str, str],
) -> None:
    async with httpx.AsyncClient(base_url=secured.url) as c:
        with trio.fail_after(TIMEOUT):
            for version in ([V10], []):  # 1.0 and 0.3
                r = await c.post("/", content=json.dumps(LIST_TASKS),
                                 headers=two(pair, *version))
                refused(r)
            one = await c.post("/", json=LIST_TASKS, headers=[V10, ("Authorization", CLIENT)])
            assert one.status_code == 200 and "result" in one.json()


@pytest.mark.parametrize("pair", PAIRS)
async def test_http_json_refuses_two_authorization_headers(
    secured: RunningServer, pair: tuple[str, str],
) -> None:
    async with httpx.AsyncClient(base_url=secured.url) as c:
        with trio.fail_after(TIMEOUT):
            refused(await c.get("/tasks", headers=two(pair, V10)))
            refused(await c.get("/v1/tasks", headers=two(pair)))
            r = await c.post("/message:send", headers=two(pair, V10), json={"message": {
                "messageId": "m", "role": "ROLE_USER", "parts": [{"text": "hi"}]}})
            refused(r)
            one = await c.get("/tasks", headers=[V10, ("Authorization", CLIENT)])
            assert one.status_code == 200


async def test_refused_with_auth_off_too(client: httpx.AsyncClient) -> None:
    """Without auth the header decides nothing but whether a worker token is presented
    as a client's: two of them are still ambiguous, and still refused."""
    with trio.fail_after(TIMEOUT):
        pair = ("Bearer a", "Bearer b")
        refused(await client.post("/", content=json.dumps(LIST_TASKS), headers=two(pair, V10)))
        refused(await client.get("/tasks", headers=two(pair, V10)))


@pytest.mark.parametrize("pair", [(WORKER, WORKER), (WORKER, "Bearer wrong"),
                                  ("Bearer wrong", WORKER)])
async def test_worker_websocket_refuses_two_authorization_headers(
    secured: RunningServer, pair: tuple[str, str],
) -> None:
    url = secured.url.replace("http", "ws", 1) + "/worker/ws"
    with trio.fail_after(TIMEOUT), pytest.raises(trio_websocket.ConnectionRejected) as info:
        async with trio_websocket.open_websocket_url(url, extra_headers=two(pair)):
            pass
    assert info.value.status_code == 401
    assert info.value.body is not None
    error = json.loads(info.value.body)["error"]
    assert error["code"] == wl.UNAUTHORIZED
    assert error["message"] == "the request has 2 Authorization headers; send exactly one"


@pytest.mark.parametrize("pair", [(WORKER, WORKER), ("Bearer wrong", WORKER)])
async def test_worker_http_link_refuses_two_authorization_headers(
    secured: RunningServer, pair: tuple[str, str],
) -> None:
    async with httpx.AsyncClient(base_url=secured.url) as c:
        with trio.fail_after(TIMEOUT):
            async with c.stream("GET", "/worker/link", headers=two(pair)) as r:
                assert r.status_code == 401
                body = json.loads(await r.aread())
            assert body["error"]["code"] == wl.UNAUTHORIZED
            assert "2 Authorization headers" in body["error"]["message"]
            r = await c.post("/worker/link/heartbeat", content=b"{}",
                             headers=two(pair, ("Content-Type", "application/json")))
            assert r.status_code == 401
            assert "2 Authorization headers" in r.json()["error"]["message"]
