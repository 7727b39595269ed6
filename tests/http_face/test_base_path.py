"""A2A under a base path and at the CodeTether paths, over real HTTP; the card follows."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from runtime.http.mount import PathMount, normalize_base_path
from runtime.server import RunningServer, ServerConfig, open_server
from tests.agents import scripted_agent
from tests.conftest import user_message, user_message_v03
from tests.http_face.legacy_client import LegacyClient, task_send, text

BASE = "/api/a2a/v1"
V10 = {"A2A-Version": "1.0", "Content-Type": "application/json"}


@pytest.fixture
async def mounted() -> AsyncIterator[RunningServer]:
    config = ServerConfig(port=0, store="memory", agent=scripted_agent(), base_path="api/a2a/v1/",
                          codetether_paths=True)
    async with open_server(config) as srv:
        yield srv


def rpc_body(method: str, params: dict[str, object]) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": "1", "method": method, "params": params}


async def test_card_interfaces_name_the_base_path(mounted: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=mounted.url, timeout=10) as c:
        with trio.fail_after(10):
            root = (await c.get("/.well-known/agent-card.json")).json()
            under = (await c.get(BASE + "/.well-known/agent-card.json")).json()
    assert root == under
    urls = {(i["protocolBinding"], i["protocolVersion"]): i["url"]
            for i in root["supportedInterfaces"]}
    assert urls == {("JSONRPC", "1.0"): mounted.url + BASE + "/",
                    ("HTTP+JSON", "1.0"): mounted.url + BASE,
                    ("JSONRPC", "0.3"): mounted.url + BASE + "/",
                    ("HTTP+JSON", "0.3"): mounted.url + BASE}
    assert root["url"] == mounted.url + BASE + "/"  # the 0.3 clients' field


@pytest.mark.parametrize("path", [BASE, BASE + "/", "/", "/a2a/jsonrpc", "/a2a/jsonrpc/",
                                  BASE + "/a2a/jsonrpc"])
async def test_json_rpc_everywhere_it_is_served(mounted: RunningServer, path: str) -> None:
    async with httpx.AsyncClient(base_url=mounted.url, timeout=10) as c:
        with trio.fail_after(10):
            r03 = await c.post(path, json=rpc_body(
                "message/send", {"message": user_message_v03("echo under a path")}))
            r10 = await c.post(path, headers=V10, json=rpc_body(
                "SendMessage", {"message": user_message("echo 1.0")}))
            got = await c.post(path, json=rpc_body("tasks/get", {"id": r03.json()["result"]["id"]}))
    assert r03.json()["result"]["status"]["state"] == "completed"
    assert r10.json()["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
    assert got.json()["result"]["id"] == r03.json()["result"]["id"]


@pytest.mark.parametrize("prefix", [BASE, "/a2a/rest", BASE + "/a2a/rest", ""])
async def test_http_json_everywhere_it_is_served(mounted: RunningServer, prefix: str) -> None:
    async with httpx.AsyncClient(base_url=mounted.url, timeout=10) as c:
        with trio.fail_after(10):
            sent = await c.post(prefix + "/message:send", headers=V10,
                                json={"message": user_message("echo rest")})
            task_id = sent.json()["task"]["id"]
            got10 = await c.get(f"{prefix}/tasks/{task_id}", headers=V10)
            got03 = await c.get(f"{prefix}/v1/tasks/{task_id}")
            missing = await c.get(f"{prefix}/tasks/nope", headers=V10)
    assert sent.status_code == 200, sent.text
    assert got10.json()["id"] == task_id and got03.json()["id"] == task_id
    assert missing.status_code == 404


async def test_gateway_paths_and_card_under_the_base_path(mounted: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=mounted.url, timeout=10) as c:
        old = LegacyClient(c)
        with trio.fail_after(10):
            task = await old.call("tasks/send", task_send("bp-1", text("echo gw")),
                                  path=BASE + "/tasks/send")
            got = await old.call("tasks/get", {"id": "bp-1"}, path=BASE + "/tasks/get")
            card = await c.get(BASE + "/agent/card")
    assert task["id"] == got["id"] == "bp-1"
    assert card.status_code == 200 and card.json()["name"]


@pytest.mark.parametrize("path", ["/api/a2a/v2/", "/api/a2a/v1x", "/api/a2a", "/a2a/jsonrpcx",
                                  "/a2a/restx/message:send"])
async def test_near_misses_are_not_served(mounted: RunningServer, path: str) -> None:
    async with httpx.AsyncClient(base_url=mounted.url, timeout=10) as c:
        with trio.fail_after(10):
            r = await c.post(path, json=rpc_body("message/send",
                                                 {"message": user_message_v03("echo")}))
    assert r.status_code in (404, 405), r.text


async def test_without_the_flags_only_the_root_is_served(client: httpx.AsyncClient) -> None:
    with trio.fail_after(10):
        for path in ("/a2a/jsonrpc", BASE + "/"):
            r = await client.post(path, json=rpc_body(
                "message/send", {"message": user_message_v03("echo")}))
            assert r.status_code in (404, 405), (path, r.text)
        rest = await client.post("/a2a/rest/message:send", headers=V10,
                                 json={"message": user_message("echo")})
    assert rest.status_code == 404


@pytest.mark.parametrize(("raw", "normal"), [("", ""), ("/", ""), (None, ""),
                                             ("api/a2a/v1", BASE), ("/api/a2a/v1/", BASE),
                                             (" /x ", "/x")])
def test_normalize_base_path(raw: str | None, normal: str) -> None:
    assert normalize_base_path(raw) == normal


@pytest.mark.parametrize("raw", ["/a//b", "/a/../b", "/./a", "/a?x=1", "/a#b", "/a%2Fb",
                                 "/a b"])
def test_bad_base_paths_are_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="base path"):
        normalize_base_path(raw)


async def test_a_bad_base_path_stops_the_start() -> None:
    with pytest.raises(ValueError, match="base path"):
        async with open_server(ServerConfig(port=0, store="memory", base_path="/a/../b")):
            raise AssertionError("started")


def test_rewrite_table() -> None:
    m = PathMount(lambda s, r, x: None, base_path=BASE, aliases=True)  # type: ignore[arg-type,return-value]
    assert m.rewrite(BASE) == "/" and m.rewrite(BASE + "/tasks/x") == "/tasks/x"
    assert m.rewrite("/a2a/rest") == "/" and m.rewrite("/a2a/rest/v1/card") == "/v1/card"
    assert m.rewrite("/healthz") == "/healthz" and m.rewrite("/api/a2a/v10") == "/api/a2a/v10"
