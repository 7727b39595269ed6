"""A2A 1.0 over JSON-RPC against a real server on loopback: every method's semantics."""

from __future__ import annotations

import json

import httpx
import pytest
import trio

from protocol.sse import SSEDecoder
from runtime.server import RunningServer
from tests.agents import Controls
from tests.conftest import Rpc, results, user_message, wait_state


def send(text: str, **config: object) -> dict[str, object]:
    params: dict[str, object] = {"message": user_message(text)}
    if config:
        params["configuration"] = config
    return params


async def test_blocking_send_completes_with_echo_artifact(rpc: Rpc) -> None:
    with trio.fail_after(10):
        result = await rpc.call("SendMessage", send("echo hello world"))
    task = result["task"]
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    text = "".join(p["text"] for p in task["artifacts"][0]["parts"])
    assert text == "echo hello world"
    assert task["contextId"]
    assert task["history"][0]["role"] == "ROLE_USER"
    assert task["history"][0]["taskId"] == task["id"]
    assert task["history"][0]["contextId"] == task["contextId"]


async def test_return_immediately_does_not_wait(
    server: RunningServer, rpc: Rpc, controls: Controls
) -> None:
    with trio.fail_after(10):
        result = await rpc.call("SendMessage", send("wait", returnImmediately=True))
        assert result["task"]["status"]["state"] in ("TASK_STATE_SUBMITTED", "TASK_STATE_WORKING")
        controls.gate.set()
        task_id = result["task"]["id"]
        await wait_state(server, task_id, "TASK_STATE_COMPLETED")
        task = await rpc.call("GetTask", {"id": task_id})
        assert task["status"]["state"] == "TASK_STATE_COMPLETED"


async def test_history_length(rpc: Rpc) -> None:
    with trio.fail_after(10):
        full = await rpc.call("SendMessage", send("echo a"))
        none = await rpc.call("SendMessage", send("echo b", historyLength=0))
        task_id = full["task"]["id"]
        got_full = await rpc.call("GetTask", {"id": task_id})
        got_zero = await rpc.call("GetTask", {"id": task_id, "historyLength": 0})
        got_one = await rpc.call("GetTask", {"id": task_id, "historyLength": 1})
    assert len(full["task"]["history"]) == 1
    assert "history" not in none["task"]
    assert len(got_full["history"]) == 1
    assert "history" not in got_zero
    assert len(got_one["history"]) == 1


async def test_context_id_kept_and_generated(rpc: Rpc) -> None:
    with trio.fail_after(10):
        a = await rpc.call("SendMessage", {"message": user_message("echo x", contextId="ctx-1")})
        b = await rpc.call("SendMessage", send("echo y"))
    assert a["task"]["contextId"] == "ctx-1"
    assert b["task"]["contextId"] and b["task"]["contextId"] != "ctx-1"


