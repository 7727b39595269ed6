"""Tenants: the same principal name in two tenants owns two disjoint sets of tasks, push
configs and contexts on every method and binding; a request naming another tenant (the
1.0 `tenant` field or the `/{tenant}/` path) is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from runtime.http.auth import TokenEntry
from runtime.security import SecurityConfig
from runtime.server import RunningServer, ServerConfig, open_server
from tests.agents import scripted_agent
from tests.conftest import user_message
from tests.security.matrix import BINDINGS, OPERATIONS, Call, Ids, perform

ENTRIES = {"tok-acme": TokenEntry("pat", ("admin",), "acme"),
           "tok-globex": TokenEntry("pat", ("admin",), "globex"),
           "tok-plain": TokenEntry("pat", ("admin",))}


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    config = ServerConfig(port=0, store="memory", agent=scripted_agent(), keepalive=60,
                          tokens={t: e.principal for t, e in ENTRIES.items()},
                          security=SecurityConfig(token_entries=ENTRIES))
    async with open_server(config) as srv:
        yield srv


def rpc(method: str, params: dict) -> dict:
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}


def h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "A2A-Version": "1.0"}


async def test_no_operation_reaches_another_tenants_task(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as c:
        with trio.fail_after(60):
            r = await c.post("/", json=rpc("SendMessage", {"message": user_message("ask")}),
                             headers=h("tok-acme"))
            task = r.json()["result"]["task"]
            r = await c.post("/", json=rpc("CreateTaskPushNotificationConfig", {
                "taskId": task["id"], "id": "cfg", "url": "https://example.com/h"}),
                headers=h("tok-acme"))
            assert "result" in r.json()
            ids = Ids(task["id"], "cfg")
            for op in ("task.get", "task.cancel", "task.subscribe", "push.create",
                       "push.get", "push.list", "push.delete"):
                for binding in BINDINGS:
                    for token in ("tok-globex", "tok-plain"):
                        call = OPERATIONS[op][binding](ids)
                        out = await perform(c, call, token)
                        where = f"{token} {op} on {binding}: {out.text[:200]}"
                        if call.rpc:
                            assert out.code == -32001, where
                        else:
                            assert (out.status, out.code) == (404, 404), where
            for binding in BINDINGS:  # lists are empty, whatever the filter
                out = await perform(c, OPERATIONS["task.list"][binding](ids), "tok-globex")
                assert task["id"] not in out.text, binding
            # a reply into the other tenant's task is "not found" too
            r = await c.post("/", json=rpc("SendMessage", {
                "message": user_message("x", taskId=task["id"])}), headers=h("tok-globex"))
            assert r.json()["error"]["code"] == -32001
            # a context id of the other tenant starts a task of one's own, which sees none
            # of acme's context
            r = await c.post("/", json=rpc("SendMessage", {
                "message": user_message("hi", contextId=task["contextId"])}),
                headers=h("tok-globex"))
            mine = r.json()["result"]
            r = await c.post("/", json=rpc("ListTasks", {"contextId": task["contextId"]}),
                             headers=h("tok-globex"))
            listed = [t["id"] for t in r.json()["result"]["tasks"]]
            assert task["id"] not in listed and len(listed) == 1, mine
            # acme's task is untouched
            r = await c.post("/", json=rpc("GetTask", {"id": task["id"]}), headers=h("tok-acme"))
            assert r.json()["result"]["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"


async def test_a_request_naming_another_tenant_is_refused(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as c:
        with trio.fail_after(20):
            r = await c.post("/", json=rpc("ListTasks", {"tenant": "globex"}),
                             headers=h("tok-acme"))
            assert r.json()["error"]["code"] == -32041
            r = await c.post("/", json=rpc("ListTasks", {"tenant": "acme"}),
                             headers=h("tok-acme"))
            assert "result" in r.json()
            out = await perform(c, Call("GET", "/globex/tasks", version="1.0"), "tok-acme")
            assert (out.status, out.reason) == (403, "TENANT_MISMATCH")
            out = await perform(c, Call("GET", "/acme/tasks", version="1.0"), "tok-acme")
            assert out.status == 200
            out = await perform(c, Call("POST", "/globex/message:send",
                                        {"message": user_message("x")}, "1.0"), "tok-acme")
            assert (out.status, out.reason) == (403, "TENANT_MISMATCH")
            # an identity without a tenant ignores the path's (single-tenant deployments)
            out = await perform(c, Call("GET", "/anything/tasks", version="1.0"), "tok-plain")
            assert out.status == 200
