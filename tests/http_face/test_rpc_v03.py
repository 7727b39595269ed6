"""A2A 0.3 over JSON-RPC (no A2A-Version header), including the older aliases."""

from __future__ import annotations

import json

import pytest
import trio

from protocol.sse import SSEDecoder
from tests.agents import Controls
from tests.conftest import Rpc, results, user_message, user_message_v03


def send(text: str, **config: object) -> dict[str, object]:
    params: dict[str, object] = {"message": user_message_v03(text)}
    if config:
        params["configuration"] = config
    return params


@pytest.mark.parametrize("method", ["message/send", "tasks/send"])
async def test_blocking_send(rpc03: Rpc, method: str) -> None:
    with trio.fail_after(10):
        task = await rpc03.call(method, send("echo hi there"))
    assert task["kind"] == "task"
    assert task["status"]["state"] == "completed"
    parts = task["artifacts"][0]["parts"]
    assert all(p["kind"] == "text" for p in parts)
    assert "".join(p["text"] for p in parts) == "echo hi there"
    assert task["history"][0]["role"] == "user"


async def test_non_blocking_send(rpc03: Rpc, controls: Controls) -> None:
    with trio.fail_after(10):
        task = await rpc03.call("message/send", send("wait", blocking=False))
        assert task["status"]["state"] in ("submitted", "working")
        controls.gate.set()


async def test_history_length_and_get(rpc03: Rpc) -> None:
    with trio.fail_after(10):
        task = await rpc03.call("message/send", send("echo a"))
        got = await rpc03.call("tasks/get", {"id": task["id"], "historyLength": 1})
    assert got["id"] == task["id"]
    assert len(got["history"]) == 1


@pytest.mark.parametrize("method", ["message/stream", "tasks/sendSubscribe"])
async def test_streaming_send_has_kinds_and_final(rpc03: Rpc, method: str) -> None:
    with trio.fail_after(10):
        events = await rpc03.stream(method, send("echo streaming"))
    res = results(events)
    assert [r["kind"] for r in res] == ["task", "status-update", "artifact-update",
                                        "artifact-update", "artifact-update", "status-update"]
    assert res[1]["final"] is False
    assert res[-1]["final"] is True
    assert res[-1]["status"]["state"] == "completed"


async def test_cancel_and_not_cancelable(rpc03: Rpc, controls: Controls) -> None:
    with trio.fail_after(10):
        task = await rpc03.call("message/send", send("wait", blocking=False))
        await controls.wait_started(task["id"])
        canceled = await rpc03.call("tasks/cancel", {"id": task["id"]})
        assert canceled["status"]["state"] == "canceled"
        err = await rpc03.error("tasks/cancel", {"id": task["id"]})
        assert err["code"] == -32002


async def test_resubscribe(rpc03: Rpc, controls: Controls) -> None:
    with trio.fail_after(10):
        task = await rpc03.call("message/send", send("wait", blocking=False))
        await controls.wait_started(task["id"])
        got: list[dict[str, object]] = []
        body = {"jsonrpc": "2.0", "id": 1, "method": "tasks/resubscribe",
                "params": {"id": task["id"]}}
        async with rpc03.client.stream("POST", "/", json=body) as r:
            dec = SSEDecoder()
            async for chunk in r.aiter_bytes():
                got += [json.loads(e.data)["result"] for e in dec.feed(chunk)]
                if got and not controls.gate.is_set():
                    controls.gate.set()  # subscribed: now let the task finish
    assert got[0]["kind"] == "task"
    assert got[-1]["kind"] == "status-update" and got[-1]["final"] is True


async def test_continue_with_task_id(rpc03: Rpc) -> None:
    with trio.fail_after(10):
        task = await rpc03.call("message/send", send("ask"))
        assert task["status"]["state"] == "input-required"
        done = await rpc03.call("message/send", {"message": user_message_v03(
            "ask Bob", taskId=task["id"], contextId=task["contextId"])})
    assert done["status"]["state"] == "completed"
    assert done["artifacts"][0]["parts"][0]["text"] == "answer: ask Bob"


async def test_tasks_list_extension(rpc03: Rpc) -> None:
    with trio.fail_after(10):
        a = await rpc03.call("message/send", send("echo 1"))
        b = await rpc03.call("message/send", send("echo 2"))
        listed = await rpc03.call("tasks/list", {"pageSize": 1})
        assert [t["id"] for t in listed["tasks"]] == [b["id"]]
        assert listed["tasks"][0]["kind"] == "task"
        rest = await rpc03.call("tasks/list", {"pageToken": listed["nextPageToken"]})
        assert [t["id"] for t in rest["tasks"]] == [a["id"]]
        assert rest["nextPageToken"] == ""