async def test_continue_input_required_task(rpc: Rpc) -> None:
    with trio.fail_after(10):
        first = await rpc.call("SendMessage", send("ask"))
        task = first["task"]
        assert task["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
        assert task["status"]["message"]["parts"][0]["text"] == "what is your name?"
        second = await rpc.call("SendMessage", {"message": user_message("ask Ada",
                                                                        taskId=task["id"])})
    done = second["task"]
    assert done["id"] == task["id"]
    assert done["status"]["state"] == "TASK_STATE_COMPLETED"
    assert done["artifacts"][0]["parts"][0]["text"] == "answer: ask Ada"
    roles = [m["role"] for m in done["history"]]
    assert roles == ["ROLE_USER", "ROLE_AGENT", "ROLE_USER"]


async def test_context_mismatch_is_rejected(rpc: Rpc) -> None:
    with trio.fail_after(10):
        task = (await rpc.call("SendMessage", send("ask")))["task"]
        err = await rpc.error("SendMessage", {"message": user_message(
            "x", taskId=task["id"], contextId="other")})
    assert err["code"] == -32602
    assert "contextId" in err["message"]


async def test_message_to_terminal_task_is_unsupported(rpc: Rpc) -> None:
    with trio.fail_after(10):
        task = (await rpc.call("SendMessage", send("echo done")))["task"]
        err = await rpc.error("SendMessage", {"message": user_message("more", taskId=task["id"])})
    assert err["code"] == -32004
    assert err["data"][0]["reason"] == "UNSUPPORTED_OPERATION"


async def test_unknown_task(rpc: Rpc) -> None:
    with trio.fail_after(10):
        e1 = await rpc.error("GetTask", {"id": "nope"})
        e2 = await rpc.error("SendMessage", {"message": user_message("x", taskId="nope")})
        e3 = await rpc.error("CancelTask", {"id": "nope"})
    assert e1["code"] == e2["code"] == e3["code"] == -32001
    assert e1["data"][0]["reason"] == "TASK_NOT_FOUND"


async def test_failing_and_rejecting_agents(rpc: Rpc) -> None:
    with trio.fail_after(10):
        failed = (await rpc.call("SendMessage", send("fail")))["task"]
        rejected = (await rpc.call("SendMessage", send("reject")))["task"]
    assert failed["status"]["state"] == "TASK_STATE_FAILED"
    assert "scripted failure" in failed["status"]["message"]["parts"][0]["text"]
    assert rejected["status"]["state"] == "TASK_STATE_REJECTED"


async def test_direct_reply_returns_message(rpc: Rpc) -> None:
    with trio.fail_after(10):
        result = await rpc.call("SendMessage", send("reply hi"))
    assert "message" in result
    assert result["message"]["role"] == "ROLE_AGENT"
    assert result["message"]["parts"][0]["text"] == "direct: hi"


# --- ListTasks ----------------------------------------------------------------------


async def test_list_tasks_filters_and_pagination(rpc: Rpc) -> None:
    with trio.fail_after(20):
        ids = []
        for i in range(5):
            r = await rpc.call("SendMessage", {"message": user_message(
                f"echo {i}", contextId="ctx-a" if i % 2 == 0 else "ctx-b")})
            ids.append(r["task"]["id"])
        waiting = (await rpc.call("SendMessage", send("ask")))["task"]
        everything = await rpc.call("ListTasks", {})
        assert [t["id"] for t in everything["tasks"]] == [waiting["id"], *reversed(ids)]
        assert everything["nextPageToken"] == ""
        assert everything["totalSize"] == 6
        assert everything["pageSize"] == 50
        assert all("artifacts" not in t for t in everything["tasks"])

        ctx_a = await rpc.call("ListTasks", {"contextId": "ctx-a"})
        assert [t["id"] for t in ctx_a["tasks"]] == [ids[4], ids[2], ids[0]]

        interrupted = await rpc.call("ListTasks", {"status": "TASK_STATE_INPUT_REQUIRED"})
        assert [t["id"] for t in interrupted["tasks"]] == [waiting["id"]]

        with_art = await rpc.call("ListTasks", {"includeArtifacts": True, "historyLength": 0})
        assert all("artifacts" in t for t in with_art["tasks"] if t["id"] in ids)
        assert all("history" not in t for t in with_art["tasks"])

        seen = []
        token = ""
        while True:
            params = {"pageSize": 2, **({"pageToken": token} if token else {})}
            page = await rpc.call("ListTasks", params)
            seen += [t["id"] for t in page["tasks"]]
            assert page["totalSize"] == 6
            token = page["nextPageToken"]
            if not token:
                break
        assert seen == [waiting["id"], *reversed(ids)]

        # inclusive, as the a2a-sdk stores do: a poller never misses a same-millisecond change
        newest = everything["tasks"][0]["status"]["timestamp"]
        after = await rpc.call("ListTasks", {"statusTimestampAfter": newest})
        assert all(t["status"]["timestamp"] >= newest for t in after["tasks"])
        assert waiting["id"] in [t["id"] for t in after["tasks"]]
        future = await rpc.call("ListTasks", {"statusTimestampAfter": "2999-01-01T00:00:00Z"})
        assert future["tasks"] == [] and future["totalSize"] == 0
        oldest = everything["tasks"][-1]["status"]["timestamp"]
        after_oldest = await rpc.call("ListTasks", {"statusTimestampAfter": oldest})
        assert after_oldest["totalSize"] == 6


@pytest.mark.parametrize("params, field", [
    ({"pageSize": 0}, "pageSize"), ({"pageSize": 101}, "pageSize"),
    ({"pageToken": "garbage!"}, "pageToken"), ({"status": "TASK_STATE_BOGUS"}, "status"),
    ({"statusTimestampAfter": "yesterday"}, "statusTimestampAfter"),
])
async def test_list_tasks_bad_params(rpc: Rpc, params: dict[str, object], field: str) -> None:
    with trio.fail_after(10):
        err = await rpc.error("ListTasks", params)
    assert err["code"] == -32602
    assert field in err["message"]


# --- CancelTask ---------------------------------------------------------------------


async def test_cancel_running_task(rpc: Rpc, controls: Controls) -> None:
    with trio.fail_after(10):
        task = (await rpc.call("SendMessage", send("wait", returnImmediately=True)))["task"]
        await controls.wait_started(task["id"])
        canceled = await rpc.call("CancelTask", {"id": task["id"]})
    assert canceled["status"]["state"] == "TASK_STATE_CANCELED"
    assert controls.cancelled == [task["id"]]


async def test_cancel_interrupted_task(rpc: Rpc) -> None:
    with trio.fail_after(10):
        task = (await rpc.call("SendMessage", send("ask")))["task"]
        canceled = await rpc.call("CancelTask", {"id": task["id"]})
    assert canceled["status"]["state"] == "TASK_STATE_CANCELED"


async def test_cancel_terminal_task_is_not_cancelable(rpc: Rpc) -> None:
    with trio.fail_after(10):
        task = (await rpc.call("SendMessage", send("echo x")))["task"]
        err = await rpc.error("CancelTask", {"id": task["id"]})
    assert err["code"] == -32002
    assert err["data"][0]["reason"] == "TASK_NOT_CANCELABLE"


# --- streaming ------------------------------------------------------------------------


async def test_streaming_send_events_in_order(rpc: Rpc) -> None:
    with trio.fail_after(10):
        events = await rpc.stream("SendStreamingMessage", send("chunks 3"))
    res = results(events)
    kinds = [next(iter(r)) for r in res]
    assert kinds == ["task", "statusUpdate", "artifactUpdate", "artifactUpdate",
                     "artifactUpdate", "statusUpdate"]
    assert res[0]["task"]["status"]["state"] == "TASK_STATE_SUBMITTED"
    assert res[1]["statusUpdate"]["status"]["state"] == "TASK_STATE_WORKING"
    assert res[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"
    assert res[4]["artifactUpdate"]["lastChunk"] is True
    assert [int(e.id) for e in events] == [1, 2, 3, 4, 5, 6]
    assert all(json.loads(e.data)["id"] == 1 for e in events)


async def test_stream_closes_on_input_required(rpc: Rpc) -> None:
    with trio.fail_after(10):
        events = await rpc.stream("SendStreamingMessage", send("ask"))
    res = results(events)
    assert res[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"


async def test_subscribe_sends_task_first_and_every_subscriber_gets_all(
    server: RunningServer, rpc: Rpc, controls: Controls
) -> None:
    with trio.fail_after(10):
        task = (await rpc.call("SendMessage", send("wait", returnImmediately=True)))["task"]
        await controls.wait_started(task["id"])
        # the agent may start before its worker's `working` report is committed: every
        # subscriber is to see the same snapshot, so subscribe once it is
        await wait_state(server, task["id"], "TASK_STATE_WORKING")
        streams: list[list[dict[str, object]]] = [[], [], []]

        async def subscriber(i: int, task_status: trio.TaskStatus[None]) -> None:
            body = {"jsonrpc": "2.0", "id": i, "method": "SubscribeToTask",
                    "params": {"id": task["id"]}}
            async with rpc.client.stream("POST", "/", json=body,
                                         headers={"A2A-Version": "1.0"}) as r:
                dec = SSEDecoder()
                started = False
                async for chunk in r.aiter_bytes():
                    for ev in dec.feed(chunk):
                        streams[i].append(json.loads(ev.data)["result"])
                        if not started:
                            started = True
                            task_status.started()

        async with trio.open_nursery() as nursery:
            for i in range(3):
                await nursery.start(subscriber, i)
            controls.gate.set()
    for s in streams:
        assert "task" in s[0]
        assert s[0]["task"]["status"]["state"] == "TASK_STATE_WORKING"
        assert s[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"
    assert streams[0] == streams[1] == streams[2]


async def test_subscribe_to_terminal_task_is_refused(rpc: Rpc) -> None:
    with trio.fail_after(10):
        task = (await rpc.call("SendMessage", send("echo x")))["task"]
        err = await rpc.stream_error("SubscribeToTask", {"id": task["id"]})
    assert err["code"] == -32004


async def test_last_event_id_resumes_without_loss_or_duplicates(rpc: Rpc) -> None:
    with trio.fail_after(10):
        full = await rpc.stream("SendStreamingMessage", send("chunks 5"))
        task_id = results(full)[0]["task"]["id"]
        for cut in range(1, len(full)):
            resumed = await rpc.stream("SubscribeToTask", {"id": task_id},
                                       headers={"Last-Event-ID": full[cut - 1].id or ""})
            assert [e.id for e in resumed] == [e.id for e in full[cut:]]
            assert results(resumed) == results(full)[cut:]


async def test_disconnecting_client_does_not_cancel_task(
    server: RunningServer, rpc: Rpc, controls: Controls
) -> None:
    with trio.fail_after(10):
        events = await rpc.stream("SendStreamingMessage", send("wait"), limit=2)
        task_id = results(events)[0]["task"]["id"]
        controls.gate.set()
        await wait_state(server, task_id, "TASK_STATE_COMPLETED")
        task = await rpc.call("GetTask", {"id": task_id})
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert controls.cancelled == []


@pytest.fixture
def server_config(controls: Controls):  # type: ignore[no-untyped-def]
    from runtime.server import ServerConfig
    from tests.agents import scripted_agent

    return ServerConfig(port=0, store="memory", agent=scripted_agent(controls),
                        allow_private_push_urls=True, keepalive=0.05)


async def test_keepalive_comments_on_idle_stream(server: RunningServer, controls: Controls) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendStreamingMessage", "params": send("wait")}
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=server.url) as c, c.stream(
            "POST", "/", json=body, headers={"A2A-Version": "1.0"}
        ) as r:
            raw = b""
            async for chunk in r.aiter_bytes():
                raw += chunk
                if raw.count(b": keep-alive") >= 2:
                    break
            controls.gate.set()
    assert b": keep-alive\n\n" in raw