async def test_push_config_crud(rpc03: Rpc) -> None:
    with trio.fail_after(10):
        task = await rpc03.call("message/send", send("ask"))
        cfg = {"taskId": task["id"], "pushNotificationConfig": {
            "id": "c1", "url": "http://127.0.0.1:9/hook", "token": "tok",
            "authentication": {"schemes": ["Bearer"], "credentials": "secret"}}}
        created = await rpc03.call("tasks/pushNotificationConfig/set", cfg)
        assert created == cfg
        got = await rpc03.call("tasks/pushNotificationConfig/get",
                               {"id": task["id"], "pushNotificationConfigId": "c1"})
        assert got == cfg
        listed = await rpc03.call("tasks/pushNotificationConfig/list", {"id": task["id"]})
        assert listed == [cfg]
        deleted = await rpc03.call("tasks/pushNotificationConfig/delete",
                                   {"id": task["id"], "pushNotificationConfigId": "c1"})
        assert deleted is None
        assert await rpc03.call("tasks/pushNotificationConfig/list", {"id": task["id"]}) == []
        err = await rpc03.error("tasks/pushNotificationConfig/get",
                                {"id": task["id"], "pushNotificationConfigId": "c1"})
        assert err["code"] == -32001


async def test_push_config_crud_v10(rpc: Rpc) -> None:
    with trio.fail_after(10):
        task = (await rpc.call("SendMessage", {"message": user_message("ask")}))["task"]
        cfg = {"taskId": task["id"], "url": "http://127.0.0.1:9/hook", "token": "t",
               "authentication": {"scheme": "Bearer", "credentials": "c"}}
        created = await rpc.call("CreateTaskPushNotificationConfig", cfg)
        assert created == {**cfg, "id": task["id"]}  # the id defaults to the task id
        got = await rpc.call("GetTaskPushNotificationConfig", {"taskId": task["id"],
                                                                "id": task["id"]})
        assert got == created
        second = await rpc.call("CreateTaskPushNotificationConfig", {**cfg, "id": "two"})
        listed = await rpc.call("ListTaskPushNotificationConfigs", {"taskId": task["id"]})
        assert listed["configs"] == [created, second]
        assert await rpc.call("DeleteTaskPushNotificationConfig",
                              {"taskId": task["id"], "id": "two"}) == {}
        listed = await rpc.call("ListTaskPushNotificationConfigs", {"taskId": task["id"]})
        assert listed["configs"] == [created]
        missing = await rpc.error("GetTaskPushNotificationConfig", {"taskId": "nope", "id": "x"})
        assert missing["code"] == -32001


async def test_push_url_to_loopback_refused_by_default() -> None:
    import httpx

    from runtime.server import ServerConfig, open_server

    async with open_server(ServerConfig(port=0, store="memory")) as srv, \
            httpx.AsyncClient(base_url=srv.url) as c:
        rpc = Rpc(c, "1.0")
        with trio.fail_after(10):
            task = (await rpc.call("SendMessage", {"message": user_message("echo x"),
                                                   "configuration": {"returnImmediately": True}}))
            for url in ["http://127.0.0.1:9/h", "http://localhost/h", "http://10.0.0.1/h",
                        "http://[::1]/h", "ftp://example.com/h"]:
                err = await rpc.error("CreateTaskPushNotificationConfig",
                                      {"taskId": task["task"]["id"], "url": url})
                assert err["code"] == -32602, url
                assert "url" in err["message"]


async def test_push_not_supported_when_off() -> None:
    import httpx

    from runtime.server import ServerConfig, open_server

    async with open_server(ServerConfig(port=0, store="memory", push_notifications=False)) as srv, \
            httpx.AsyncClient(base_url=srv.url) as c:
        rpc = Rpc(c, "1.0")
        with trio.fail_after(10):
            card = (await c.get("/.well-known/agent-card.json")).json()
            assert card["capabilities"]["pushNotifications"] is False
            err = await rpc.error("ListTaskPushNotificationConfigs", {"taskId": "x"})
            assert err["code"] == -32003
            err = await rpc.error("SendMessage", {"message": user_message("x"), "configuration": {
                "taskPushNotificationConfig": {"url": "https://example.com/h"}}})
            assert err["code"] == -32003
